"""History events (port of go-workflows ``backend/history``).

Every change of a workflow is an event; a workflow's state is the replay of its events. Event
types keep go-workflows' names, so histories read the same in both projects. Attributes are one
frozen dataclass per event type and are stored as JSON; payload fields hold converter output.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from .converter import Payload
from .core import Metadata, WorkflowInstance
from .errors import ErrorInfo


class EventType(str, enum.Enum):
    WORKFLOW_EXECUTION_STARTED = "WorkflowExecutionStarted"
    WORKFLOW_EXECUTION_FINISHED = "WorkflowExecutionFinished"
    WORKFLOW_EXECUTION_CONTINUED_AS_NEW = "WorkflowExecutionContinuedAsNew"
    WORKFLOW_EXECUTION_TERMINATED = "WorkflowExecutionTerminated"
    WORKFLOW_EXECUTION_CANCELED = "WorkflowExecutionCanceled"
    WORKFLOW_EXECUTION_TIMED_OUT = "WorkflowExecutionTimedOut"
    WORKFLOW_TASK_STARTED = "WorkflowTaskStarted"
    SUB_WORKFLOW_SCHEDULED = "SubWorkflowScheduled"
    SUB_WORKFLOW_CANCELLATION_REQUESTED = "SubWorkflowCancellationRequested"
    SUB_WORKFLOW_COMPLETED = "SubWorkflowCompleted"
    SUB_WORKFLOW_FAILED = "SubWorkflowFailed"
    ACTIVITY_SCHEDULED = "ActivityScheduled"
    ACTIVITY_COMPLETED = "ActivityCompleted"
    ACTIVITY_FAILED = "ActivityFailed"
    ACTIVITY_CANCELLATION_REQUESTED = "ActivityCancellationRequested"
    TIMER_SCHEDULED = "TimerScheduled"
    TIMER_FIRED = "TimerFired"
    TIMER_CANCELED = "TimerCanceled"
    SIGNAL_RECEIVED = "SignalReceived"
    SIDE_EFFECT_RESULT = "SideEffectResult"
    TRACE_STARTED = "TraceStarted"
    #: ``workflow.patched``/``deprecate_patch`` passed a patch for the first time (versioning).
    PATCH_MARKER = "PatchMarker"

    def __str__(self) -> str:
        return self.value


#: Events that end an execution.
TERMINAL_EVENT_TYPES = frozenset(
    {
        EventType.WORKFLOW_EXECUTION_FINISHED,
        EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
        EventType.WORKFLOW_EXECUTION_TERMINATED,
        EventType.WORKFLOW_EXECUTION_TIMED_OUT,
    }
)


# ---------------------------------------------------------------------------------------------
# Attributes, one class per event type


@dataclass(frozen=True, slots=True, kw_only=True)
class Attributes:
    event_type: ClassVar[EventType]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowExecutionStartedAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.WORKFLOW_EXECUTION_STARTED
    name: str
    queue: str
    inputs: list[Payload] = field(default_factory=list)
    metadata: Metadata = field(default_factory=dict)
    #: Seconds the execution may run from its start before the backend ends it; None: no limit.
    execution_timeout: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowExecutionFinishedAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.WORKFLOW_EXECUTION_FINISHED
    result: Payload | None = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowExecutionContinuedAsNewAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    result: Payload | None = None
    continued_execution_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowExecutionTerminatedAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.WORKFLOW_EXECUTION_TERMINATED
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowExecutionCanceledAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.WORKFLOW_EXECUTION_CANCELED


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowExecutionTimedOutAttributes(Attributes):
    """The backend ended the execution: it ran longer than its ``execution_timeout``."""

    event_type: ClassVar[EventType] = EventType.WORKFLOW_EXECUTION_TIMED_OUT
    execution_timeout: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowTaskStartedAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.WORKFLOW_TASK_STARTED


@dataclass(frozen=True, slots=True, kw_only=True)
class SubWorkflowScheduledAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.SUB_WORKFLOW_SCHEDULED
    sub_workflow_queue: str
    sub_workflow_instance: WorkflowInstance
    name: str
    inputs: list[Payload] = field(default_factory=list)
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubWorkflowCancellationRequestedAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.SUB_WORKFLOW_CANCELLATION_REQUESTED
    sub_workflow_instance: WorkflowInstance


@dataclass(frozen=True, slots=True, kw_only=True)
class SubWorkflowCompletedAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.SUB_WORKFLOW_COMPLETED
    result: Payload | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubWorkflowFailedAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.SUB_WORKFLOW_FAILED
    error: ErrorInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityScheduledAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.ACTIVITY_SCHEDULED
    name: str
    inputs: list[Payload] = field(default_factory=list)
    metadata: Metadata = field(default_factory=dict)
    queue: str = ""
    attempt: int = 0
    # Timeouts of this attempt in seconds (None: none). ``schedule_to_close_timeout`` is what is
    # left of the activity's schedule-to-close time when this attempt is scheduled.
    start_to_close_timeout: float | None = None
    schedule_to_close_timeout: float | None = None
    schedule_to_start_timeout: float | None = None
    heartbeat_timeout: float | None = None
    #: The last heartbeat details of the previous attempts (``activity.info().heartbeat_details``).
    heartbeat_details: Payload | None = None

    @property
    def has_timeouts(self) -> bool:
        return any(
            value is not None
            for value in (
                self.start_to_close_timeout,
                self.schedule_to_close_timeout,
                self.schedule_to_start_timeout,
                self.heartbeat_timeout,
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityCompletedAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.ACTIVITY_COMPLETED
    result: Payload | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityFailedAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.ACTIVITY_FAILED
    error: ErrorInfo
    #: The attempt's last heartbeat details, handed to the next attempt.
    heartbeat_details: Payload | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityCancellationRequestedAttributes(Attributes):
    """The workflow asked a scheduled activity to stop (its context was canceled)."""

    event_type: ClassVar[EventType] = EventType.ACTIVITY_CANCELLATION_REQUESTED
    #: The id of the activity's ``ActivityScheduled`` event (``ActivityTask.activity_id``).
    activity_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerScheduledAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.TIMER_SCHEDULED
    at: datetime
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFiredAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.TIMER_FIRED
    scheduled_at: datetime
    at: datetime
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerCanceledAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.TIMER_CANCELED


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalReceivedAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.SIGNAL_RECEIVED
    name: str
    arg: Payload | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SideEffectResultAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.SIDE_EFFECT_RESULT
    result: Payload | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceStartedAttributes(Attributes):
    event_type: ClassVar[EventType] = EventType.TRACE_STARTED
    span_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchMarkerAttributes(Attributes):
    """Recorded the first time an execution passes ``patched(ctx, patch_id)`` (or
    ``deprecate_patch``) live: replays of this history take the patched branch. It carries no
    schedule event id, so adding a patch does not shift the ids of the commands after it."""

    event_type: ClassVar[EventType] = EventType.PATCH_MARKER
    patch_id: str
    #: Written by ``deprecate_patch``: the code no longer has the old branch.
    deprecated: bool = False


ATTRIBUTE_CLASSES: dict[EventType, type[Attributes]] = {
    cls.event_type: cls
    for cls in (
        WorkflowExecutionStartedAttributes,
        WorkflowExecutionFinishedAttributes,
        WorkflowExecutionContinuedAsNewAttributes,
        WorkflowExecutionTerminatedAttributes,
        WorkflowExecutionCanceledAttributes,
        WorkflowExecutionTimedOutAttributes,
        WorkflowTaskStartedAttributes,
        SubWorkflowScheduledAttributes,
        SubWorkflowCancellationRequestedAttributes,
        SubWorkflowCompletedAttributes,
        SubWorkflowFailedAttributes,
        ActivityScheduledAttributes,
        ActivityCompletedAttributes,
        ActivityFailedAttributes,
        ActivityCancellationRequestedAttributes,
        TimerScheduledAttributes,
        TimerFiredAttributes,
        TimerCanceledAttributes,
        SignalReceivedAttributes,
        SideEffectResultAttributes,
        TraceStartedAttributes,
        PatchMarkerAttributes,
    )
}


# ---------------------------------------------------------------------------------------------
# The event envelope


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One history event.

    ``schedule_event_id`` ties the events of one operation together (an ``ActivityScheduled``
    and its ``ActivityCompleted`` share it); ``sequence_id`` is the event's position in the
    execution's history (0 while the event is still pending); ``visible_at`` delays a pending
    event (timers).
    """

    id: str
    type: EventType
    timestamp: datetime
    attributes: Attributes
    schedule_event_id: int = 0
    sequence_id: int = 0
    visible_at: datetime | None = None

    def with_sequence_id(self, sequence_id: int) -> Event:
        return dataclasses.replace(self, sequence_id=sequence_id)


