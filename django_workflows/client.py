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
from .engine.core import DEFAULT_QUEUE, SYSTEM_QUEUE, InstanceState, WorkflowInstance, new_execution_id, validate_id
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
from .engine.reset import ResetError, plan_reset, started_attributes

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
    "ResetError",
    "WorkflowTimeout",
    "WorkflowTerminated",
]

#: The handle of one execution, as returned by ``create_workflow_instance``.
Instance = WorkflowInstance

#: How long ``wait_for_workflow_instance`` waits when given no timeout (go-workflows: 20 s).
DEFAULT_WAIT_TIMEOUT = timedelta(seconds=20)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowInstanceOptions:
    """``instance_id`` names the instance (a random UUID when omitted); ``queue`` is where
    its workflow tasks go."""

    instance_id: str | None = None
    queue: str = DEFAULT_QUEUE


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
        event = new_event(
            WorkflowExecutionStartedAttributes(name=name, queue=queue, inputs=inputs, metadata=metadata),
            system_clock.now(),
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

    async def await_for_workflow_instance(
        self, instance: WorkflowInstance | str, timeout: float | timedelta | None = None
    ) -> None:
        await sync_to_async(self.wait_for_workflow_instance, thread_sensitive=False)(instance, timeout)

    async def aget_workflow_result(
        self, instance: WorkflowInstance | str, timeout: float | timedelta | None = None
    ) -> Any:
        return await sync_to_async(self.get_workflow_result, thread_sensitive=False)(instance, timeout)
