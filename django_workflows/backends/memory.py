"""An in-process backend that keeps everything in memory (the role of go-workflows'
in-memory SQLite and ``monoprocess`` backends).

For unit tests, the workflow tester and examples: nothing survives the process, and only workers
in the same process can use it. It follows the same rules as the durable backends (leases with
tokens, stickiness, one active execution per instance id) and passes the same conformance suite.
A condition variable wakes waiting pollers as soon as work arrives.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..engine.backend import (
    ActivityTask,
    BlockBackoff,
    BlockedInfo,
    ExecutionSeed,
    Feature,
    InstanceInfo,
    InstancePage,
    QueueBacklog,
    RemoveProgress,
    Stats,
    WorkerInfo,
    WorkflowTask,
    WorkflowTaskCompletion,
)
from ..engine.clock import Clock, system_clock
from ..engine.converter import Payload
from ..engine.core import InstanceState, Metadata, WorkflowInstance, validate_id
from ..engine.errors import (
    CompletionRejected,
    ErrorInfo,
    InstanceAlreadyExists,
    InstanceFinished,
    InstanceNotFinished,
    InstanceNotFound,
    LeaseLost,
    TimeoutType,
)
from ..engine.history import (
    Event,
    EventType,
    WorkflowEvent,
    WorkflowExecutionStartedAttributes,
)
from ..engine.listing import InstanceFilter, page_of
from ..schedules.records import ScheduleRecord
from ..schedules.store import Change, ScheduleClaim, ScheduleNotFound
from .base import BaseBackend
from .rules import (
    FOLLOW_ACTIVE_EXECUTION,
    abandoned_activity_result,
    activity_queue,
    canceled_activities,
    canceled_activity_result,
    canceled_before_start_events,
    duplicate_sub_workflow_result,
    earliest,
    execution_deadline,
    heartbeat_timeout,
    queued_deadlines,
    start_to_close,
    terminated_events,
    timed_out_activity_result,
    timed_out_events,
)

# Longest a poller sleeps before re-checking leases and stickiness that may have expired.
_MAX_WAIT = 0.05


@dataclass(slots=True)
class _Execution:
    instance: WorkflowInstance
    name: str
    queue: str
    metadata: Metadata
    created_at: datetime
    state: InstanceState = InstanceState.ACTIVE
    completed_at: datetime | None = None
    history: list[Event] = field(default_factory=list)
    pending: list[Event] = field(default_factory=list)
    locked_until: datetime | None = None
    lease_token: str | None = None
    sticky_until: datetime | None = None
    worker: str = ""
    #: Set while its workflow task is blocked (``block_workflow_task``).
    blocked: BlockedInfo | None = None
    #: When ``execution_timeout`` ends the execution.
    timeout_at: datetime | None = None
    execution_timeout: float | None = None


@dataclass(slots=True)
class _Activity:
    id: str
    instance: WorkflowInstance
    queue: str
    event: Event
    locked_until: datetime | None = None
    lease_token: str | None = None
    lease_count: int = 0
    #: The deadline of each timeout that applies to the attempt now (see ``rules``).
    deadlines: dict[TimeoutType, datetime] = field(default_factory=dict)
    details: Payload | None = None
    cancel_requested: bool = False

    def expired(self, now: datetime) -> TimeoutType | None:
        """The timeout that ended the attempt, if one did."""
        first = earliest(dict(self.deadlines))
        return first[0] if first is not None and first[1] <= now else None


class MemoryBackend(BaseBackend):
    features = frozenset({Feature.REMOVE_INSTANCES, Feature.LEASE_ON_COMPLETION, Feature.WORKER_REGISTRY})

    def __init__(self, *, clock: Clock = system_clock, **options: Any) -> None:
        super().__init__(**options)
        self._clock = clock
        self._cond = threading.Condition()
        self._executions: dict[tuple[str, str], _Execution] = {}
        self._active: dict[str, str] = {}
        self._activities: dict[str, _Activity] = {}
        # worker id -> (entry, expiry)
        self._workers: dict[str, tuple[WorkerInfo, datetime]] = {}
        #: The schedule store (``schedules.store.ScheduleStore``), on this backend's clock.
        self.schedules = MemoryScheduleStore(self._cond, clock)

    # -- helpers -----------------------------------------------------------------------------

    def _get(self, instance: WorkflowInstance) -> _Execution:
        execution = self._executions.get((instance.instance_id, instance.execution_id))
        if execution is None:
            raise InstanceNotFound()
        return execution

    def _active_execution(self, instance_id: str) -> _Execution | None:
        execution_id = self._active.get(instance_id)
        return None if execution_id is None else self._executions[(instance_id, execution_id)]

    def _create(self, instance: WorkflowInstance, event: Event, now: datetime) -> None:
        attributes = event.attributes
        assert isinstance(attributes, WorkflowExecutionStartedAttributes)
        execution = self._add_execution(instance, attributes, now)
        execution.pending.append(event)
        deadline = execution_deadline(event)
        execution.timeout_at = None if deadline is None else now + deadline
        execution.execution_timeout = attributes.execution_timeout

    def _add_execution(
        self, instance: WorkflowInstance, attributes: WorkflowExecutionStartedAttributes, now: datetime
    ) -> _Execution:
        if instance.instance_id in self._active:
            raise InstanceAlreadyExists()
        key = (instance.instance_id, instance.execution_id)
        if key in self._executions:
            raise InstanceAlreadyExists()
        execution = self._executions[key] = _Execution(
            instance=instance,
            name=attributes.name,
            queue=attributes.queue,
            metadata=dict(attributes.metadata),
            created_at=now,
        )
        self._active[instance.instance_id] = instance.execution_id
        return execution

    def _visible(self, execution: _Execution, now: datetime) -> list[Event]:
        if self._delayed_start(execution, now) is not None:
            return []  # events sent to an execution that has not started yet wait for its start
        return [e for e in execution.pending if e.visible_at is None or e.visible_at <= now]

    def _finish(self, execution: _Execution, state: InstanceState, now: datetime) -> None:
        execution.state = state
        execution.completed_at = now
        execution.blocked = None
        if self._active.get(execution.instance.instance_id) == execution.instance.execution_id:
            del self._active[execution.instance.instance_id]

    # -- instances ---------------------------------------------------------------------------

    def create_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        validate_id(instance.instance_id)
        with self._cond:
            self._create(instance, event, self._clock.now())
            self._cond.notify_all()

    def create_workflow_instance_from_history(self, seed: ExecutionSeed) -> None:
        validate_id(seed.instance.instance_id)
        with self._cond:
            execution = self._add_execution(seed.instance, seed.started, self._clock.now())
            execution.history = list(seed.history)
            execution.pending = [*seed.pending_events, *seed.timer_events]
            for event in seed.activity_events:
                self._activities[event.id] = _Activity(
                    id=event.id, instance=seed.instance, queue=activity_queue(event, seed.started.queue), event=event
                )
            self._cond.notify_all()

    def cancel_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        with self._cond:
            execution = self._get(instance)
            if execution.state is not InstanceState.ACTIVE:
                raise InstanceFinished()
            now = self._clock.now()
            delayed = self._delayed_start(execution, now)
            if delayed is not None:
                # Canceled before it started: it ends now and its code never runs.
                events, parent_event = canceled_before_start_events(execution.instance, now)
                self._end(execution, [delayed, *events], parent_event, now)
            else:
                execution.pending.append(event)
            self._cond.notify_all()

    def _delayed_start(self, execution: _Execution, now: datetime) -> Event | None:
        """The start event of an execution whose start is still delayed."""
        if execution.history:
            return None
        for event in execution.pending:
            if event.type is EventType.WORKFLOW_EXECUTION_STARTED and event.visible_at is not None and event.visible_at > now:
                return event
        return None

    def terminate_workflow_instance(self, instance: WorkflowInstance, reason: str) -> None:
        with self._cond:
            execution = self._get(instance)
            if execution.state is not InstanceState.ACTIVE:
                raise InstanceFinished()
            now = self._clock.now()
            terminated, parent_event = terminated_events(execution.instance, reason, now)
            self._end(execution, [terminated], parent_event, now)
            self._cond.notify_all()

    def _end(self, execution: _Execution, events: list[Event], parent_event: Event | None, now: datetime) -> None:
        """End an execution without running it (terminated, timed out, canceled before its
        start): append ``events`` to its history, drop its pending work, tell its parent."""
        for event in events:
            execution.history.append(event.with_sequence_id(len(execution.history) + 1))
        execution.pending.clear()
        execution.locked_until = execution.lease_token = None
        self._finish(execution, InstanceState.FINISHED, now)
        for key in [k for k, a in self._activities.items() if a.instance == execution.instance]:
            del self._activities[key]
        if parent_event is not None and execution.instance.parent is not None:
            self._deliver(execution.instance.parent, parent_event)

    def signal_workflow(self, instance_id: str, event: Event) -> WorkflowInstance:
        with self._cond:
            execution = self._active_execution(instance_id)
            if execution is None:
                if any(iid == instance_id for iid, _ in self._executions):
                    raise InstanceFinished()
                raise InstanceNotFound()
            execution.pending.append(event)
            self._cond.notify_all()
            return execution.instance

    def remove_workflow_instance(self, instance: WorkflowInstance) -> None:
        with self._cond:
            execution = self._get(instance)
            if execution.state is InstanceState.ACTIVE:
                raise InstanceNotFinished()
            del self._executions[(instance.instance_id, instance.execution_id)]

    def remove_workflow_instances(
        self, *, finished_before: datetime, batch_size: int = 100, progress: RemoveProgress | None = None
    ) -> int:
        removed = 0
        with self._cond:
            for key, execution in list(self._executions.items()):
                if execution.completed_at is not None and execution.completed_at < finished_before:
                    del self._executions[key]
                    removed += 1
        if progress is not None:
            progress(removed, removed)  # one batch: nothing here holds a lock for long
        return removed

    def get_workflow_instance_state(self, instance: WorkflowInstance) -> InstanceState:
        with self._cond:
            return self._get(instance).state

    def get_workflow_instance_info(self, instance: WorkflowInstance) -> InstanceInfo:
        with self._cond:
            execution = self._get(instance)
            return self._info(execution, self._clock.now())

    def _info(self, execution: _Execution, now: datetime) -> InstanceInfo:
        delayed = self._delayed_start(execution, now) if execution.state is InstanceState.ACTIVE else None
        return InstanceInfo(
            instance=execution.instance,
            workflow_name=execution.name,
            queue=execution.queue,
            state=execution.state,
            created_at=execution.created_at,
            completed_at=execution.completed_at,
            metadata=dict(execution.metadata),
            blocked=execution.blocked,
            scheduled_for=None if delayed is None else delayed.visible_at,
        )

    def list_workflow_instances(
        self, filter: InstanceFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> InstancePage:
        with self._cond:
            now = self._clock.now()
            infos = [self._info(execution, now) for execution in self._executions.values()]
        return page_of(infos, filter, limit, cursor)

    def get_pending_events(self, instance: WorkflowInstance) -> list[Event]:
        with self._cond:
            return list(self._get(instance).pending)

    def get_workflow_instance_history(
        self, instance: WorkflowInstance, last_sequence_id: int | None = None
    ) -> list[Event]:
        with self._cond:
            history = self._get(instance).history
            if last_sequence_id is None:
                return list(history)
            return [e for e in history if e.sequence_id > last_sequence_id]

    def get_latest_execution(self, instance_id: str) -> WorkflowInstance:
        with self._cond:
            candidates = [e for (iid, _), e in self._executions.items() if iid == instance_id]
            if not candidates:
                raise InstanceNotFound()
            return max(candidates, key=lambda e: e.created_at).instance

    # -- workflow tasks ----------------------------------------------------------------------

    def _wait(self, deadline: float, now: datetime) -> bool:
        """Sleep until work may be there; False once the deadline passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        wait = min(remaining, _MAX_WAIT)
        future = [
            e.visible_at
            for x in self._executions.values()
            if x.state is InstanceState.ACTIVE
            for e in x.pending
            if e.visible_at is not None and e.visible_at > now
        ]
        future += [
            x.blocked.retry_at
            for x in self._executions.values()
            if x.blocked is not None and x.state is InstanceState.ACTIVE and x.blocked.retry_at > now
        ]
        if future:
            wait = max(0.0, min(wait, (min(future) - now).total_seconds()))
        self._cond.wait(wait)
        return True

    def get_workflow_task(self, queues: Sequence[str], timeout: float) -> WorkflowTask | None:
        tasks = self.get_workflow_tasks(queues, timeout, 1)
        return tasks[0] if tasks else None

    def get_workflow_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[WorkflowTask]:
        deadline = time.monotonic() + timeout
        leased: list[WorkflowTask] = []
        with self._cond:
            while True:
                now = self._clock.now()
                for execution in self._executions.values():
                    if len(leased) >= max_tasks:
                        break
                    if not self._workflow_task_free(execution, queues):
                        continue
                    task = self._lease_workflow_task(execution, now)
                    if task is not None:
                        leased.append(task)
                if leased or not self._wait(deadline, now):
                    return leased

    def _lease_workflow_task(self, execution: _Execution, now: datetime) -> WorkflowTask | None:
        """Lease the execution's workflow task to this worker, if it has visible events."""
        events = self._visible(execution, now)
        if not events:
            return None
        execution.locked_until = now + self.options.workflow_lock
        execution.lease_token = uuid.uuid4().hex
        execution.worker = self.options.worker_name
        return WorkflowTask(
            id=execution.instance.instance_id,
            queue=execution.queue,
            instance=execution.instance,
            state=execution.state,
            metadata=dict(execution.metadata),
            last_sequence_id=len(execution.history),
            new_events=list(events),
            lease_token=execution.lease_token,
            workflow_name=execution.name,
        )

    def _leased(self, task: WorkflowTask) -> _Execution:
        execution = self._executions.get((task.instance.instance_id, task.instance.execution_id))
        if (
            execution is None
            or execution.lease_token != task.lease_token
            or execution.locked_until is None
            or execution.locked_until <= self._clock.now()
        ):
            raise LeaseLost()
        return execution

    def extend_workflow_task(self, task: WorkflowTask) -> None:
        with self._cond:
            execution = self._leased(task)
            execution.locked_until = self._clock.now() + self.options.workflow_lock

    def abandon_workflow_task(self, task: WorkflowTask) -> None:
        with self._cond:
            try:
                execution = self._leased(task)
            except LeaseLost:
                return
            execution.locked_until = execution.lease_token = None
            execution.sticky_until = None
            self._cond.notify_all()

    def release_sticky_instances(self) -> int:
        with self._cond:
            now = self._clock.now()
            mine = [
                execution
                for execution in self._executions.values()
                if execution.worker == self.options.worker_name
                and execution.sticky_until is not None
                and execution.sticky_until > now
            ]
            for execution in mine:
                execution.sticky_until = None
            self._cond.notify_all()
        return len(mine)

    def block_workflow_task(self, task: WorkflowTask, error: ErrorInfo, backoff: BlockBackoff) -> BlockedInfo:
        with self._cond:
            execution = self._leased(task)
            now = self._clock.now()
            previous = execution.blocked
            attempts = 1 if previous is None else previous.attempts + 1
            execution.blocked = BlockedInfo(
                error=error,
                since=now if previous is None else previous.since,
                attempts=attempts,
                retry_at=now + backoff.delay(attempts),
            )
            execution.locked_until = execution.lease_token = None
            execution.sticky_until = None
            self._cond.notify_all()
            return execution.blocked

    def complete_workflow_task(self, task: WorkflowTask, completion: WorkflowTaskCompletion) -> list[ActivityTask]:
        result, leases = completion.result, completion.lease_activities
        state = result.state
        leased: list[ActivityTask] = []
        with self._cond:
            execution = self._leased(task)
            now = self._clock.now()
            consumed = {e.id for e in task.new_events}
            if state is not InstanceState.ACTIVE and any(
                e.id not in consumed for e in self._visible(execution, now)
            ):
                execution.locked_until = execution.lease_token = None
                execution.sticky_until = None
                self._cond.notify_all()
                raise CompletionRejected()
            execution.pending = [e for e in execution.pending if e.id not in consumed]
            execution.history.extend(result.executed)
            canceled_timers = {e.schedule_event_id for e in result.executed if e.type is EventType.TIMER_CANCELED}
            if canceled_timers:
                execution.pending = [
                    e
                    for e in execution.pending
                    if not (e.type is EventType.TIMER_FIRED and e.schedule_event_id in canceled_timers)
                ]
            execution.pending.extend(result.timer_events)
            canceled = set(canceled_activities(result.executed))
            for event in result.activity_events:
                if event.id in canceled:  # scheduled and canceled in this task: never runs
                    execution.pending.append(canceled_activity_result(event.schedule_event_id, now))
                    continue
                activity = self._activities[event.id] = _Activity(
                    id=event.id,
                    instance=execution.instance,
                    queue=activity_queue(event, task.queue),
                    event=event,
                    deadlines={kind: now + offset for kind, offset in queued_deadlines(event).items()},
                )
                if len(leased) < leases.max_tasks and activity.queue in leases.queues:
                    leased.append(self._lease_activity(activity, now))
            for activity_id in canceled:
                self._cancel_activity(activity_id, now)
            execution.locked_until = execution.lease_token = None
            execution.sticky_until = now + self.options.sticky
            execution.blocked = None  # the code ran the task: whatever blocked it is fixed
            if state is not InstanceState.ACTIVE:
                # Finish before delivering: a continue-as-new start for this instance id must
                # not find this execution still active.
                execution.pending.clear()  # leftover future events (timers) of a finished run
                self._finish(execution, state, now)
                if state is InstanceState.CONTINUED_AS_NEW and self.options.remove_continued_as_new_instances:
                    del self._executions[(execution.instance.instance_id, execution.instance.execution_id)]
            self._deliver_workflow_events(execution.instance, result.workflow_events, now)
            self._cond.notify_all()
        return leased

    def _deliver_workflow_events(
        self, sender: WorkflowInstance, workflow_events: Sequence[WorkflowEvent], now: datetime
    ) -> None:
        for workflow_event in workflow_events:
            target, event = workflow_event.instance, workflow_event.event
            if event.type is EventType.WORKFLOW_EXECUTION_STARTED:
                try:
                    self._create(target, event, now)
                except InstanceAlreadyExists:
                    if target.parent is not None:
                        self._deliver(target.parent, duplicate_sub_workflow_result(target, now))
                continue
            self._deliver(target, event)

    def _deliver(self, target: WorkflowInstance, event: Event) -> None:
        if event.type in FOLLOW_ACTIVE_EXECUTION:
            execution = self._active_execution(target.instance_id)
        else:
            execution = self._executions.get((target.instance_id, target.execution_id))
        if execution is not None and execution.state is InstanceState.ACTIVE:
            execution.pending.append(event)

    # -- activity tasks ----------------------------------------------------------------------

    def _cancel_activity(self, activity_id: str, now: datetime) -> None:
        """The workflow canceled a scheduled activity: one that is running is told at its next
        heartbeat; one that is not is dropped and answers ``Canceled``."""
        activity = self._activities.get(activity_id)
        if activity is None:
            return
        if activity.locked_until is not None and activity.locked_until > now and activity.expired(now) is None:
            activity.cancel_requested = True
            return
        del self._activities[activity_id]
        self._deliver(activity.instance, canceled_activity_result(activity.event.schedule_event_id, now))

    def get_activity_task(self, queues: Sequence[str], timeout: float) -> ActivityTask | None:
        tasks = self.get_activity_tasks(queues, timeout, 1)
        return tasks[0] if tasks else None

    def get_activity_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[ActivityTask]:
        deadline = time.monotonic() + timeout
        leased: list[ActivityTask] = []
        with self._cond:
            while True:
                now = self._clock.now()
                for activity in list(self._activities.values()):
                    if len(leased) >= max_tasks:
                        break
                    if activity.queue not in queues:
                        continue
                    if activity.locked_until is not None and activity.locked_until > now:
                        continue
                    if activity.expired(now) is not None:
                        continue  # its attempt timed out: time_out_activity_tasks fails it
                    if activity.lease_count >= self.options.max_activity_leases:
                        # Its workers died every time: fail it instead of leasing it again.
                        del self._activities[activity.id]
                        failed = abandoned_activity_result(activity.event, activity.lease_count, now, activity.details)
                        self._deliver(activity.instance, failed)
                        self._cond.notify_all()
                        continue
                    leased.append(self._lease_activity(activity, now))
                if leased or not self._wait(deadline, now):
                    return leased

    def _lease_activity(self, activity: _Activity, now: datetime) -> ActivityTask:
        activity.locked_until = now + self.options.activity_lock
        activity.lease_token = uuid.uuid4().hex
        activity.lease_count += 1
        # Taken from the queue: schedule-to-start is over, start-to-close starts (at the first
        # lease of the attempt; a later lease after a crash keeps it), and so does the heartbeat.
        activity.deadlines.pop(TimeoutType.SCHEDULE_TO_START, None)
        run = start_to_close(activity.event)
        if run is not None:
            activity.deadlines.setdefault(TimeoutType.START_TO_CLOSE, now + run)
        beat = heartbeat_timeout(activity.event)
        if beat is not None:
            activity.deadlines[TimeoutType.HEARTBEAT] = now + beat
        return ActivityTask(
            id=activity.id,
            activity_id=activity.event.id,
            queue=activity.queue,
            instance=activity.instance,
            event=activity.event,
            lease_token=activity.lease_token,
            lease_count=activity.lease_count,
            heartbeat_details=activity.details,
        )

    def _leased_activity(self, task: ActivityTask) -> _Activity:
        activity = self._activities.get(task.id)
        now = self._clock.now()
        if (
            activity is None
            or activity.lease_token != task.lease_token
            or activity.locked_until is None
            or activity.locked_until <= now
            or activity.expired(now) is not None
        ):
            raise LeaseLost()
        return activity

    def extend_activity_task(self, task: ActivityTask) -> None:
        with self._cond:
            activity = self._leased_activity(task)
            activity.locked_until = self._clock.now() + self.options.activity_lock

    def heartbeat_activity_task(self, task: ActivityTask, details: Payload | None = None) -> bool:
        with self._cond:
            activity = self._leased_activity(task)
            now = self._clock.now()
            activity.locked_until = now + self.options.activity_lock
            beat = heartbeat_timeout(activity.event)
            if beat is not None:
                activity.deadlines[TimeoutType.HEARTBEAT] = now + beat
            if details is not None:
                activity.details = details
            execution = self._executions.get((activity.instance.instance_id, activity.instance.execution_id))
            return activity.cancel_requested or execution is None or execution.state is not InstanceState.ACTIVE

    def time_out_activity_tasks(self, max_tasks: int = 100) -> int:
        with self._cond:
            now = self._clock.now()
            expired = [(a, kind) for a in self._activities.values() if (kind := a.expired(now)) is not None]
            for activity, kind in expired[:max_tasks]:
                del self._activities[activity.id]
                self._deliver(activity.instance, timed_out_activity_result(activity.event, kind, now, activity.details))
            if expired:
                self._cond.notify_all()
            return len(expired[:max_tasks])

    def time_out_workflow_instances(self, max_instances: int = 100) -> int:
        with self._cond:
            now = self._clock.now()
            due = [
                x
                for x in self._executions.values()
                if x.state is InstanceState.ACTIVE and x.timeout_at is not None and x.timeout_at <= now
            ][:max_instances]
            for execution in due:
                ended, parent_event = timed_out_events(execution.instance, execution.execution_timeout, now)
                self._end(execution, [ended], parent_event, now)
            if due:
                self._cond.notify_all()
            return len(due)

    def complete_activity_task(
        self, task: ActivityTask, result: Event, *, workflow_queues: Sequence[str] = ()
    ) -> WorkflowTask | None:
        with self._cond:
            self._leased_activity(task)
            del self._activities[task.id]
            self._deliver(task.instance, result)
            self._cond.notify_all()
            execution = self._executions.get((task.instance.instance_id, task.instance.execution_id))
            if execution is None or not self._workflow_task_free(execution, workflow_queues):
                return None
            return self._lease_workflow_task(execution, self._clock.now())

    def _workflow_task_free(self, execution: _Execution, queues: Sequence[str]) -> bool:
        """Whether this worker may lease the execution's workflow task now."""
        now = self._clock.now()
        return (
            execution.state is InstanceState.ACTIVE
            and execution.queue in queues
            and (execution.locked_until is None or execution.locked_until <= now)
            and (execution.blocked is None or execution.blocked.retry_at <= now)
            and (
                execution.sticky_until is None
                or execution.sticky_until <= now
                or execution.worker == self.options.worker_name
            )
        )

    def abandon_activity_task(self, task: ActivityTask) -> None:
        with self._cond:
            try:
                activity = self._leased_activity(task)
            except LeaseLost:
                return
            activity.locked_until = activity.lease_token = None
            # A graceful release is not a crash: it does not count against max_activity_leases.
            activity.lease_count = max(0, activity.lease_count - 1)
            self._cond.notify_all()

    # -- misc --------------------------------------------------------------------------------

    def get_stats(self) -> Stats:
        with self._cond:
            now = self._clock.now()
            workflow_tasks: dict[str, int] = {}
            for execution in self._executions.values():
                if execution.state is InstanceState.ACTIVE and self._visible(execution, now):
                    workflow_tasks[execution.queue] = workflow_tasks.get(execution.queue, 0) + 1
            activity_tasks: dict[str, int] = {}
            for activity in self._activities.values():
                activity_tasks[activity.queue] = activity_tasks.get(activity.queue, 0) + 1
            return Stats(
                active_workflow_instances=len(self._active),
                pending_workflow_tasks=workflow_tasks,
                pending_activity_tasks=activity_tasks,
            )

    def get_backlog(self) -> list[QueueBacklog]:
        with self._cond:
            now = self._clock.now()
            workflows: dict[str, list[datetime]] = {}
            for execution in self._executions.values():
                if execution.state is not InstanceState.ACTIVE or _held(execution.locked_until, now):
                    continue
                visible = self._visible(execution, now)
                if visible:
                    ready_at = min(e.visible_at or e.timestamp for e in visible)
                    workflows.setdefault(execution.queue, []).append(ready_at)
            activities: dict[str, list[datetime]] = {}
            for activity in self._activities.values():
                if not _held(activity.locked_until, now):
                    # Ready since it was scheduled, or since its last lease ran out.
                    ready_at = activity.locked_until or activity.event.timestamp
                    activities.setdefault(activity.queue, []).append(ready_at)

        def age(times: list[datetime] | None) -> float | None:
            return max(0.0, (now - min(times)).total_seconds()) if times else None

        return [
            QueueBacklog(
                queue=queue,
                ready_workflow_tasks=len(workflows.get(queue, ())),
                ready_activity_tasks=len(activities.get(queue, ())),
                oldest_workflow_task_age=age(workflows.get(queue)),
                oldest_activity_task_age=age(activities.get(queue)),
            )
            for queue in sorted(set(workflows) | set(activities))
        ]

    # -- live workers ------------------------------------------------------------------------

    def register_worker(self, info: WorkerInfo, ttl: timedelta) -> None:
        with self._cond:
            now = self._clock.now()
            self._workers[info.worker_id] = (dataclasses.replace(info, heartbeat_at=now), now + ttl)

    def heartbeat_worker(self, worker_id: str, tasks_in_flight: int, ttl: timedelta) -> bool:
        with self._cond:
            now = self._clock.now()
            entry = self._workers.get(worker_id)
            if entry is None or entry[1] <= now:
                self._workers.pop(worker_id, None)
                return False
            info = dataclasses.replace(entry[0], heartbeat_at=now, tasks_in_flight=tasks_in_flight)
            self._workers[worker_id] = (info, now + ttl)
            return True

    def unregister_worker(self, worker_id: str) -> None:
        with self._cond:
            self._workers.pop(worker_id, None)

    def list_workers(self) -> list[WorkerInfo]:
        with self._cond:
            now = self._clock.now()
            for worker_id in [key for key, (_, expires) in self._workers.items() if expires <= now]:
                del self._workers[worker_id]
            return [self._workers[key][0] for key in sorted(self._workers)]

    # -- test support ------------------------------------------------------------------------

    def get_future_events(self) -> list[Event]:
        """Pending events that are not visible yet (timers), for tests."""
        with self._cond:
            now = self._clock.now()
            return [
                e
                for x in self._executions.values()
                for e in x.pending
                if e.visible_at is not None and e.visible_at > now
            ]

    def wake(self) -> None:
        """Wake waiting pollers (the tester calls this after moving its clock)."""
        with self._cond:
            self._cond.notify_all()


