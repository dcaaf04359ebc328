"""Commands: what workflow code asks for, turned into events (port of go-workflows
``internal/command``).

A command is created when workflow code schedules something and gets the next schedule event
id. At the end of a workflow task every pending command produces its events. During replay the
history already holds those events, so the executor *commits* the command when it replays the
matching event instead of producing it again; a mismatch is non-determinism.

States: PENDING -> COMMITTED -> DONE. A cancelable command (timer, sub-workflow) canceled while
PENDING is dropped without any event; canceled after COMMITTED it goes to CANCEL_PENDING and
produces its cancellation event at the end of the task. An activity follows its cancellation
type (``ActivityScheduleCommand.cancel``).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .clock import format_duration
from .converter import Payload
from .core import Metadata, WorkflowInstance
from .errors import ErrorInfo
from .futures import Future
from .history import (
    ActivityCancellationRequestedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    PatchMarkerAttributes,
    SideEffectResultAttributes,
    SubWorkflowCancellationRequestedAttributes,
    SubWorkflowCompletedAttributes,
    SubWorkflowFailedAttributes,
    SubWorkflowScheduledAttributes,
    TimerCanceledAttributes,
    TimerFiredAttributes,
    TimerScheduledAttributes,
    WorkflowEvent,
    WorkflowExecutionCanceledAttributes,
    WorkflowExecutionContinuedAsNewAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    new_event,
)


class CommandState(enum.Enum):
    PENDING = "pending"
    COMMITTED = "committed"
    CANCEL_PENDING = "cancel-pending"
    CANCEL_REQUESTED = "cancel-requested"
    CANCELED = "canceled"
    DONE = "done"


@dataclass(slots=True)
class CommandResult:
    """Events produced by commands at the end of a task."""

    events: list[Event] = field(default_factory=list)
    activity_events: list[Event] = field(default_factory=list)
    timer_events: list[Event] = field(default_factory=list)
    workflow_events: list[WorkflowEvent] = field(default_factory=list)


class Command:
    """Base class of commands; ``id`` is the schedule event id."""

    #: The history event that records this command (used in non-determinism messages).
    event_type: EventType

    def __init__(self, id: int) -> None:
        self.id = id
        self.state = CommandState.PENDING
        self.future: Future | None = None

    def describe(self) -> str:
        return f"{self.event_type.value}"

    def commit(self) -> None:
        """The history already records this command (replay)."""
        if self.state is CommandState.PENDING:
            self.state = CommandState.COMMITTED

    def done(self) -> None:
        self.state = CommandState.DONE

    def execute(self, now: datetime, out: CommandResult) -> None:
        raise NotImplementedError

    def pending_future_name(self) -> str | None:
        """How the pending-futures rule names this command when its future is unresolved."""
        return None


class ActivityCancellation(str, enum.Enum):
    """What canceling the context of a scheduled activity does (Temporal's cancellation types).

    ``WAIT`` (the default): the activity is asked to stop (it learns it at its next heartbeat;
    one that has not started yet never starts) and the workflow's future waits for the
    activity's outcome: its result if it finished anyway, ``Canceled`` if it stopped.
    ``TRY``: the activity is asked to stop and the future fails with ``Canceled`` at once.
    ``ABANDON``: the activity is not told; the future fails with ``Canceled`` at once.
    """

    WAIT = "wait"
    TRY = "try"
    ABANDON = "abandon"

    def __str__(self) -> str:
        return self.value


class ScheduleActivityCommand(Command):
    event_type = EventType.ACTIVITY_SCHEDULED

    def __init__(
        self,
        id: int,
        *,
        name: str,
        inputs: list[Payload],
        metadata: Metadata,
        queue: str,
        attempt: int,
        timeouts: dict[str, float | None] | None = None,
        heartbeat_details: Payload | None = None,
        cancellation: ActivityCancellation = ActivityCancellation.WAIT,
    ) -> None:
        super().__init__(id)
        self.name = name
        self.inputs = inputs
        self.metadata = metadata
        self.queue = queue
        self.attempt = attempt
        #: ``ActivityScheduledAttributes`` timeout fields (seconds) of this attempt.
        self.timeouts = dict(timeouts or {})
        self.heartbeat_details = heartbeat_details
        self.cancellation = cancellation
        #: The id of the ``ActivityScheduled`` event, once produced or replayed.
        self.event_id = ""
        #: Called with the heartbeat details of the attempt's ``ActivityFailed`` (for retries).
        self.on_details: Callable[[Payload | None], None] | None = None
        # Canceled before its event was committed, with WAIT: the activity is still scheduled
        # (as versions before cancellation types did, so their histories replay) and its
        # cancellation requested in the same task.
        self._cancel_on_commit = False

    def describe(self) -> str:
        return f"ActivityScheduled({self.name})"

    def commit(self) -> None:
        if self.state is CommandState.PENDING:
            self.state = CommandState.CANCEL_PENDING if self._cancel_on_commit else CommandState.COMMITTED

    def cancel(self) -> bool:
        """The context was canceled; returns whether the command must produce events again.

        The future is resolved by the caller: at once for ``TRY`` and ``ABANDON``, by the
        activity's outcome for ``WAIT``.
        """
        if self.cancellation is ActivityCancellation.WAIT:
            # Canceled in the very task that schedules it: the activity is scheduled and runs,
            # and the future waits for its outcome, as go-workflows delivers it (issue 13).
            # Only a cancellation after the schedule was committed reaches a running activity.
            if self.state is CommandState.COMMITTED:
                self.state = CommandState.CANCEL_PENDING
                return True
            return False
        if self.state is CommandState.PENDING:
            self.state = CommandState.CANCELED  # never scheduled
        elif self.state is CommandState.COMMITTED and self.cancellation is ActivityCancellation.TRY:
            self.state = CommandState.CANCEL_PENDING
            return True
        return False

    def request_replayed(self) -> bool:
        """An ``ActivityCancellationRequested`` event of the history matches this command."""
        if self.state is CommandState.CANCEL_PENDING:
            self.state = CommandState.CANCEL_REQUESTED
            return True
        return False

    def execute(self, now: datetime, out: CommandResult) -> None:
        if self.state is CommandState.PENDING:
            event = new_event(
                ActivityScheduledAttributes(
                    name=self.name,
                    inputs=self.inputs,
                    metadata=self.metadata,
                    queue=self.queue,
                    attempt=self.attempt,
                    heartbeat_details=self.heartbeat_details,
                    **self.timeouts,
                ),
                now,
                schedule_event_id=self.id,
            )
            self.event_id = event.id
            out.events.append(event)
            out.activity_events.append(event)
            self.state = CommandState.CANCEL_PENDING if self._cancel_on_commit else CommandState.COMMITTED
        if self.state is CommandState.CANCEL_PENDING:
            out.events.append(
                new_event(
                    ActivityCancellationRequestedAttributes(activity_id=self.event_id), now, schedule_event_id=self.id
                )
            )
            self.state = CommandState.CANCEL_REQUESTED

    def pending_future_name(self) -> str:
        return f"{self.id}-activity:{self.name}"


class ScheduleTimerCommand(Command):
    event_type = EventType.TIMER_SCHEDULED

    def __init__(self, id: int, *, at: datetime, delay: timedelta, name: str) -> None:
        super().__init__(id)
        self.at = at
        self.delay = delay
        self.name = name

    def describe(self) -> str:
        return f"TimerScheduled({self.name or format_duration(self.delay)})"

    def cancel(self) -> None:
        if self.state is CommandState.PENDING:
            self.state = CommandState.CANCELED
        elif self.state is CommandState.COMMITTED:
            self.state = CommandState.CANCEL_PENDING

    def execute(self, now: datetime, out: CommandResult) -> None:
        if self.state is CommandState.PENDING:
            out.events.append(
                new_event(TimerScheduledAttributes(at=self.at, name=self.name), now, schedule_event_id=self.id)
            )
            out.timer_events.append(
                new_event(
                    TimerFiredAttributes(scheduled_at=now, at=self.at, name=self.name),
                    now,
                    schedule_event_id=self.id,
                    visible_at=self.at,
                )
            )
            self.state = CommandState.COMMITTED
        elif self.state is CommandState.CANCEL_PENDING:
            out.events.append(new_event(TimerCanceledAttributes(), now, schedule_event_id=self.id))
            self.state = CommandState.CANCELED

    def pending_future_name(self) -> str:
        label = f"timer-{self.name}" if self.name else "timer"
        return f"{self.id}-{label}:{format_duration(self.delay)}"


class ScheduleSubWorkflowCommand(Command):
    event_type = EventType.SUB_WORKFLOW_SCHEDULED

    def __init__(
        self,
        id: int,
        *,
        instance: WorkflowInstance,
        name: str,
        queue: str,
        inputs: list[Payload],
        metadata: Metadata,
        execution_timeout: float | None = None,
        start_delay: timedelta | None = None,
    ) -> None:
        super().__init__(id)
        self.instance = instance
        self.name = name
        self.queue = queue
        self.inputs = inputs
        self.metadata = metadata
        self.execution_timeout = execution_timeout
        self.start_delay = start_delay

    def describe(self) -> str:
        return f"SubWorkflowScheduled({self.name})"

    def cancel(self) -> None:
        if self.state is CommandState.PENDING:
            self.state = CommandState.CANCELED
        elif self.state is CommandState.COMMITTED:
            self.state = CommandState.CANCEL_PENDING

    def execute(self, now: datetime, out: CommandResult) -> None:
        if self.state is CommandState.PENDING:
            out.events.append(
                new_event(
                    SubWorkflowScheduledAttributes(
                        sub_workflow_queue=self.queue,
                        sub_workflow_instance=self.instance,
                        name=self.name,
                        inputs=self.inputs,
                        metadata=self.metadata,
                    ),
                    now,
                    schedule_event_id=self.id,
                )
            )
            out.workflow_events.append(
                WorkflowEvent(
                    self.instance,
                    new_event(
                        WorkflowExecutionStartedAttributes(
                            name=self.name,
                            queue=self.queue,
                            inputs=self.inputs,
                            metadata=self.metadata,
                            execution_timeout=self.execution_timeout,
                        ),
                        now,
                        visible_at=None if not self.start_delay else now + self.start_delay,
                    ),
                )
            )
            self.state = CommandState.COMMITTED
        elif self.state is CommandState.CANCEL_PENDING:
            out.events.append(
                new_event(
                    SubWorkflowCancellationRequestedAttributes(sub_workflow_instance=self.instance),
                    now,
                    schedule_event_id=self.id,
                )
            )
            out.workflow_events.append(
                WorkflowEvent(self.instance, new_event(WorkflowExecutionCanceledAttributes(), now))
            )
            self.state = CommandState.CANCEL_REQUESTED

    def pending_future_name(self) -> str:
        return f"{self.id}-subworkflow:{self.name}"


class SideEffectCommand(Command):
    event_type = EventType.SIDE_EFFECT_RESULT

    def __init__(self, id: int, *, result: Payload | None) -> None:
        super().__init__(id)
        self.result = result

    def execute(self, now: datetime, out: CommandResult) -> None:
        if self.state is CommandState.PENDING:
            out.events.append(
                new_event(SideEffectResultAttributes(result=self.result), now, schedule_event_id=self.id)
            )
            self.state = CommandState.DONE

    def pending_future_name(self) -> str:
        return f"{self.id}-sideeffect"


class CompleteWorkflowCommand(Command):
    event_type = EventType.WORKFLOW_EXECUTION_FINISHED

    def __init__(self, id: int, *, instance: WorkflowInstance, result: Payload | None, error: ErrorInfo | None) -> None:
        super().__init__(id)
        self.instance = instance
        self.result = result
        self.error = error

    def execute(self, now: datetime, out: CommandResult) -> None:
        if self.state is not CommandState.PENDING:
            return
        # Schedule event id 0, as go-workflows records it: the event ends the execution rather
        # than answering a command (the executor still numbers the command, like go-workflows).
        out.events.append(new_event(WorkflowExecutionFinishedAttributes(result=self.result, error=self.error), now))
        parent = self.instance.parent
        if parent is not None:
            attributes = (
                SubWorkflowFailedAttributes(error=self.error)
                if self.error is not None
                else SubWorkflowCompletedAttributes(result=self.result)
            )
            out.workflow_events.append(
                WorkflowEvent(parent, new_event(attributes, now, schedule_event_id=self.instance.parent_event_id))
            )
        self.state = CommandState.DONE


class ContinueAsNewCommand(Command):
    event_type = EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW

    def __init__(
        self,
        id: int,
        *,
        instance: WorkflowInstance,
        name: str,
        queue: str,
        inputs: list[Payload],
        metadata: Metadata,
        result: Payload | None,
        execution_timeout: float | None = None,
    ) -> None:
        super().__init__(id)
        # The new execution keeps the instance id and the parent link, so a parent waiting on
        # a sub-workflow that continues as new only ever sees the final result.
        self.continued = WorkflowInstance(
            instance.instance_id, uuid.uuid4().hex, parent=instance.parent, parent_event_id=instance.parent_event_id
        )
        self.name = name
        self.queue = queue
        self.inputs = inputs
        self.metadata = metadata
        self.result = result
        #: Each execution of a workflow that continues as new gets the same execution timeout.
        self.execution_timeout = execution_timeout

    def execute(self, now: datetime, out: CommandResult) -> None:
        if self.state is not CommandState.PENDING:
            return
        out.events.append(
            new_event(
                WorkflowExecutionContinuedAsNewAttributes(
                    result=self.result, continued_execution_id=self.continued.execution_id
                ),
                now,  # schedule event id 0, as for WorkflowExecutionFinished
            )
        )
        out.workflow_events.append(
            WorkflowEvent(
                self.continued,
                new_event(
                    WorkflowExecutionStartedAttributes(
                        name=self.name,
                        queue=self.queue,
                        inputs=self.inputs,
                        metadata=self.metadata,
                        execution_timeout=self.execution_timeout,
                    ),
                    now,
                ),
            )
        )
        self.state = CommandState.DONE


class PatchMarkerCommand(Command):
    """Records that live code passed ``patched``/``deprecate_patch`` for ``patch_id``.

    It has no schedule event id (``id`` 0) and is not in ``WorkflowState.commands``: replay
    matches markers by patch id, so adding a patch does not shift the ids of later commands.
    """

    event_type = EventType.PATCH_MARKER

    def __init__(self, patch_id: str, *, deprecated: bool) -> None:
        super().__init__(0)
        self.patch_id = patch_id
        self.deprecated = deprecated

    def describe(self) -> str:
        return f"PatchMarker({self.patch_id})"

    def execute(self, now: datetime, out: CommandResult) -> None:
        if self.state is CommandState.PENDING:
            out.events.append(new_event(PatchMarkerAttributes(patch_id=self.patch_id, deprecated=self.deprecated), now))
            self.state = CommandState.DONE
