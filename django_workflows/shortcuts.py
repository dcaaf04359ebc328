"""Starting and steering workflows from views and signal receivers.

    def place_order(request):
        with transaction.atomic():
            order = Order.objects.create(...)
            start_workflow(process_order, order.pk, instance_id=f"order-{order.pk}")
        ...

Inside a transaction the start is deferred until the transaction commits, so a view that rolls
back starts nothing, and a workflow never runs before the rows it reads exist. Arguments are
checked at once, so bad input fails in the view. A given ``instance_id`` makes the start
idempotent: if an execution with that id exists already (running or finished), nothing new
starts and its handle is returned, so a retried request does not start a second workflow.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, transaction

from .client import Client, WorkflowInstanceOptions
from .engine.core import DEFAULT_QUEUE, WorkflowInstance, new_execution_id, validate_id
from .engine.errors import InstanceAlreadyExists, InstanceNotFound
from .engine.registry import check_arguments


def _client(backend: str) -> Client:
    from .backends import workflow_backends

    return Client(workflow_backends[backend])


def start_workflow(
    workflow: Callable[..., Any] | str,
    *args: Any,
    instance_id: str | None = None,
    queue: str | None = None,
    backend: str = "default",
    using: str = DEFAULT_DB_ALIAS,
    start_delay: float | timedelta | None = None,
    execution_timeout: float | timedelta | None = None,
) -> WorkflowInstance:
    """Start ``workflow(*args)``, after the current transaction on ``using`` commits.

    ``start_delay`` and ``execution_timeout`` are those of ``WorkflowInstanceOptions``.
    Returns the handle of the execution that will be (or already was) started.
    """
    client = _client(backend)
    if callable(workflow):
        check_arguments(workflow, args, skip_context=True)
    converter = client.backend.options.converter
    for arg in args:
        converter.to_payload(arg)  # fail in the view, not after the commit
    idempotent = instance_id is not None
    instance = WorkflowInstance(validate_id(instance_id) if idempotent else _new_id(), new_execution_id())
    options = WorkflowInstanceOptions(
        instance_id=instance.instance_id,
        queue=queue or DEFAULT_QUEUE,
        start_delay=start_delay,
        execution_timeout=execution_timeout,
    )

    def start() -> None:
        if idempotent and _existing(client, instance.instance_id) is not None:
            return
        try:
            client.create_workflow_instance(options, workflow, *args, execution_id=instance.execution_id)
        except InstanceAlreadyExists:
            if not idempotent:
                raise

    if idempotent and not transaction.get_connection(using).in_atomic_block:
        existing = _existing(client, instance.instance_id)
        if existing is not None:
            return existing
    transaction.on_commit(start, using=using)  # runs at once outside a transaction
    return instance


def signal_workflow(instance_id: str, name: str, arg: Any = None, *, backend: str = "default") -> None:
    """Send a signal to the active execution of ``instance_id`` (``InstanceNotFound`` if none)."""
    _client(backend).signal_workflow(instance_id, name, arg)


def cancel_workflow(instance: WorkflowInstance | str, *, backend: str = "default") -> None:
    """Ask a workflow to cancel; ``instance`` is a handle or an instance id (latest execution)."""
    _client(backend).cancel_workflow_instance(instance)


async def astart_workflow(workflow: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> WorkflowInstance:
    return await sync_to_async(start_workflow)(workflow, *args, **kwargs)


async def asignal_workflow(instance_id: str, name: str, arg: Any = None, *, backend: str = "default") -> None:
    await sync_to_async(signal_workflow)(instance_id, name, arg, backend=backend)


async def acancel_workflow(instance: WorkflowInstance | str, *, backend: str = "default") -> None:
    await sync_to_async(cancel_workflow)(instance, backend=backend)


def _new_id() -> str:
    import uuid

    return str(uuid.uuid4())


def _existing(client: Client, instance_id: str) -> WorkflowInstance | None:
    try:
        return client.backend.get_latest_execution(instance_id)
    except InstanceNotFound:
        return None
