"""Pieces of backend logic that every backend shares, so they behave the same."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..engine.converter import Payload
from ..engine.core import WorkflowInstance
from ..engine.errors import (
    ActivityAbandoned,
    ActivityTimeoutError,
    Canceled,
    InstanceAlreadyExists,
    TimeoutType,
    WorkflowError,
    WorkflowTerminated,
    WorkflowTimedOut,
)
from ..engine.history import (
    ActivityCancellationRequestedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    SubWorkflowFailedAttributes,
    WorkflowExecutionCanceledAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    WorkflowExecutionTerminatedAttributes,
    WorkflowExecutionTimedOutAttributes,
    new_event,
)

#: Events for another instance that go to its *active* execution rather than the exact one they
#: were addressed to (a child may have continued as new since).
FOLLOW_ACTIVE_EXECUTION = frozenset({EventType.WORKFLOW_EXECUTION_CANCELED, EventType.SIGNAL_RECEIVED})


def activity_queue(event: Event, task_queue: str) -> str:
    attributes = event.attributes
    assert isinstance(attributes, ActivityScheduledAttributes)
    return attributes.queue or task_queue


def scheduled(activity_event: Event) -> ActivityScheduledAttributes:
    attributes = activity_event.attributes
    assert isinstance(attributes, ActivityScheduledAttributes)
    return attributes


def abandoned_activity_result(
    activity_event: Event, leases: int, now: datetime, details: Payload | None = None
) -> Event:
    """The failure recorded for an activity whose workers kept dying while running it."""
    attributes = scheduled(activity_event)
    error = ActivityAbandoned(
        f"activity {attributes.name} was leased {leases} times without completing; "
        "its worker probably crashes while running it"
    )
    return _activity_failure(activity_event, error, now, details)


# -- activity timeouts and cancellation ---------------------------------------------------------
#
# Every backend keeps, per activity task, the deadline of each timeout that applies (stored on
# its own clock, the database's or Redis'), the earliest of them, the attempt's last heartbeat
# details and whether its cancellation was requested. These say what the deadlines are.


def queued_deadlines(activity_event: Event) -> dict[TimeoutType, timedelta]:
    """The timeouts that run from the moment the activity task is stored (schedule-to-start
    and the rest of schedule-to-close), as offsets from that moment."""
    attributes = scheduled(activity_event)
    out = {}
    if attributes.schedule_to_start_timeout is not None:
        out[TimeoutType.SCHEDULE_TO_START] = timedelta(seconds=attributes.schedule_to_start_timeout)
    if attributes.schedule_to_close_timeout is not None:
        out[TimeoutType.SCHEDULE_TO_CLOSE] = timedelta(seconds=attributes.schedule_to_close_timeout)
    return out


def start_to_close(activity_event: Event) -> timedelta | None:
    """Offset of the start-to-close deadline from the attempt's first lease."""
    value = scheduled(activity_event).start_to_close_timeout
    return None if value is None else timedelta(seconds=value)


def heartbeat_timeout(activity_event: Event) -> timedelta | None:
    """Offset of the heartbeat deadline from every lease and every heartbeat."""
    value = scheduled(activity_event).heartbeat_timeout
    return None if value is None else timedelta(seconds=value)


def earliest(deadlines: dict[TimeoutType, datetime | None]) -> tuple[TimeoutType, datetime] | None:
    """The deadline that comes first (ties: in ``TimeoutType`` order), None if there is none."""
    present = [(at, list(TimeoutType).index(kind), kind) for kind, at in deadlines.items() if at is not None]
    if not present:
        return None
    at, _, kind = min(present)
    return kind, at


def timed_out_activity_result(
    activity_event: Event, timeout_type: TimeoutType, now: datetime, details: Payload | None = None
) -> Event:
    """The failure recorded for an attempt whose ``timeout_type`` deadline passed, with its last
    heartbeat details (those it started with when it stored none)."""
    attributes = scheduled(activity_event)
    seconds = {
        TimeoutType.START_TO_CLOSE: attributes.start_to_close_timeout,
        TimeoutType.SCHEDULE_TO_START: attributes.schedule_to_start_timeout,
        TimeoutType.HEARTBEAT: attributes.heartbeat_timeout,
    }.get(timeout_type)
    what = {
        TimeoutType.START_TO_CLOSE: "did not finish within its start-to-close timeout",
        TimeoutType.SCHEDULE_TO_CLOSE: "did not finish within its schedule-to-close timeout",
        TimeoutType.SCHEDULE_TO_START: "was not taken by a worker within its schedule-to-start timeout",
        TimeoutType.HEARTBEAT: "did not heartbeat within its heartbeat timeout",
    }[timeout_type] + ("" if seconds is None else f" ({seconds:g} s)")
    error = ActivityTimeoutError(
        f"activity {attributes.name} (attempt {attributes.attempt + 1}) {what}", timeout_type=timeout_type
    )
    return _activity_failure(activity_event, error, now, details)


