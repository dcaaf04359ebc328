"""The workflow executor (port of go-workflows ``workflow/executor``).

An executor owns one execution of a workflow. For each workflow task it

1. replays the history it has not seen yet (all of it for a new executor, nothing for a cached
   one that already executed the previous task), matching every recorded command event against
   the commands the code produces now: a mismatch is non-determinism;
2. executes a new ``WorkflowTaskStarted`` event and the task's new events, running the
   workflow's coroutines after each until they block;
3. turns the commands produced into events: history events, activity tasks, timers, and events
   for other instances; and numbers the executed events after the existing history.

Replay is strict (as Temporal's): a recorded command event must match the command the code
produces at that point, every command the code produces while a task is replayed must be
recorded in that task, and code that finishes the workflow where the recorded run went on
disagrees too. Any of these is non-determinism: a ``NondeterminismError`` naming the instance,
the event, what the history says and what the code did instead. The history already recorded
is never rewritten.

Non-determinism, a bug-class error raised by workflow code (``BUG_ERRORS``) and an unknown
workflow are the code's fault, not the instance's: the executor marks such a failure as the
task's (``Executor.task_failure``), so that a worker can abandon the task and retry it once
fixed code is deployed (the worker's failure policy) instead of committing the failure.

Non-determinism fails the workflow with a ``NondeterminismError`` naming the instance, the
event and what the code did instead; the history already recorded is never rewritten.

Histories recorded before ``with_retries`` scheduled its first attempt at once (see
``engine.retries``) number their commands in another order. When a replay does not match, or
matches only with other inputs than recorded, the executor replays the whole history again in
that legacy order and keeps whichever order the history fits; an execution keeps its order to
the end, so its history never mixes the two.
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
from .coroutines import Coroutine, ForeignAwaitable
from .errors import NondeterminismError, PanicError, PayloadTooLarge, WorkflowError, format_traceback
from .history import (
    TERMINAL_EVENT_TYPES,
    ActivityCompletedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    PatchMarkerAttributes,
    SideEffectResultAttributes,
    SignalReceivedAttributes,
    SubWorkflowCompletedAttributes,
    SubWorkflowFailedAttributes,
    SubWorkflowScheduledAttributes,
    WorkflowExecutionStartedAttributes,
    WorkflowTaskStartedAttributes,
    new_event,
)
from .payloads import PayloadLimits
from .propagation import ContextPropagator
from .registry import ArgumentMismatch, Registry, WorkflowNotFound, check_arguments
from .state import WorkflowState

DEFAULT_MAX_HISTORY_SIZE = 10_000
#: The share of ``max_history_size`` past which the worker warns that the execution should
#: continue as new (``ExecutionResult.history_warning``).
HISTORY_WARNING_SHARE = 0.8

#: Exceptions from workflow code that say the code is wrong rather than the data it was given
#: (Python raises them for a misspelt name, a missing attribute or import, a call with the wrong
#: arguments, an unfinished stub, unbounded recursion, an asyncio call in a workflow). A deploy
#: that introduces one breaks every instance that reaches it, and deploying fixed code is the
#: cure, so they fail the workflow *task* (the worker blocks the instance and retries) instead of
#: the workflow. Every other exception still fails the workflow with a ``PanicError``, and an
#: error raised on purpose (``WorkflowError``, ``PermanentError``) fails it as that error.
BUG_ERRORS: tuple[type[BaseException], ...] = (
    NameError,
    AttributeError,
    TypeError,
    ImportError,
    SyntaxError,
    NotImplementedError,
    RecursionError,
    ForeignAwaitable,
)

#: History events that record a command; replaying one after the code has ended the workflow
#: means the recorded run went on where the code stopped.
_COMMAND_EVENT_TYPES = frozenset(
    {
        EventType.ACTIVITY_SCHEDULED,
        EventType.TIMER_SCHEDULED,
        EventType.TIMER_CANCELED,
        EventType.SUB_WORKFLOW_SCHEDULED,
        EventType.SUB_WORKFLOW_CANCELLATION_REQUESTED,
        EventType.SIDE_EFFECT_RESULT,
    }
)
#: Failures the engine records by itself (not the workflow code's own ending): a replay does
#: not expect the code to produce them.
ENGINE_FAILURE_TYPES = frozenset({"NondeterminismError", "DeadlockDetected", "HistorySizeExceeded", "WorkflowNotFound"})


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
        payload_limits: PayloadLimits | None = None,
    ) -> None:
        self.instance = instance
        self._registry = registry
        self._history = history_provider
        self._converter = converter
        self._metadata = dict(metadata or {})
        self._propagators = list(propagators)
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
            payload_limits=payload_limits,
        )
        self.state.metadata = dict(self._metadata)
        self.last_sequence_id = 0
        self.completed = False
        #: The failure of the last task when it is the code's fault (see the module docstring);
        #: None for a task that succeeded or failed the workflow on purpose.
        self.task_failure: WorkflowError | None = None
        #: A replayed terminal event ended the execution (not the code).
        self.ended_by_history = False
        #: The replayed history says the workflow code finished (result or error), but the
        #: code did not: the ``Replayer`` reports it. None otherwise.
        self.unmatched_finish: Event | None = None
        self._main: Coroutine | None = None
        self._final_error: WorkflowError | None = None
        #: The command that ends the execution, once the code has ended it.
        self._final: CompleteWorkflowCommand | ContinueAsNewCommand | None = None
        #: A replayed command matched its event by id, type and name, but not by inputs or
        #: attempt: allowed (code may change its inputs), but a hint that another numbering of
        #: the commands (the legacy retry order) may fit the history better.
        self._inexact = False

    # -- tasks -------------------------------------------------------------------------------

    def needs_history(self, last_sequence_id: int) -> bool:
        """Whether a task with this history length makes the executor read history first."""
        return last_sequence_id > self.last_sequence_id

    def execute_task(
        self, *, last_sequence_id: int, new_events: Sequence[Event], history: Sequence[Event] | None = None
    ) -> ExecutionResult:
        """Execute one workflow task; see the module docstring. ``history`` is the history after
        what this executor has seen, read by the caller (else from the history provider)."""
        if last_sequence_id < self.last_sequence_id:
            raise StaleExecutor("task has older history than current state, cannot execute")
        self.task_failure = None
        if last_sequence_id > self.last_sequence_id:
            error = self._replay_history(history)
            if error is not None:
                self.task_failure = error
                return self._fail_replay(error, last_sequence_id, new_events)

        now = self._clock.now()
        executed = [new_event(WorkflowTaskStartedAttributes(), now)]
        executed.extend(new_events)
        self.state.replaying = False
        try:
            for event, run in _runs(executed):
                self._execute_event(event, run=run)
        except NondeterminismError as err:
            self.task_failure = err
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
        before = self.last_sequence_id
        for event in all_events:
            self.last_sequence_id += 1
            numbered.append(event.with_sequence_id(self.last_sequence_id))
        # Once per crossing: the task that takes the history past the share, not every later one.
        warning_at = self._max_history_size * HISTORY_WARNING_SHARE
        crossed = not self.completed and before < warning_at <= self.last_sequence_id
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
            history_warning=self._max_history_size if crossed else 0,
        )

    def close(self) -> None:
        """Discard the executor; its coroutines are closed."""
        self.state.scheduler.close()

    # -- replay ------------------------------------------------------------------------------

    def _replay_history(self, history: Sequence[Event] | None = None) -> NondeterminismError | None:
        """Replay the history not seen yet (``history``, or read from the provider); the error if
        it fits no order of commands."""
        from_start = self.last_sequence_id == 0
        if history is None:
            history = self._history.get_workflow_instance_history(self.instance, self.last_sequence_id or None)
        error: NondeterminismError | None = None
        try:
            self._replay(history)
        except NondeterminismError as err:
            error = err
        if self.state.legacy_retry_order or (error is None and not (from_start and self._inexact)):
            return error
        failed_at = self.last_sequence_id
        probe = self._legacy_probe()
        try:
            probe._replay(self._history.get_workflow_instance_history(self.instance, None))
        except NondeterminismError as probe_error:
            probe.close()
            # Neither order fits; the one that got further names the real divergence.
            return probe_error if error is not None and probe.last_sequence_id > failed_at else error
        if error is None and probe._inexact:
            probe.close()  # both orders fit as well: keep go-workflows' order
            return None
        self._logger.info(
            "workflow %s: history numbered in the retry order of django_workflows before go-workflows' "
            "(first attempts numbered once the workflow blocked); replaying and continuing it in that order",
            self.instance,
        )
        self._adopt(probe)
        return None

    def _legacy_probe(self) -> Executor:
        probe = Executor(
            registry=self._registry,
            history_provider=self._history,
            instance=self.instance,
            converter=self._converter,
            metadata=self._metadata,
            propagators=self._propagators,
            logger=self._logger,
            clock=self._clock,
            max_history_size=self._max_history_size,
            payload_limits=self.state.payload_limits,
        )
        probe.state.legacy_retry_order = True
        return probe

    def _adopt(self, probe: Executor) -> None:
        """Continue with the workflow state ``probe`` replayed; this one's is discarded."""
        self.state.scheduler.close()
        self.state = probe.state
        self.last_sequence_id = probe.last_sequence_id
        self.completed = probe.completed
        self._main = probe._main
        self._final_error = probe._final_error
        self._final = probe._final
        self._inexact = probe._inexact

    def replay(self, history: Sequence[Event]) -> None:
        """Replay recorded events only, without executing a task (the ``Replayer``); raises
        ``NondeterminismError`` where the code disagrees with them."""
        self._replay(history)

    def _replay(self, history: Sequence[Event]) -> None:
        state = self.state
        state.replaying = True
        try:
            unseen = [event for event in history if event.sequence_id > self.last_sequence_id]
            patches = _task_patches(unseen)
            for index, (event, run) in enumerate(_runs(unseen)):
                if event.type is EventType.WORKFLOW_TASK_STARTED and index:
                    self._check_task_end(event)
                state.replay_patches = patches[index]
                self._execute_event(event, run=run)
                self.last_sequence_id = event.sequence_id
            if unseen:
                self._check_task_end(unseen[-1])
        finally:
            state.replaying = False
            state.replay_patches = frozenset()

    def _check_task_end(self, boundary: Event) -> None:
        """A replayed task ended (``boundary`` starts the next task or is the history's last
        event): whatever the code produced in it must be in the history by now."""
        if self.ended_by_history:
            return
        state = self.state
        # An activity's cancellation request that is not in the history is not a disagreement:
        # histories recorded before requests existed have none, and a late request changes no
        # outcome. It stays queued and is sent once the replay catches up.
        late_requests: list[Any] = [
            command
            for command in state.to_execute
            if command.state is CommandState.CANCEL_PENDING and isinstance(command, ScheduleActivityCommand)
        ]
        unrecorded = [
            command
            for command in state.to_execute
            if command.state in (CommandState.PENDING, CommandState.CANCEL_PENDING) and command not in late_requests
        ]
        state.to_execute = late_requests
        if not unrecorded:
            return
        got = ", ".join(self._describe_command(command) for command in unrecorded)
        raise self._mismatch(boundary, "no more commands in this workflow task", got, at_task_end=True)

    def _describe_command(self, command: Any) -> str:
        if isinstance(command, CompleteWorkflowCommand):
            if command.error is not None:
                return f"the end of the workflow with {command.error.type}: {command.error.message}"
            return "the end of the workflow"
        if isinstance(command, ContinueAsNewCommand):
            return "ContinueAsNew"
        if command.state is CommandState.CANCEL_PENDING:
            return f"a cancellation of {command.describe()}"
        return str(command.describe())

    def _fail_replay(
        self, err: NondeterminismError, last_sequence_id: int, new_events: Sequence[Event]
    ) -> ExecutionResult:
        # The worker decides what becomes of it (block or fail) and logs that.
        self._logger.debug("workflow %s: %s", self.instance, err)
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
            if state.replaying:
                self._replayed_after_end(event)
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
            # Not registered in this worker: a deploy that lacks it (or still lacks it, in a
            # rolling one); a worker with the code can run it, so this is the task's failure.
            error = WorkflowError(str(exc), type="WorkflowNotFound", permanent=True)
            self.task_failure = error
            self._complete(error=error)
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
        if command.inputs != attrs.inputs or command.attempt != attrs.attempt:
            self._inexact = True
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
        if command.inputs != attrs.inputs:
            self._inexact = True
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
        # Replaying the end of a finished execution (the tester and replay tools do this). The
        # event's schedule event id is not looked at: it is 0 as in go-workflows, but histories
        # recorded before carry the id of the command that ended the execution.
        if self._final is not None:
            self._final.done()
        if event.type is not EventType.WORKFLOW_EXECUTION_TERMINATED and not _engine_failure(event):
            self.unmatched_finish = event  # the recorded run's code finished here; this code did not
        self.completed = True
        self.ended_by_history = True

    def _replayed_after_end(self, event: Event) -> None:
        """A recorded event replayed after the code ended the workflow."""
        if event.type in TERMINAL_EVENT_TYPES:
            # The recorded run ended here too (results are not compared, only that it ended).
            for command in self.state.to_execute:
                if isinstance(command, (CompleteWorkflowCommand, ContinueAsNewCommand)):
                    command.done()
            self.ended_by_history = True
        elif event.type in _COMMAND_EVENT_TYPES and not self.ended_by_history:
            ending = next(
                (c for c in self.state.to_execute if isinstance(c, (CompleteWorkflowCommand, ContinueAsNewCommand))),
                None,
            )
            got = self._describe_command(ending) if ending is not None else "the end of the workflow"
            raise self._mismatch(event, _describe_event(event), got)
        # Other events (results, signals, markers) may follow the end within its task: ignored.

    def _on_patch_marker(self, event: Event) -> None:
        attrs: PatchMarkerAttributes = event.attributes  # type: ignore[assignment]
        if self.state.patches.get(attrs.patch_id) is False:
            raise self._mismatch(
                event, f"patched({attrs.patch_id!r}) to be True", f"patched({attrs.patch_id!r}) returning False earlier"
            )
        # True: the code took the patched branch, as recorded. Unknown: no code asks for this
        # patch any more (its deprecate_patch call was deleted); the marker changes nothing.

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

    def _mismatch(self, event: Event, expected: str, found: str, *, at_task_end: bool = False) -> NondeterminismError:
        where = f"at history sequence {event.sequence_id}" if event.sequence_id else "in the new events"
        if at_task_end:
            if event.type is EventType.WORKFLOW_TASK_STARTED:
                what = f"the workflow task before history sequence {event.sequence_id} ({event.type.value})"
            else:
                what = f"the last recorded workflow task (ending with {event.type.value} {where})"
            message = f"{what} recorded no more commands, but the workflow code produced {found}"
        else:
            message = (
                f"history event {event.type.value} {where} with schedule event id {event.schedule_event_id} "
                f"expected the workflow code to produce {expected}, but it produced {found}"
            )
        return NondeterminismError(
            f"workflow instance {self.instance.instance_id} (execution {self.instance.execution_id}) of "
            f"workflow {self.state.name or '?'}: {message}",
            sequence_id=event.sequence_id,
            event_type=event.type.value,
            expected=expected,
            got=found,
        )

    # -- completion --------------------------------------------------------------------------

    def _check_completion(self) -> None:
        if self.completed:
            return
        state = self.state
        if state.failure is not None:
            self._complete(error=state.failure)
            return
        if state.panic is not None:
            self._panic(state.panic, state.panic_coroutine)
            return
        main = self._main
        if main is None or not main.done:
            return
        if main.error is not None and not isinstance(main.error, (WorkflowError, ContinueAsNew)):
            self._panic(main.error, "main")
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
                payload = state.encode(main.result, "workflow result")
            except PayloadError as exc:
                self._complete(error=WorkflowError(f"converting workflow result: {exc}", type="PayloadError", permanent=True))
                return
            except PayloadTooLarge as exc:
                self._complete(error=exc)
                return
            self._complete(result=payload)

    def _panic(self, exc: BaseException, coroutine: str) -> None:
        error = _panic_error(exc, coroutine)
        if isinstance(exc, BUG_ERRORS):
            self.task_failure = error
        self._complete(error=error)

    def _complete(self, *, result: str | None = None, error: WorkflowError | None = None) -> None:
        state = self.state
        command = CompleteWorkflowCommand(
            state.next_schedule_event_id(),
            instance=self.instance,
            result=result,
            error=error.to_info() if error is not None else None,
        )
        state.add_command(command)
        self._final = command
        self._final_error = error
        self.completed = True
        state.scheduler.close()

    def _continue_as_new(self, request: ContinueAsNew) -> None:
        state = self.state
        try:
            inputs = [state.encode(arg, "continue-as-new input") for arg in request.inputs]
            result = state.encode(request.result, "workflow result")
        except PayloadError as exc:
            self._complete(error=WorkflowError(f"converting continue-as-new inputs: {exc}", type="PayloadError", permanent=True))
            return
        except PayloadTooLarge as exc:
            self._complete(error=exc)
            return
        metadata = dict(state.metadata)
        for propagator in state.propagators:
            propagator.inject_from_workflow(state.root, metadata)
        command = ContinueAsNewCommand(
            state.next_schedule_event_id(),
            instance=self.instance,
            name=state.name,
            queue=state.queue,
            inputs=inputs,
            metadata=metadata,
            result=result,
            execution_timeout=state.execution_timeout,
        )
        state.add_command(command)
        self._final = command
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


