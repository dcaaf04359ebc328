"""The workflow executor (port of go-workflows ``workflow/executor``).

An executor owns one execution of a workflow. For each workflow task it

1. replays the history it has not seen yet (all of it for a new executor, nothing for a cached
   one that already executed the previous task), matching every recorded command event against
   the commands the code produces now: a mismatch is non-determinism;
2. executes a new ``WorkflowTaskStarted`` event and the task's new events, running the
   workflow's coroutines after each until they block;
3. turns the commands produced into events: history events, activity tasks, timers, and events
   for other instances; and numbers the executed events after the existing history.

Non-determinism fails the workflow with a ``NondeterminismError`` naming the instance, the
event and what the code did instead; the history already recorded is never rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from .backend import ExecutionResult
from .clock import Clock, system_clock
from .commands import (
    CommandResult,
    CommandState,
    CompleteWorkflowCommand,
    ContinueAsNewCommand,
    ScheduleActivityCommand,
    ScheduleSubWorkflowCommand,
    ScheduleTimerCommand,
    SideEffectCommand,
)
from .continue_as_new import ContinueAsNew
from .converter import Converter, PayloadError
from .core import InstanceState, Metadata, WorkflowInstance
from .coroutines import Coroutine
from .errors import NondeterminismError, PanicError, WorkflowError, format_traceback
from .history import (
    ActivityCompletedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    SideEffectResultAttributes,
    SignalReceivedAttributes,
    SubWorkflowCompletedAttributes,
    SubWorkflowFailedAttributes,
    SubWorkflowScheduledAttributes,
    WorkflowExecutionStartedAttributes,
    WorkflowTaskStartedAttributes,
    new_event,
)
from .propagation import ContextPropagator
from .registry import ArgumentMismatch, Registry, WorkflowNotFound, check_arguments
from .state import WorkflowState

DEFAULT_MAX_HISTORY_SIZE = 10_000


class HistoryProvider(Protocol):
    def get_workflow_instance_history(
        self, instance: WorkflowInstance, last_sequence_id: int | None = None
    ) -> list[Event]: ...


class StaleExecutor(RuntimeError):
    """The task is older than what this (cached) executor has seen; use a fresh executor."""


class Executor:
    def __init__(
        self,
        *,
        registry: Registry,
        history_provider: HistoryProvider,
        instance: WorkflowInstance,
        converter: Converter,
        metadata: Metadata | None = None,
        propagators: Sequence[ContextPropagator] = (),
        logger: logging.Logger | None = None,
        clock: Clock = system_clock,
        max_history_size: int = DEFAULT_MAX_HISTORY_SIZE,
    ) -> None:
        self.instance = instance
        self._registry = registry
        self._history = history_provider
        self._clock = clock
        self._max_history_size = max_history_size
        self._logger = logger or logging.getLogger("django_workflows.workflow")
        self.state = WorkflowState(
            instance=instance,
            converter=converter,
            registry=registry,
            logger=self._logger,
            propagators=propagators,
            time=clock.now(),
        )
        self.state.metadata = dict(metadata or {})
        self.last_sequence_id = 0
        self.completed = False
        self._main: Coroutine | None = None
        self._final_error: WorkflowError | None = None

    # -- tasks -------------------------------------------------------------------------------

    def execute_task(self, *, last_sequence_id: int, new_events: Sequence[Event]) -> ExecutionResult:
        """Execute one workflow task; see the module docstring."""
        if last_sequence_id < self.last_sequence_id:
            raise StaleExecutor("task has older history than current state, cannot execute")
        if last_sequence_id > self.last_sequence_id:
            history = self._history.get_workflow_instance_history(self.instance, self.last_sequence_id or None)
            try:
                self._replay(history)
            except NondeterminismError as err:
                return self._fail_replay(err, last_sequence_id, new_events)

        now = self._clock.now()
        executed = [new_event(WorkflowTaskStartedAttributes(), now)]
        executed.extend(new_events)
        self.state.replaying = False
        try:
            for event, run in _runs(executed):
                self._execute_event(event, run=run)
        except NondeterminismError as err:
            self._complete(error=err)
        commands = self._process_commands(now)
        all_events = executed + commands.events
        if not self.completed and self.last_sequence_id + len(all_events) >= self._max_history_size:
            # Drop what this task scheduled and fail instead (go-workflows MaxHistorySize).
            self._complete(
                error=WorkflowError(f"workflow history size exceeded {self._max_history_size} events", type="HistorySizeExceeded", permanent=True)
            )
            commands = self._process_commands(now, only_final=True)
            all_events = executed + commands.events
        numbered = []
        for event in all_events:
            self.last_sequence_id += 1
            numbered.append(event.with_sequence_id(self.last_sequence_id))
        # Count the events the commands produced too, as a replay of this history will: a
        # cached executor must report the same history length as a fresh one.
        self.state.history_length = self.last_sequence_id
        return ExecutionResult(
            state=self._instance_state(),
            executed=numbered,
            activity_events=commands.activity_events,
            timer_events=commands.timer_events,
            workflow_events=commands.workflow_events,
            workflow_name=self.state.name,
            error=self._final_error,
        )

    def close(self) -> None:
        """Discard the executor; its coroutines are closed."""
        self.state.scheduler.close()

    # -- replay ------------------------------------------------------------------------------

    def _replay(self, history: Sequence[Event]) -> None:
        self.state.replaying = True
        try:
            unseen = [event for event in history if event.sequence_id > self.last_sequence_id]
            for event, run in _runs(unseen):
                self._execute_event(event, run=run)
                self.last_sequence_id = event.sequence_id
        finally:
            self.state.replaying = False

    def _fail_replay(
        self, err: NondeterminismError, last_sequence_id: int, new_events: Sequence[Event]
    ) -> ExecutionResult:
        self._logger.error("workflow %s: %s", self.instance, err)
        now = self._clock.now()
        self.last_sequence_id = last_sequence_id
        self._complete(error=err)
        # The task's new events are recorded (nothing delivered is lost), then the failure.
        events = [new_event(WorkflowTaskStartedAttributes(), now), *new_events]
        final = self._process_commands(now, only_final=True)
        events.extend(final.events)
        numbered = []
        for event in events:
            self.last_sequence_id += 1
            numbered.append(event.with_sequence_id(self.last_sequence_id))
        return ExecutionResult(
            state=InstanceState.FINISHED,
            executed=numbered,
            # A sub-workflow's parent must hear of the failure, or it waits forever.
            workflow_events=final.workflow_events,
            workflow_name=self.state.name,
            error=err,
        )

    # -- events ------------------------------------------------------------------------------

    def _execute_event(self, event: Event, *, run: bool = True) -> None:
        state = self.state
        state.history_length += 1
        if self.completed:
            return
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event)
        if run:
            state.scheduler.run_until_blocked()
            self._check_completion()

    def _on_started(self, event: Event) -> None:
        attrs: WorkflowExecutionStartedAttributes = event.attributes  # type: ignore[assignment]
        state = self.state
        state.name = attrs.name
        state.queue = attrs.queue
        state.metadata = dict(attrs.metadata)
        state.execution_timeout = attrs.execution_timeout
        try:
            workflow_fn = self._registry.get_workflow(attrs.name)
        except WorkflowNotFound as exc:
            self._complete(error=WorkflowError(str(exc), type="WorkflowNotFound", permanent=True))
            return
        try:
            args = [state.decode(payload) for payload in attrs.inputs]
            check_arguments(workflow_fn, args, skip_context=True)
        except (ArgumentMismatch, PayloadError) as exc:
            self._complete(error=WorkflowError(str(exc), type=type(exc).__name__, permanent=True))
            return
        ctx = state.root
        for propagator in state.propagators:
            ctx = propagator.extract_to_workflow(ctx, state.metadata)
        self._main = state.scheduler.spawn("main", workflow_fn(ctx, *args))

    def _on_task_started(self, event: Event) -> None:
        self.state.time = event.timestamp

    def _on_activity_scheduled(self, event: Event) -> None:
        attrs: ActivityScheduledAttributes = event.attributes  # type: ignore[assignment]
        command = self._match(event, ScheduleActivityCommand, f"ActivityScheduled({attrs.name})")
        if command.name != attrs.name:
            raise self._mismatch(event, f"ActivityScheduled({attrs.name})", command.describe())
        command.event_id = event.id
        command.commit()

    def _on_activity_cancellation_requested(self, event: Event) -> None:
        command = self._match(event, ScheduleActivityCommand, "ActivityCancellationRequested")
        if not command.request_replayed():
            raise self._mismatch(event, "a canceled activity", f"{command.describe()} that was not canceled")

    def _on_activity_result(self, event: Event) -> None:
        command = self._target(event, ScheduleActivityCommand)
        command.done()
        assert command.future is not None
        if isinstance(event.attributes, ActivityFailedAttributes) and command.on_details is not None:
            command.on_details(event.attributes.heartbeat_details)
        if command.future.ready():
            return  # canceled with TRY or ABANDON: the workflow stopped waiting for it
        if isinstance(event.attributes, ActivityCompletedAttributes):
            command.future.set_result(self.state.decode(event.attributes.result))
        else:
            attrs: ActivityFailedAttributes = event.attributes  # type: ignore[assignment]
            command.future.set_error(WorkflowError.from_info(attrs.error))

    def _on_timer_scheduled(self, event: Event) -> None:
        self._match(event, ScheduleTimerCommand, "TimerScheduled").commit()

    def _on_timer_fired(self, event: Event) -> None:
        command = self.state.commands.get(event.schedule_event_id)
        if isinstance(command, ScheduleTimerCommand) and command.state in (
            CommandState.CANCELED,
            CommandState.CANCEL_PENDING,
        ):
            return  # a timer canceled after it fired: the late TimerFired is ignored
        command = self._target(event, ScheduleTimerCommand)
        command.done()
        assert command.future is not None
        if not command.future.ready():
            command.future.set_result(None)

    def _on_timer_canceled(self, event: Event) -> None:
        command = self._match(event, ScheduleTimerCommand, "TimerCanceled")
        if command.state is not CommandState.CANCEL_PENDING:
            raise self._mismatch(event, "a canceled timer", f"{command.describe()} that was not canceled")
        command.state = CommandState.CANCELED

    def _on_sub_workflow_scheduled(self, event: Event) -> None:
        attrs: SubWorkflowScheduledAttributes = event.attributes  # type: ignore[assignment]
        command = self._match(event, ScheduleSubWorkflowCommand, f"SubWorkflowScheduled({attrs.name})")
        if command.name != attrs.name:
            raise self._mismatch(event, f"SubWorkflowScheduled({attrs.name})", command.describe())
        command.instance = attrs.sub_workflow_instance
        command.commit()

    def _on_sub_workflow_cancellation_requested(self, event: Event) -> None:
        command = self._match(event, ScheduleSubWorkflowCommand, "SubWorkflowCancellationRequested")
        if command.state is not CommandState.CANCEL_PENDING:
            raise self._mismatch(event, "a canceled sub-workflow", f"{command.describe()} that was not canceled")
        command.state = CommandState.CANCEL_REQUESTED

    def _on_sub_workflow_result(self, event: Event) -> None:
        command = self._target(event, ScheduleSubWorkflowCommand)
        command.done()
        assert command.future is not None
        if command.future.ready():
            return
        if isinstance(event.attributes, SubWorkflowCompletedAttributes):
            command.future.set_result(self.state.decode(event.attributes.result))
        else:
            attrs: SubWorkflowFailedAttributes = event.attributes  # type: ignore[assignment]
            command.future.set_error(WorkflowError.from_info(attrs.error))

    def _on_signal(self, event: Event) -> None:
        attrs: SignalReceivedAttributes = event.attributes  # type: ignore[assignment]
        self.state.deliver_signal(attrs.name, attrs.arg)

    def _on_side_effect(self, event: Event) -> None:
        attrs: SideEffectResultAttributes = event.attributes  # type: ignore[assignment]
        command = self._match(event, SideEffectCommand, "SideEffectResult")
        assert command.future is not None
        if not command.future.ready():
            command.future.set_result(self.state.decode(attrs.result))
        command.done()

    def _on_canceled(self, event: Event) -> None:
        self.state.root_cancel.cancel()

    def _on_finished(self, event: Event) -> None:
        # Replaying the end of a finished execution (the tester and replay tools do this).
        command = self.state.commands.get(event.schedule_event_id)
        if isinstance(command, (CompleteWorkflowCommand, ContinueAsNewCommand)):
            command.done()
        self.completed = True

    # -- matching helpers --------------------------------------------------------------------

    def _match(self, event: Event, kind: type[Any], expected: str) -> Any:
        """The command that produced ``event`` in the original run; it must be of ``kind``."""
        command = self.state.commands.get(event.schedule_event_id)
        if command is None:
            raise self._mismatch(event, expected, "nothing")
        if not isinstance(command, kind):
            raise self._mismatch(event, expected, command.describe())
        return command

    def _target(self, event: Event, kind: type[Any]) -> Any:
        """The command a result event completes."""
        command = self.state.commands.get(event.schedule_event_id)
        if not isinstance(command, kind) or command.future is None:
            raise NondeterminismError(
                f"workflow instance {self.instance.instance_id} (execution {self.instance.execution_id}): "
                f"no pending future for {event.type.value} event with schedule event id {event.schedule_event_id}"
            )
        return command

    def _mismatch(self, event: Event, expected: str, found: str) -> NondeterminismError:
        where = f"at history sequence {event.sequence_id}" if event.sequence_id else "in the new events"
        return NondeterminismError(
            f"workflow instance {self.instance.instance_id} (execution {self.instance.execution_id}) of "
            f"workflow {self.state.name or '?'}: history event {event.type.value} {where} with schedule "
            f"event id {event.schedule_event_id} expected the workflow code to produce {expected}, but it "
            f"produced {found}"
        )

    # -- completion --------------------------------------------------------------------------

    def _check_completion(self) -> None:
        if self.completed:
            return
        state = self.state
        if state.panic is not None:
            self._complete(error=_panic_error(state.panic, state.panic_coroutine))
            return
        main = self._main
        if main is None or not main.done:
            return
        if main.error is not None and not isinstance(main.error, (WorkflowError, ContinueAsNew)):
            self._complete(error=_panic_error(main.error, "main"))
            return
        if not state.scheduler.all_done():
            return  # the workflow ends when every coroutine has ended
        pending = state.pending_futures()
        if pending:
            self._complete(
                error=WorkflowError(
                    f"workflow completed, but there are still pending futures: [{' '.join(pending)}]",
                    type="PendingFutures",
                )
            )
            return
        if isinstance(main.error, ContinueAsNew):
            self._continue_as_new(main.error)
        elif isinstance(main.error, WorkflowError):
            if not main.error.stacktrace:
                main.error.stacktrace = format_traceback(main.error)
            self._complete(error=main.error)
        else:
            try:
                payload = state.encode(main.result)
            except PayloadError as exc:
                self._complete(error=WorkflowError(f"converting workflow result: {exc}", type="PayloadError", permanent=True))
                return
            self._complete(result=payload)

    def _complete(self, *, result: str | None = None, error: WorkflowError | None = None) -> None:
        state = self.state
        command = CompleteWorkflowCommand(
            state.next_schedule_event_id(),
            instance=self.instance,
            result=result,
            error=error.to_info() if error is not None else None,
        )
        state.add_command(command)
        self._final_error = error
        self.completed = True
        state.scheduler.close()

    def _continue_as_new(self, request: ContinueAsNew) -> None:
        state = self.state
        try:
            inputs = [state.encode(arg) for arg in request.inputs]
            result = state.encode(request.result)
        except PayloadError as exc:
            self._complete(error=WorkflowError(f"converting continue-as-new inputs: {exc}", type="PayloadError", permanent=True))
            return
        metadata = dict(state.metadata)
        for propagator in state.propagators:
            propagator.inject_from_workflow(state.root, metadata)
        state.add_command(
            ContinueAsNewCommand(
                state.next_schedule_event_id(),
                instance=self.instance,
                name=state.name,
                queue=state.queue,
                inputs=inputs,
                metadata=metadata,
                result=result,
                execution_timeout=state.execution_timeout,
            )
        )
        self.completed = True
        state.scheduler.close()

    def _process_commands(self, now: Any, *, only_final: bool = False) -> CommandResult:
        out = CommandResult()
        for command in self.state.to_execute:
            if (only_final or self.completed) and command.state is CommandState.PENDING and isinstance(
                command, (ScheduleActivityCommand, ScheduleTimerCommand, ScheduleSubWorkflowCommand)
            ):
                # The workflow ended in this task: what it scheduled but never committed is dropped.
                command.state = CommandState.CANCELED
                continue
            if only_final and not isinstance(command, (CompleteWorkflowCommand, ContinueAsNewCommand)):
                continue
            command.execute(now, out)
        self.state.to_execute = []
        return out

    def _instance_state(self) -> InstanceState:
        if not self.completed:
            return InstanceState.ACTIVE
        for command in self.state.commands.values():
            if isinstance(command, ContinueAsNewCommand) and command.state is CommandState.DONE:
                return InstanceState.CONTINUED_AS_NEW
        return InstanceState.FINISHED


def _runs(events: Sequence[Event]) -> list[tuple[Event, bool]]:
    """Pair each event with whether the coroutines run after it.

    Consecutive signals are delivered together before the coroutines run, so a workflow that
    drains its signal channel (say, before continuing as new) sees every signal that arrived in
    the same task instead of finishing after the first one and leaving the rest unread. A run
    of signals is the same in the new events of a task and in their replay from history, so
    this stays deterministic.
    """
    out = []
    for index, event in enumerate(events):
        following = events[index + 1] if index + 1 < len(events) else None
        batched = (
            event.type is EventType.SIGNAL_RECEIVED
            and following is not None
            and following.type is EventType.SIGNAL_RECEIVED
        )
        out.append((event, not batched))
    return out


def _panic_error(exc: BaseException, coroutine: str) -> PanicError:
    where = "workflow" if coroutine == "main" else f"workflow coroutine {coroutine}"
    return PanicError(f"panic in {where}: {exc!r}", stacktrace=format_traceback(exc))


_HANDLERS: dict[EventType, Any] = {
    EventType.WORKFLOW_EXECUTION_STARTED: Executor._on_started,
    EventType.WORKFLOW_TASK_STARTED: Executor._on_task_started,
    EventType.ACTIVITY_SCHEDULED: Executor._on_activity_scheduled,
    EventType.ACTIVITY_COMPLETED: Executor._on_activity_result,
    EventType.ACTIVITY_FAILED: Executor._on_activity_result,
    EventType.ACTIVITY_CANCELLATION_REQUESTED: Executor._on_activity_cancellation_requested,
    EventType.TIMER_SCHEDULED: Executor._on_timer_scheduled,
    EventType.TIMER_FIRED: Executor._on_timer_fired,
    EventType.TIMER_CANCELED: Executor._on_timer_canceled,
    EventType.SUB_WORKFLOW_SCHEDULED: Executor._on_sub_workflow_scheduled,
    EventType.SUB_WORKFLOW_CANCELLATION_REQUESTED: Executor._on_sub_workflow_cancellation_requested,
    EventType.SUB_WORKFLOW_COMPLETED: Executor._on_sub_workflow_result,
    EventType.SUB_WORKFLOW_FAILED: Executor._on_sub_workflow_result,
    EventType.SIGNAL_RECEIVED: Executor._on_signal,
    EventType.SIDE_EFFECT_RESULT: Executor._on_side_effect,
    EventType.WORKFLOW_EXECUTION_CANCELED: Executor._on_canceled,
    EventType.WORKFLOW_EXECUTION_FINISHED: Executor._on_finished,
    EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW: Executor._on_finished,
    EventType.WORKFLOW_EXECUTION_TERMINATED: Executor._on_finished,
    EventType.WORKFLOW_EXECUTION_TIMED_OUT: Executor._on_finished,
}