def canceled_activity_result(schedule_event_id: int, now: datetime) -> Event:
    """What a canceled activity that never started answers (its task is dropped)."""
    error = Canceled("activity canceled before it started")
    return new_event(ActivityFailedAttributes(error=error.to_info()), now, schedule_event_id=schedule_event_id)


def canceled_activities(executed: list[Event]) -> list[str]:
    """The activity ids whose cancellation a workflow task requested."""
    return [
        e.attributes.activity_id
        for e in executed
        if isinstance(e.attributes, ActivityCancellationRequestedAttributes) and e.attributes.activity_id
    ]


def _activity_failure(activity_event: Event, error: WorkflowError, now: datetime, details: Payload | None) -> Event:
    attributes = ActivityFailedAttributes(
        error=error.to_info(), heartbeat_details=details if details is not None else scheduled(activity_event).heartbeat_details
    )
    return new_event(attributes, now, schedule_event_id=activity_event.schedule_event_id)


# -- delayed starts and execution timeouts ------------------------------------------------------


def start_delay(started: Event) -> timedelta:
    """How much later than its creation an execution starts (``start_delay``: the start event's
    ``visible_at``); the difference of two times of one clock, so skew does not matter."""
    if started.visible_at is None:
        return timedelta(0)
    return max(timedelta(0), started.visible_at - started.timestamp)


def execution_deadline(started: Event) -> timedelta | None:
    """Offset from the execution's creation at which its ``execution_timeout`` ends it (the
    timeout counts from the start, after any start delay)."""
    attributes = started.attributes
    assert isinstance(attributes, WorkflowExecutionStartedAttributes)
    if attributes.execution_timeout is None:
        return None
    return start_delay(started) + timedelta(seconds=attributes.execution_timeout)


def timed_out_events(instance: WorkflowInstance, timeout: float | None, now: datetime) -> tuple[Event, Event | None]:
    """The history event of an execution that ran out of time and, for a sub-workflow, the
    event for its parent (which sees ``WorkflowTimedOut`` as the child's error)."""
    ended = new_event(WorkflowExecutionTimedOutAttributes(execution_timeout=timeout), now)
    if instance.parent is None:
        return ended, None
    error = WorkflowTimedOut(
        "workflow execution timed out" + (f" after {timeout:g} s" if timeout is not None else "")
    )
    return ended, new_event(SubWorkflowFailedAttributes(error=error.to_info()), now, schedule_event_id=instance.parent_event_id)


def canceled_before_start_events(instance: WorkflowInstance, now: datetime) -> tuple[list[Event], Event | None]:
    """What canceling an execution whose start is still delayed records after its start event
    (which moves from the inbox into the history): the cancellation and the end, with
    ``Canceled`` as the error; its code never runs. Also the event for a parent."""
    error = Canceled("workflow canceled before it started")
    events = [
        new_event(WorkflowExecutionCanceledAttributes(), now),
        new_event(WorkflowExecutionFinishedAttributes(error=error.to_info()), now),
    ]
    if instance.parent is None:
        return events, None
    return events, new_event(SubWorkflowFailedAttributes(error=error.to_info()), now, schedule_event_id=instance.parent_event_id)


def duplicate_sub_workflow_result(child: WorkflowInstance, now: datetime) -> Event:
    """What a parent receives when it starts a child whose instance id is already active."""
    error = WorkflowError(str(InstanceAlreadyExists()), type="InstanceAlreadyExists", permanent=True)
    return new_event(SubWorkflowFailedAttributes(error=error.to_info()), now, schedule_event_id=child.parent_event_id)


def terminated_events(instance: WorkflowInstance, reason: str, now: datetime) -> tuple[Event, Event | None]:
    """The history event of a termination and, for a sub-workflow, the event for its parent."""
    terminated = new_event(WorkflowExecutionTerminatedAttributes(reason=reason), now)
    if instance.parent is None:
        return terminated, None
    error = WorkflowTerminated(f"workflow terminated: {reason}" if reason else "workflow terminated", permanent=True)
    parent_event = new_event(
        SubWorkflowFailedAttributes(error=error.to_info()), now, schedule_event_id=instance.parent_event_id
    )
    return terminated, parent_event
