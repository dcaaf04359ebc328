"""The history export format: one execution's history as a versioned JSON document.

Written by ``manage.py workflows history ID --json`` and the admin's "Download history (JSON)"
link, read back by ``read_history`` (the replayer reads it to replay a production history
against new code). go-workflows has no file format; its ``diag`` UI serves history as JSON much
like this, with event attributes in their stored form. Pure Python, like the rest of ``engine``.

    {
      "format": "django-workflows-history",
      "version": 1,
      "instance": "order-1",
      "execution": "5f0c...",
      "parent": null,                      # or {"instance", "execution", "event_id"}
      "workflow_name": "order_workflow",
      "events": [
        {"id": "...", "type": "WorkflowExecutionStarted", "timestamp": "2026-01-01T10:00:00+00:00",
         "schedule_event_id": 0, "sequence_id": 1, "visible_at": null,
         "attributes": {"name": "order_workflow", "queue": "default", "inputs": ["\\"o-1\\""]}}
      ]
    }

Attributes are the stored form (``engine.history.attributes_to_dict``): payload fields (inputs,
results, signal arguments) hold the converter's output (JSON text with the default converter),
so a document turns back into exactly the events that were stored. Readers accept any document
of a version they know; later versions may add keys, which readers of this version ignore.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .core import WorkflowInstance
from .history import Event, EventType, attributes_from_dict, attributes_to_dict

FORMAT = "django-workflows-history"
VERSION = 1


class HistoryFormatError(ValueError):
    """A document that is not a history export this version can read; the message says why."""


@dataclass(frozen=True, slots=True)
class HistoryExport:
    """What ``read_history`` returns."""

    instance: WorkflowInstance
    workflow_name: str
    events: list[Event]
    version: int = VERSION


def export_history(instance: WorkflowInstance, workflow_name: str, events: Sequence[Event]) -> dict[str, Any]:
    """The export document of an execution (a dict, ready for ``json.dumps``)."""
    parent = instance.parent
    return {
        "format": FORMAT,
        "version": VERSION,
        "instance": instance.instance_id,
        "execution": instance.execution_id,
        "parent": (
            None
            if parent is None
            else {"instance": parent.instance_id, "execution": parent.execution_id, "event_id": instance.parent_event_id}
        ),
        "workflow_name": workflow_name,
        "events": [_event(event) for event in events],
    }


def dumps_history(instance: WorkflowInstance, workflow_name: str, events: Sequence[Event]) -> str:
    """``export_history`` as indented JSON text."""
    return json.dumps(export_history(instance, workflow_name, events), indent=2, ensure_ascii=False)


def _event(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type.value,
        "timestamp": event.timestamp.isoformat(),
        "schedule_event_id": event.schedule_event_id,
        "sequence_id": event.sequence_id,
        "visible_at": None if event.visible_at is None else event.visible_at.isoformat(),
        "attributes": attributes_to_dict(event.attributes),
    }


def read_history(document: dict[str, Any] | str | bytes) -> HistoryExport:
    """Turn an export document (parsed, or its JSON text) back into engine events.

    ``HistoryFormatError`` names the first thing that is wrong: not JSON, another format, an
    unknown version, a missing or mistyped field, an unknown event type, sequence ids out of order.
    """
    if isinstance(document, (str, bytes)):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise HistoryFormatError(f"not a history export: invalid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise HistoryFormatError(f"not a history export: expected a JSON object, got {type(document).__name__}")
    if document.get("format") != FORMAT:
        raise HistoryFormatError(f"not a history export: format is {document.get('format')!r}, expected {FORMAT!r}")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise HistoryFormatError(f"history export: version must be a positive integer, got {version!r}")
    if version > VERSION:
        raise HistoryFormatError(f"history export version {version} is newer than this reader (version {VERSION})")
    instance_id = _text(document, "instance")
    execution_id = _text(document, "execution")
    workflow_name = _text(document, "workflow_name")
    parent_data = document.get("parent")
    parent, parent_event_id = None, 0
    if parent_data is not None:
        if not isinstance(parent_data, dict):
            raise HistoryFormatError("history export: parent must be an object or null")
        parent = WorkflowInstance(_text(parent_data, "instance", "parent."), _text(parent_data, "execution", "parent."))
        parent_event_id = _int(parent_data, "event_id", "parent.")
    events_data = document.get("events")
    if not isinstance(events_data, list):
        raise HistoryFormatError("history export: events must be a list")
    events = [_read_event(index, data) for index, data in enumerate(events_data)]
    for index, event in enumerate(events):
        if event.sequence_id != index + 1:
            raise HistoryFormatError(
                f"history export: events[{index}] has sequence_id {event.sequence_id}, expected {index + 1}"
            )
    instance = WorkflowInstance(instance_id, execution_id, parent, parent_event_id)
    return HistoryExport(instance=instance, workflow_name=workflow_name, events=events, version=version)


def _read_event(index: int, data: Any) -> Event:
    where = f"events[{index}]."
    if not isinstance(data, dict):
        raise HistoryFormatError(f"history export: events[{index}] must be an object")
    type_name = _text(data, "type", where)
    try:
        event_type = EventType(type_name)
    except ValueError:
        raise HistoryFormatError(f"history export: {where}type {type_name!r} is not an event type") from None
    attributes = data.get("attributes", {})
    if not isinstance(attributes, dict):
        raise HistoryFormatError(f"history export: {where}attributes must be an object")
    visible_at = data.get("visible_at")
    try:
        return Event(
            id=_text(data, "id", where),
            type=event_type,
            timestamp=_datetime(data.get("timestamp"), f"{where}timestamp"),
            attributes=attributes_from_dict(event_type, attributes),
            schedule_event_id=_int(data, "schedule_event_id", where),
            sequence_id=_int(data, "sequence_id", where),
            visible_at=None if visible_at is None else _datetime(visible_at, f"{where}visible_at"),
        )
    except HistoryFormatError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise HistoryFormatError(f"history export: {where}attributes do not fit {type_name}: {exc}") from None


def _text(data: dict[str, Any], key: str, where: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise HistoryFormatError(f"history export: {where}{key} must be a non-empty string, got {value!r}")
    return value


def _int(data: dict[str, Any], key: str, where: str = "") -> int:
    value = data.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise HistoryFormatError(f"history export: {where}{key} must be a non-negative integer, got {value!r}")
    return value


def _datetime(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise HistoryFormatError(f"history export: {where} must be an ISO 8601 string, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HistoryFormatError(f"history export: {where} is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise HistoryFormatError(f"history export: {where} has no UTC offset: {value!r}")
    return moment
