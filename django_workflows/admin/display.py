"""How the admin shows stored workflow data: statuses, durations, decoded event attributes.

go-workflows has a diagnostics web UI (``diag``) that lists instances and renders their history
with decoded payloads; this module is the rendering half of our equivalent inside the Django
admin. It turns rows and JSON into plain values for templates and never marks data safe:
templates escape every payload, error message and stack trace.

Payloads are decoded through the backend's converter, so an application with its own converter
(encryption, compression) sees its values; a payload the converter cannot read is shown as an
error note next to the raw text instead of breaking the page.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..engine.converter import Converter
from ..engine.core import InstanceState, WorkflowInstance
from ..engine.errors import ErrorInfo
from ..engine.history import Attributes, attributes_from_json

#: Longest JSON text shown for one value; a bigger payload is cut (the page must stay usable).
MAX_SHOWN_CHARS = 20_000

#: Attribute fields that hold converter payloads (``engine.converter.Payload`` is ``str``, so
#: the type hints cannot tell them from names and queues).
_PAYLOAD_FIELDS = frozenset({"inputs", "result", "arg", "heartbeat_details"})

#: Status key -> label, in the order the list filter offers them.
STATUS_LABELS: dict[str, Any] = {
    "scheduled": _("Scheduled"),
    "running": _("Running"),
    # Active, but its workflow task keeps failing (Backend.block_workflow_task) until fixed code runs it.
    "blocked": _("Blocked"),
    "completed": _("Completed"),
    "failed": _("Failed"),
    "canceled": _("Canceled"),
    "terminated": _("Terminated"),
    "timed_out": _("Timed out"),
    "continued_as_new": _("Continued as new"),
}


def status_key(state: int, outcome: str, blocked: bool = False, *, scheduled: bool = False) -> str:
    """One word for an execution's state and outcome (``running``, ``blocked``, ``failed``...):
    ``blocked`` an active execution whose workflow task keeps failing, ``scheduled`` one whose
    delayed start has not come yet."""
    if state == InstanceState.ACTIVE.value:
        if blocked:
            return "blocked"
        return "scheduled" if scheduled else "running"
    if outcome in STATUS_LABELS:
        return outcome
    if state == InstanceState.CONTINUED_AS_NEW.value:
        return "continued_as_new"
    return "finished"


def status_label(key: str) -> str:
    return str(STATUS_LABELS.get(key, _("Finished")))


def blocked_error(row: Any) -> ErrorInfo | None:
    """The error a blocked execution's row stores (``blocked_error``), or None."""
    data = getattr(row, "blocked_error", None)
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return ErrorInfo(type="?", message=data)
    return ErrorInfo.from_dict(data) if isinstance(data, dict) else None