def new_event(
    attributes: Attributes,
    timestamp: datetime,
    *,
    schedule_event_id: int = 0,
    visible_at: datetime | None = None,
    event_id: str | None = None,
) -> Event:
    return Event(
        id=event_id or uuid.uuid4().hex,
        type=attributes.event_type,
        timestamp=timestamp,
        attributes=attributes,
        schedule_event_id=schedule_event_id,
        visible_at=visible_at,
    )


@dataclass(frozen=True, slots=True)
class WorkflowEvent:
    """An event addressed to another instance: a sub-workflow start, a cancellation, a result."""

    instance: WorkflowInstance
    event: Event


# ---------------------------------------------------------------------------------------------
# JSON form. Attributes are encoded field by field from their type hints, so adding an
# attribute class needs no serializer code.


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (WorkflowInstance, ErrorInfo)):
        return value.to_dict()
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decode(args[0], value) if len(args) == 1 else value
    if tp is datetime:
        return datetime.fromisoformat(value)
    if tp is WorkflowInstance:
        return WorkflowInstance.from_dict(value)
    if tp is ErrorInfo:
        return ErrorInfo.from_dict(value)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_decode(item, v) for v in value]
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = {f.name: typing.get_type_hints(cls)[f.name] for f in dataclasses.fields(cls)}
        _HINTS[cls] = hints
    return hints