def _held(locked_until: datetime | None, now: datetime) -> bool:
    """Whether a lease that runs until ``locked_until`` holds at ``now``."""
    return locked_until is not None and locked_until > now


# -- schedules -------------------------------------------------------------------------------------


class MemoryScheduleStore:
    """Schedules in memory (``schedules.store.ScheduleStore``), under the backend's lock.

    The lock makes every ``put``, ``claim`` and ``complete`` atomic; a change function may call
    back into the backend (the lock is reentrant).
    """

    def __init__(self, lock: threading.Condition, clock: Clock) -> None:
        self._lock = lock
        self._clock = clock
        self._records: dict[str, ScheduleRecord] = {}
        # schedule id -> (token, lease end) of the claim that holds it
        self._claims: dict[str, tuple[str, datetime]] = {}

    def now(self) -> datetime:
        return self._clock.now()

    def get(self, schedule_id: str) -> ScheduleRecord:
        with self._lock:
            record = self._records.get(schedule_id)
            if record is None:
                raise ScheduleNotFound(schedule_id)
            return record

    def list(self) -> list[ScheduleRecord]:
        with self._lock:
            return [self._records[key] for key in sorted(self._records)]

    def put(self, schedule_id: str, change: Change) -> ScheduleRecord:
        with self._lock:
            current = self._records.get(schedule_id)
            record = change(current)
            if record is not current:
                self._records[schedule_id] = record
            return record

    def delete(self, schedule_id: str) -> None:
        with self._lock:
            if self._records.pop(schedule_id, None) is None:
                raise ScheduleNotFound(schedule_id)
            self._claims.pop(schedule_id, None)

    def claim(self, lease: timedelta, schedule_id: str | None = None) -> ScheduleClaim | None:
        with self._lock:
            now = self._clock.now()
            if schedule_id is not None:
                candidates = [schedule_id] if schedule_id in self._records else []
            else:
                due = [(r.state.due_at, key) for key, r in self._records.items() if r.state.due_at is not None and r.state.due_at <= now]
                candidates = [key for _, key in sorted(due)]
            for key in candidates:
                held = self._claims.get(key)
                if held is not None and held[1] > now:
                    continue
                token = uuid.uuid4().hex
                self._claims[key] = (token, now + lease)
                return ScheduleClaim(record=self._records[key], token=token, now=now)
            return None

    def complete(self, claim: ScheduleClaim, change: Callable[[ScheduleRecord], ScheduleRecord]) -> ScheduleRecord | None:
        with self._lock:
            key = claim.record.schedule_id
            held = self._claims.get(key)
            current = self._records.get(key)
            if held is None or held[0] != claim.token or current is None:
                return None
            record = self._records[key] = change(current)
            del self._claims[key]
            return record

    def release(self, claim: ScheduleClaim) -> None:
        with self._lock:
            held = self._claims.get(claim.record.schedule_id)
            if held is not None and held[0] == claim.token:
                del self._claims[claim.record.schedule_id]
