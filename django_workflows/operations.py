"""Operating workflow instances from a command line: what ``manage.py workflows`` does.

Everything goes through the ``Client`` and the backend API (``list_workflow_instances``,
``get_workflow_instance_info``, the history, ``get_stats``), never through models, so it works the
same on the ORM and Redis backends (and on the memory backend in tests). Each operation returns
plain data (dicts and lists of JSON values; times as ISO 8601 strings) that the command prints as
JSON with ``--json``; the ``*_text`` functions render the same data for people. No Django here:
the command is a flag parser around this module.

Errors: ``NotFound`` (no such instance), ``NotAllowed`` (the instance's state forbids it:
signalling a finished instance, removing a running one, a backend without the feature) and
``UsageError`` (a bad argument: JSON that does not parse, a date that is not one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .client import Client
from .engine.backend import InstanceInfo
from .engine.converter import Converter
from .engine.core import InstanceState, WorkflowInstance, validate_id
from .engine.errors import (
    ErrorInfo,
    InstanceFinished,
    InstanceNotFinished,
    InstanceNotFound,
    NotSupported,
)
from .engine.history import (
    ActivityScheduledAttributes,
    Event,
    EventType,
    SubWorkflowScheduledAttributes,
    TimerScheduledAttributes,
    WorkflowExecutionContinuedAsNewAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    WorkflowExecutionTerminatedAttributes,
    attributes_to_dict,
)
from .engine.history_export import export_history
from .engine.listing import InstanceFilter

#: Children listed by ``show`` (the rest are counted as "more").
SHOW_CHILDREN = 50
#: Attribute fields that hold converter payloads.
_PAYLOAD_FIELDS = frozenset({"inputs", "result", "arg"})

STATE_NAMES = {"active": InstanceState.ACTIVE, "finished": InstanceState.FINISHED,
               "continued_as_new": InstanceState.CONTINUED_AS_NEW}


class OperationError(Exception):
    """An operation that could not be done; ``exit_code`` is the command's exit status."""

    exit_code = 1


class NotFound(OperationError):
    pass


class NotAllowed(OperationError):
    pass


class UsageError(OperationError):
    exit_code = 2


# -- parsing arguments -----------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or time (UTC when it has no offset), or a duration ago: ``90m``, ``12h``,
    ``7d``, ``2w``. ``UsageError`` for anything else."""
    value = text.strip()
    match = _DURATION.match(value)
    if match:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{text!r} is neither an ISO 8601 date/time (2026-01-31, 2026-01-31T12:00:00+01:00) "
            "nor a duration ago (90m, 12h, 7d, 2w)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_json(text: str, what: str) -> Any:
    """A JSON value; ``UsageError`` naming ``what`` when ``text`` is not JSON."""
    try:
        return json.loads(text, parse_constant=_no_constants)
    except ValueError as exc:
        raise UsageError(f"{what} is not valid JSON ({exc}); quote strings: '\"text\"'") from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_state(text: str) -> InstanceState:
    try:
        return STATE_NAMES[text.strip().lower()]
    except KeyError:
        raise UsageError(f"unknown state {text!r}; use one of: {', '.join(STATE_NAMES)}") from None


# -- rendering values ------------------------------------------------------------------------


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def show_time(moment: datetime | None) -> str:
    """The one time format of the text output: UTC, to the millisecond."""
    if moment is None:
        return "-"
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def state_name(state: InstanceState) -> str:
    return {v: k for k, v in STATE_NAMES.items()}[state]


def decode(converter: Converter, payload: str | None) -> Any:
    """A stored payload's value; one the converter cannot read is shown as its raw text."""
    if payload is None:
        return None
    try:
        return converter.from_payload(payload)
    except Exception as exc:  # noqa: BLE001 - a converter is application code
        return {"undecodable_payload": payload, "error": str(exc)}


def decoded_attributes(converter: Converter, event: Event) -> dict[str, Any]:
    """An event's attributes as JSON values, with payloads decoded."""
    data = attributes_to_dict(event.attributes)
    for name in _PAYLOAD_FIELDS & data.keys():
        value = data[name]
        data[name] = [decode(converter, item) for item in value] if isinstance(value, list) else decode(converter, value)
    return data


def _instance_ref(instance: WorkflowInstance | None) -> dict[str, str] | None:
    if instance is None:
        return None
    return {"instance_id": instance.instance_id, "execution_id": instance.execution_id}


