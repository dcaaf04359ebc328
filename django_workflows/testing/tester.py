"""``WorkflowTester``: unit-test a workflow in-process, in workflow time (port of go-workflows
``tester/``).

The tester runs the workflow under test, and any sub-workflows it starts, on an in-memory loop
of its own: no backend, no worker, no database. Mocked activities answer at once; real ones run
on threads of their own. Sub-workflows are mocked or run for real; signals, cancellations and
callbacks are scheduled in workflow time. The clock is fake: while nothing but timers can make progress, it jumps to the
next timer, so a workflow that sleeps for days finishes in milliseconds; while real activities
run it follows the wall clock, so timers race them as they would in production. Every workflow
task runs on a fresh ``Executor`` that replays the whole history first, so workflow code that is
not deterministic fails with ``NondeterminismError`` here rather than in production.

Usage (pytest)::

    from datetime import timedelta
    from django_workflows.testing import WorkflowTester

    def test_order():
        tester = WorkflowTester(order_workflow)
        tester.register_activity(charge)                           # runs for real, in-process
        tester.on_activity(ship, "order-1").returns("trk-9").once()  # mocked; exact arguments
        tester.on_activity("refund").raises(ValueError("declined"))  # by name; any arguments
        tester.on_sub_workflow(invoice_workflow).returns(3)        # mocked sub-workflow
        tester.signal_workflow("approved", True, after=timedelta(days=2))
        tester.schedule_callback(timedelta(hours=1), lambda: print(tester.now()))

        tester.execute("order-1")

        assert tester.workflow_finished()
        assert tester.workflow_result() == "shipped trk-9"   # raises the workflow's error if it failed
        assert tester.now() >= tester.start_time + timedelta(days=2)
        tester.assert_expectations()                         # every .once()/.times(n) mock was called so

- Unmocked activities run for real if registered; an unregistered one fails as on a worker
  (``activity not found: NAME``). Unmocked sub-workflows run for real (register them).
- ``cancel_workflow(after=...)``, ``signal_workflow_instance``/``cancel_workflow_instance`` for
  sub-workflows (by instance or instance id; ``listen_sub_workflow`` reports their instances).
- ``execute`` raises ``WorkflowBlocked`` when nothing happened for ``idle_timeout`` seconds of
  wall time (default 10), and ``UnexpectedCall`` when a mock is called in a way nothing expects.
- ``history()`` returns the events recorded for the workflow (or a sub-workflow), as a backend
  would store them.
- Activity timeouts, heartbeats and cancellation work in workflow time (``tester_attempts``):
  ``tester.on_activity(export).hangs()`` never answers, so its timeouts fire when time skips to
  them; ``.times_out("heartbeat")`` answers with that timeout when it would fire.
  ``execution_timeout=`` and ``start_delay=`` apply to the workflow under test as
  ``WorkflowInstanceOptions`` do; sub-workflows take them from ``SubWorkflowOptions``.
- Options: ``registry=`` (copied), ``converter=``, ``propagators=``, ``initial_time=`` (aware,
  default now), ``max_history_size=``, ``idle_timeout=``, ``instance_id=``, ``logger=``,
  ``execution_timeout=``, ``start_delay=``.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..backends.rules import (
    FOLLOW_ACTIVE_EXECUTION,
    canceled_activities,
    canceled_activity_result,
    canceled_before_start_events,
    duplicate_sub_workflow_result,
    execution_deadline,
    terminated_events,
    timed_out_activity_result,
    timed_out_events,
)
from ..client import WorkflowInstanceOptions
from ..engine.activity_runner import ActivityRunner
from ..engine.clock import system_clock, to_timedelta
from ..engine.converter import Converter, Payload, PayloadError, default_converter
from ..engine.core import (
    DEFAULT_QUEUE,
    InstanceState,
    Metadata,
    WorkflowInstance,
    new_execution_id,
    validate_id,
    validate_signal_name,
)
from ..engine.errors import InstanceFinished, InstanceNotFound, TimeoutType, WorkflowError, WorkflowTimedOut
from ..engine.executor import DEFAULT_MAX_HISTORY_SIZE, Executor
from ..engine.history import (
    ActivityCompletedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Attributes,
    Event,
    EventType,
    SignalReceivedAttributes,
    SubWorkflowCompletedAttributes,
    SubWorkflowFailedAttributes,
    WorkflowEvent,
    WorkflowExecutionCanceledAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    new_event,
)
from ..engine.propagation import ContextPropagator
from ..engine.registry import Registry, check_arguments
from ..engine.signals import SIGNAL_ACTIVITY_NAME
from ..schedules.declarations import Schedule
from ..schedules.firing import apply, fire, outcome_from
from ..schedules.records import ScheduleDefinition, ScheduleRecord, ScheduleRun, new_record
from ..schedules.spec import OverlapPolicy, ScheduleSpec
from .tester_attempts import Attempt, describe, timeout_of
from .tester_mocks import MockCall, MockSet, UnexpectedCall

__all__ = ["MockCall", "UnexpectedCall", "WorkflowBlocked", "WorkflowTester"]

#: go-workflows' default test timeout: wall time the tester waits with nothing happening.
DEFAULT_IDLE_TIMEOUT = timedelta(seconds=10)


class WorkflowBlocked(AssertionError):
    """Nothing happened for ``idle_timeout`` of wall time and nothing is scheduled: the workflow
    waits for something that will never come (a signal, a hung activity...)."""


class _TestClock:
    """Workflow time for the tester.

    Frozen while the tester jumps from timer to timer; while real activities run it follows the
    wall clock from where it stood, so it never goes backwards.
    """

    def __init__(self, start: datetime) -> None:
        self._base = start
        self._anchor: float | None = None  # monotonic time when it started following the wall
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now()

    def _now(self) -> datetime:
        if self._anchor is None:
            return self._base
        return self._base + timedelta(seconds=time.monotonic() - self._anchor)

    @property
    def following_wall_clock(self) -> bool:
        return self._anchor is not None

    def follow_wall_clock(self, follow: bool) -> None:
        with self._lock:
            if follow and self._anchor is None:
                self._anchor = time.monotonic()
            elif not follow and self._anchor is not None:
                self._base = self._now()
                self._anchor = None

    def jump_to(self, at: datetime) -> None:
        with self._lock:
            assert self._anchor is None, "time only jumps while no activity runs"
            self._base = max(self._base, at)


@dataclass(order=True)
class _Timer:
    """Something due at a point of workflow time: a workflow timer, a scheduled signal or
    cancellation, or a user callback."""

    at: datetime
    seq: int
    action: Callable[[], None] = field(compare=False)
    description: str = field(compare=False)
    #: (instance id, execution id, schedule event id) of a workflow timer, for its cancellation.
    key: tuple[str, str, int] | None = field(default=None, compare=False)
    dead: bool = field(default=False, compare=False)


class _Execution:
    """One execution the tester runs: its history and the events it has not executed yet.

    It is also the executor's history provider.
    """

    def __init__(self, instance: WorkflowInstance, started: Event) -> None:
        attributes = started.attributes
        assert isinstance(attributes, WorkflowExecutionStartedAttributes)
        self.instance = instance
        self.name = attributes.name
        self.metadata: Metadata = dict(attributes.metadata)
        self.execution_timeout = attributes.execution_timeout
        self.history: list[Event] = []
        self.pending: list[Event] = [started]
        self.state = InstanceState.ACTIVE
        #: The start event while its start is delayed (``start_delay``); events wait for it.
        self.delayed: Event | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.instance.instance_id, self.instance.execution_id)

    def get_workflow_instance_history(
        self, instance: WorkflowInstance, last_sequence_id: int | None = None
    ) -> list[Event]:
        return [e for e in self.history if last_sequence_id is None or e.sequence_id > last_sequence_id]


@dataclass(frozen=True, slots=True)
class _ActivityDone:
    """A real activity finished on its thread; the loop turns this into its result event."""

    instance: WorkflowInstance
    scheduled: Event
    attributes: Attributes | None = None
    crash: BaseException | None = None


class WorkflowTester:
    """Runs one workflow in-process with mocks and skipping time; see the module docstring."""

    def __init__(
        self,
        workflow: Callable[..., Any],
        *,
        registry: Registry | None = None,
        converter: Converter = default_converter,
        propagators: Sequence[ContextPropagator] = (),
        initial_time: datetime | None = None,
        max_history_size: int = DEFAULT_MAX_HISTORY_SIZE,
        idle_timeout: float | timedelta = DEFAULT_IDLE_TIMEOUT,
        instance_id: str | None = None,
        logger: logging.Logger | None = None,
        execution_timeout: float | timedelta | None = None,
        start_delay: float | timedelta | None = None,
    ) -> None:
        # Checked (and normalized) as the client checks them.
        self._start_options = WorkflowInstanceOptions(execution_timeout=execution_timeout, start_delay=start_delay)
        if initial_time is not None and initial_time.utcoffset() is None:
            raise ValueError("initial_time must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc))")
        self._idle_timeout = to_timedelta(idle_timeout, what="idle_timeout").total_seconds()
        if self._idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout!r}")
        # A copy, so mocks and registrations made here never leak into a shared registry.
        self.registry = Registry()
        if registry is not None:
            self.registry.update(registry)
        self._workflow = workflow
        self._workflow_name = self._register_workflow_under_test(workflow)
        self._converter = converter
        self._propagators = list(propagators)
        self._max_history_size = max_history_size
        self._logger = logger
        self._clock = _TestClock(initial_time or system_clock.now())
        #: Workflow time when the tester was created: where the workflow starts.
        self.start_time = self._clock.now()
        self._root = WorkflowInstance(validate_id(instance_id or str(uuid.uuid4())), new_execution_id())
        self._runner = ActivityRunner(self.registry, converter, self._propagators, logger)
        self._activity_mocks = MockSet("activity", converter)
        self._workflow_mocks = MockSet("sub-workflow", converter)
        self._sub_workflow_listeners: list[Callable[[WorkflowInstance, str], None]] = []

        self._executions: dict[tuple[str, str], _Execution] = {}
        self._active: dict[str, _Execution] = {}
        self._timers: list[_Timer] = []
        self._workflow_timers: dict[tuple[str, str, int], _Timer] = {}
        self._timer_seq = itertools.count()
        self._timers_lock = threading.Lock()
        self._inbox: queue.Queue[_ActivityDone | None] = queue.Queue()
        self._running: dict[str, str] = {}  # activity event id -> activity name
        self._attempts: dict[str, Attempt] = {}  # activity event id -> its running attempt
        self._started = False
        self._finished = False
        self._result: WorkflowExecutionFinishedAttributes | None = None

    # -- setup -------------------------------------------------------------------------------

    def register_activity(self, fn_or_object: Any, name: str | None = None) -> Any:
        """Register an activity that runs for real (unless mocked)."""
        return self.registry.register_activity(fn_or_object, name)

    def register_workflow(self, fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        """Register a sub-workflow that runs for real (unless mocked)."""
        return self.registry.register_workflow(fn, name)

    def on_activity(self, activity: Callable[..., Any] | str, *args: Any) -> MockCall:
        """Mock an activity (a function or its registered name). With ``args`` only calls with
        those arguments match; without, any call does."""
        return self._activity_mocks.add(self.registry.activity_name(activity), args or None)

    def on_sub_workflow(self, workflow: Callable[..., Any] | str, *args: Any) -> MockCall:
        """Mock a sub-workflow: it is never started, and its answer reaches the parent at once."""
        return self._workflow_mocks.add(self.registry.workflow_name(workflow), args or None)

    def listen_sub_workflow(self, listener: Callable[[WorkflowInstance, str], None]) -> None:
        """Call ``listener(instance, workflow_name)`` whenever a sub-workflow is started
        (mocked or not); the instance can be signaled or canceled."""
        self._sub_workflow_listeners.append(listener)

    def signal_workflow(self, name: str, value: Any = None, *, after: float | timedelta = 0) -> None:
        """Send signal ``name`` to the workflow under test, ``after`` from now in workflow time."""
        self.signal_workflow_instance(self._root.instance_id, name, value, after=after)

    def signal_workflow_instance(
        self, instance: WorkflowInstance | str, name: str, value: Any = None, *, after: float | timedelta = 0
    ) -> None:
        """Send signal ``name`` to the active execution of ``instance`` (e.g. a sub-workflow).

        ``execute`` raises ``InstanceNotFound`` if no such execution is active when it is due.
        """
        validate_signal_name(name)
        instance_id = _instance_id(instance)
        attributes = SignalReceivedAttributes(name=name, arg=self._converter.to_payload(value))
        self._schedule(after, f"signal {name!r} to {instance_id}", lambda: self._send(instance_id, attributes, "signal"))

    def cancel_workflow(self, *, after: float | timedelta = 0) -> None:
        """Cancel the workflow under test, ``after`` from now in workflow time."""
        self.cancel_workflow_instance(self._root.instance_id, after=after)

    def cancel_workflow_instance(self, instance: WorkflowInstance | str, *, after: float | timedelta = 0) -> None:
        """Cancel the active execution of ``instance`` (e.g. a sub-workflow)."""
        instance_id = _instance_id(instance)
        attributes = WorkflowExecutionCanceledAttributes()
        self._schedule(after, f"cancel {instance_id}", lambda: self._send(instance_id, attributes, "cancel"))

    def schedule_callback(self, delay: float | timedelta, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once ``delay`` has passed in workflow time (not wall time); it runs
        on the tester's loop, and an exception it raises ends ``execute``."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        self._schedule(delay, f"callback {getattr(callback, '__name__', callback)}", callback)

    # -- running -----------------------------------------------------------------------------

    def execute(self, *args: Any) -> None:
        """Run the workflow with ``args`` until it finishes (or continues as new until it does)."""
        if self._started:
            raise RuntimeError("execute() runs a WorkflowTester once; create a new tester for another run")
        check_arguments(self._workflow, args, skip_context=True)
        self._started = True
        metadata: Metadata = {}
        for propagator in self._propagators:
            propagator.inject(metadata)
        timeout: timedelta | None = self._start_options.execution_timeout  # type: ignore[assignment]
        delay: timedelta | None = self._start_options.start_delay  # type: ignore[assignment]
        now = self._clock.now()
        started = new_event(
            WorkflowExecutionStartedAttributes(
                name=self._workflow_name,
                queue=DEFAULT_QUEUE,
                inputs=[self._converter.to_payload(arg) for arg in args],
                metadata=metadata,
                execution_timeout=None if timeout is None else timeout.total_seconds(),
            ),
            now,
            visible_at=None if delay is None else now + delay,
        )
        self._add_execution(self._root, started)
        self._loop()

    def run_schedule(
        self,
        schedule: Schedule | ScheduleSpec | str | timedelta,
        *args: Any,
        until: datetime | float | timedelta,
        overlap: OverlapPolicy | str | None = None,
    ) -> list[ScheduleRun]:
        """Fire the workflow under test on ``schedule`` (a ``Schedule``, a ``ScheduleSpec``, a cron
        string or a ``timedelta``) from now until ``until`` (a moment, or a duration from now)
        in workflow time, with the overlap policy applied as a scheduler would; then wait for the
        runs to end. Returns every firing, oldest first, with the outcome of the runs it
        started; ``run_result(instance)`` gives a run's result."""
        if self._started:
            raise RuntimeError("a WorkflowTester runs once; create a new tester for another run")
        declaration = Schedule.coerce(schedule)
        if args or overlap is not None:
            if isinstance(schedule, Schedule) and args:
                raise TypeError("pass the arguments inside Schedule(...), or a spec and the arguments")
            declaration = Schedule(
                declaration.spec,
                *(args or declaration.args),
                schedule_id=declaration.schedule_id,
                overlap=overlap if overlap is not None else declaration.overlap,
                catchup_window=declaration.catchup_window,
            )
        check_arguments(self._workflow, declaration.args, skip_context=True)
        end = until if isinstance(until, datetime) else self._clock.now() + to_timedelta(until, what="until")
        self._started = True
        runtime = _ScheduleRuntime(self, new_record(declaration.definition(self._workflow_name, self._converter), self._clock.now()), end)
        runtime.plan()
        self._loop(lambda: runtime.done and not self._active)
        return [
            replace(run, outcome=runtime.outcome(run.instance)) if run.instance is not None else run
            for run in runtime.record.state.runs
        ]

    def run_result(self, instance: WorkflowInstance) -> Any:
        """The result of a run ``run_schedule`` started; raises the ``WorkflowError`` it failed with."""
        execution = self._executions.get((instance.instance_id, instance.execution_id))
        if execution is None or execution.state is InstanceState.ACTIVE:
            raise RuntimeError(f"{instance} did not run to its end in this tester")
        for event in reversed(execution.history):
            attributes = event.attributes
            if isinstance(attributes, WorkflowExecutionFinishedAttributes):
                if attributes.error is not None:
                    raise WorkflowError.from_info(attributes.error)
                return None if attributes.result is None else self._converter.from_payload(attributes.result)
        raise WorkflowError(f"{instance} ended without a result (terminated or continued as new)")

    def now(self) -> datetime:
        """The tester's workflow time."""
        return self._clock.now()

    @property
    def instance(self) -> WorkflowInstance:
        """The execution of the workflow under test (the latest one after continue-as-new)."""
        return self._root

    def workflow_finished(self) -> bool:
        return self._finished

    def history(self, instance: WorkflowInstance | str | None = None) -> list[Event]:
        """The history recorded so far for the workflow under test, or for ``instance`` (a
        sub-workflow, by instance or instance id); of the latest execution when only an id is
        given."""
        if isinstance(instance, WorkflowInstance):
            execution = self._executions.get((instance.instance_id, instance.execution_id))
        else:
            instance_id = self._root.instance_id if instance is None else _instance_id(instance)
            matching = [x for x in self._executions.values() if x.instance.instance_id == instance_id]
            execution = matching[-1] if matching else None
        if execution is None:
            raise InstanceNotFound(f"the tester ran no workflow instance {instance!r}")
        return list(execution.history)

    def workflow_result(self) -> Any:
        """The workflow's result; raises the ``WorkflowError`` it failed with."""
        error = self.workflow_error()
        if error is not None:
            raise error
        assert self._result is not None
        return None if self._result.result is None else self._converter.from_payload(self._result.result)

    def workflow_error(self) -> WorkflowError | None:
        """The error the workflow failed with, or ``None`` if it succeeded."""
        if not self._finished or self._result is None:
            raise RuntimeError("the workflow has not finished: call execute() first (and check that it returned)")
        return None if self._result.error is None else WorkflowError.from_info(self._result.error)

    def assert_expectations(self) -> None:
        """Fail unless every mock declared with ``.times(n)``/``.once()`` was called exactly so."""
        unmet = self._activity_mocks.unmet() + self._workflow_mocks.unmet()
        if unmet:
            raise AssertionError("mock expectations not met:\n" + "\n".join(f"  {line}" for line in unmet))

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self, done: Callable[[], bool] | None = None) -> None:
        last_progress = time.monotonic()
        while not (done() if done is not None else self._finished):
            if self._run_workflow_tasks() or self._take_inbox(block=False) or self._fire_due_timer():
                last_progress = time.monotonic()
                continue
            if not self._running and self._jump_to_next_timer():
                last_progress = time.monotonic()
                continue
            # Real activities are running (time follows the wall clock), or nothing is left to
            # do at all: wait for an activity, the next timer in wall time, or the idle timeout.
            remaining = self._idle_timeout - (time.monotonic() - last_progress)
            if remaining <= 0:
                raise WorkflowBlocked(self._blocked_message())
            until_timer = self._seconds_until_next_timer()
            wait = remaining if until_timer is None else max(0.0, min(remaining, until_timer))
            if self._take_inbox(block=True, timeout=wait):
                last_progress = time.monotonic()

    def _run_workflow_tasks(self) -> bool:
        ran = False
        while not self._finished:
            ready = [
                x for x in self._executions.values() if x.pending and x.state is InstanceState.ACTIVE and x.delayed is None
            ]
            if not ready:
                break
            for execution in ready:
                if self._finished:
                    break
                if execution.pending and execution.state is InstanceState.ACTIVE:
                    self._run_workflow_task(execution)
                    ran = True
        return ran

    def _run_workflow_task(self, execution: _Execution) -> None:
        new_events, execution.pending = execution.pending, []
        # A fresh executor every time: it replays the whole history, so non-determinism shows.
        executor = Executor(
            registry=self.registry,
            history_provider=execution,
            instance=execution.instance,
            converter=self._converter,
            metadata=execution.metadata,
            propagators=self._propagators,
            logger=self._logger,
            clock=self._clock,
            max_history_size=self._max_history_size,
        )
        try:
            result = executor.execute_task(last_sequence_id=len(execution.history), new_events=new_events)
        finally:
            executor.close()
        execution.history.extend(result.executed)
        for event in result.executed:
            if event.type is EventType.TIMER_CANCELED:
                self._cancel_timer((*execution.key, event.schedule_event_id))
        if result.state is not InstanceState.ACTIVE:
            self._finish(execution, result.state)
        # Sub-workflows first: an activity of this task (a signal) may address them.
        for workflow_event in result.workflow_events:
            self._route(execution, workflow_event)
        canceled = set(canceled_activities(result.executed))
        for event in result.activity_events:
            if event.id in canceled:  # canceled in the task that scheduled it: it never runs
                self._deliver(execution.instance, canceled_activity_result(event.schedule_event_id, self._clock.now()))
            else:
                self._start_activity(execution, event)
        for activity_id in canceled:
            self._cancel_activity(activity_id)
        for event in result.timer_events:
            assert event.visible_at is not None
            self._add_timer(
                event.visible_at,
                f"timer {getattr(event.attributes, 'name', '') or '(unnamed)'} of {execution.instance.instance_id}",
                functools.partial(self._deliver, execution.instance, event),
                key=(*execution.key, event.schedule_event_id),
            )

    def _finish(self, execution: _Execution, state: InstanceState) -> None:
        execution.state = state
        execution.pending.clear()
        for activity_id, attempt in list(self._attempts.items()):
            if attempt.instance == execution.instance:
                # Its workflow ended: the activity learns it at its next heartbeat.
                attempt.end()
                self._forget_attempt(activity_id)
        if self._active.get(execution.instance.instance_id) is execution:
            del self._active[execution.instance.instance_id]
        with self._timers_lock:
            for key, timer in list(self._workflow_timers.items()):
                if key[:2] == execution.key:
                    timer.dead = True
                    del self._workflow_timers[key]
        if execution.instance == self._root and state is InstanceState.FINISHED:
            for event in reversed(execution.history):
                if isinstance(event.attributes, WorkflowExecutionFinishedAttributes):
                    self._result = event.attributes
                    break
            self._finished = True

    # -- executions and events ---------------------------------------------------------------

    def _add_execution(self, instance: WorkflowInstance, started: Event) -> None:
        execution = _Execution(instance, started)
        self._executions[execution.key] = execution
        self._active[instance.instance_id] = execution
        now = self._clock.now()
        if started.visible_at is not None and started.visible_at > now:
            execution.delayed, execution.pending = started, []
            self._add_timer(started.visible_at, f"delayed start of {instance.instance_id}", functools.partial(self._start_delayed, execution))
        deadline = execution_deadline(started)
        if deadline is not None:
            self._add_timer(
                now + deadline, f"execution timeout of {instance.instance_id}", functools.partial(self._time_out_execution, execution)
            )

    def _start_delayed(self, execution: _Execution) -> None:
        if execution.delayed is not None and execution.state is InstanceState.ACTIVE:
            # The start goes in front of the events that waited for it.
            execution.pending.insert(0, execution.delayed)
            execution.delayed = None

    def _time_out_execution(self, execution: _Execution) -> None:
        if execution.state is not InstanceState.ACTIVE:
            return
        timeout = execution.execution_timeout
        ended, parent_event = timed_out_events(execution.instance, timeout, self._clock.now())
        self._end(execution, [ended], parent_event, WorkflowTimedOut(f"workflow execution timed out after {timeout:g} s"))

    def _end(self, execution: _Execution, events: list[Event], parent_event: Event | None, error: WorkflowError) -> None:
        """End an execution without running it (timed out, canceled before its start), as a
        backend does: ``events`` go to its history, its parent hears of it."""
        for event in events:
            execution.history.append(event.with_sequence_id(len(execution.history) + 1))
        if execution.instance == self._root:
            self._result = WorkflowExecutionFinishedAttributes(error=error.to_info())
        self._finish(execution, InstanceState.FINISHED)
        if execution.instance == self._root:
            self._finished = True
        if parent_event is not None and execution.instance.parent is not None:
            self._deliver(execution.instance.parent, parent_event)

    def _route(self, sender: _Execution, workflow_event: WorkflowEvent) -> None:
        target, event = workflow_event.instance, workflow_event.event
        if event.type is not EventType.WORKFLOW_EXECUTION_STARTED:
            self._deliver(target, event)
        elif target.instance_id == sender.instance.instance_id:
            # Continue-as-new: the next execution of the same instance.
            self._add_execution(target, event)
            if sender.instance == self._root:
                self._root = target
        else:
            self._start_sub_workflow(target, event)

    def _start_sub_workflow(self, child: WorkflowInstance, started: Event) -> None:
        attributes = started.attributes
        assert isinstance(attributes, WorkflowExecutionStartedAttributes) and child.parent is not None
        for listener in self._sub_workflow_listeners:
            listener(child, attributes.name)
        now = self._clock.now()
        if self._workflow_mocks.is_mocked(attributes.name):
            outcome = self._call_mock(self._workflow_mocks, attributes.name, attributes.inputs)
            assert not isinstance(outcome, MockCall)  # hangs()/times_out() are for activities only
            if isinstance(outcome, WorkflowError):
                result: Attributes = SubWorkflowFailedAttributes(error=outcome.to_info())
            else:
                result = SubWorkflowCompletedAttributes(result=outcome)
            self._deliver(child.parent, new_event(result, now, schedule_event_id=child.parent_event_id))
        elif child.instance_id in self._active or (child.instance_id, child.execution_id) in self._executions:
            self._deliver(child.parent, duplicate_sub_workflow_result(child, now))
        else:
            self._add_execution(child, started)

    def _deliver(self, target: WorkflowInstance, event: Event) -> None:
        """Queue ``event`` for ``target`` if it is still active (as a backend does)."""
        if event.type in FOLLOW_ACTIVE_EXECUTION:
            execution = self._active.get(target.instance_id)
        else:
            execution = self._executions.get((target.instance_id, target.execution_id))
        if execution is not None and execution.state is InstanceState.ACTIVE:
            execution.pending.append(event)

    def _send(self, instance_id: str, attributes: Attributes, what: str) -> None:
        """Deliver a signal or cancellation the test scheduled; the target must be active."""
        execution = self._active.get(instance_id)
        if execution is None:
            raise InstanceNotFound(
                f"cannot {what} workflow instance {instance_id!r} at {self._clock.now().isoformat()}: "
                "no active execution (not started yet, already finished, or a mocked sub-workflow)"
            )
        if what == "cancel" and execution.delayed is not None:
            # Canceled before its delayed start: it ends without running.
            events, parent_event = canceled_before_start_events(execution.instance, self._clock.now())
            started, execution.delayed = execution.delayed, None
            error = events[-1].attributes.error  # type: ignore[attr-defined]
            self._end(execution, [started, *events], parent_event, WorkflowError.from_info(error))
            return
        execution.pending.append(new_event(attributes, self._clock.now()))

    # -- activities --------------------------------------------------------------------------

    def _start_activity(self, execution: _Execution, event: Event) -> None:
        attributes = event.attributes
        assert isinstance(attributes, ActivityScheduledAttributes)
        if attributes.name == SIGNAL_ACTIVITY_NAME:
            result = self._deliver_workflow_signal(attributes)
        elif self._activity_mocks.is_mocked(attributes.name):
            outcome = self._call_mock(self._activity_mocks, attributes.name, attributes.inputs)
            if isinstance(outcome, MockCall):  # hangs, or times out: answered by its timers
                attempt = self._new_attempt(execution.instance, event, mocked=True)
                if outcome.timeout_type is not None and timeout_of(attributes, outcome.timeout_type) is None:
                    raise ValueError(
                        f"mocked activity {attributes.name} times out with its {outcome.timeout_type.value} timeout, "
                        "but its ActivityOptions set none"
                    )
                attempt.start(self._clock.now(), only=outcome.timeout_type)
                return
            if isinstance(outcome, WorkflowError):
                result = ActivityFailedAttributes(error=outcome.to_info())
            else:
                result = ActivityCompletedAttributes(result=outcome)
        else:
            attempt = self._new_attempt(execution.instance, event, mocked=False)
            self._running[event.id] = attributes.name
            self._clock.follow_wall_clock(True)
            attempt.start(self._clock.now())
            threading.Thread(
                target=self._run_activity,
                args=(attempt,),
                name=f"workflow-tester-activity-{attributes.name}",
                daemon=True,  # a hung activity must not keep the test process alive
            ).start()
            return
        self._deliver(execution.instance, new_event(result, self._clock.now(), schedule_event_id=event.schedule_event_id))

    def _new_attempt(self, instance: WorkflowInstance, event: Event, *, mocked: bool) -> Attempt:
        def arm(kind: TimeoutType, at: datetime) -> Callable[[], None]:
            timer = self._add_timer(at, describe(kind, attempt), functools.partial(self._time_out_attempt, attempt, kind))
            self._inbox.put(None)  # the loop may be waiting for a later timer
            return lambda: setattr(timer, "dead", True)

        attempt = Attempt(instance, event, mocked, arm)
        self._attempts[event.id] = attempt
        return attempt

    def _time_out_attempt(self, attempt: Attempt, kind: TimeoutType) -> None:
        """A timeout of a running attempt fired: the workflow receives its failure now, and
        whatever the attempt answers later is discarded."""
        if not attempt.end():
            return
        self._forget_attempt(attempt.scheduled.id)
        self._deliver(attempt.instance, timed_out_activity_result(attempt.scheduled, kind, self._clock.now(), attempt.details))

    def _cancel_activity(self, activity_id: str) -> None:
        attempt = self._attempts.get(activity_id)
        if attempt is None:
            return  # finished already
        if not attempt.mocked:
            attempt.canceled = True  # it learns it at its next heartbeat
        elif attempt.end():  # a mock that hangs stops at once
            self._forget_attempt(activity_id)
            answer = canceled_activity_result(attempt.scheduled.schedule_event_id, self._clock.now())
            self._deliver(attempt.instance, answer)

    def _forget_attempt(self, activity_id: str) -> None:
        self._attempts.pop(activity_id, None)
        if self._running.pop(activity_id, None) is not None:
            # Still running on its thread, but over: time may skip again.
            self._clock.follow_wall_clock(bool(self._running))

    def _run_activity(self, attempt: Attempt) -> None:
        """Runs on the activity's thread."""
        event = attempt.scheduled

        def heartbeat(details: Payload | None) -> None:
            attempt.heartbeat(details, self._clock.now())

        try:
            attributes = self._runner.run(
                activity_id=event.id,
                instance=attempt.instance,
                attributes=attempt.attributes,
                heartbeat=heartbeat,
                is_canceled=attempt.is_canceled,
            )
        except BaseException as exc:  # the runner catches activity errors; this is a bug to report
            self._inbox.put(_ActivityDone(attempt.instance, event, crash=exc))
            raise
        if isinstance(attributes, ActivityFailedAttributes):
            attributes = dataclasses.replace(attributes, heartbeat_details=attempt.details)
        self._inbox.put(_ActivityDone(attempt.instance, event, attributes))

    def _take_inbox(self, *, block: bool, timeout: float | None = None) -> bool:
        """Turn finished activities into result events; True if one finished."""
        got = False
        try:
            item = self._inbox.get(block=block, timeout=timeout)
            while True:
                if item is not None:
                    got = True
                    self._activity_done(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            pass
        return got

    def _activity_done(self, done: _ActivityDone) -> None:
        attempt = self._attempts.get(done.scheduled.id)
        if attempt is None or not attempt.end():
            return  # it timed out (or its workflow ended) meanwhile: its result is discarded
        self._forget_attempt(done.scheduled.id)
        if done.crash is not None:
            name = getattr(done.scheduled.attributes, "name", "?")
            raise RuntimeError(f"running activity {name} crashed the tester") from done.crash
        assert done.attributes is not None
        self._deliver(done.instance, new_event(done.attributes, self._clock.now(), schedule_event_id=done.scheduled.schedule_event_id))

    def _deliver_workflow_signal(self, attributes: ActivityScheduledAttributes) -> Attributes:
        """The system activity behind ``workflow.signal_workflow``, run on the loop."""
        instance_id, name, payload = (self._converter.from_payload(p) for p in attributes.inputs)
        target = self._active.get(instance_id)
        if target is None:
            known = any(iid == instance_id for iid, _ in self._executions)
            error = InstanceFinished() if known else InstanceNotFound()
            return ActivityFailedAttributes(error=WorkflowError.from_exception(error).to_info())
        target.pending.append(new_event(SignalReceivedAttributes(name=name, arg=payload), self._clock.now()))
        return ActivityCompletedAttributes(result=self._converter.to_payload(None))

    def _call_mock(self, mocks: MockSet, name: str, inputs: list[str]) -> str | WorkflowError | MockCall:
        """A mock's answer: the result payload, the error it raised as a ``WorkflowError``, or
        the expectation itself for one that hangs or times out."""
        args = [self._converter.from_payload(payload) for payload in inputs]
        call = mocks.find(name, args)
        if call.hang or call.timeout_type is not None:
            call.call_count += 1
            return call
        try:
            value = call.answer(args)
        except AssertionError:
            raise  # an assert in a mock's function fails the test, not the workflow
        except Exception as exc:  # noqa: BLE001 - whatever a mock raises is the activity's error
            return WorkflowError.from_exception(exc)
        try:
            return self._converter.to_payload(value)
        except PayloadError as exc:
            raise TypeError(f"mocked {mocks.kind} {name} answered a value that cannot be stored: {exc}") from exc

    # -- timers ------------------------------------------------------------------------------

    def _schedule(self, delay: float | timedelta, description: str, action: Callable[[], None]) -> None:
        delay = to_timedelta(delay, what="delay")
        if delay < timedelta(0):
            raise ValueError(f"delay must not be negative, got {delay}")
        self._add_timer(self._clock.now() + delay, description, action)
        self._inbox.put(None)  # wake the loop if it waits (the call may come from another thread)

    def _add_timer(
        self, at: datetime, description: str, action: Callable[[], None], key: tuple[str, str, int] | None = None
    ) -> _Timer:
        timer = _Timer(at, next(self._timer_seq), action, description, key)
        with self._timers_lock:
            heapq.heappush(self._timers, timer)
            if key is not None:
                self._workflow_timers[key] = timer
        return timer

    def _cancel_timer(self, key: tuple[str, str, int]) -> None:
        with self._timers_lock:
            timer = self._workflow_timers.pop(key, None)
            if timer is not None:
                timer.dead = True

    def _take_timer(self, *, due_by: datetime | None) -> _Timer | None:
        """Remove and return the earliest timer (only if it is due by ``due_by``, when given)."""
        with self._timers_lock:
            while self._timers and self._timers[0].dead:
                heapq.heappop(self._timers)
            if not self._timers or (due_by is not None and self._timers[0].at > due_by):
                return None
            timer = heapq.heappop(self._timers)
            if timer.key is not None:
                self._workflow_timers.pop(timer.key, None)
            return timer

    def _fire_due_timer(self) -> bool:
        timer = self._take_timer(due_by=self._clock.now())
        if timer is None:
            return False
        timer.action()
        return True

    def _jump_to_next_timer(self) -> bool:
        timer = self._take_timer(due_by=None)
        if timer is None:
            return False
        self._clock.jump_to(timer.at)
        timer.action()
        return True

    def _next_timer(self) -> _Timer | None:
        with self._timers_lock:
            live = [timer for timer in self._timers if not timer.dead]
            return min(live) if live else None

    def _seconds_until_next_timer(self) -> float | None:
        timer = self._next_timer()
        if timer is None or not self._clock.following_wall_clock:
            return None
        return (timer.at - self._clock.now()).total_seconds()

    # -- helpers -----------------------------------------------------------------------------

    def _register_workflow_under_test(self, workflow: Callable[..., Any]) -> str:
        if isinstance(workflow, str) or not callable(workflow):
            raise TypeError(f"WorkflowTester needs the workflow function itself, got {workflow!r}")
        name = self.registry.workflow_name(workflow)
        try:
            if self.registry.get_workflow(name) is workflow:
                return name  # already registered (maybe under its own name) in the given registry
        except LookupError:
            pass
        self.registry.register_workflow(workflow)
        return self.registry.workflow_name(workflow)

    def _blocked_message(self) -> str:
        waiting = ", ".join(
            f"{x.name} ({x.instance.instance_id})" for x in self._executions.values() if x.state is InstanceState.ACTIVE
        )
        running = ", ".join(sorted(self._running.values()))
        timer = self._next_timer()
        return (
            f"workflow blocked? Nothing happened for {self._idle_timeout:g}s of wall time. "
            f"Active workflows: {waiting or 'none'}; running activities: {running or 'none'}; "
            f"next timer: {f'{timer.description} at {timer.at.isoformat()}' if timer else 'none'}. "
            "A workflow that waits for a signal needs signal_workflow(); a slow activity needs a larger idle_timeout."
        )


def _instance_id(instance: WorkflowInstance | str) -> str:
    if isinstance(instance, WorkflowInstance):
        return instance.instance_id
    if isinstance(instance, str):
        return validate_id(instance)
    raise TypeError(f"expected a WorkflowInstance or an instance id, got {type(instance).__name__}")


class _ScheduleRuntime:
    """``schedules.firing.Runtime`` inside the tester: runs start, cancel and end in workflow time."""

    def __init__(self, tester: WorkflowTester, record: ScheduleRecord, end: datetime) -> None:
        self.tester = tester
        self.record = record
        self.end = end
        #: No firing is due before ``end`` anymore.
        self.done = False

    def plan(self) -> None:
        """Set a timer for the schedule's next look (its next fire time, or a buffered recheck)."""
        due = self.record.state.due_at
        if due is None or due > self.end:
            self.done = True
        else:
            self.tester._add_timer(due, f"schedule {self.record.schedule_id} due", self.tick)

    def tick(self) -> None:
        now = self.tester._clock.now()
        self.record = apply(fire(self.record, now, self), now)(self.record)
        self.plan()

    def _execution(self, instance: WorkflowInstance) -> _Execution | None:
        return self.tester._executions.get((instance.instance_id, instance.execution_id))

    def state_of(self, instance: WorkflowInstance) -> InstanceState | None:
        execution = self._execution(instance)
        return None if execution is None else execution.state

    def start(self, instance: WorkflowInstance, definition: ScheduleDefinition, fire_time: datetime) -> bool:
        tester = self.tester
        if instance.instance_id in tester._active or self._execution(instance) is not None:
            return False
        attributes = WorkflowExecutionStartedAttributes(
            name=definition.workflow_name, queue=definition.queue, inputs=list(definition.inputs), metadata={}
        )
        tester._add_execution(instance, new_event(attributes, tester._clock.now()))
        return True

    def cancel(self, instance: WorkflowInstance) -> None:
        execution = self._execution(instance)
        if execution is not None and execution.state is InstanceState.ACTIVE:
            execution.pending.append(new_event(WorkflowExecutionCanceledAttributes(), self.tester._clock.now()))

    def terminate(self, instance: WorkflowInstance, reason: str) -> None:
        execution = self._execution(instance)
        if execution is None or execution.state is not InstanceState.ACTIVE:
            return
        terminated, _ = terminated_events(execution.instance, reason, self.tester._clock.now())
        execution.history.append(terminated.with_sequence_id(len(execution.history) + 1))
        self.tester._finish(execution, InstanceState.FINISHED)

    def outcome(self, instance: WorkflowInstance) -> str:
        execution = self._execution(instance)
        return "removed" if execution is None else outcome_from(execution.state, execution.history)
