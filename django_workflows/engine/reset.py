"""Reset: a new execution of an instance whose history is the old one up to a chosen workflow
task, continuing live from there (Temporal's reset; DBOS's ``fork_workflow``).

``plan_reset`` turns an execution's history and a sequence id into the ``ExecutionSeed`` a
backend creates (``Backend.create_workflow_instance_from_history``); ``Client.reset_workflow_instance``
runs it. The point must be a ``WorkflowTaskStarted`` event: the new history is every event
before it, so that task and everything after it run again with the code deployed now. What the
kept history leaves open is set going again:

* an activity scheduled before the point without a result before it runs again (its recorded
  result, if any, came after the point and is dropped with the rest);
* a timer without a ``TimerFired`` before the point is stored again, due when it was due (at
  once if that has passed);
* a sub-workflow is another instance and is not run again: its result recorded after the point
  is delivered again; one with no recorded result yet cannot be carried over (``ResetError``);
* signals received after the point are delivered again, in order (they were sent to the
  instance, not to the run that failed). A cancellation after the point is not: cancel again if
  that is still wanted.

The new execution has no parent: a parent already received the old execution's outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from .backend import ExecutionSeed
from .core import WorkflowInstance
from .history import (
    Event,
    EventType,
    TimerFiredAttributes,
    TimerScheduledAttributes,
    WorkflowExecutionStartedAttributes,
    new_event,
)

_RESULT_OF = {
    EventType.ACTIVITY_COMPLETED: EventType.ACTIVITY_SCHEDULED,
    EventType.ACTIVITY_FAILED: EventType.ACTIVITY_SCHEDULED,
    EventType.TIMER_FIRED: EventType.TIMER_SCHEDULED,
    EventType.TIMER_CANCELED: EventType.TIMER_SCHEDULED,
    EventType.SUB_WORKFLOW_COMPLETED: EventType.SUB_WORKFLOW_SCHEDULED,
    EventType.SUB_WORKFLOW_FAILED: EventType.SUB_WORKFLOW_SCHEDULED,
}


class ResetError(ValueError):
    """The execution cannot be reset to that point; the message says why and what can be."""


def workflow_task_ids(history: Sequence[Event]) -> list[int]:
    """Sequence ids a reset may go to: the ``WorkflowTaskStarted`` events."""
    return [event.sequence_id for event in history if event.type is EventType.WORKFLOW_TASK_STARTED]


def started_attributes(history: Sequence[Event]) -> WorkflowExecutionStartedAttributes | None:
    """The start event's attributes (name, queue, inputs, metadata), if the history holds it."""
    for event in history:
        if isinstance(event.attributes, WorkflowExecutionStartedAttributes):
            return event.attributes
    return None


def plan_reset(history: Sequence[Event], to: int, instance: WorkflowInstance, now: datetime) -> ExecutionSeed:
    """The seed of execution ``instance`` (a new execution id of the same instance id) that
    resets ``history`` to the workflow task starting at sequence ``to``; see the module."""
    if isinstance(to, bool) or not isinstance(to, int):
        raise ResetError(f"the reset point must be a history sequence id (an int), got {to!r}")
    tasks = workflow_task_ids(history)
    point = next((event for event in history if event.sequence_id == to), None)
    if point is None or point.type is not EventType.WORKFLOW_TASK_STARTED:
        what = f"is a {point.type.value} event" if point is not None else f"is not in the history ({len(history)} events)"
        choices = ", ".join(map(str, tasks)) or "none"
        raise ResetError(
            f"history sequence {to} {what}, not the start of a workflow task; an execution can be reset "
            f"to a WorkflowTaskStarted event: {choices}"
        )
    started = started_attributes(history)
    if started is None:
        raise ResetError("the history does not hold the workflow's start event, so its input is unknown")
    kept = [event for event in history if event.sequence_id < to]
    dropped = [event for event in history if event.sequence_id >= to]
    open_operations = _open_operations(kept)
    pending: list[Event] = []
    if not kept:  # back to the very first task: the execution starts afresh
        pending.append(new_event(started, now))
    activities: list[Event] = []
    timers: list[Event] = []
    for event in open_operations:
        if event.type is EventType.ACTIVITY_SCHEDULED:
            # A fresh id: the old execution's activity task may still exist under the old one.
            activities.append(replace(event, id=uuid.uuid4().hex, timestamp=now, sequence_id=0))
        elif event.type is EventType.TIMER_SCHEDULED:
            attributes = event.attributes
            assert isinstance(attributes, TimerScheduledAttributes)
            fired = TimerFiredAttributes(scheduled_at=event.timestamp, at=attributes.at, name=attributes.name)
            timers.append(new_event(fired, now, schedule_event_id=event.schedule_event_id, visible_at=attributes.at))
    children = {e.schedule_event_id: e for e in open_operations if e.type is EventType.SUB_WORKFLOW_SCHEDULED}
    for event in dropped:
        if event.type is EventType.SIGNAL_RECEIVED:
            pending.append(new_event(event.attributes, now))
        elif _RESULT_OF.get(event.type) is EventType.SUB_WORKFLOW_SCHEDULED and event.schedule_event_id in children:
            del children[event.schedule_event_id]
            pending.append(new_event(event.attributes, now, schedule_event_id=event.schedule_event_id))
    if children:
        scheduled = min(children.values(), key=lambda e: e.sequence_id)
        name = getattr(scheduled.attributes, "name", "?")
        raise ResetError(
            f"the sub-workflow {name} scheduled at history sequence {scheduled.sequence_id} has no recorded "
            "result, so a reset cannot carry it over; reset to a workflow task before it was scheduled or "
            "after its result arrived"
        )
    return ExecutionSeed(
        instance=instance,
        started=started,
        history=kept,
        pending_events=pending,
        activity_events=activities,
        timer_events=timers,
    )


def _open_operations(history: Sequence[Event]) -> list[Event]:
    """Activities, timers and sub-workflows ``history`` schedules but has no result for, in order."""
    scheduled: dict[tuple[EventType, int], Event] = {}
    for event in history:
        if event.type in (EventType.ACTIVITY_SCHEDULED, EventType.TIMER_SCHEDULED, EventType.SUB_WORKFLOW_SCHEDULED):
            scheduled[(event.type, event.schedule_event_id)] = event
        kind = _RESULT_OF.get(event.type)
        if kind is not None:
            scheduled.pop((kind, event.schedule_event_id), None)
    return sorted(scheduled.values(), key=lambda e: e.sequence_id)