def summary(info: InstanceInfo) -> dict[str, Any]:
    """One execution as a row of ``list`` (and ``show``'s children)."""
    return {
        "instance_id": info.instance.instance_id,
        "execution_id": info.instance.execution_id,
        "workflow_name": info.workflow_name,
        "queue": info.queue,
        "state": state_name(info.state),
        "created_at": iso(info.created_at),
        "completed_at": iso(info.completed_at),
        "parent": _instance_ref(info.instance.parent),
    }


def error_dict(error: ErrorInfo) -> dict[str, Any]:
    return error.to_dict()


# -- outcome and pending work, read from the history -----------------------------------------


def outcome(events: Sequence[Event], converter: Converter) -> dict[str, Any]:
    """``status`` (running, completed, failed, canceled, terminated, continued_as_new) and the
    result, error or reason that goes with it, from the last event that ended the execution."""
    cancel_requested = next((e.timestamp for e in events if e.type is EventType.WORKFLOW_EXECUTION_CANCELED), None)
    found: dict[str, Any] = {"status": "running", "cancel_requested_at": iso(cancel_requested)}
    for event in reversed(events):
        attributes = event.attributes
        if isinstance(attributes, WorkflowExecutionFinishedAttributes):
            if attributes.error is None:
                return {**found, "status": "completed", "result": decode(converter, attributes.result)}
            # A Canceled error is how a workflow ends when an operator canceled it and it let
            # the cancellation through: a cancellation, not a crash.
            status = "canceled" if attributes.error.type == "Canceled" else "failed"
            return {**found, "status": status, "error": error_dict(attributes.error)}
        if isinstance(attributes, WorkflowExecutionContinuedAsNewAttributes):
            return {
                **found,
                "status": "continued_as_new",
                "result": decode(converter, attributes.result),
                "continued_execution_id": attributes.continued_execution_id,
            }
        if isinstance(attributes, WorkflowExecutionTerminatedAttributes):
            return {**found, "status": "terminated", "reason": attributes.reason}
    return found


def pending_work(events: Sequence[Event]) -> dict[str, list[dict[str, Any]]]:
    """Operations the history opened and did not close: activities waiting for a result, timers
    not fired, sub-workflows not finished. (Events queued but not executed yet, such as signals,
    come from the backend's inbox: ``get_pending_events``.)"""
    closed: set[int] = set()
    for event in events:
        if event.type in _CLOSING:
            closed.add(event.schedule_event_id)
    work: dict[str, list[dict[str, Any]]] = {"activities": [], "timers": [], "sub_workflows": []}
    for event in events:
        if event.schedule_event_id in closed:
            continue
        attributes = event.attributes
        if isinstance(attributes, ActivityScheduledAttributes):
            work["activities"].append({
                "name": attributes.name, "attempt": attributes.attempt + 1, "queue": attributes.queue or None,
                "scheduled_at": iso(event.timestamp), "schedule_event_id": event.schedule_event_id,
            })
        elif isinstance(attributes, TimerScheduledAttributes):
            work["timers"].append({
                "name": attributes.name or None, "due_at": iso(attributes.at), "scheduled_at": iso(event.timestamp),
                "schedule_event_id": event.schedule_event_id,
            })
        elif isinstance(attributes, SubWorkflowScheduledAttributes):
            work["sub_workflows"].append({
                "name": attributes.name, **(_instance_ref(attributes.sub_workflow_instance) or {}),
                "scheduled_at": iso(event.timestamp), "schedule_event_id": event.schedule_event_id,
            })
    return work


def _is_pending_timer(event: Event) -> bool:
    # Timers are listed from their TimerScheduled events, with their due time.
    return event.type is EventType.TIMER_FIRED


def _inbox_entry(event: Event) -> dict[str, Any]:
    """An event waiting in the inbox, for ``show``: what it is and since when."""
    entry: dict[str, Any] = {"type": event.type.value, "at": iso(event.timestamp)}
    name = getattr(event.attributes, "name", None)
    if name:
        entry["name"] = name
    if event.schedule_event_id:
        entry["schedule_event_id"] = event.schedule_event_id
    return entry


_CLOSING = frozenset({
    EventType.ACTIVITY_COMPLETED, EventType.ACTIVITY_FAILED, EventType.TIMER_FIRED, EventType.TIMER_CANCELED,
    EventType.SUB_WORKFLOW_COMPLETED, EventType.SUB_WORKFLOW_FAILED,
})


