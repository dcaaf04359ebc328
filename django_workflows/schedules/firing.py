"""What one firing of a schedule does (pure Python): start the run, or skip, buffer, cancel or
terminate according to the overlap policy; make up for fire times missed within the catch-up
window and record older ones as skipped.

``fire`` decides and acts through a ``Runtime`` (start, cancel, terminate, look up a run): the
scheduler loop of a worker and ``Client.trigger_schedule`` use ``BackendRuntime`` on a workflow
backend; the ``WorkflowTester`` has a runtime of its own that runs in workflow time. ``fire``
returns a ``Firing``; ``apply`` writes it into the record when the claim completes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from ..engine.backend import Backend
from ..engine.clock import Clock, system_clock
from ..engine.core import InstanceState, WorkflowInstance
from ..engine.errors import InstanceAlreadyExists, InstanceNotFound
from ..engine.history import (
    Event,
    EventType,
    WorkflowExecutionCanceledAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    new_event,
)
from .records import (
    RunAction,
    ScheduleDefinition,
    ScheduleRecord,
    ScheduleRun,
    due_at,
    run_instance,
    with_runs,
)
from .spec import OverlapPolicy, ScheduleError

#: Fire times one claim handles; a schedule further behind is handled by the next claims.
MAX_FIRINGS_PER_CLAIM = 100
#: Skipped fire times counted one by one, at most (a cron schedule far behind is summed up).
_MAX_COUNTED = 10_000
#: Metadata the runs of a schedule carry (``InstanceInfo.metadata``).
SCHEDULE_ID_KEY = "workflows-schedule-id"
FIRE_TIME_KEY = "workflows-schedule-time"


class Runtime(Protocol):
    def state_of(self, instance: WorkflowInstance) -> InstanceState | None:
        """The execution's state, None if it does not exist."""

    def start(self, instance: WorkflowInstance, definition: ScheduleDefinition, fire_time: datetime) -> bool:
        """Start the run; False if that execution (or another active one of the id) exists."""

    def cancel(self, instance: WorkflowInstance) -> None:
        """Ask the execution to cancel (nothing if it ended)."""

    def terminate(self, instance: WorkflowInstance, reason: str) -> None:
        """End the execution at once (nothing if it ended)."""


class BackendRuntime:
    """Fires on a workflow backend, like ``Client.create_workflow_instance`` does."""

    def __init__(self, backend: Backend, clock: Clock = system_clock) -> None:
        self.backend = backend
        self.clock = clock

    def state_of(self, instance: WorkflowInstance) -> InstanceState | None:
        try:
            return self.backend.get_workflow_instance_state(instance)
        except InstanceNotFound:
            return None

    def start(self, instance: WorkflowInstance, definition: ScheduleDefinition, fire_time: datetime) -> bool:
        metadata = {SCHEDULE_ID_KEY: definition.schedule_id, FIRE_TIME_KEY: fire_time.isoformat()}
        attributes = WorkflowExecutionStartedAttributes(
            name=definition.workflow_name, queue=definition.queue, inputs=list(definition.inputs), metadata=metadata
        )
        try:
            self.backend.create_workflow_instance(instance, new_event(attributes, self.clock.now()))
        except InstanceAlreadyExists:
            return False
        return True

    def cancel(self, instance: WorkflowInstance) -> None:
        try:
            self.backend.cancel_workflow_instance(instance, new_event(WorkflowExecutionCanceledAttributes(), self.clock.now()))
        except InstanceNotFound:  # InstanceFinished too: it ended meanwhile
            pass

    def terminate(self, instance: WorkflowInstance, reason: str) -> None:
        try:
            self.backend.terminate_workflow_instance(instance, reason)
        except InstanceNotFound:
            pass


def run_outcome(backend: Backend, instance: WorkflowInstance) -> str:
    """``running``, ``completed``, ``failed``, ``canceled``, ``terminated``, ``continued_as_new``
    or ``removed`` (the execution is not stored anymore)."""
    try:
        state = backend.get_workflow_instance_state(instance)
        history = [] if state is InstanceState.ACTIVE else backend.get_workflow_instance_history(instance)
    except InstanceNotFound:
        return "removed"
    return outcome_from(state, history)


