"""The client: start, signal, cancel, terminate and wait for workflow instances (port of
go-workflows ``client/``).

    client = Client()  # the backend of WORKFLOWS["default"]
    instance = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="order-1"), order, "o-1")
    result = client.get_workflow_result(instance, timeout=30)

The client needs no worker in its process: it only writes to and reads from the backend. Every
method that blocks or does I/O has an ``a``-prefixed async twin for async views.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async

from .engine.backend import Backend, Feature, InstanceInfo, QueueBacklog, RemoveProgress, Stats, WorkerInfo
from .engine.clock import system_clock, to_timedelta
from .engine.core import (
    DEFAULT_QUEUE,
    SYSTEM_QUEUE,
    InstanceState,
    Metadata,
    WorkflowInstance,
    check_start_options,
    new_execution_id,
    validate_id,
    validate_signal_name,
)
from .engine.errors import (
    InstanceAlreadyExists,
    InstanceFinished,
    InstanceNotFinished,
    InstanceNotFound,
    NotSupported,
    PayloadTooLarge,
    WorkflowError,
    WorkflowTerminated,
    WorkflowTimedOut,
    WorkflowTimeout,
)
from .engine.expiration import EXPIRATION_INSTANCE_ID, EXPIRATION_WORKFLOW_NAME, UPDATE_SIGNAL
from .engine.history import (
    Event,
    EventType,
    SignalReceivedAttributes,
    WorkflowExecutionCanceledAttributes,
    WorkflowExecutionContinuedAsNewAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    WorkflowExecutionTerminatedAttributes,
    WorkflowExecutionTimedOutAttributes,
    new_event,
)
from .engine.payloads import PayloadLimits
from .engine.registry import Registry, check_arguments
from .engine.reset import ResetError, plan_reset, started_attributes
from .instrumentation import Instrumentation, default_instrumentation
from .schedules import (
    DEFAULT_CATCHUP_WINDOW,
    DEFAULT_CLAIM_LEASE,
    OverlapPolicy,
    ScheduleAlreadyExists,
    ScheduleDefinition,
    ScheduleDescription,
    ScheduleError,
    ScheduleNotFound,
    ScheduleSpec,
    schedule_store,
)

__all__ = [
    "Client",
    "WorkflowInstanceOptions",
    "PreparedStart",
    "WorkflowInstance",
    "Instance",
    "InstanceNotFound",
    "InstanceFinished",
    "InstanceAlreadyExists",
    "InstanceNotFinished",
    "NotSupported",
    "PayloadTooLarge",
    "ResetError",
    "WorkflowTimeout",
    "WorkflowTerminated",
    "OverlapPolicy",
    "ScheduleSpec",
    "ScheduleDescription",
    "ScheduleNotFound",
    "ScheduleAlreadyExists",
    "WorkflowTimedOut",
]

#: The handle of one execution, as returned by ``create_workflow_instance``.
Instance = WorkflowInstance

#: How long ``wait_for_workflow_instance`` waits when given no timeout (go-workflows: 20 s).
DEFAULT_WAIT_TIMEOUT = timedelta(seconds=20)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowInstanceOptions:
    """``instance_id`` names the instance (a random UUID when omitted, i.e. ``None``; an empty
    or otherwise invalid id raises ``ValueError``); ``queue`` is where its workflow tasks go.

    ``execution_timeout`` (seconds or ``timedelta``; default None, no limit): the backend ends
    the execution with ``WorkflowTimedOut`` (outcome "timed out") once it has run that long,
    whatever its code is doing; it counts from the start, after any delay, and each execution
    of a workflow that continues as new gets it anew. ``start_delay`` (default None): the
    workflow starts that much later; until then the instance shows when it is scheduled for
    (``get_workflow_instance_info(...).scheduled_for``), and canceling it ends it without
    running it.
    """

    instance_id: str | None = None
    queue: str = DEFAULT_QUEUE
    execution_timeout: timedelta | float | None = None
    start_delay: timedelta | float | None = None

    def __post_init__(self) -> None:
        check_start_options(self, "WorkflowInstanceOptions")


@dataclass(frozen=True, slots=True)
class PreparedStart:
    """A start checked and converted by ``Client.prepare_workflow_instance`` but not written yet:
    the handle it will have and its ``WorkflowExecutionStarted`` event.

    ``Client.create_prepared_workflow_instance`` writes it. Callers that decide *when* to write
    (the ``start_workflow`` shortcut, inside or after the caller's transaction) prepare first,
    so bad input fails at the call and the write does no checking of its own.
    """

    instance: WorkflowInstance
    event: Event
    #: The span of the start (``Instrumentation.start_workflow``), ended when it is written.
    span: Any = field(default=None, compare=False, repr=False)


class Client:
    def __init__(
        self,
        backend: Backend | None = None,
        *,
        registry: Registry | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        self._backend = backend
        self._registry = registry
        self._payload_limits: PayloadLimits | None = None
        #: Spans and metrics of starts, signals, cancellations and terminations.
        self.instrumentation = instrumentation or default_instrumentation()

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from .backends import default_backend

            self._backend = default_backend()
        return self._backend

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from .registration import registry

            self._registry = registry
        return self._registry

    @property
    def payload_limits(self) -> PayloadLimits:
        """The backend's payload limits, counted by this client's instrumentation: a start or a
        signal over ``max_payload_size`` raises ``PayloadTooLarge`` before anything is written."""
        limits = self._payload_limits
        if limits is None:
            limits = self._payload_limits = self.backend.options.payload_limits(self.instrumentation.large_payload)
        return limits

    # -- starting ----------------------------------------------------------------------------

    def create_workflow_instance(
        self,
        options: WorkflowInstanceOptions | None,
        workflow: Callable[..., Any] | str,
        *args: Any,
        execution_id: str | None = None,
    ) -> WorkflowInstance:
        """Start ``workflow(*args)``. Bad arguments and values that cannot be stored raise here,
        before anything is written; an active instance with the same id raises
        ``InstanceAlreadyExists``. ``execution_id`` is for callers that must know the handle
        before the start happens."""
        prepared = self.prepare_workflow_instance(options, workflow, *args, execution_id=execution_id)
        return self.create_prepared_workflow_instance(prepared)

    def prepare_workflow_instance(
        self,
        options: WorkflowInstanceOptions | None,
        workflow: Callable[..., Any] | str,
        *args: Any,
        execution_id: str | None = None,
        metadata: Metadata | None = None,
    ) -> PreparedStart:
        """Check and convert a start without writing it: the instance id and queue are validated
        (``ValueError``), the arguments checked against the workflow's signature
        (``ArgumentMismatch``) and converted to payloads (``TypeError`` for values that cannot be
        stored), and context propagators run, all here, once. ``metadata`` is stored with the
        instance (``InstanceInfo.metadata``) beside what the propagators inject."""
        options = options or WorkflowInstanceOptions()
        # Only None means "make one up": an empty id is a caller's bug, and a random id in its
        # place would silently lose the idempotency the caller asked for.
        instance_id = validate_id(str(uuid.uuid4()) if options.instance_id is None else options.instance_id)
        queue = validate_id(options.queue, "queue")
        name = self.registry.workflow_name(workflow)
        if callable(workflow):
            check_arguments(workflow, args, skip_context=True)
        converter = self.backend.options.converter
        limits = self.payload_limits
        inputs = [
            limits.check(converter.to_payload(arg), "workflow input", f"{index} of workflow {name} (instance {instance_id})")
            for index, arg in enumerate(args, start=1)
        ]
        metadata = dict(metadata or {})
        for propagator in self.backend.options.context_propagators:
            propagator.inject(metadata)
        execution = new_execution_id() if execution_id is None else validate_id(execution_id, "execution id")
        instance = WorkflowInstance(instance_id, execution)
        timeout: timedelta | None = options.execution_timeout  # type: ignore[assignment]
        delay: timedelta | None = options.start_delay  # type: ignore[assignment]
        now = system_clock.now()
        # In the caller's trace (a request's span, say); the workflow's spans continue it.
        span = self.instrumentation.start_workflow(name, queue, instance, metadata)
        event = new_event(
            WorkflowExecutionStartedAttributes(
                name=name,
                queue=queue,
                inputs=inputs,
                metadata=metadata,
                execution_timeout=None if timeout is None else timeout.total_seconds(),
            ),
            now,
            visible_at=None if delay is None else now + delay,
        )
        return PreparedStart(instance, event, span)

    def create_prepared_workflow_instance(self, prepared: PreparedStart) -> WorkflowInstance:
        """Write a start made by ``prepare_workflow_instance`` (``InstanceAlreadyExists`` when an
        execution with its instance id is active)."""
        with self.instrumentation.writing_start(prepared.span):
            self.backend.create_workflow_instance(prepared.instance, prepared.event)
        return prepared.instance

    def create_workflow_instances(self, starts: Iterable[PreparedStart]) -> list[WorkflowInstance]:
        """Write many starts made by ``prepare_workflow_instance`` at once (bulk creation). The
        ORM backend writes them in a few multi-row statements of one transaction: all or none,
        ``InstanceAlreadyExists`` naming the ids already taken; other backends one by one."""
        starts = list(starts)
        self.backend.create_workflow_instances([(prepared.instance, prepared.event) for prepared in starts])
        return [prepared.instance for prepared in starts]

    # -- steering ----------------------------------------------------------------------------

    def cancel_workflow_instance(self, instance: WorkflowInstance | str) -> None:
        """Ask the workflow to cancel: its context is canceled and it decides what to return."""
        instance = self._resolve(instance)
        with self.instrumentation.client_call("CancelWorkflow", instance_id=instance.instance_id, execution_id=instance.execution_id):
            self.backend.cancel_workflow_instance(
                instance, new_event(WorkflowExecutionCanceledAttributes(), system_clock.now())
            )

    def terminate_workflow_instance(self, instance: WorkflowInstance | str, reason: str = "") -> None:
        """End the workflow at once without running its code (go-workflows issue #196)."""
        instance = self._resolve(instance)
        with self.instrumentation.client_call("TerminateWorkflow", instance_id=instance.instance_id, execution_id=instance.execution_id):
            self.backend.terminate_workflow_instance(instance, reason)
        if self.instrumentation.otel is not None:
            info = self.backend.get_workflow_instance_info(instance)
            self.instrumentation.workflow_terminated(info.workflow_name, info.queue)

    def signal_workflow(self, instance_id: str, name: str, arg: Any = None) -> None:
        """Send signal ``name`` to the active execution of ``instance_id``.

        Raises ``InstanceNotFound`` when there is none (``InstanceFinished`` when it ended).
        """
        event = self.prepare_signal(name, arg)
        with self.instrumentation.client_call("SignalWorkflow", instance_id=validate_id(instance_id), signal=name):
            self.backend.signal_workflow(instance_id, event)

    def prepare_signal(self, name: str, arg: Any = None) -> Event:
        """The ``SignalReceived`` event ``signal_workflow`` sends: the name validated and the
        argument converted (``ValueError``/``TypeError`` here, before anything is written)."""
        validate_signal_name(name)
        payload = self.payload_limits.check(self.backend.options.converter.to_payload(arg), "signal value", f"of signal {name}")
        return new_event(SignalReceivedAttributes(name=name, arg=payload), system_clock.now())

    def remove_workflow_instance(self, instance: WorkflowInstance | str) -> None:
        self.backend.remove_workflow_instance(self._resolve(instance))

    def remove_workflow_instances(
        self, *, finished_before: datetime, batch_size: int = 100, progress: RemoveProgress | None = None
    ) -> int:
        """Delete the executions that finished before ``finished_before``, ``batch_size`` per
        transaction (each batch a short transaction of its own, so running workers are held up
        by one batch at most); return how many. ``progress(removed, total)`` is called after
        every batch."""
        return self.backend.remove_workflow_instances(
            finished_before=finished_before, batch_size=batch_size, progress=progress
        )

    def start_auto_expiration(self, delay: float | timedelta) -> WorkflowInstance | None:
        """Remove finished instances ``delay`` after they finished, from now on.

        Starts the system workflow ``ExpireWorkflowInstances`` (instance id ``expiration``, on
        the system queue, which every worker polls). When it already runs it gets the new delay
        instead, and ``None`` is returned. ``NotSupported`` on a backend that cannot remove
        instances in batches; the Redis backend also offers key TTLs (``auto_expiration=``).
        """
        if not self.backend.feature_supported(Feature.REMOVE_INSTANCES):
            raise NotSupported("this backend cannot remove finished instances")
        seconds = to_timedelta(delay, what="expiration delay").total_seconds()
        if seconds <= 0:
            raise ValueError(f"the expiration delay must be positive, got {delay!r}")
        options = WorkflowInstanceOptions(instance_id=EXPIRATION_INSTANCE_ID, queue=SYSTEM_QUEUE)
        try:
            return self.create_workflow_instance(options, EXPIRATION_WORKFLOW_NAME, seconds)
        except InstanceAlreadyExists:
            self.signal_workflow(EXPIRATION_INSTANCE_ID, UPDATE_SIGNAL, seconds)
            return None

    # -- restart and reset --------------------------------------------------------------------

    def restart_workflow_instance(
        self, instance: WorkflowInstance | str, *, terminate_running: bool = False, reason: str = ""
    ) -> WorkflowInstance:
        """Start a new execution of a finished instance: same instance id, workflow, queue and
        input as ``instance`` (an execution, or the newest one of an instance id). Returns the
        new execution. While the instance id has a running execution this raises
        ``InstanceNotFinished``, unless ``terminate_running`` terminates that execution first
        (with ``reason``)."""
        instance = self._resolve(instance)
        running = self._running(instance.instance_id, terminate_running)
        started = started_attributes(self.backend.get_workflow_instance_history(instance))
        if started is None:
            raise ResetError(
                f"execution {instance} has no start event in its history (it has not run yet, or ended "
                "before it ran), so its input is unknown and it cannot be restarted"
            )
        self._terminate(running, reason or "terminated to restart the instance")
        restarted = WorkflowInstance(instance.instance_id, new_execution_id())
        self.backend.create_workflow_instance(restarted, new_event(started, system_clock.now()))
        return restarted

    def reset_workflow_instance(
        self, instance: WorkflowInstance | str, to: int, *, terminate_running: bool = False, reason: str = ""
    ) -> WorkflowInstance:
        """Start a new execution whose history is ``instance``'s up to the workflow task that
        starts at history sequence ``to`` (a ``WorkflowTaskStarted`` event), which then continues
        with the code deployed now: activities completed before that point do not run again, the
        work after it does (``engine.reset`` has the details). Returns the new execution.

        A ``to`` that is not the start of a workflow task raises ``ResetError`` (a ``ValueError``)
        naming the ones that are; a running execution of the instance id is handled as in
        ``restart_workflow_instance``. Nothing changes before those checks pass."""
        instance = self._resolve(instance)
        running = self._running(instance.instance_id, terminate_running)
        history = self.backend.get_workflow_instance_history(instance)
        reset = WorkflowInstance(instance.instance_id, new_execution_id())
        seed = plan_reset(history, to, reset, system_clock.now())
        self._terminate(running, reason or f"terminated to reset the instance to {to}")
        self.backend.create_workflow_instance_from_history(seed)
        return reset

    def _running(self, instance_id: str, terminate_running: bool) -> WorkflowInstance | None:
        """The running execution of ``instance_id`` that a restart or a reset must terminate
        first (None if none runs); ``InstanceNotFinished`` if one runs and may not be terminated."""
        latest = self.backend.get_latest_execution(instance_id)
        if self.backend.get_workflow_instance_state(latest) is not InstanceState.ACTIVE:
            return None
        if not terminate_running:
            raise InstanceNotFinished(
                f"workflow instance {instance_id} is still running (execution {latest.execution_id}); "
                "terminate it first, or pass terminate_running=True"
            )
        return latest

    def _terminate(self, running: WorkflowInstance | None, reason: str) -> None:
        if running is None:
            return
        try:
            self.backend.terminate_workflow_instance(running, reason)
        except InstanceFinished:
            pass  # it ended meanwhile: there is room now

    # -- reading -----------------------------------------------------------------------------

    def get_workflow_instance_state(self, instance: WorkflowInstance | str) -> InstanceState:
        return self.backend.get_workflow_instance_state(self._resolve(instance))

    def get_workflow_instance_info(self, instance: WorkflowInstance | str) -> InstanceInfo:
        return self.backend.get_workflow_instance_info(self._resolve(instance))

    def get_stats(self) -> Stats:
        return self.backend.get_stats()

    def get_backlog(self) -> list[QueueBacklog]:
        """Ready tasks per queue and the age of the oldest (``Backend.get_backlog``)."""
        return self.backend.get_backlog()

    def list_workers(self) -> list[WorkerInfo]:
        """The live workers (``Backend.list_workers``; ``NotSupported`` without a registry)."""
        return self.backend.list_workers()

    def wait_for_workflow_instance(
        self, instance: WorkflowInstance | str, timeout: float | timedelta | None = None
    ) -> None:
        """Wait until the execution has finished or continued as new; ``WorkflowTimeout`` if not in time."""
        instance = self._resolve(instance)
        limit = to_timedelta(timeout) if timeout is not None else DEFAULT_WAIT_TIMEOUT
        deadline = time.monotonic() + limit.total_seconds()
        delay = 0.001
        while True:
            if self.backend.get_workflow_instance_state(instance) is not InstanceState.ACTIVE:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkflowTimeout()
            time.sleep(min(remaining, delay * (0.5 + random.random())))
            delay = min(delay * 1.5, 1.0)

    def get_workflow_result(self, instance: WorkflowInstance | str, timeout: float | timedelta | None = None) -> Any:
        """Wait for the execution and return its result, or raise the ``WorkflowError`` it failed with.

        For an execution that continued as new this is that execution's own result.
        """
        instance = self._resolve(instance)
        try:
            self.wait_for_workflow_instance(instance, timeout)
        except WorkflowTimeout:
            message = "workflow did not finish in time: workflow did not finish in specified timeout"
            blocked = self.backend.get_workflow_instance_info(instance).blocked
            if blocked is not None:
                # The usual reason it did not finish: say so rather than leave the caller guessing.
                message += (
                    f"; it is blocked since {blocked.since.isoformat()} ({blocked.attempts} failed attempts): "
                    f"{blocked.error.type}: {blocked.error.message}"
                )
            raise WorkflowTimeout(message) from None
        converter = self.backend.options.converter
        for event in reversed(self.backend.get_workflow_instance_history(instance)):
            attributes = event.attributes
            if isinstance(attributes, WorkflowExecutionFinishedAttributes):
                if attributes.error is not None:
                    raise WorkflowError.from_info(attributes.error)
                return None if attributes.result is None else converter.from_payload(attributes.result)
            if isinstance(attributes, WorkflowExecutionContinuedAsNewAttributes):
                return None if attributes.result is None else converter.from_payload(attributes.result)
            if isinstance(attributes, WorkflowExecutionTerminatedAttributes):
                reason = f": {attributes.reason}" if attributes.reason else ""
                raise WorkflowTerminated(f"workflow terminated{reason}")
            if isinstance(attributes, WorkflowExecutionTimedOutAttributes):
                after = f" after {attributes.execution_timeout:g} s" if attributes.execution_timeout is not None else ""
                raise WorkflowTimedOut(f"workflow execution timed out{after}")
            if event.type is EventType.WORKFLOW_EXECUTION_CANCELED:
                break
        raise WorkflowError("workflow finished, but could not find result event")

    def _resolve(self, instance: WorkflowInstance | str) -> WorkflowInstance:
        if isinstance(instance, WorkflowInstance):
            return instance
        if isinstance(instance, str):
            return self.backend.get_latest_execution(validate_id(instance))
        raise TypeError(f"expected a WorkflowInstance or an instance id, got {type(instance).__name__}")

    # -- schedules (docs/schedules.md) -------------------------------------------------------

    def create_schedule(
        self,
        schedule_id: str,
        spec: ScheduleSpec | str | timedelta,
        workflow: Callable[..., Any] | str,
        *args: Any,
        queue: str = DEFAULT_QUEUE,
        overlap: OverlapPolicy | str = OverlapPolicy.SKIP,
        catchup_window: float | timedelta = DEFAULT_CATCHUP_WINDOW,
        paused: bool = False,
        note: str = "",
    ) -> ScheduleDescription:
        """Start ``workflow(*args)`` on ``spec`` (a ``ScheduleSpec``, a cron string in UTC or a
        ``timedelta`` interval); ``ScheduleAlreadyExists`` if the id is taken."""
        from .schedules import operations

        name, inputs = operations.checked_inputs(
            self.registry, self.backend.options.converter, workflow, args, self.payload_limits
        )
        definition = ScheduleDefinition(
            schedule_id=schedule_id, workflow_name=name, inputs=inputs, spec=ScheduleSpec.coerce(spec),
            queue=queue, overlap=OverlapPolicy.parse(overlap), catchup_window=operations.window(catchup_window),
        )
        record = operations.create(schedule_store(self.backend), definition, paused_=paused, note=note)
        return self._describe(record, outcomes=False)

    def update_schedule(
        self,
        schedule_id: str,
        *,
        spec: ScheduleSpec | str | timedelta | None = None,
        workflow: Callable[..., Any] | str | None = None,
        args: list[Any] | tuple[Any, ...] | None = None,
        queue: str | None = None,
        overlap: OverlapPolicy | str | None = None,
        catchup_window: float | timedelta | None = None,
    ) -> ScheduleDescription:
        """Change what is given (``args`` replaces all arguments); a new ``spec`` counts from now."""
        from .schedules import operations

        store = schedule_store(self.backend)
        changes: dict[str, Any] = {"queue": queue, "overlap": overlap}
        if spec is not None:
            changes["spec"] = ScheduleSpec.coerce(spec)
        if catchup_window is not None:
            changes["catchup_window"] = operations.window(catchup_window)
        if workflow is not None or args is not None:
            current = store.get(schedule_id).definition
            converter = self.backend.options.converter
            target = workflow if workflow is not None else current.workflow_name
            values = args if args is not None else [converter.from_payload(p) for p in current.inputs]
            changes["workflow_name"], changes["inputs"] = operations.checked_inputs(
                self.registry, converter, target, values, self.payload_limits
            )
        return self._describe(operations.update(store, schedule_id, **changes), outcomes=False)

    def pause_schedule(self, schedule_id: str, note: str = "") -> None:
        """Stop firing (a trigger still runs); ``note`` says why."""
        from .schedules import operations

        operations.set_paused(schedule_id=schedule_id, store=schedule_store(self.backend), pause=True, note=note)

    def unpause_schedule(self, schedule_id: str, note: str = "") -> None:
        """Fire again from the next fire time on; times that passed while paused are not made up for."""
        from .schedules import operations

        operations.set_paused(schedule_id=schedule_id, store=schedule_store(self.backend), pause=False, note=note)

    def trigger_schedule(
        self, schedule_id: str, *, overlap: OverlapPolicy | str = OverlapPolicy.ALLOW_ALL
    ) -> WorkflowInstance | None:
        """Start a run now, paused or not, and return it; ``overlap`` (``allow_all``, ``skip``
        or ``terminate_other``) decides what happens while the previous run is going (None
        when it skipped)."""
        from .schedules.firing import BackendRuntime
        from .schedules.scheduler import fire_claim

        policy = OverlapPolicy.parse(overlap)
        if policy in (OverlapPolicy.BUFFER_ONE, OverlapPolicy.CANCEL_OTHER):
            raise ScheduleError(f"a triggered run starts now or not at all: overlap {policy.value} is not possible")
        store = schedule_store(self.backend)
        deadline = time.monotonic() + DEFAULT_CLAIM_LEASE.total_seconds() * 2
        while (claim := store.claim(DEFAULT_CLAIM_LEASE, schedule_id)) is None:
            store.get(schedule_id)  # ScheduleNotFound
            if time.monotonic() > deadline:
                raise WorkflowTimeout(f"schedule {schedule_id!r} stayed claimed by a scheduler; try again")
            time.sleep(0.02)
        try:
            firing = fire_claim(store, claim, BackendRuntime(self.backend), trigger=True, trigger_overlap=policy)
        except BaseException:
            store.release(claim)
            raise
        return next((run.instance for run in firing.runs if run.triggered), None)

    def delete_schedule(self, schedule_id: str) -> None:
        """Remove the schedule (``ScheduleNotFound`` if absent); the runs it started go on."""
        schedule_store(self.backend).delete(schedule_id)

    def list_schedules(self) -> list[ScheduleDescription]:
        """Every schedule, by id; only the newest run's outcome is looked up."""
        return [self._describe(record, outcomes=1, next_count=1) for record in schedule_store(self.backend).list()]

    def describe_schedule(self, schedule_id: str, *, next_count: int = 5) -> ScheduleDescription:
        """The schedule with its next ``next_count`` fire times and its recent runs (instance
        ids and outcomes)."""
        return self._describe(schedule_store(self.backend).get(schedule_id), outcomes=True, next_count=next_count)

    def _describe(self, record: Any, *, outcomes: bool | int, next_count: int = 5) -> ScheduleDescription:
        from .schedules.description import describe

        return describe(record, self.backend, next_count=next_count, outcomes=outcomes)

    # -- async twins -------------------------------------------------------------------------

    async def acreate_workflow_instance(
        self, options: WorkflowInstanceOptions | None, workflow: Callable[..., Any] | str, *args: Any
    ) -> WorkflowInstance:
        return await sync_to_async(self.create_workflow_instance, thread_sensitive=False)(options, workflow, *args)

    async def acreate_prepared_workflow_instance(self, prepared: PreparedStart) -> WorkflowInstance:
        return await sync_to_async(self.create_prepared_workflow_instance, thread_sensitive=False)(prepared)

    async def acreate_workflow_instances(self, starts: Iterable[PreparedStart]) -> list[WorkflowInstance]:
        return await sync_to_async(self.create_workflow_instances, thread_sensitive=False)(list(starts))

    async def acancel_workflow_instance(self, instance: WorkflowInstance | str) -> None:
        await sync_to_async(self.cancel_workflow_instance, thread_sensitive=False)(instance)

    async def aterminate_workflow_instance(self, instance: WorkflowInstance | str, reason: str = "") -> None:
        await sync_to_async(self.terminate_workflow_instance, thread_sensitive=False)(instance, reason)

    async def asignal_workflow(self, instance_id: str, name: str, arg: Any = None) -> None:
        await sync_to_async(self.signal_workflow, thread_sensitive=False)(instance_id, name, arg)

    async def aremove_workflow_instance(self, instance: WorkflowInstance | str) -> None:
        await sync_to_async(self.remove_workflow_instance, thread_sensitive=False)(instance)

    async def aremove_workflow_instances(
        self, *, finished_before: datetime, batch_size: int = 100, progress: RemoveProgress | None = None
    ) -> int:
        return await sync_to_async(self.remove_workflow_instances, thread_sensitive=False)(
            finished_before=finished_before, batch_size=batch_size, progress=progress
        )

    async def astart_auto_expiration(self, delay: float | timedelta) -> WorkflowInstance | None:
        return await sync_to_async(self.start_auto_expiration)(delay)

    async def arestart_workflow_instance(
        self, instance: WorkflowInstance | str, *, terminate_running: bool = False, reason: str = ""
    ) -> WorkflowInstance:
        return await sync_to_async(self.restart_workflow_instance, thread_sensitive=False)(
            instance, terminate_running=terminate_running, reason=reason
        )

    async def areset_workflow_instance(
        self, instance: WorkflowInstance | str, to: int, *, terminate_running: bool = False, reason: str = ""
    ) -> WorkflowInstance:
        return await sync_to_async(self.reset_workflow_instance, thread_sensitive=False)(
            instance, to, terminate_running=terminate_running, reason=reason
        )

    async def aget_workflow_instance_info(self, instance: WorkflowInstance | str) -> InstanceInfo:
        return await sync_to_async(self.get_workflow_instance_info, thread_sensitive=False)(instance)

    async def aget_workflow_instance_state(self, instance: WorkflowInstance | str) -> InstanceState:
        return await sync_to_async(self.get_workflow_instance_state, thread_sensitive=False)(instance)

    async def aget_stats(self) -> Stats:
        return await sync_to_async(self.get_stats, thread_sensitive=False)()

    async def aget_backlog(self) -> list[QueueBacklog]:
        return await sync_to_async(self.get_backlog, thread_sensitive=False)()

    async def alist_workers(self) -> list[WorkerInfo]:
        return await sync_to_async(self.list_workers, thread_sensitive=False)()

    async def await_for_workflow_instance(
        self, instance: WorkflowInstance | str, timeout: float | timedelta | None = None
    ) -> None:
        await sync_to_async(self.wait_for_workflow_instance, thread_sensitive=False)(instance, timeout)

    async def aget_workflow_result(
        self, instance: WorkflowInstance | str, timeout: float | timedelta | None = None
    ) -> Any:
        return await sync_to_async(self.get_workflow_result, thread_sensitive=False)(instance, timeout)

    async def acreate_schedule(self, schedule_id: str, spec: ScheduleSpec | str | timedelta, workflow: Callable[..., Any] | str, *args: Any, **options: Any) -> ScheduleDescription:
        return await sync_to_async(self.create_schedule, thread_sensitive=False)(schedule_id, spec, workflow, *args, **options)

    async def aupdate_schedule(self, schedule_id: str, **changes: Any) -> ScheduleDescription:
        return await sync_to_async(self.update_schedule, thread_sensitive=False)(schedule_id, **changes)

    async def apause_schedule(self, schedule_id: str, note: str = "") -> None:
        await sync_to_async(self.pause_schedule, thread_sensitive=False)(schedule_id, note)

    async def aunpause_schedule(self, schedule_id: str, note: str = "") -> None:
        await sync_to_async(self.unpause_schedule, thread_sensitive=False)(schedule_id, note)

    async def atrigger_schedule(self, schedule_id: str, *, overlap: OverlapPolicy | str = OverlapPolicy.ALLOW_ALL) -> WorkflowInstance | None:
        return await sync_to_async(self.trigger_schedule, thread_sensitive=False)(schedule_id, overlap=overlap)

    async def adelete_schedule(self, schedule_id: str) -> None:
        await sync_to_async(self.delete_schedule, thread_sensitive=False)(schedule_id)

    async def alist_schedules(self) -> list[ScheduleDescription]:
        return await sync_to_async(self.list_schedules, thread_sensitive=False)()

    async def adescribe_schedule(self, schedule_id: str, *, next_count: int = 5) -> ScheduleDescription:
        return await sync_to_async(self.describe_schedule, thread_sensitive=False)(schedule_id, next_count=next_count)
