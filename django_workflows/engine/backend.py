"""The storage interface of the engine (port of go-workflows ``backend/backend.go``,
``options.go`` and ``features.go``).

A backend stores instances, their history and pending events, and hands out *tasks* under a
lease: a workflow task (an instance with new events to execute) or an activity task. Every
lease carries a token; extending or completing a task succeeds only for the holder of the
current token while the lease has not expired, so a worker that stalled past its lease is
fenced off and cannot overwrite the work of the worker that took over.

``Backend`` is the one declaration of that contract: an abstract base class with the error
contract of every method, the optional features as ``Feature`` flags, and defaults for what a
backend may leave out. Implementations subclass it (``django_workflows.backends.base.BaseBackend``
is the same class under the name backend authors import): ``backends.memory``, ``.orm`` and
``.redis``. They all pass the conformance suite in ``django_workflows.testing.conformance``.
"""

from __future__ import annotations

import contextlib
import enum
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .clock import to_timedelta
from .converter import Converter, Payload, default_converter
from .core import InstanceState, Metadata, WorkflowInstance
from .errors import ErrorInfo, NotSupported, WorkflowError
from .history import Event, WorkflowEvent, WorkflowExecutionStartedAttributes
from .listing import InstanceFilter
from .payloads import DEFAULT_MAX_PAYLOAD_SIZE, DEFAULT_PAYLOAD_WARN_SIZE, LargePayloadObserver, PayloadLimits
from .propagation import ContextPropagator

if TYPE_CHECKING:
    from ..schedules.store import ScheduleStore

#: ``remove_workflow_instances``' progress callback: ``(removed by the batch, removed so far)``.
RemoveProgress = Callable[[int, int], None]

class Feature(enum.Enum):
    #: ``remove_workflow_instances`` (batch removal of finished instances) works.
    REMOVE_INSTANCES = "remove-instances"
    #: Finished instances expire by themselves after a configured time.
    AUTO_EXPIRATION = "auto-expiration"
    #: Completions lease follow-up tasks to the completing worker (``lease_activities`` of a
    #: ``WorkflowTaskCompletion``, ``workflow_queues`` of ``complete_activity_task``).
    LEASE_ON_COMPLETION = "lease-on-completion"
    #: Workers record themselves (``register_worker``...), so operators see which are alive.
    WORKER_REGISTRY = "worker-registry"


#: The executor cache's defaults. go-workflows keeps 128 executors; a worker of the bench's W1
#: (500 workflows at once on two workers) replayed 4-6 % of its tasks with 128 and none with 256,
#: at the same peak memory (docs/settings.md, "The executor cache"). The TTL is go-workflows'.
DEFAULT_EXECUTOR_CACHE_SIZE = 256
DEFAULT_EXECUTOR_CACHE_TTL = timedelta(seconds=10)


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
    #: A payload (input, result, signal value) above this many bytes is logged and counted.
    payload_warn_size: int = DEFAULT_PAYLOAD_WARN_SIZE
    #: A payload above this many bytes is refused with ``PayloadTooLarge`` before it is written.
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE
    #: Leases of one activity task before it fails with ``ActivityAbandoned``: an activity that
    #: kills its worker every time is not leased forever.
    max_activity_leases: int = 5
    converter: Converter = field(default=default_converter)
    context_propagators: Sequence[ContextPropagator] = ()
    #: Delete an execution's rows when it continues as new.
    remove_continued_as_new_instances: bool = False
    #: Name of this process in leases; default ``worker-<uuid>``.
    worker_name: str = ""
    #: Executors a worker keeps for sticky execution (0: none, every task replays its history),
    #: unless ``WorkerOptions.workflow_executor_cache_size`` says otherwise.
    executor_cache_size: int = DEFAULT_EXECUTOR_CACHE_SIZE
    #: How long a cached executor may sit idle before the worker closes it (and the next task of
    #: its instance replays the history), unless ``WorkerOptions`` says otherwise.
    executor_cache_ttl: timedelta | float = DEFAULT_EXECUTOR_CACHE_TTL

    def __post_init__(self) -> None:
        for name in ("sticky_timeout", "workflow_lock_timeout", "activity_lock_timeout", "executor_cache_ttl"):
            object.__setattr__(self, name, to_timedelta(getattr(self, name), what=name))
        if self.executor_cache_size < 0:
            raise ValueError(f"executor_cache_size must not be negative (0 caches nothing), got {self.executor_cache_size!r}")
        if not self.worker_name:
            object.__setattr__(self, "worker_name", f"worker-{uuid.uuid4()}")
        if self.max_activity_leases < 1:
            raise ValueError("max_activity_leases must be at least 1")
        self.payload_limits()  # raises ValueError for sizes that do not fit together

    def payload_limits(self, observe: LargePayloadObserver | None = None) -> PayloadLimits:
        """The payload limits of these options; ``observe`` counts the payloads above the
        warning size (an ``Instrumentation``'s ``large_payload``)."""
        return PayloadLimits(self.payload_warn_size, self.max_payload_size, observe)

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
    #: Heartbeat details this attempt stored under an earlier lease (its worker died); None:
    #: those the attempt was scheduled with (``ActivityScheduledAttributes.heartbeat_details``).
    heartbeat_details: Payload | None = None


