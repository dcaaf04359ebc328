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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async

from .engine.backend import Backend, Feature, InstanceInfo, QueueBacklog, Stats, WorkerInfo
from .engine.clock import system_clock, to_timedelta
from .engine.core import (
    DEFAULT_QUEUE,
    SYSTEM_QUEUE,
    InstanceState,
    Metadata,
    WorkflowInstance,
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
    WorkflowError,
    WorkflowTerminated,
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
    new_event,
)
from .engine.registry import Registry, check_arguments
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
    "WorkflowTimeout",
    "WorkflowTerminated",
    "OverlapPolicy",
    "ScheduleSpec",
    "ScheduleDescription",
    "ScheduleNotFound",
    "ScheduleAlreadyExists",
]

#: The handle of one execution, as returned by ``create_workflow_instance``.
Instance = WorkflowInstance

#: How long ``wait_for_workflow_instance`` waits when given no timeout (go-workflows: 20 s).
DEFAULT_WAIT_TIMEOUT = timedelta(seconds=20)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowInstanceOptions:
    """``instance_id`` names the instance (a random UUID when omitted, i.e. ``None``; an empty
    or otherwise invalid id raises ``ValueError``); ``queue`` is where its workflow tasks go."""

    instance_id: str | None = None
    queue: str = DEFAULT_QUEUE


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
        inputs = [converter.to_payload(arg) for arg in args]
        metadata = dict(metadata or {})
        for propagator in self.backend.options.context_propagators:
            propagator.inject(metadata)
        execution = new_execution_id() if execution_id is None else validate_id(execution_id, "execution id")
        instance = WorkflowInstance(instance_id, execution)
        # In the caller's trace (a request's span, say); the workflow's spans continue it.
        span = self.instrumentation.start_workflow(name, queue, instance, metadata)
        event = new_event(
            WorkflowExecutionStartedAttributes(name=name, queue=queue, inputs=inputs, metadata=metadata),
            system_clock.now(),
        )
        return PreparedStart(instance, event, span)

    def create_prepared_workflow_instance(self, prepared: PreparedStart) -> WorkflowInstance:
        """Write a start made by ``prepare_workflow_instance`` (``InstanceAlreadyExists`` when an
        execution with its instance id is active)."""
        with self.instrumentation.writing_start(prepared.span):
            self.backend.create_workflow_instance(prepared.instance, prepared.event)
        return prepared.instance

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
        payload = self.backend.options.converter.to_payload(arg)
        return new_event(SignalReceivedAttributes(name=name, arg=payload), system_clock.now())

    def remove_workflow_instance(self, instance: WorkflowInstance | str) -> None:
        self.backend.remove_workflow_instance(self._resolve(instance))

    def remove_workflow_instances(self, *, finished_before: datetime, batch_size: int = 100) -> int:
        return self.backend.remove_workflow_instances(finished_before=finished_before, batch_size=batch_size)

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
            raise WorkflowTimeout("workflow did not finish in time: workflow did not finish in specified timeout") from None
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

        name, inputs = operations.checked_inputs(self.registry, self.backend.options.converter, workflow, args)
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
            changes["workflow_name"], changes["inputs"] = operations.checked_inputs(self.registry, converter, target, values)
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

    async def acancel_workflow_instance(self, instance: WorkflowInstance | str) -> None:
        await sync_to_async(self.cancel_workflow_instance, thread_sensitive=False)(instance)

    async def aterminate_workflow_instance(self, instance: WorkflowInstance | str, reason: str = "") -> None:
        await sync_to_async(self.terminate_workflow_instance, thread_sensitive=False)(instance, reason)

    async def asignal_workflow(self, instance_id: str, name: str, arg: Any = None) -> None:
        await sync_to_async(self.signal_workflow, thread_sensitive=False)(instance_id, name, arg)

    async def aremove_workflow_instance(self, instance: WorkflowInstance | str) -> None:
        await sync_to_async(self.remove_workflow_instance, thread_sensitive=False)(instance)

    async def aremove_workflow_instances(self, *, finished_before: datetime, batch_size: int = 100) -> int:
        return await sync_to_async(self.remove_workflow_instances, thread_sensitive=False)(
            finished_before=finished_before, batch_size=batch_size
        )

    async def astart_auto_expiration(self, delay: float | timedelta) -> WorkflowInstance | None:
        return await sync_to_async(self.start_auto_expiration)(delay)

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