def outcome_from(state: InstanceState, history: Sequence[Event]) -> str:
    """How an execution in ``state`` with ``history`` ended (see ``run_outcome``)."""
    if state is InstanceState.ACTIVE:
        return "running"
    if state is InstanceState.CONTINUED_AS_NEW:
        return "continued_as_new"
    for event in reversed(history):
        attributes = event.attributes
        if isinstance(attributes, WorkflowExecutionFinishedAttributes):
            if attributes.error is None:
                return "completed"
            return "canceled" if attributes.error.type == "Canceled" else "failed"
        if event.type is EventType.WORKFLOW_EXECUTION_TERMINATED:
            return "terminated"
    return "completed"


@dataclass(slots=True)
class Firing:
    """What a firing did, to be written into the record (``apply``)."""

    #: The revision of the record the firing worked from.
    revision: int
    next_fire_at: datetime | None
    buffered_at: datetime | None
    last_instance: WorkflowInstance | None
    runs: list[ScheduleRun] = field(default_factory=list)
    #: The runs it started, in order.
    started: list[WorkflowInstance] = field(default_factory=list)


class _Firer:
    def __init__(self, record: ScheduleRecord, now: datetime, runtime: Runtime) -> None:
        self.definition = record.definition
        self.state = record.state
        self.now = now
        self.runtime = runtime
        self.result = Firing(
            revision=record.state.revision,
            next_fire_at=record.state.next_fire_at,
            buffered_at=record.state.buffered_at,
            last_instance=record.state.last_instance,
        )
        self._last_running: bool | None = None

    # -- the previous run ------------------------------------------------------------------

    def previous_running(self) -> bool:
        if self._last_running is None:
            last = self.result.last_instance
            self._last_running = last is not None and self.runtime.state_of(last) is InstanceState.ACTIVE
        return self._last_running

    def record(self, fire_time: datetime, action: RunAction, **fields: object) -> None:
        self.result.runs.append(ScheduleRun(fire_time=fire_time, action=action, at=self.now, **fields))  # type: ignore[arg-type]

    def start(self, fire_time: datetime, *, triggered: bool = False, reason: str = "") -> WorkflowInstance | None:
        instance = run_instance(self.definition.schedule_id, fire_time, triggered=triggered)
        if not self.runtime.start(instance, self.definition, fire_time):
            if self.runtime.state_of(instance) is None:
                # Another execution of that instance id is active: not ours to touch.
                self.record(fire_time, RunAction.SKIPPED, reason="instance id in use", triggered=triggered)
                return None
            # Started already: by another worker whose claim expired before it completed.
            reason = reason or "started before"
        self.record(fire_time, RunAction.STARTED, instance=instance, reason=reason, triggered=triggered)
        self.result.last_instance = instance
        self.result.started.append(instance)
        self._last_running = True
        return instance

    # -- one fire time ----------------------------------------------------------------------

    def decide(self, fire_time: datetime, policy: OverlapPolicy, *, triggered: bool = False) -> WorkflowInstance | None:
        if policy is OverlapPolicy.ALLOW_ALL or not self.previous_running():
            return self.start(fire_time, triggered=triggered)
        previous = self.result.last_instance
        assert previous is not None
        if policy is OverlapPolicy.SKIP:
            self.record(fire_time, RunAction.SKIPPED, reason=f"overlap: {previous.instance_id} is running", triggered=triggered)
            return None
        if policy is OverlapPolicy.TERMINATE_OTHER:
            self.runtime.terminate(previous, f"terminated by schedule {self.definition.schedule_id}: overlap policy terminate_other")
            return self.start(fire_time, triggered=triggered, reason=f"terminated {previous.instance_id}")
        if triggered:
            raise ScheduleError(f"a triggered run cannot use the overlap policy {policy.value}")
        if policy is OverlapPolicy.BUFFER_ONE:
            if self.result.buffered_at is not None:
                self.record(fire_time, RunAction.SKIPPED, reason="overlap: a firing is buffered already")
            else:
                self.result.buffered_at = fire_time
                self.record(fire_time, RunAction.BUFFERED, reason=f"waits for {previous.instance_id}")
            return None
        assert policy is OverlapPolicy.CANCEL_OTHER
        self.runtime.cancel(previous)
        if self.result.buffered_at is not None:
            self.record(self.result.buffered_at, RunAction.SKIPPED, reason="replaced by a newer firing")
        self.result.buffered_at = fire_time
        self.record(fire_time, RunAction.BUFFERED, reason=f"canceled {previous.instance_id}, waits for it to end")
        return None

    def start_buffered(self) -> None:
        buffered = self.result.buffered_at
        if buffered is not None and not self.previous_running():
            self.result.buffered_at = None
            self.start(buffered)

    # -- the fire times that are due ------------------------------------------------------------

    def fire_due(self) -> None:
        spec = self.definition.spec
        cutoff = self.now - self.definition.catchup_window
        handled = 0
        while (fire_time := self.result.next_fire_at) is not None and fire_time <= self.now:
            if handled >= MAX_FIRINGS_PER_CLAIM:
                return
            handled += 1
            if fire_time < cutoff:
                if self.runtime.state_of(run_instance(self.definition.schedule_id, fire_time)) is not None:
                    # A worker started it and died before recording it.
                    self.record(fire_time, RunAction.STARTED, instance=run_instance(self.definition.schedule_id, fire_time), reason="started before")
                    self.result.next_fire_at = spec.next_after(fire_time)
                    continue
                self.skip_missed(fire_time, cutoff)
                continue
            self.decide(fire_time, self.definition.overlap)
            self.result.next_fire_at = spec.next_after(fire_time)

    def skip_missed(self, first: datetime, cutoff: datetime) -> None:
        """Record the fire times from ``first`` up to ``cutoff`` as one skipped row."""
        spec = self.definition.spec
        count, last, moment = 0, first, first
        following: datetime | None = first
        while following is not None and following < cutoff and count < _MAX_COUNTED:
            count, last = count + 1, following
            moment = following
            following = spec.next_after(moment)
        reason = "missed: no scheduler ran"
        if following is not None and following < cutoff:
            # Too many to count one by one: jump to the first fire time inside the window.
            following = spec.next_after(cutoff - timedelta(microseconds=1))
            reason += f" (at least {count} firings)"
        self.record(first, RunAction.SKIPPED, reason=reason, count=count, last_fire_time=last if count > 1 else None)
        self.result.next_fire_at = following