@dataclass(slots=True)
class ExecutionResult:
    """What executing one workflow task produced (``engine.executor.Executor.execute_task``)."""

    state: InstanceState
    #: The task's history events, numbered after the stored history.
    executed: list[Event]
    #: ``ActivityScheduled`` events to enqueue as activity tasks.
    activity_events: list[Event] = field(default_factory=list)
    #: ``TimerFired`` events to store as future pending events.
    timer_events: list[Event] = field(default_factory=list)
    #: Events for other executions (sub-workflow starts, signals, cancellations, results).
    workflow_events: list[WorkflowEvent] = field(default_factory=list)
    workflow_name: str = ""
    #: The workflow's error when it finished with one.
    error: WorkflowError | None = None
    #: The ``max_history_size`` of which this task took the history past the warning share
    #: (``engine.executor.HISTORY_WARNING_SHARE``); 0 when it did not.
    history_warning: int = 0


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    """Follow-up tasks a completion may lease to the completing worker, which then runs them
    without polling: up to ``max_tasks`` of those whose queue is in ``queues``."""

    queues: tuple[str, ...] = ()
    max_tasks: int = 0


#: Lease nothing on completion.
NO_LEASES = LeaseRequest()


@dataclass(frozen=True, slots=True)
class WorkflowTaskCompletion:
    """What ``Backend.complete_workflow_task`` commits: the executor's result, and which of
    the follow-up tasks the completing worker can take at once: the activities it schedules,
    and the first workflow tasks of the executions it starts (sub-workflows, the next execution
    of a continue-as-new)."""

    result: ExecutionResult
    lease_activities: LeaseRequest = NO_LEASES
    lease_workflows: LeaseRequest = NO_LEASES

    @property
    def finishing(self) -> bool:
        """The task ends its execution (finished or continued as new)."""
        return self.result.state is not InstanceState.ACTIVE

    @property
    def last_sequence_id(self) -> int | None:
        """Sequence id of the task's last history event (None if it recorded none)."""
        return max((event.sequence_id for event in self.result.executed), default=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    active_workflow_instances: int
    pending_workflow_tasks: dict[str, int]
    pending_activity_tasks: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockedInfo:
    """Why and since when an active execution's workflow tasks keep failing (its code disagrees
    with its history, raised a bug-class error, or hung): the worker blocked it, and retries it
    at ``retry_at`` (``Backend.block_workflow_task``)."""

    error: ErrorInfo
    #: The first failure of this run of failures.
    since: datetime
    #: Failed attempts so far.
    attempts: int
    #: When a worker may try the task again.
    retry_at: datetime


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
    #: Set while the execution is blocked (active, but its workflow task keeps failing).
    blocked: BlockedInfo | None = None
    #: When an execution whose start was delayed (``start_delay``) starts; None once it started.
    scheduled_for: datetime | None = None

    @property
    def is_blocked(self) -> bool:
        return self.blocked is not None and self.state is InstanceState.ACTIVE


@dataclass(frozen=True, slots=True)
class BlockBackoff:
    """How long a blocked execution waits before its next attempt: ``first`` after the first
    failure, doubling with every further one, never more than ``maximum``."""

    first: timedelta = timedelta(seconds=1)
    maximum: timedelta = timedelta(minutes=5)

    def delay(self, attempt: int) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1 for the first)."""
        if attempt < 1:
            raise ValueError(f"attempt must be at least 1, got {attempt}")
        # Capped before multiplying, so a long run of failures cannot overflow.
        factor = 2 ** min(attempt - 1, 40)
        return min(self.first * factor, self.maximum)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionSeed:
    """A new execution that starts with a history (a reset: the old execution's history up to a
    workflow task) instead of a pending start event (``Backend.create_workflow_instance_from_history``)."""

    instance: WorkflowInstance
    #: Name, queue and metadata of the execution (its start event's).
    started: WorkflowExecutionStartedAttributes
    #: History events, numbered 1, 2, ... (may be empty: then the start event is pending).
    history: list[Event]
    #: Events the execution's next workflow task receives (reapplied signals, results).
    pending_events: list[Event] = field(default_factory=list)
    #: ``ActivityScheduled`` events to enqueue as activity tasks (activities the history
    #: schedules but has no result for).
    activity_events: list[Event] = field(default_factory=list)
    #: ``TimerFired`` events to store as future pending events (timers without a result).
    timer_events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InstancePage:
    """One page of ``list_workflow_instances``: newest first; ``next_cursor`` is None on the last."""

    instances: list[InstanceInfo]
    next_cursor: str | None


# -- observability: live workers and backlog (docs/observability.md) ---------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerInfo:
    """A worker process as it records itself in the store (``Backend.register_worker``).

    ``heartbeat_at`` is set by the store, from the store's clock, at every registration and
    heartbeat; an entry whose heartbeats stop expires after the ``ttl`` of the last one.
    """

    worker_id: str
    #: The lease identity of the worker's backend (``BackendOptions.worker_name``), as the
    #: instance page shows it under "Leased to".
    name: str = ""
    host: str = ""
    pid: int = 0
    workflow_queues: tuple[str, ...] = ()
    activity_queues: tuple[str, ...] = ()
    #: The version of the project's code the worker runs (``WorkerOptions.app_version``).
    app_version: str = ""
    #: The version of django_workflows.
    library_version: str = ""
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    tasks_in_flight: int = 0

    def polls(self, queue: str, kind: str | None = None) -> bool:
        """Whether the worker polls ``queue`` for ``kind`` (``"workflow"``, ``"activity"``,
        or None: either) tasks."""
        if kind == "workflow":
            return queue in self.workflow_queues
        if kind == "activity":
            return queue in self.activity_queues
        return queue in self.workflow_queues or queue in self.activity_queues

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (times as ISO 8601)."""
        return {
            "worker_id": self.worker_id,
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "workflow_queues": list(self.workflow_queues),
            "activity_queues": list(self.activity_queues),
            "app_version": self.app_version,
            "library_version": self.library_version,
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
            "heartbeat_at": None if self.heartbeat_at is None else self.heartbeat_at.isoformat(),
            "tasks_in_flight": self.tasks_in_flight,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerInfo:
        def when(value: Any) -> datetime | None:
            return None if not value else datetime.fromisoformat(value)

        return cls(
            worker_id=str(data["worker_id"]),
            name=str(data.get("name", "")),
            host=str(data.get("host", "")),
            pid=int(data.get("pid", 0)),
            workflow_queues=tuple(data.get("workflow_queues", ())),
            activity_queues=tuple(data.get("activity_queues", ())),
            app_version=str(data.get("app_version", "")),
            library_version=str(data.get("library_version", "")),
            started_at=when(data.get("started_at")),
            heartbeat_at=when(data.get("heartbeat_at")),
            tasks_in_flight=int(data.get("tasks_in_flight", 0)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueBacklog:
    """Work that waits in one queue (``Backend.get_backlog``).

    Ready tasks could be leased now: workflow tasks of executions with visible pending events
    that no worker holds, activity tasks no worker holds. Ages are in seconds, by the store's
    clock where it has one; None when nothing is ready or the backend cannot tell.
    """

    queue: str
    ready_workflow_tasks: int = 0
    ready_activity_tasks: int = 0
    oldest_workflow_task_age: float | None = None
    oldest_activity_task_age: float | None = None


class Backend(ABC):
    """What the engine needs from storage. Every method is synchronous and thread-safe.

    Subclasses get ``BackendOptions`` parsing from keyword arguments (so a ``WORKFLOWS``
    setting's ``OPTIONS`` map straight onto them) and defaults for the optional methods.
    Errors named below come from ``engine.errors``.
    """

    #: Optional features this backend supports (see ``Feature``).
    features: frozenset[Feature] = frozenset()
    #: The backend's schedule store (``schedules.store.ScheduleStore``), or None where the
    #: backend keeps no schedules.
    schedules: ScheduleStore | None = None

    def __init__(self, options: BackendOptions | None = None, **option_kwargs: Any) -> None:
        if options is not None and option_kwargs:
            raise TypeError("pass either options= or keyword options, not both")
        try:
            self._options = options or BackendOptions(**option_kwargs)
        except TypeError as exc:
            raise TypeError(f"{type(self).__name__}: {exc}") from None

    @property
    def options(self) -> BackendOptions:
        return self._options

    def feature_supported(self, feature: Feature) -> bool:
        return feature in self.features

    # -- instances -----------------------------------------------------------------------

    @abstractmethod
    def create_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        """Create an execution with its pending ``WorkflowExecutionStarted`` event.

        Raises ``InstanceAlreadyExists`` if an active execution has the same instance id; the
        check is atomic, so of concurrent starts of one id exactly one succeeds.

        A start event with a ``visible_at`` (``start_delay``) is not visible until then. An
        ``execution_timeout`` in its attributes is a deadline on the backend's clock,
        ``rules.execution_deadline`` from now, enforced by ``time_out_workflow_instances``. The
        same holds for sub-workflows a completion starts.
        """

    def create_workflow_instances(self, starts: Sequence[tuple[WorkflowInstance, Event]]) -> None:
        """Create many executions at once, each with its pending ``WorkflowExecutionStarted``
        event. A backend that writes them in one transaction creates all or none, and raises
        ``InstanceAlreadyExists`` naming the taken ids; by default they are created one by one
        (those before a taken id stay created)."""
        for instance, event in starts:
            self.create_workflow_instance(instance, event)

    @abstractmethod
    def cancel_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        """Queue a ``WorkflowExecutionCanceled`` event for the execution.

        An execution whose start is still delayed ends at once instead, without running: its
        start event moves to the history with ``rules.canceled_before_start_events``.
        Raises ``InstanceNotFound`` if it does not exist, ``InstanceFinished`` if it ended.
        """

    @abstractmethod
    def terminate_workflow_instance(self, instance: WorkflowInstance, reason: str) -> None:
        """End the execution at once with a ``WorkflowExecutionTerminated`` event, without running
        workflow code; its pending work is dropped and a parent receives ``SubWorkflowFailed``.

        Raises ``InstanceNotFound`` if it does not exist, ``InstanceFinished`` if it ended."""

    @abstractmethod
    def signal_workflow(self, instance_id: str, event: Event) -> WorkflowInstance:
        """Queue a ``SignalReceived`` event for the active execution of ``instance_id`` and
        return that execution. Raises ``InstanceNotFound`` when no execution of the id exists,
        ``InstanceFinished`` when none is active."""

    @abstractmethod
    def remove_workflow_instance(self, instance: WorkflowInstance) -> None:
        """Delete a finished execution and everything stored for it (``InstanceNotFound``,
        ``InstanceNotFinished`` if it is active)."""

    @abstractmethod
    def remove_workflow_instances(
        self, *, finished_before: datetime, batch_size: int = 100, progress: RemoveProgress | None = None
    ) -> int:
        """Delete executions that finished before ``finished_before``, ``batch_size`` per
        transaction; return how many. ``progress(removed, total)`` is called after each batch
        (its count, the count so far). ``NotSupported`` without ``Feature.REMOVE_INSTANCES``."""

    @abstractmethod
    def get_workflow_instance_state(self, instance: WorkflowInstance) -> InstanceState:
        """The execution's state (``InstanceNotFound``)."""

    @abstractmethod
    def get_workflow_instance_info(self, instance: WorkflowInstance) -> InstanceInfo:
        """What is stored about the execution besides its history (``InstanceNotFound``)."""

    @abstractmethod
    def get_workflow_instance_history(
        self, instance: WorkflowInstance, last_sequence_id: int | None = None
    ) -> list[Event]:
        """History events in order; only those after ``last_sequence_id`` when it is given
        (``InstanceNotFound``)."""

    @abstractmethod
    def get_latest_execution(self, instance_id: str) -> WorkflowInstance:
        """The newest execution of ``instance_id`` (``InstanceNotFound`` if none)."""

    # -- workflow tasks ------------------------------------------------------------------

    def prepare_workflow_queues(self, queues: Sequence[str]) -> None:
        """Called once by a worker before it polls ``queues`` (Redis creates consumer groups)."""
        return None

    @abstractmethod
    def get_workflow_task(self, queues: Sequence[str], timeout: float) -> WorkflowTask | None:
        """Lease an instance in ``queues`` that has visible pending events, is not leased, and
        is not sticky to another worker; wait up to ``timeout`` seconds for one."""

    def get_workflow_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[WorkflowTask]:
        """Lease up to ``max_tasks`` workflow tasks at once (each with its own fenced lease);
        wait up to ``timeout`` seconds for the first. By default one at a time; a backend
        overrides it to claim a batch in one transaction."""
        task = self.get_workflow_task(queues, timeout)
        return [] if task is None else [task]

    @abstractmethod
    def extend_workflow_task(self, task: WorkflowTask) -> None:
        """Extend the lease; ``LeaseLost`` if this worker no longer holds it."""

    @abstractmethod
    def complete_workflow_task(
        self, task: WorkflowTask, completion: WorkflowTaskCompletion
    ) -> Sequence[ActivityTask | WorkflowTask]:
        """Commit the result of a workflow task in one transaction (see go-workflows'
        ``CompleteWorkflowTask``). ``LeaseLost`` if the lease is gone; ``CompletionRejected`` if
        the task ends the execution while new events wait for it (the lease is released).

        With ``Feature.LEASE_ON_COMPLETION`` the same transaction may lease to this worker the
        activities ``completion.lease_activities`` asks for, and the first workflow tasks of the
        executions it starts (not one whose start is delayed) that ``completion.lease_workflows``
        asks for, and return them: the worker runs them without polling for them. A backend
        may return fewer (or none)."""

    @abstractmethod
    def abandon_workflow_task(self, task: WorkflowTask) -> None:
        """Release the lease without committing anything, so another poll can take the task;
        a lease that is already gone is not an error."""

    def release_sticky_instances(self) -> int:
        """Forget that executions are sticky to this worker (``options.worker_name``), so any
        worker takes their next task at once instead of after ``sticky_timeout``; return how
        many were. A worker that stops gracefully calls it after its last task. By default
        nothing (stickiness then runs out by itself)."""
        return 0

    # -- safe deploys: blocked tasks, executions seeded with a history ------------------------

    def block_workflow_task(self, task: WorkflowTask, error: ErrorInfo, backoff: BlockBackoff) -> BlockedInfo:
        """Give up a workflow task whose code cannot run it (non-determinism, a bug-class error,
        a deadlock) without committing anything: the history and the pending events stay as they
        are, the lease and the stickiness are released, and no claim (nor a hand-off from an
        activity completion) leases the execution before its retry time. The backend counts the
        attempts of this run of failures (the first keeps ``since``), waits
        ``backoff.delay(attempts)`` and stores ``error``, all of which ``get_workflow_instance_info``
        reports as ``InstanceInfo.blocked`` until a completion of the execution's workflow task
        (or its end) clears them. ``LeaseLost`` if this worker no longer holds the lease.

        The default raises ``NotSupported``; the worker then fails the workflow instead."""
        raise NotSupported(f"{type(self).__name__} cannot block workflow tasks")

    def create_workflow_instance_from_history(self, seed: ExecutionSeed) -> None:
        """Create an active execution whose history is ``seed.history``, with its pending events,
        activity tasks and timers, in one step (a reset). Raises ``InstanceAlreadyExists`` as
        ``create_workflow_instance`` does. The default raises ``NotSupported``."""
        raise NotSupported(f"{type(self).__name__} cannot create executions from a history")

    # -- activity tasks ------------------------------------------------------------------

    def prepare_activity_queues(self, queues: Sequence[str]) -> None:
        """Called once by a worker before it polls ``queues``."""
        return None

    @abstractmethod
    def get_activity_task(self, queues: Sequence[str], timeout: float) -> ActivityTask | None:
        """Lease an activity task of ``queues``; wait up to ``timeout`` seconds for one.

        A task whose timeout passed is not leased (``time_out_activity_tasks`` fails it)."""

    def get_activity_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[ActivityTask]:
        """Lease up to ``max_tasks`` activity tasks at once, as ``get_workflow_tasks`` does."""
        task = self.get_activity_task(queues, timeout)
        return [] if task is None else [task]

    @abstractmethod
    def extend_activity_task(self, task: ActivityTask) -> None:
        """Extend the lease; ``LeaseLost`` if this worker no longer holds it."""

    @abstractmethod
    def complete_activity_task(
        self, task: ActivityTask, result: Event, *, workflow_queues: Sequence[str] = ()
    ) -> WorkflowTask | None:
        """Delete the activity task and queue its result for the workflow; ``LeaseLost`` if
        the lease is gone (the result is discarded: another attempt owns the task now).

        With ``Feature.LEASE_ON_COMPLETION``, if ``workflow_queues`` holds the workflow's queue
        and its workflow task is free (not leased, not sticky to another worker), the same
        transaction may lease it to this worker and return it, so the workflow continues
        without a poll. A backend may return None."""

    @abstractmethod
    def abandon_activity_task(self, task: ActivityTask) -> None:
        """Release the lease without a result, so another worker takes the task at once; this
        lease does not count against ``max_activity_leases``."""

    # -- listing (operators' tools; see engine.listing) -----------------------------------

    def list_workflow_instances(
        self, filter: InstanceFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> InstancePage:
        """Executions that match ``filter``, newest first (``engine.listing`` fixes the order), at
        most ``limit`` (1 to ``MAX_LIST_LIMIT``); pass ``next_cursor`` back for the next page.
        By default ``NotSupported``."""
        raise NotSupported(f"{type(self).__name__} cannot list workflow instances")

    def get_pending_events(self, instance: WorkflowInstance) -> list[Event]:
        """Events delivered to the execution that no workflow task has taken yet, oldest first:
        its start event until a worker runs it, signals, results, timers (``visible_at`` in the
        future). ``InstanceNotFound`` if it does not exist; by default ``NotSupported``."""
        raise NotSupported(f"{type(self).__name__} cannot show pending events")

    def has_event(self, instance: WorkflowInstance, event_id: str, after_sequence_id: int | None = None) -> bool:
        """Whether the execution holds an event with id ``event_id``: pending, or in its
        history after ``after_sequence_id``. A worker asks when a completion whose reply it
        lost (an ambiguous commit) meets the lease fence on its retry: the completion's own
        event there means that the first attempt committed. ``InstanceNotFound`` if the
        execution is gone.

        By default it reads the pending events, then the history: in that order, because a
        workflow task moves an event from the first to the second in one transaction, so the
        event is seen in one of them. A backend may answer with one indexed lookup."""
        try:
            if any(event.id == event_id for event in self.get_pending_events(instance)):
                return True
        except NotSupported:
            pass
        return any(event.id == event_id for event in self.get_workflow_instance_history(instance, after_sequence_id))

    # -- activity timeouts, heartbeats and cancellation; execution timeouts --------------------
    #
    # An activity task carries the deadlines of its attempt's timeouts on the backend's clock
    # (``rules``: schedule-to-start and schedule-to-close from when it is stored, start-to-close
    # from its first lease, heartbeat from every lease and heartbeat). Once the earliest passes,
    # the attempt is over whoever holds its lease: ``extend_activity_task``,
    # ``heartbeat_activity_task`` and ``complete_activity_task`` raise ``LeaseLost`` (a late
    # result changes nothing), claims skip it, and ``time_out_activity_tasks`` records its
    # failure. ``complete_workflow_task`` acts on the task's ``ActivityCancellationRequested``
    # events: an activity not leased (or whose lease ran out) is dropped and answers
    # ``rules.canceled_activity_result``; a leased one is flagged for its next heartbeat.

    def heartbeat_activity_task(self, task: ActivityTask, details: Payload | None = None) -> bool:
        """A heartbeat of the running activity: extend the lease as ``extend_activity_task``
        does, move its heartbeat deadline, and store ``details`` (a converter payload; None
        keeps the stored ones) for a later lease of this attempt and for its failure event.

        Returns whether the activity should stop: its cancellation was requested or its
        execution has ended. ``LeaseLost`` as ``extend_activity_task``. The default, for
        backends without heartbeat support, only extends the lease."""
        self.extend_activity_task(task)
        return False

    def time_out_activity_tasks(self, max_tasks: int = 100) -> int:
        """Fail up to ``max_tasks`` activity attempts whose timeout passed: delete the task and
        queue ``rules.timed_out_activity_result`` (with the attempt's last heartbeat details)
        for its execution if that is active. Return how many. Every worker calls this about
        twice a second, so timeouts fire even when the worker running an attempt is stuck."""
        return 0

    def time_out_workflow_instances(self, max_instances: int = 100) -> int:
        """End up to ``max_instances`` active executions whose execution timeout passed, at
        once and without running their code (like ``terminate_workflow_instance``), with a
        ``WorkflowExecutionTimedOut`` event (``rules.timed_out_events``; a parent receives
        ``WorkflowTimedOut``). Return how many. Workers call it with the activity sweep."""
        return 0

    # -- misc ----------------------------------------------------------------------------

    @abstractmethod
    def get_stats(self) -> Stats:
        """Active instances and ready tasks per queue."""

    def get_backlog(self) -> list[QueueBacklog]:
        """Ready tasks per queue and how long the oldest has waited, by queue name; queues
        with nothing ready may be left out. By default the counts of ``get_stats`` and no ages."""
        stats = self.get_stats()
        queues = sorted(set(stats.pending_workflow_tasks) | set(stats.pending_activity_tasks))
        return [
            QueueBacklog(
                queue=queue,
                ready_workflow_tasks=stats.pending_workflow_tasks.get(queue, 0),
                ready_activity_tasks=stats.pending_activity_tasks.get(queue, 0),
            )
            for queue in queues
        ]

    # -- live workers (``Feature.WORKER_REGISTRY``) ----------------------------------------
    #
    # Each worker records itself when it starts, heartbeats every few seconds and removes
    # itself when it stops cleanly; an entry whose heartbeats stop expires ``ttl`` after the
    # last one, by the store's clock. Without the feature these raise ``NotSupported``.

    def register_worker(self, info: WorkerInfo, ttl: timedelta) -> None:
        """Record (or replace) the entry ``info.worker_id``; it expires ``ttl`` from now."""
        raise NotSupported(f"{type(self).__name__} keeps no worker registry")

    def heartbeat_worker(self, worker_id: str, tasks_in_flight: int, ttl: timedelta) -> bool:
        """Renew the entry for another ``ttl``; False when it is gone (it expired: register
        again)."""
        raise NotSupported(f"{type(self).__name__} keeps no worker registry")

    def unregister_worker(self, worker_id: str) -> None:
        """Remove the entry; an entry that is gone already is not an error."""
        raise NotSupported(f"{type(self).__name__} keeps no worker registry")

    def list_workers(self) -> list[WorkerInfo]:
        """The live workers (not expired), by worker id."""
        raise NotSupported(f"{type(self).__name__} keeps no worker registry")

    @contextlib.contextmanager
    def task_scope(self) -> Iterator[None]:
        """Wraps every task a worker runs; the ORM backend closes stale DB connections here."""
        yield

    def release_finished_threads(self) -> None:
        """Free what threads that have ended still hold (a stopped worker calls this): the ORM
        backend closes their database connections, which Django never closes by itself."""
        return None

    def check(self, **kwargs: Any) -> list[Any]:
        """Django system check messages about this backend's configuration. The Django layer
        calls it with ``alias`` (the backend's ``WORKFLOWS`` alias) for the settings checks, and
        with ``databases`` too for the checks that may query a database (``check --database``);
        a backend needs no Django import to return none."""
        return []

    def close(self) -> None:
        """Release connections and threads the backend holds."""
        return None
