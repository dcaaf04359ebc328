"""Starting and steering workflows from views and signal receivers.

    def place_order(request):
        with transaction.atomic():
            order = Order.objects.create(...)
            start_workflow(process_order, order.pk, instance_id=f"order-{order.pk}")
        ...

A start (signal, cancellation) is atomic with the caller's transaction on database ``using``:

- When the workflow backend stores its rows in that database (the ORM backend on alias
  ``using``), it is written *inside* the transaction: commit means started, rollback means
  nothing happened, and no crash between the commit and a later step can lose it.
- With any other store (Redis, an ORM backend on another alias) it is written right after the
  transaction commits (``transaction.on_commit``), so a rolled-back view starts nothing; a
  process that dies between the database's commit and that write loses it.

Outside a transaction it is written at once. Either way the input is checked first, once (the
instance id, the arguments against the workflow's signature, their conversion to payloads), so
bad input fails in the view and nothing is written. A given ``instance_id`` makes the start
idempotent: if an execution with that id exists already (running or finished), nothing new
starts and the handle of that execution is returned, inside a transaction as outside one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, transaction

from .client import Client, PreparedStart, WorkflowInstanceOptions
from .engine.backend import Backend
from .engine.core import DEFAULT_QUEUE, InstanceState, WorkflowInstance, validate_id
from .engine.errors import InstanceAlreadyExists, InstanceFinished, InstanceNotFound


def _client(backend: str) -> Client:
    from .backends import workflow_backends

    return Client(workflow_backends[backend])


def writes_in_transaction(backend: Backend, using: str) -> bool:
    """Does ``backend`` write through the connection of database ``using``, so that its writes
    belong to the caller's transaction there?"""
    from .backends.orm import OrmBackend

    return isinstance(backend, OrmBackend) and backend.using == using


def _deferred(backend: Backend, using: str) -> bool:
    """Must the write wait for the caller's transaction on ``using`` to commit?"""
    return transaction.get_connection(using).in_atomic_block and not writes_in_transaction(backend, using)


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
    """Start ``workflow(*args)`` atomically with the current transaction on ``using``.

    ``start_delay`` and ``execution_timeout`` are those of ``WorkflowInstanceOptions``.
    Returns the handle of the execution started, or of the one that already had
    ``instance_id``. With a store outside that database the handle is of the execution that
    will start when the transaction commits.
    """
    client = _client(backend)
    options = WorkflowInstanceOptions(
        instance_id=instance_id,
        queue=queue or DEFAULT_QUEUE,
        start_delay=start_delay,
        execution_timeout=execution_timeout,
    )
    prepared = client.prepare_workflow_instance(options, workflow, *args)
    return start_prepared(client, prepared, idempotent=instance_id is not None, using=using)


def start_prepared(client: Client, prepared: PreparedStart, *, idempotent: bool, using: str) -> WorkflowInstance:
    """Write ``prepared`` now or, when the store is outside the caller's transaction on
    ``using``, once that transaction commits (see the module docstring)."""
    if not _deferred(client.backend, using):
        return _write_start(client, prepared, idempotent)
    if idempotent:
        existing = _existing(client, prepared.instance.instance_id)
        if existing is not None:
            return existing
    transaction.on_commit(lambda: _write_start(client, prepared, idempotent), using=using)
    return prepared.instance


def _write_start(client: Client, prepared: PreparedStart, idempotent: bool) -> WorkflowInstance:
    if idempotent:
        existing = _existing(client, prepared.instance.instance_id)
        if existing is not None:
            return existing
    try:
        return client.create_prepared_workflow_instance(prepared)
    except InstanceAlreadyExists:
        # A concurrent start of the same id won the race. Inside the caller's transaction the
        # ORM backend's savepoint was rolled back, so the transaction goes on; the winner is
        # committed (the unique index waited for it) and visible under READ COMMITTED.
        existing = _existing(client, prepared.instance.instance_id) if idempotent else None
        if existing is None:
            raise
        return existing


def signal_workflow(
    instance_id: str, name: str, arg: Any = None, *, backend: str = "default", using: str = DEFAULT_DB_ALIAS
) -> None:
    """Send a signal to the active execution of ``instance_id``, atomically with the current
    transaction on ``using`` (``InstanceNotFound``/``InstanceFinished`` if none is active)."""
    client = _client(backend)
    validate_id(instance_id)
    event = client.prepare_signal(name, arg)
    if not _deferred(client.backend, using):
        client.backend.signal_workflow(instance_id, event)
        return
    # Checked now as well, so that a wrong id fails in the view rather than after the commit.
    _require_active(client, client.backend.get_latest_execution(instance_id))
    transaction.on_commit(lambda: client.backend.signal_workflow(instance_id, event), using=using)


def cancel_workflow(
    instance: WorkflowInstance | str, *, backend: str = "default", using: str = DEFAULT_DB_ALIAS
) -> None:
    """Ask a workflow to cancel, atomically with the current transaction on ``using``;
    ``instance`` is a handle or an instance id (its latest execution)."""
    client = _client(backend)
    if not _deferred(client.backend, using):
        client.cancel_workflow_instance(instance)
        return
    execution = instance if isinstance(instance, WorkflowInstance) else client.backend.get_latest_execution(validate_id(instance))
    _require_active(client, execution)
    transaction.on_commit(lambda: client.cancel_workflow_instance(execution), using=using)


async def astart_workflow(workflow: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> WorkflowInstance:
    return await sync_to_async(start_workflow)(workflow, *args, **kwargs)


async def asignal_workflow(
    instance_id: str, name: str, arg: Any = None, *, backend: str = "default", using: str = DEFAULT_DB_ALIAS
) -> None:
    await sync_to_async(signal_workflow)(instance_id, name, arg, backend=backend, using=using)


async def acancel_workflow(
    instance: WorkflowInstance | str, *, backend: str = "default", using: str = DEFAULT_DB_ALIAS
) -> None:
    await sync_to_async(cancel_workflow)(instance, backend=backend, using=using)


def _existing(client: Client, instance_id: str) -> WorkflowInstance | None:
    try:
        return client.backend.get_latest_execution(instance_id)
    except InstanceNotFound:
        return None


def _require_active(client: Client, instance: WorkflowInstance) -> None:
    if client.backend.get_workflow_instance_state(instance) is not InstanceState.ACTIVE:
        raise InstanceFinished()