def format_duration(delta: timedelta) -> str:
    """A short human duration: ``850 ms``, ``4.2 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def describe_duration(created_at: datetime, completed_at: datetime | None, now: datetime) -> str:
    """``completed_at - created_at``, or ``running for ...`` while the execution is active."""
    if completed_at is None:
        return str(_("running for %(duration)s") % {"duration": format_duration(now - created_at)})
    return format_duration(completed_at - created_at)


def time_parts(value: datetime) -> tuple[str, str, str]:
    """The one way the admin shows a time: ``(ISO 8601 for machines, "2026-01-31 12:00:05",
    ".123")`` in the current time zone; the template shows the milliseconds smaller."""
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return local.isoformat(), local.strftime("%Y-%m-%d %H:%M:%S"), f".{local.microsecond // 1000:03d}"


def pretty_json(value: Any) -> str:
    """Indented JSON for a ``<pre>`` block, cut at ``MAX_SHOWN_CHARS``."""
    # default=repr: a custom converter may return objects JSON does not know; show them anyway.
    text = json.dumps(value, indent=2, ensure_ascii=False, default=repr)
    return truncate(text)


def truncate(text: str) -> str:
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    return f"{text[:MAX_SHOWN_CHARS]}\n… ({len(text) - MAX_SHOWN_CHARS} more characters not shown)"


@dataclass(frozen=True, slots=True)
class ErrorView:
    """One error of a failure, with the errors it wraps after it (outermost first)."""

    chain: list[ErrorInfo]

    @classmethod
    def of(cls, error: ErrorInfo) -> ErrorView:
        chain: list[ErrorInfo] = []
        current: ErrorInfo | None = error
        # Bounded: a stored cause chain is data, and data can be absurd.
        while current is not None and len(chain) < 20:
            chain.append(dataclasses.replace(current, stacktrace=truncate(current.stacktrace)))
            current = current.cause
        return cls(chain)

    @property
    def error(self) -> ErrorInfo:
        return self.chain[0]

    @property
    def causes(self) -> list[ErrorInfo]:
        return self.chain[1:]


@dataclass(frozen=True, slots=True)
class Field:
    """One decoded attribute of an event, tagged with how the template shows it.

    ``kind`` is ``json`` (``value`` is indented JSON text), ``error`` (an ``ErrorView``),
    ``instance`` (a ``WorkflowInstance``), ``datetime`` or ``text``.
    """

    name: str
    kind: str
    value: Any
    note: str = ""


#: The permission to see decoded payloads (``WorkflowInstance.Meta.permissions``).
VIEW_PAYLOADS = "django_workflows.view_payloads"
#: What the admin shows in place of a payload to a user without the ``view_payloads`` permission.
PAYLOAD_HIDDEN = _("hidden (needs the “Can view workflow payloads” permission)")


class HiddenPayloads:
    """The converter the admin's pages get for a user without ``view_payloads``: every payload
    they would decode is shown as ``PAYLOAD_HIDDEN`` (see ``decode_value``); nothing is decoded."""

    def to_payload(self, value: Any) -> str:
        raise TypeError("the admin does not encode payloads for a user who may not see them")

    def from_payload(self, payload: str) -> Any:
        return str(PAYLOAD_HIDDEN)


#: The one ``HiddenPayloads``.
HIDDEN_PAYLOADS = HiddenPayloads()


def decode_payload(converter: Converter, payload: str) -> tuple[Any, str]:
    """``(value, "")``, or ``(raw text, reason)`` when the converter cannot decode it."""
    try:
        return converter.from_payload(payload), ""
    except Exception as exc:  # noqa: BLE001 - a converter is application code: any failure is possible
        return payload, f"cannot decode payload: {exc}"


def decode_value(converter: Converter, name: str, value: Any) -> Field:
    if name in _PAYLOAD_FIELDS and isinstance(converter, HiddenPayloads):
        return Field(name, "hidden", str(PAYLOAD_HIDDEN))
    if name in _PAYLOAD_FIELDS:
        if isinstance(value, list):
            decoded = [decode_payload(converter, item) for item in value]
            notes = "; ".join(note for _value, note in decoded if note)
            return Field(name, "json", pretty_json([item for item, _note in decoded]), notes)
        decoded_value, note = decode_payload(converter, value)
        return Field(name, "json", pretty_json(decoded_value), note)
    if isinstance(value, ErrorInfo):
        return Field(name, "error", ErrorView.of(value))
    if isinstance(value, WorkflowInstance):
        return Field(name, "instance", value)
    if isinstance(value, datetime):
        return Field(name, "datetime", value)
    if isinstance(value, (dict, list)):
        return Field(name, "json", pretty_json(value))
    return Field(name, "text", truncate(str(value)))


def decode_attributes(event_type: str, data: str) -> Attributes:
    return attributes_from_json(event_type, data)


def attribute_fields(converter: Converter, attributes: Attributes) -> list[Field]:
    """The attributes of an event as fields, payloads decoded; empty values are left out."""
    fields = []
    for field in dataclasses.fields(attributes):
        value = getattr(attributes, field.name)
        if value is None or value == "" or value == {} or (value == [] and field.name not in _PAYLOAD_FIELDS):
            continue
        fields.append(decode_value(converter, field.name, value))
    return fields


@dataclass(frozen=True, slots=True)
class EventView:
    """One history or pending event, ready for a template."""

    sequence_id: int
    event_type: str
    timestamp: datetime
    schedule_event_id: int
    visible_at: datetime | None
    event_id: str
    fields: list[Field]
    #: Why the attributes could not be decoded (then ``raw`` holds the stored text).
    error: str = ""
    raw: str = ""

    @property
    def happened_at(self) -> datetime:
        """When the event took effect: a timer's ``TimerFired`` is written when the timer is
        scheduled and becomes visible when it fires."""
        return self.visible_at or self.timestamp

    @property
    def is_canceled_error(self) -> bool:
        """A ``WorkflowExecutionFinished`` that ends a cancellation (its error type is Canceled)."""
        return any(f.kind == "error" and f.value.error.type == "Canceled" for f in self.fields)


def event_view(converter: Converter, row: Any) -> EventView:
    """Decode an event row (``HistoryEvent``/``PendingEvent`` with its ``payload``)."""
    data = row.payload.data
    try:
        fields = attribute_fields(converter, decode_attributes(row.event_type, data))
        error = raw = ""
    except Exception as exc:  # noqa: BLE001 - unknown event type, damaged JSON: show it, do not fail the page
        fields, error, raw = [], f"cannot decode attributes: {exc}", truncate(data)
    return EventView(
        sequence_id=row.sequence_id,
        event_type=row.event_type,
        timestamp=row.timestamp,
        schedule_event_id=row.schedule_event_id,
        visible_at=row.visible_at,
        event_id=row.event_id,
        fields=fields,
        error=error,
        raw=raw,
    )
