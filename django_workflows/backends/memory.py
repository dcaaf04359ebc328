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
    Feature,
    InstanceInfo,
    QueueBacklog,
    Stats,
    WorkerInfo,
    WorkflowTask,
    WorkflowTaskCompletion,
)
from ..engine.clock import Clock, system_clock
from ..engine.core import InstanceState, Metadata, WorkflowInstance, validate_id
from ..engine.errors import (
    CompletionRejected,
    InstanceAlreadyExists,
    InstanceFinished,
    InstanceNotFinished,
    InstanceNotFound,
    LeaseLost,
)
from ..engine.history import (
    Event,
    EventType,
    WorkflowEvent,
    WorkflowExecutionStartedAttributes,
)
from ..schedules.records import ScheduleRecord
from ..schedules.store import Change, ScheduleClaim, ScheduleNotFound
from .base import BaseBackend
from .rules import (
    FOLLOW_ACTIVE_EXECUTION,
    abandoned_activity_result,
    activity_queue,
    duplicate_sub_workflow_result,
    terminated_events,
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


@dataclass(slots=True)
class _Activity:
    id: str
    instance: WorkflowInstance
    queue: str
    event: Event
    locked_until: datetime | None = None
    lease_token: str | None = None
    lease_count: int = 0


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
        if instance.instance_id in self._active:
            raise InstanceAlreadyExists()
        key = (instance.instance_id, instance.execution_id)
        if key in self._executions:
            raise InstanceAlreadyExists()
        self._executions[key] = _Execution(
            instance=instance,
            name=attributes.name,
            queue=attributes.queue,
            metadata=dict(attributes.metadata),
            created_at=now,
            pending=[event],
        )
        self._active[instance.instance_id] = instance.execution_id

    def _visible(self, execution: _Execution, now: datetime) -> list[Event]:
        return [e for e in execution.pending if e.visible_at is None or e.visible_at <= now]

    def _finish(self, execution: _Execution, state: InstanceState, now: datetime) -> None:
        execution.state = state
        execution.completed_at = now
        if self._active.get(execution.instance.instance_id) == execution.instance.execution_id:
            del self._active[execution.instance.instance_id]

    # -- instances ---------------------------------------------------------------------------

    def create_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        validate_id(instance.instance_id)
        with self._cond:
            self._create(instance, event, self._clock.now())
            self._cond.notify_all()

    def cancel_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        with self._cond:
            execution = self._get(instance)
            if execution.state is not InstanceState.ACTIVE:
                raise InstanceFinished()
            execution.pending.append(event)
            self._cond.notify_all()

    def terminate_workflow_instance(self, instance: WorkflowInstance, reason: str) -> None:
        with self._cond:
            execution = self._get(instance)
            if execution.state is not InstanceState.ACTIVE:
                raise InstanceFinished()
            now = self._clock.now()
            terminated, parent_event = terminated_events(execution.instance, reason, now)
            execution.history.append(terminated.with_sequence_id(len(execution.history) + 1))
            execution.pending.clear()
            execution.locked_until = execution.lease_token = None
            self._finish(execution, InstanceState.FINISHED, now)
            for key in [k for k, a in self._activities.items() if a.instance == instance]:
                del self._activities[key]
            if parent_event is not None and execution.instance.parent is not None:
                self._deliver(execution.instance.parent, parent_event)
            self._cond.notify_all()

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

    def remove_workflow_instances(self, *, finished_before: datetime, batch_size: int = 100) -> int:
        removed = 0
        with self._cond:
            for key, execution in list(self._executions.items()):
                if execution.completed_at is not None and execution.completed_at < finished_before:
                    del self._executions[key]
                    removed += 1
        return removed

    def get_workflow_instance_state(self, instance: WorkflowInstance) -> InstanceState:
        with self._cond:
            return self._get(instance).state

    def get_workflow_instance_info(self, instance: WorkflowInstance) -> InstanceInfo:
        with self._cond:
            execution = self._get(instance)
            return InstanceInfo(
                instance=execution.instance,
                workflow_name=execution.name,
                queue=execution.queue,
                state=execution.state,
                created_at=execution.created_at,
                completed_at=execution.completed_at,
                metadata=dict(execution.metadata),
            )

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
            for event in result.activity_events:
                activity = self._activities[event.id] = _Activity(
                    id=event.id, instance=execution.instance, queue=activity_queue(event, task.queue), event=event
                )
                if len(leased) < leases.max_tasks and activity.queue in leases.queues:
                    leased.append(self._lease_activity(activity, now))
            execution.locked_until = execution.lease_token = None
            execution.sticky_until = now + self.options.sticky
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
                    if activity.lease_count >= self.options.max_activity_leases:
                        # Its workers died every time: fail it instead of leasing it again.
                        del self._activities[activity.id]
                        self._deliver(activity.instance, abandoned_activity_result(activity.event, activity.lease_count, now))
                        self._cond.notify_all()
                        continue
                    leased.append(self._lease_activity(activity, now))
                if leased or not self._wait(deadline, now):
                    return leased

    def _lease_activity(self, activity: _Activity, now: datetime) -> ActivityTask:
        activity.locked_until = now + self.options.activity_lock
        activity.lease_token = uuid.uuid4().hex
        activity.lease_count += 1
        return ActivityTask(
            id=activity.id,
            activity_id=activity.event.id,
            queue=activity.queue,
            instance=activity.instance,
            event=activity.event,
            lease_token=activity.lease_token,
            lease_count=activity.lease_count,
        )

    def _leased_activity(self, task: ActivityTask) -> _Activity:
        activity = self._activities.get(task.id)
        if (
            activity is None
            or activity.lease_token != task.lease_token
            or activity.locked_until is None
            or activity.locked_until <= self._clock.now()
        ):
            raise LeaseLost()
        return activity

    def extend_activity_task(self, task: ActivityTask) -> None:
        with self._cond:
            activity = self._leased_activity(task)
            activity.locked_until = self._clock.now() + self.options.activity_lock

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
