"""``list_workflow_instances`` (one indexed query per page) and ``get_pending_events`` of the ORM
backend.

The filter maps onto columns of ``WorkflowInstance`` (state, workflow name, queue, creation time,
instance id prefix, parent), all indexed; the order (creation time, instance id, execution id,
newest first; see ``engine.listing``) walks the creation-time index backwards, and the cursor
becomes a keyset condition, so page 1000 costs what page 1 costs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import connections
from django.db.models import CharField, Q, Value

from ...engine.backend import InstanceInfo, InstancePage
from ...engine.core import InstanceState, WorkflowInstance
from ...engine.errors import InstanceNotFound
from ...engine.history import Event
from ...engine.listing import Cursor, InstanceFilter, check_limit
from ...models import PendingEvent
from ...models import WorkflowInstance as InstanceRow
from .rows import EVENT_COLUMNS, INSTANCE_COLUMNS, event_from, instance_from

_COLUMNS = ("workflow_name", "queue", "state", "created_at", "completed_at", "metadata", *INSTANCE_COLUMNS)


def _stored(using: str, moment: datetime) -> Any:
    """``moment`` as a comparison operand for ``created_at``. SQLite compares datetimes as text,
    and the backend writes them with the database clock (``DbNow``) in milliseconds, while Django
    would send six fraction digits: the same instant would compare as different text."""
    if connections[using].vendor != "sqlite" or moment.microsecond % 1000:
        return moment
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{moment.microsecond // 1000:03d}"
    return Value(text, output_field=CharField())


def filtered(using: str, filter: InstanceFilter | None) -> Any:
    """The executions that match ``filter``, unordered."""
    rows = InstanceRow.objects.using(using).order_by()
    if filter is None:
        return rows
    if filter.state is not None:
        rows = rows.filter(state=filter.state.value)
    if filter.workflow_name is not None:
        rows = rows.filter(workflow_name=filter.workflow_name)
    if filter.queue is not None:
        rows = rows.filter(queue=filter.queue)
    if filter.created_after is not None:
        rows = rows.filter(created_at__gte=_stored(using, filter.created_after))
    if filter.instance_id_prefix:
        rows = rows.filter(instance_id__startswith=filter.instance_id_prefix)
    if filter.parent is not None:
        rows = rows.filter(
            parent_instance_id=filter.parent.instance_id, parent_execution_id=filter.parent.execution_id
        )
    return rows


def list_workflow_instances(
    using: str, run: Any, filter: InstanceFilter | None, limit: int, cursor: str | None
) -> InstancePage:
    """One page; ``run`` is the backend's ``Transactions.run`` (reconnects after a lost connection)."""
    check_limit(limit)
    rows = filtered(using, filter)
    if cursor:
        after = Cursor.decode(cursor)
        created = _stored(using, after.created_at)
        rows = rows.filter(
            Q(created_at__lt=created)
            | Q(created_at=created, instance_id__lt=after.instance_id)
            | Q(created_at=created, instance_id=after.instance_id, execution_id__lt=after.execution_id)
        )
    query = rows.order_by("-created_at", "-instance_id", "-execution_id").values_list(*_COLUMNS)[: limit + 1]
    values = run(lambda: list(query), atomic=False, reconnect=True)
    infos = [_info(row) for row in values[:limit]]
    next_cursor = None
    if len(values) > limit:
        last = infos[-1]
        next_cursor = Cursor(last.created_at, last.instance.instance_id, last.instance.execution_id).encode()
    return InstancePage(infos, next_cursor)


def _info(row: tuple[Any, ...]) -> InstanceInfo:
    name, queue, state, created_at, completed_at, metadata, *identity = row
    return InstanceInfo(
        instance=instance_from(*identity),
        workflow_name=name,
        queue=queue,
        state=InstanceState(state),
        created_at=created_at,
        completed_at=completed_at,
        metadata=dict(metadata or {}),
    )


def pending_events(using: str, run: Any, instance: WorkflowInstance) -> list[Event]:
    """The execution's inbox: events not executed yet, in arrival order (timers included)."""

    def read() -> list[Event]:
        rows = PendingEvent.objects.using(using).filter(
            instance__instance_id=instance.instance_id, instance__execution_id=instance.execution_id
        )
        events = [event_from(*values) for values in rows.order_by("id").values_list(*EVENT_COLUMNS)]
        if not events and not InstanceRow.objects.using(using).filter(
            instance_id=instance.instance_id, execution_id=instance.execution_id
        ).exists():
            raise InstanceNotFound()
        return events

    return run(read, atomic=False, reconnect=True)

