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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async

from .engine.backend import Backend, Feature, InstanceInfo, Stats
from .engine.clock import system_clock, to_timedelta
from .engine.core import (
    DEFAULT_QUEUE,
    SYSTEM_QUEUE,
    InstanceState,
    WorkflowInstance,
    check_start_options,
    new_execution_id,
    validate_id,
)
from .engine.errors import (
    InstanceAlreadyExists,
    InstanceFinished,
    InstanceNotFinished,
    InstanceNotFound,
    NotSupported,
    WorkflowError,
    WorkflowTerminated,
    WorkflowTimedOut,
    WorkflowTimeout,
)
from .engine.expiration import EXPIRATION_INSTANCE_ID, EXPIRATION_WORKFLOW_NAME, UPDATE_SIGNAL
from .engine.history import (
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
from .engine.registry import Registry, check_arguments

__all__ = [
    "Client",
    "WorkflowInstanceOptions",
    "WorkflowInstance",
    "Instance",
    "InstanceNotFound",
    "InstanceFinished",
    "InstanceAlreadyExists",
    "InstanceNotFinished",
    "NotSupported",
    "WorkflowTimeout",
    "WorkflowTerminated",
    "WorkflowTimedOut",
]

#: The handle of one execution, as returned by ``create_workflow_instance``.
Instance = WorkflowInstance

#: How long ``wait_for_workflow_instance`` waits when given no timeout (go-workflows: 20 s).
DEFAULT_WAIT_TIMEOUT = timedelta(seconds=20)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowInstanceOptions:
    """``instance_id`` names the instance (a random UUID when omitted); ``queue`` is where
    its workflow tasks go.

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


class Client:
    def __init__(self, backend: Backend | None = None, *, registry: Registry | None = None) -> None:
        self._backend = backend
        self._registry = registry

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
        before the start happens (``start_workflow`` inside a transaction)."""
        options = options or WorkflowInstanceOptions()
        instance_id = validate_id(options.instance_id or str(uuid.uuid4()))
        queue = validate_id(options.queue, "queue")
        name = self.registry.workflow_name(workflow)
        if callable(workflow):
            check_arguments(workflow, args, skip_context=True)
        converter = self.backend.options.converter
        inputs = [converter.to_payload(arg) for arg in args]
        metadata: dict[str, str] = {}
        for propagator in self.backend.options.context_propagators:
            propagator.inject(metadata)
        instance = WorkflowInstance(instance_id, execution_id or new_execution_id())
        timeout: timedelta | None = options.execution_timeout  # type: ignore[assignment]
        delay: timedelta | None = options.start_delay  # type: ignore[assignment]
        now = system_clock.now()
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
        self.backend.create_workflow_instance(instance, event)
        return instance

    # -- steering ----------------------------------------------------------------------------

    def cancel_workflow_instance(self, instance: WorkflowInstance | str) -> None:
        """Ask the workflow to cancel: its context is canceled and it decides what to return."""
        instance = self._resolve(instance)
        self.backend.cancel_workflow_instance(
            instance, new_event(WorkflowExecutionCanceledAttributes(), system_clock.now())
        )

    def terminate_workflow_instance(self, instance: WorkflowInstance | str, reason: str = "") -> None:
        """End the workflow at once without running its code (go-workflows issue #196)."""
        self.backend.terminate_workflow_instance(self._resolve(instance), reason)

    def signal_workflow(self, instance_id: str, name: str, arg: Any = None) -> None:
        """Send signal ``name`` to the active execution of ``instance_id``.

        Raises ``InstanceNotFound`` when there is none (``InstanceFinished`` when it ended).
        """
        validate_id(instance_id)
        if not isinstance(name, str) or not name:
            raise ValueError("signal name must be a non-empty string")
        payload = self.backend.options.converter.to_payload(arg)
        self.backend.signal_workflow(
            instance_id, new_event(SignalReceivedAttributes(name=name, arg=payload), system_clock.now())
        )

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

    # -- async twins -------------------------------------------------------------------------

    async def acreate_workflow_instance(
        self, options: WorkflowInstanceOptions | None, workflow: Callable[..., Any] | str, *args: Any
    ) -> WorkflowInstance:
        return await sync_to_async(self.create_workflow_instance, thread_sensitive=False)(options, workflow, *args)

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

    async def await_for_workflow_instance(
        self, instance: WorkflowInstance | str, timeout: float | timedelta | None = None
    ) -> None:
        await sync_to_async(self.wait_for_workflow_instance, thread_sensitive=False)(instance, timeout)

    async def aget_workflow_result(
        self, instance: WorkflowInstance | str, timeout: float | timedelta | None = None
    ) -> Any:
        return await sync_to_async(self.get_workflow_result, thread_sensitive=False)(instance, timeout)