def fire(
    record: ScheduleRecord,
    now: datetime,
    runtime: Runtime,
    *,
    trigger: bool = False,
    trigger_overlap: OverlapPolicy = OverlapPolicy.ALLOW_ALL,
) -> Firing:
    """Handle what is due for ``record`` at ``now``: a buffered firing whose previous run ended,
    the fire times that have come (none while paused), and with ``trigger`` a run started now."""
    firer = _Firer(record, now, runtime)
    if not record.state.paused:
        firer.start_buffered()
        firer.fire_due()
        firer.start_buffered()  # a cancel_other firing whose previous run ended at once
    if trigger:
        firer.decide(now, trigger_overlap, triggered=True)
    return firer.result


def apply(firing: Firing, now: datetime) -> Callable[[ScheduleRecord], ScheduleRecord]:
    """The change that writes ``firing`` into the current record. If the schedule was changed
    through the Client since the claim (its revision moved), the timing the change computed
    stands; the runs, the buffered firing and the last run are the firing's."""

    def change(current: ScheduleRecord) -> ScheduleRecord:
        state = current.state
        if state.revision == firing.revision:
            state = replace(state, next_fire_at=firing.next_fire_at)
        state = replace(state, buffered_at=firing.buffered_at, last_instance=firing.last_instance)
        state = with_runs(state, firing.runs)
        return replace(current, state=replace(state, due_at=due_at(state, now)))

    return change