def _task_patches(events: Sequence[Event]) -> list[frozenset[str]]:
    """For each event, the patch ids whose markers are recorded in its workflow task (the
    events from one ``WorkflowTaskStarted`` up to the next)."""
    out: list[frozenset[str]] = []
    start = 0
    for index in range(len(events) + 1):
        if index == len(events) or (index and events[index].type is EventType.WORKFLOW_TASK_STARTED):
            ids = frozenset(
                e.attributes.patch_id for e in events[start:index] if isinstance(e.attributes, PatchMarkerAttributes)
            )
            out.extend([ids] * (index - start))
            start = index
    return out


def _describe_event(event: Event) -> str:
    name = getattr(event.attributes, "name", "")
    return f"{event.type.value}({name})" if name else event.type.value


def _engine_failure(event: Event) -> bool:
    error = getattr(event.attributes, "error", None)
    return error is not None and error.type in ENGINE_FAILURE_TYPES


def _panic_error(exc: BaseException, coroutine: str) -> PanicError:
    """The error that fails a workflow whose code raised ``exc``: its type is the exception's
    class name and its message the exception's text (the stack shows where), with the panic
    flag; a coroutine other than the main one is named in front of the text."""
    error = PanicError.from_exception(exc)
    if coroutine != "main":
        error.message = f"in workflow coroutine {coroutine}: {error.message}"
    return error


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
    EventType.PATCH_MARKER: Executor._on_patch_marker,
    EventType.WORKFLOW_EXECUTION_CANCELED: Executor._on_canceled,
    EventType.WORKFLOW_EXECUTION_FINISHED: Executor._on_finished,
    EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW: Executor._on_finished,
    EventType.WORKFLOW_EXECUTION_TERMINATED: Executor._on_finished,
    EventType.WORKFLOW_EXECUTION_TIMED_OUT: Executor._on_finished,
}


def failed_task_result(
    *,
    instance: WorkflowInstance,
    workflow_name: str,
    last_sequence_id: int,
    new_events: Sequence[Event],
    error: WorkflowError,
    clock: Clock = system_clock,
) -> ExecutionResult:
    """A task's result that fails the workflow with ``error`` without running its code (the
    code hung, so no executor can finish the task): the task's new events are recorded, then the
    failure, as ``Executor._fail_replay`` does; a parent hears of it."""
    now = clock.now()
    final = CommandResult()
    CompleteWorkflowCommand(0, instance=instance, result=None, error=error.to_info()).execute(now, final)
    events = [new_event(WorkflowTaskStartedAttributes(), now), *new_events, *final.events]
    return ExecutionResult(
        state=InstanceState.FINISHED,
        executed=[event.with_sequence_id(last_sequence_id + i) for i, event in enumerate(events, start=1)],
        workflow_events=final.workflow_events,
        workflow_name=workflow_name,
        error=error,
    )
