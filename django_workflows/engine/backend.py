"""The storage interface of the engine (port of go-workflows ``backend/backend.go``,
``options.go`` and ``features.go``).

A backend stores instances, their history and pending events, and hands out *tasks* under a
lease: a workflow task (an instance with new events to execute) or an activity task. Every
lease carries a token; extending or completing a task succeeds only for the holder of the
current token while the lease has not expired, so a worker that stalled past its lease is
fenced off and cannot overwrite the work of the worker that took over.

Implementations: ``django_workflows.backends.memory``, ``.orm`` and ``.redis``. They all pass the
conformance suite in ``django_workflows.testing``.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from .clock import to_timedelta
from .converter import Converter, default_converter
from .core import InstanceState, Metadata, WorkflowInstance
from .history import Event, WorkflowEvent
from .listing import InstanceFilter
from .propagation import ContextPropagator


class Feature(enum.Enum):
    #: ``remove_workflow_instances`` (batch removal of finished instances) works.
    REMOVE_INSTANCES = "remove-instances"
    #: Finished instances expire by themselves after a configured time.
    AUTO_EXPIRATION = "auto-expiration"
    #: Completions lease follow-up tasks to the completing worker (``max_leased_activities``
    #: of ``complete_workflow_task``, ``workflow_queues`` of ``complete_activity_task``).
    LEASE_ON_COMPLETION = "lease-on-completion"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendOptions:
    """Options shared by every backend, with go-workflows' defaults.

    Durations accept seconds or ``timedelta``.
    """

    #: After a workflow task completes, the instance stays with the same worker this long, so its
    #: cached executor continues without replaying history.
    sticky_timeout: timedelta | float = timedelta(seconds=30)
    #: Lease of a workflow task; workers extend it while they execute.
    workflow_lock_timeout: timedelta | float = timedelta(minutes=1)
    #: Lease of an activity task; workers extend it while the activity runs.
    activity_lock_timeout: timedelta | float = timedelta(minutes=2)
    #: A workflow whose history would reach this many events fails.
    max_history_size: int = 10_000
    #: Leases of one activity task before it fails with ``ActivityAbandoned``: an activity that
    #: kills its worker every time is not leased forever.
    max_activity_leases: int = 5
    converter: Converter = field(default=default_converter)
    context_propagators: Sequence[ContextPropagator] = ()
    #: Delete an execution's rows when it continues as new.
    remove_continued_as_new_instances: bool = False
    #: Name of this process in leases; default ``worker-<uuid>``.
    worker_name: str = ""

    def __post_init__(self) -> None:
        for name in ("sticky_timeout", "workflow_lock_timeout", "activity_lock_timeout"):
            object.__setattr__(self, name, to_timedelta(getattr(self, name), what=name))
        if not self.worker_name:
            object.__setattr__(self, "worker_name", f"worker-{uuid.uuid4()}")
        if self.max_activity_leases < 1:
            raise ValueError("max_activity_leases must be at least 1")

    @property
    def sticky(self) -> timedelta:
        return self.sticky_timeout  # type: ignore[return-value]

    @property
    def workflow_lock(self) -> timedelta:
        return self.workflow_lock_timeout  # type: ignore[return-value]

    @property
    def activity_lock(self) -> timedelta:
        return self.activity_lock_timeout  # type: ignore[return-value]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowTask:
    """An instance leased to one worker, with the events it has not executed yet."""

    id: str
    queue: str
    instance: WorkflowInstance
    state: InstanceState
    metadata: Metadata
    #: Sequence id of the last event in the instance's history.
    last_sequence_id: int
    new_events: list[Event]
    lease_token: str
    workflow_name: str = ""
    #: Backend-specific data the backend needs back on extend/complete.
    custom_data: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityTask:
    """An activity leased to one worker."""

    id: str
    #: The id of the ``ActivityScheduled`` event; the result event reuses its schedule event id.
    activity_id: str
    queue: str
    instance: WorkflowInstance
    event: Event
    lease_token: str
    #: How many times this task has been leased, this lease included.
    lease_count: int = 1
    custom_data: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    active_workflow_instances: int
    pending_workflow_tasks: dict[str, int]
    pending_activity_tasks: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceInfo:
    """What a backend knows about one execution, besides its history."""

    instance: WorkflowInstance
    workflow_name: str
    queue: str
    state: InstanceState
    created_at: datetime
    completed_at: datetime | None
    metadata: Metadata


@dataclass(frozen=True, slots=True)
class InstancePage:
    """One page of ``list_workflow_instances``: newest first; ``next_cursor`` is None on the last."""

    instances: list[InstanceInfo]
    next_cursor: str | None


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from storage. Every method is synchronous and thread-safe."""

    @property
    def options(self) -> BackendOptions: ...

    # -- instances -----------------------------------------------------------------------

    def create_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        """Create an execution with its pending ``WorkflowExecutionStarted`` event.

        Raises ``InstanceAlreadyExists`` if an active execution has the same instance id; the
        check is atomic, so of concurrent starts of one id exactly one succeeds.
        """

    def cancel_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        """Queue a ``WorkflowExecutionCanceled`` event for the execution.

        Raises ``InstanceNotFound`` if it does not exist, ``InstanceFinished`` if it ended.
        """

    def terminate_workflow_instance(self, instance: WorkflowInstance, reason: str) -> None:
        """End the execution at once with a ``WorkflowExecutionTerminated`` event, without running
        workflow code; its pending work is dropped and a parent receives ``SubWorkflowFailed``."""

    def signal_workflow(self, instance_id: str, event: Event) -> WorkflowInstance:
        """Queue a ``SignalReceived`` event for the active execution of ``instance_id`` and
        return that execution. Raises ``InstanceNotFound`` when no execution is active."""

    def remove_workflow_instance(self, instance: WorkflowInstance) -> None:
        """Delete a finished execution and everything stored for it (``InstanceNotFinished``
        if it is active)."""

    def remove_workflow_instances(self, *, finished_before: datetime, batch_size: int = 100) -> int:
        """Delete executions that finished before ``finished_before``; return how many."""

    def get_workflow_instance_state(self, instance: WorkflowInstance) -> InstanceState: ...

    def get_workflow_instance_info(self, instance: WorkflowInstance) -> InstanceInfo: ...

    def get_workflow_instance_history(
        self, instance: WorkflowInstance, last_sequence_id: int | None = None
    ) -> list[Event]:
        """History events in order; only those after ``last_sequence_id`` when it is given."""

    def get_latest_execution(self, instance_id: str) -> WorkflowInstance:
        """The newest execution of ``instance_id`` (``InstanceNotFound`` if none)."""

    # -- workflow tasks ------------------------------------------------------------------

    def prepare_workflow_queues(self, queues: Sequence[str]) -> None: ...

    def get_workflow_task(self, queues: Sequence[str], timeout: float) -> WorkflowTask | None:
        """Lease an instance in ``queues`` that has visible pending events, is not leased, and
        is not sticky to another worker; wait up to ``timeout`` seconds for one."""

    def extend_workflow_task(self, task: WorkflowTask) -> None:
        """Extend the lease; ``LeaseLost`` if this worker no longer holds it."""

    def complete_workflow_task(
        self,
        task: WorkflowTask,
        *,
        state: InstanceState,
        executed_events: Sequence[Event],
        activity_events: Sequence[Event],
        timer_events: Sequence[Event],
        workflow_events: Sequence[WorkflowEvent],
        activity_queues: Sequence[str] = (),
        max_leased_activities: int = 0,
    ) -> list[ActivityTask]:
        """Commit the result of a workflow task in one transaction (see go-workflows'
        ``CompleteWorkflowTask``). ``LeaseLost`` if the lease is gone; ``CompletionRejected`` if
        the task ends the execution while new events wait for it (the lease is released).

        The same transaction may lease to this worker up to ``max_leased_activities`` of the
        activities it schedules whose queue is in ``activity_queues``, and return them: the
        worker runs them without polling for them. A backend may return fewer (or none)."""

    def abandon_workflow_task(self, task: WorkflowTask) -> None:
        """Release the lease without committing anything, so another poll can take the task."""

    # -- activity tasks ------------------------------------------------------------------

    def prepare_activity_queues(self, queues: Sequence[str]) -> None: ...

    def get_workflow_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[WorkflowTask]:
        """Lease up to ``max_tasks`` workflow tasks at once, as ``get_activity_tasks`` does."""

    def get_activity_task(self, queues: Sequence[str], timeout: float) -> ActivityTask | None: ...

    def get_activity_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[ActivityTask]:
        """Lease up to ``max_tasks`` activity tasks at once (each with its own fenced lease);
        wait up to ``timeout`` seconds for the first. ``BaseBackend`` provides a one-at-a-time
        version; a backend overrides it to claim a batch in one transaction."""

    def extend_activity_task(self, task: ActivityTask) -> None: ...

    def complete_activity_task(
        self, task: ActivityTask, result: Event, *, workflow_queues: Sequence[str] = ()
    ) -> WorkflowTask | None:
        """Delete the activity task and queue its result for the workflow; ``LeaseLost`` if
        the lease is gone (the result is discarded: another attempt owns the task now).

        If ``workflow_queues`` holds the workflow's queue and its workflow task is free (not
        leased, not sticky to another worker), the same transaction may lease it to this worker
        and return it, so the workflow continues without a poll. A backend may return None."""

    def abandon_activity_task(self, task: ActivityTask) -> None: ...

    # -- misc ----------------------------------------------------------------------------

    def get_stats(self) -> Stats: ...

    # -- listing (operators' tools; see engine.listing) -----------------------------------

    def list_workflow_instances(
        self, filter: InstanceFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> InstancePage:
        """Executions that match ``filter``, newest first (``engine.listing`` fixes the order), at
        most ``limit`` (1 to ``MAX_LIST_LIMIT``); pass ``next_cursor`` back for the next page.
        ``BaseBackend`` raises ``NotSupported``."""

    def get_pending_events(self, instance: WorkflowInstance) -> list[Event]:
        """Events delivered to the execution that no workflow task has taken yet, oldest first:
        its start event until a worker runs it, signals, results, timers (``visible_at`` in the
        future). ``InstanceNotFound`` if it does not exist; ``BaseBackend`` raises ``NotSupported``."""

    def feature_supported(self, feature: Feature) -> bool: ...

    def close(self) -> None: ...