# -- the operations --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operations:
    client: Client

    @property
    def converter(self) -> Converter:
        return self.client.backend.options.converter

    def resolve(self, instance_id: str, execution_id: str | None = None) -> WorkflowInstance:
        """The execution ``execution_id`` of ``instance_id``, or its newest one."""
        try:
            validate_id(instance_id)
            if execution_id:
                info = self.client.backend.get_workflow_instance_info(WorkflowInstance(instance_id, execution_id))
                return info.instance
            return self.client.backend.get_latest_execution(instance_id)
        except InstanceNotFound:
            which = f" execution {execution_id}" if execution_id else ""
            raise NotFound(f"workflow instance {instance_id}{which} not found") from None
        except ValueError as exc:  # an id the engine refuses (a colon, too long...)
            raise UsageError(str(exc)) from None

    def list_instances(self, filter: InstanceFilter, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        try:
            page = self.client.backend.list_workflow_instances(filter, limit=limit, cursor=cursor)
        except NotSupported as exc:
            raise NotAllowed(str(exc)) from None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return {"instances": [summary(info) for info in page.instances], "next_cursor": page.next_cursor}

    def show(self, instance_id: str, execution_id: str | None = None) -> dict[str, Any]:
        instance = self.resolve(instance_id, execution_id)
        backend = self.client.backend
        info = backend.get_workflow_instance_info(instance)
        events = backend.get_workflow_instance_history(instance)
        try:
            inbox = backend.get_pending_events(instance)
        except NotSupported:
            inbox = []
        # Until a worker has run it, the start event (with the input) waits in the inbox.
        started = next(
            (e.attributes for e in [*events, *inbox] if isinstance(e.attributes, WorkflowExecutionStartedAttributes)),
            None,
        )
        children: list[dict[str, Any]] = []
        more_children = False
        try:
            page = backend.list_workflow_instances(InstanceFilter(parent=info.instance), limit=SHOW_CHILDREN)
            children, more_children = [summary(child) for child in page.instances], page.next_cursor is not None
        except NotSupported:
            pass
        data = summary(info)
        data.update(outcome([*events, *inbox], self.converter))
        if info.state is not InstanceState.ACTIVE and data["status"] == "running":
            data["status"] = "finished"
        active = info.state is InstanceState.ACTIVE
        pending = pending_work(events) if active else {"activities": [], "timers": [], "sub_workflows": []}
        pending["events"] = [_inbox_entry(event) for event in inbox if not _is_pending_timer(event)] if active else []
        data.update(
            input=None if started is None else [decode(self.converter, p) for p in started.inputs],
            metadata=info.metadata,
            history_events=len(events),
            children=children,
            more_children=more_children,
            pending=pending,
        )
        return data

    def history(self, instance_id: str, execution_id: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The export document (``--json``) and the decoded events (text)."""
        instance = self.resolve(instance_id, execution_id)
        backend = self.client.backend
        info = backend.get_workflow_instance_info(instance)
        events = backend.get_workflow_instance_history(instance)
        decoded = [
            {
                "sequence_id": event.sequence_id,
                "type": event.type.value,
                "timestamp": iso(event.timestamp),
                "visible_at": iso(event.visible_at),
                "schedule_event_id": event.schedule_event_id,
                "attributes": decoded_attributes(self.converter, event),
            }
            for event in events
        ]
        return export_history(info.instance, info.workflow_name, events), decoded

    def signal(self, instance_id: str, name: str, value: Any) -> None:
        try:
            self.client.signal_workflow(instance_id, name, value)
        except InstanceFinished:
            raise NotAllowed(f"workflow instance {instance_id} has finished: it takes no more signals") from None
        except InstanceNotFound:
            raise NotFound(f"workflow instance {instance_id} not found") from None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"cannot send this signal: {exc}") from None

    def cancel(self, instance_id: str, execution_id: str | None = None) -> WorkflowInstance:
        instance = self.resolve(instance_id, execution_id)
        try:
            self.client.cancel_workflow_instance(instance)
        except InstanceFinished:
            raise NotAllowed(f"workflow instance {instance_id} has finished already") from None
        return instance

    def terminate(self, instance_id: str, reason: str, execution_id: str | None = None) -> WorkflowInstance:
        instance = self.resolve(instance_id, execution_id)
        try:
            self.client.terminate_workflow_instance(instance, reason)
        except InstanceFinished:
            raise NotAllowed(f"workflow instance {instance_id} has finished already") from None
        return instance

    def remove(self, instance_id: str, execution_id: str | None = None) -> WorkflowInstance:
        instance = self.resolve(instance_id, execution_id)
        try:
            self.client.remove_workflow_instance(instance)
        except InstanceNotFinished:
            raise NotAllowed(f"workflow instance {instance_id} is still running: cancel or terminate it first") from None
        return instance

    def remove_finished(
        self, finished_before: datetime, batch_size: int, progress: Callable[[int, int], None] | None = None
    ) -> int:
        try:
            return self.client.remove_workflow_instances(
                finished_before=finished_before, batch_size=batch_size, progress=progress
            )
        except NotSupported as exc:
            raise NotAllowed(str(exc)) from None
        except ValueError as exc:
            raise UsageError(str(exc)) from None


# -- text output -----------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in (headers, *rows)]


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def list_text(data: dict[str, Any]) -> str:
    rows = [
        (
            row["instance_id"], row["execution_id"][:8], row["workflow_name"], row["queue"], row["state"],
            show_time(_parse(row["created_at"])), show_time(_parse(row["completed_at"])),
            row["parent"]["instance_id"] if row["parent"] else "-",
        )
        for row in data["instances"]
    ]
    if not rows:
        return "No workflow instances match."
    lines = _table(("INSTANCE", "EXECUTION", "WORKFLOW", "QUEUE", "STATE", "CREATED", "COMPLETED", "PARENT"), rows)
    if data["next_cursor"]:
        lines.append(f"More instances: add --cursor {data['next_cursor']}")
    return "\n".join(lines)


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def show_text(data: dict[str, Any]) -> str:
    lines = [
        f"Instance:   {data['instance_id']}",
        f"Execution:  {data['execution_id']}",
        f"Workflow:   {data['workflow_name']} (queue {data['queue']})",
        f"Status:     {data['status']} (state {data['state']})",
        f"Created:    {show_time(_parse(data['created_at']))}",
        f"Completed:  {show_time(_parse(data['completed_at']))}",
    ]
    if data["cancel_requested_at"]:
        lines.append(f"Cancel requested: {show_time(_parse(data['cancel_requested_at']))}")
    parent = data["parent"]
    lines.append(f"Parent:     {parent['instance_id']} ({parent['execution_id']})" if parent else "Parent:     -")
    lines.append(f"Input:      {_short(data['input'])}")
    if "result" in data:
        lines.append(f"Result:     {_short(data['result'])}")
    if data.get("continued_execution_id"):
        lines.append(f"Continued as execution {data['continued_execution_id']}")
    if "error" in data:
        error = data["error"]
        # A panic: workflow code raised the exception (a bug or bad data), not a WorkflowError.
        panic = " (raised in workflow code)" if error.get("panic") else ""
        lines.append(f"Error:      {error['type']}: {error['message']}{panic}")
    if "reason" in data:
        lines.append(f"Reason:     {data['reason'] or '(none given)'}")
    lines.append(f"History:    {data['history_events']} events")
    children = data["children"]
    lines.append(f"Children:   {len(children)}{' (and more)' if data['more_children'] else ''}")
    lines.extend(f"  {c['instance_id']}  {c['workflow_name']}  {c['state']}" for c in children)
    pending = data["pending"]
    if any(pending.values()):
        lines.append("Pending:")
        lines.extend(f"  activity {a['name']} (attempt {a['attempt']}) scheduled {show_time(_parse(a['scheduled_at']))}"
                     for a in pending["activities"])
        lines.extend(f"  timer {t['name'] or '(unnamed)'} due at {show_time(_parse(t['due_at']))}" for t in pending["timers"])
        lines.extend(f"  sub-workflow {s['name']} {s['instance_id']}" for s in pending["sub_workflows"])
        lines.extend(
            f"  not executed yet: {e['type']}{' ' + e['name'] if e.get('name') else ''} since {show_time(_parse(e['at']))}"
            for e in pending["events"]
        )
    return "\n".join(lines)


def history_text(events: list[dict[str, Any]]) -> str:
    rows = []
    for event in events:
        # A timer's TimerFired event is written when the timer is scheduled; it happened when it
        # became visible.
        when = show_time(_parse(event["visible_at"] or event["timestamp"]))
        attributes = event["attributes"]
        rows.append((str(event["sequence_id"]), when, event["type"],
                     str(event["schedule_event_id"] or ""), _short(attributes) if attributes else ""))
    return "\n".join(_table(("#", "TIME", "EVENT", "SCHEDULE ID", "ATTRIBUTES"), rows))
