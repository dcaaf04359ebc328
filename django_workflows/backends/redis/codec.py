"""Translation between engine objects and the Redis backend's script arguments and replies.

Events travel in the engine's JSON form (``engine.history.event_to_json``); instances as the JSON
of ``WorkflowInstance.to_dict``; times as milliseconds since the epoch. Variable-length groups of
arguments are preceded by their count, the way ``scripts/lib.lua``'s ``arg()`` cursor reads them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ...engine.backend import ActivityTask, ExecutionResult, Stats, WorkflowTask
from ...engine.clock import system_clock
from ...engine.core import InstanceState, WorkflowInstance
from ...engine.errors import TimeoutType
from ...engine.history import (
    ActivityCancellationRequestedAttributes,
    Event,
    EventType,
    WorkflowEvent,
    WorkflowExecutionStartedAttributes,
    event_from_json,
    event_to_json,
)
from ..rules import (
    FOLLOW_ACTIVE_EXECUTION,
    activity_queue,
    canceled_activities,
    canceled_activity_result,
    duplicate_sub_workflow_result,
    execution_deadline,
    heartbeat_timeout,
    queued_deadlines,
    start_delay,
    start_to_close,
)

# redis-py annotates replies loosely (bytes | str | ...); these take what the server sent.


def ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def to_datetime(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def instance_from(data: Any) -> WorkflowInstance:
    return WorkflowInstance.from_dict(json.loads(data))


def instance_json(instance: WorkflowInstance) -> str:
    return json.dumps(instance.to_dict(), separators=(",", ":"))


def completion_args(task: WorkflowTask, result: ExecutionResult) -> list[Any]:
    """The arguments of ``workflow_complete.lua`` after its fixed ones."""
    executed = result.executed
    args: list[Any] = [len(executed), *map(event_to_json, executed)]
    canceled = [e.schedule_event_id for e in executed if e.type is EventType.TIMER_CANCELED]
    args += [len(canceled), *canceled]
    args.append(len(result.timer_events))
    for event in result.timer_events:
        args += [event.id, 0 if event.visible_at is None else epoch_ms(event.visible_at), event_to_json(event)]
    canceled_ids = set(canceled_activities(executed))
    scheduled = [event for event in result.activity_events if event.id not in canceled_ids]
    args.append(len(scheduled))
    for event in scheduled:
        queued = queued_deadlines(event)
        args += [event.id, activity_queue(event, task.queue), event_to_json(event)]
        args += [
            _ms_or_none(queued.get(TimeoutType.SCHEDULE_TO_START)),
            _ms_or_none(queued.get(TimeoutType.SCHEDULE_TO_CLOSE)),
            _ms_or_none(start_to_close(event)),
            _ms_or_none(heartbeat_timeout(event)),
        ]
    # Canceled activities: scheduled by this task (never stored), or earlier.
    new = {event.id for event in result.activity_events if event.id in canceled_ids}
    requests = {
        e.attributes.activity_id: e.schedule_event_id
        for e in executed
        if isinstance(e.attributes, ActivityCancellationRequestedAttributes)
    }
    args.append(len(canceled_ids))
    now = system_clock.now()
    for activity_id in sorted(canceled_ids):
        answer = event_to_json(canceled_activity_result(requests[activity_id], now))
        args += [activity_id, "new" if activity_id in new else "old", answer]
    args.append(len(result.workflow_events))
    for workflow_event in result.workflow_events:
        args += _workflow_event_args(workflow_event)
    return args


def _ms_or_none(delta: timedelta | None) -> int:
    return -1 if delta is None else ms(delta)


def start_args(event: Event) -> list[Any]:
    """The start arguments of ``create_instance`` (lib.lua ``start_args``): event id, start
    delay (ms; the script adds it to the server's clock) and execution timeout (ms from the
    start, -1 for none, and in seconds)."""
    attributes = event.attributes
    assert isinstance(attributes, WorkflowExecutionStartedAttributes)
    delay, deadline = start_delay(event), execution_deadline(event)
    timeout = -1 if deadline is None else ms(deadline - delay)
    return [event.id, ms(delay), timeout, "" if attributes.execution_timeout is None else repr(attributes.execution_timeout)]


def _workflow_event_args(workflow_event: WorkflowEvent) -> list[Any]:
    target, event = workflow_event.instance, workflow_event.event
    if event.type is EventType.WORKFLOW_EXECUTION_STARTED:
        attributes = event.attributes
        assert isinstance(attributes, WorkflowExecutionStartedAttributes)
        parent = target.parent
        # Prepared here because only Python builds events; the script uses it if the id is taken.
        duplicate = "" if parent is None else event_to_json(duplicate_sub_workflow_result(target, system_clock.now()))
        return [
            "start",
            target.instance_id,
            target.execution_id,
            instance_json(target),
            event_to_json(event),
            attributes.name,
            attributes.queue,
            json.dumps(attributes.metadata),
            parent.instance_id if parent else "",
            parent.execution_id if parent else "",
            duplicate,
            *start_args(event),
        ]
    if event.type in FOLLOW_ACTIVE_EXECUTION:
        return ["active", target.instance_id, event_to_json(event)]
    return ["exact", target.instance_id, target.execution_id, event_to_json(event)]


def workflow_task(row: list[Any]) -> WorkflowTask:
    """A task as ``scripts/lib.lua``'s ``lease_workflow`` returns it."""
    iid, _eid, inst, name, queue, meta, seq, token, events = row
    return WorkflowTask(
        id=text(iid),
        queue=text(queue),
        instance=instance_from(inst),
        state=InstanceState.ACTIVE,
        metadata=json.loads(meta),
        last_sequence_id=int(seq),
        new_events=[event_from_json(e) for e in events],
        lease_token=text(token),
        workflow_name=text(name),
    )


def activity_task(row: list[Any]) -> ActivityTask:
    """A task as ``scripts/activity_poll.lua`` returns it."""
    aid, inst, queue, event, token, leases, details = row
    scheduled = event_from_json(event)
    return ActivityTask(
        id=text(aid),
        activity_id=scheduled.id,
        queue=text(queue),
        instance=instance_from(inst),
        event=scheduled,
        lease_token=text(token),
        lease_count=int(leases),
        heartbeat_details=text(details) or None,
    )


def leased_activities(task: WorkflowTask, result: ExecutionResult, leased: list[Any], token: str) -> list[ActivityTask]:
    """The activity tasks ``workflow_complete.lua`` leased to the completing worker (their ids
    in ``leased``), built from the task's own events: they were stored from them."""
    if not leased:
        return []
    events = {event.id: event for event in result.activity_events}
    tasks = []
    for aid in leased:
        event = events[text(aid)]
        tasks.append(
            ActivityTask(
                id=event.id,
                activity_id=event.id,
                queue=activity_queue(event, task.queue),
                instance=task.instance,
                event=event,
                lease_token=token,
                lease_count=1,
            )
        )
    return tasks


def stats(reply: list[Any]) -> Stats:
    active, rest = int(reply[0]), reply[1:]
    tables: list[dict[str, int]] = []
    for _ in range(2):
        count, rest = int(rest[0]), rest[1:]
        pairs, rest = rest[: 2 * count], rest[2 * count :]
        tables.append({text(pairs[i]): int(pairs[i + 1]) for i in range(0, len(pairs), 2)})
    return Stats(active_workflow_instances=active, pending_workflow_tasks=tables[0], pending_activity_tasks=tables[1])