def attributes_to_dict(attributes: Attributes) -> dict[str, Any]:
    return {
        name: _encode(getattr(attributes, name))
        for name in _hints(type(attributes))
        if getattr(attributes, name) is not None
    }


def attributes_from_dict(event_type: EventType | str, data: dict[str, Any]) -> Attributes:
    cls = ATTRIBUTE_CLASSES[EventType(event_type)]
    hints = _hints(cls)
    return cls(**{name: _decode(hints[name], value) for name, value in data.items() if name in hints})


def attributes_to_json(attributes: Attributes) -> str:
    return json.dumps(attributes_to_dict(attributes), separators=(",", ":"), ensure_ascii=False)


def attributes_from_json(event_type: EventType | str, text: str) -> Attributes:
    return attributes_from_dict(event_type, json.loads(text))


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON form of an event, with go-workflows' short keys."""
    data: dict[str, Any] = {
        "id": event.id,
        "t": event.type.value,
        "ts": event.timestamp.isoformat(),
        "attr": attributes_to_dict(event.attributes),
    }
    if event.sequence_id:
        data["sid"] = event.sequence_id
    if event.schedule_event_id:
        data["seid"] = event.schedule_event_id
    if event.visible_at is not None:
        data["vat"] = event.visible_at.isoformat()
    return data


def event_from_dict(data: dict[str, Any]) -> Event:
    vat = data.get("vat")
    return Event(
        id=data["id"],
        type=EventType(data["t"]),
        timestamp=datetime.fromisoformat(data["ts"]),
        attributes=attributes_from_dict(data["t"], data.get("attr", {})),
        schedule_event_id=int(data.get("seid", 0)),
        sequence_id=int(data.get("sid", 0)),
        visible_at=datetime.fromisoformat(vat) if vat else None,
    )


def event_to_json(event: Event) -> str:
    return json.dumps(event_to_dict(event), separators=(",", ":"), ensure_ascii=False)


def event_from_json(text: str) -> Event:
    return event_from_dict(json.loads(text))
