"""Rows of the ORM backend to and from engine values (events, instances), and the shapes of the
rows the backend reads and keeps.

Event attributes are stored with the engine's JSON form (``engine.history.attributes_to_json``)
in one ``Payload`` row per event; pending, history and activity rows point at it (``sql.HotSql``
inserts them, payloads first, as the foreign keys need).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from ...engine.core import WorkflowInstance
from ...engine.history import (
    Event,
    EventType,
    WorkflowExecutionStartedAttributes,
    attributes_from_json,
)
from ...models import WorkflowInstance as InstanceRow
from .transactions import DbNow

#: Columns that identify an execution and its parent (see ``instance_from``).
INSTANCE_COLUMNS = (
    "instance_id",
    "execution_id",
    "parent_instance_id",
    "parent_execution_id",
    "parent_schedule_event_id",
)

#: Columns that make an event (see ``event_from``), attributes read through the payload.
EVENT_COLUMNS = ("event_id", "event_type", "timestamp", "schedule_event_id", "sequence_id", "visible_at", "payload__data")


def instance_from(
    instance_id: str, execution_id: str, parent_instance_id: str, parent_execution_id: str, parent_event_id: int
) -> WorkflowInstance:
    """The engine's view of an execution; the parent link goes one level up, which is all the
    engine follows (results and failures go to the parent execution)."""
    parent = WorkflowInstance(parent_instance_id, parent_execution_id) if parent_instance_id else None
    return WorkflowInstance(instance_id, execution_id, parent=parent, parent_event_id=parent_event_id if parent else 0)


def parent_columns(instance: WorkflowInstance) -> dict[str, Any]:
    parent = instance.parent
    if parent is None:
        return {"parent_instance_id": "", "parent_execution_id": "", "parent_schedule_event_id": 0}
    return {
        "parent_instance_id": parent.instance_id,
        "parent_execution_id": parent.execution_id,
        "parent_schedule_event_id": instance.parent_event_id,
    }


def event_from(
    event_id: str,
    event_type: str,
    timestamp: Any,
    schedule_event_id: int,
    sequence_id: int,
    visible_at: Any,
    data: str,
) -> Event:
    kind = EventType(event_type)
    return Event(
        id=event_id,
        type=kind,
        timestamp=timestamp,
        attributes=attributes_from_json(kind, data),
        schedule_event_id=schedule_event_id,
        sequence_id=sequence_id,
        visible_at=visible_at,
    )


class TaskRow(NamedTuple):
    """The columns of an execution that its workflow task needs (``sql.TASK_COLUMNS``)."""

    row_id: int
    queue: str
    workflow_name: str
    metadata: Any
    last_sequence_id: int
    instance_id: str
    execution_id: str
    parent_instance_id: str
    parent_execution_id: str
    parent_schedule_event_id: int

    def instance(self) -> WorkflowInstance:
        return instance_from(*self[5:])


class PendingRow(NamedTuple):
    """A visible pending event of an execution, as a workflow task delivers it."""

    pending_id: int
    payload_id: str
    event: Event


@dataclass(frozen=True)
class WorkflowTaskData:
    """What the backend keeps in ``WorkflowTask.custom_data``."""

    row_id: int
    #: Primary keys of the pending rows delivered in ``new_events``.
    pending_ids: tuple[int, ...]
    #: Payload of each delivered event, reused when the event moves to the history.
    payload_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActivityTaskData:
    """What the backend keeps in ``ActivityTask.custom_data``."""

    row_id: int
    #: The row of the activity's execution.
    instance_row_id: int


def new_execution(
    instance: WorkflowInstance, attributes: WorkflowExecutionStartedAttributes, timeout: timedelta | None = None
) -> InstanceRow:
    """The row of a new, active execution (not saved); its times come from the database clock.
    ``timeout``: when, from now, its execution timeout ends it (``rules.execution_deadline``)."""
    return InstanceRow(
        timeout_at=None if timeout is None else DbNow(timeout),
        instance_id=instance.instance_id,
        execution_id=instance.execution_id,
        active_instance_id=instance.instance_id,
        workflow_name=attributes.name,
        queue=attributes.queue,
        metadata=dict(attributes.metadata),
        created_at=DbNow(),
        **parent_columns(instance),
    )


#: Executions per INSERT of a bulk creation (as ``sql._ROWS_PER_INSERT`` for the other rows).
_ROWS_PER_INSERT = 500


def execution_rows(
    using: str, rows: Sequence[InstanceRow], *, can_return_ids: bool
) -> None:
    """Insert new executions and set their primary keys (needed for the rows that point at them).

    Where ``INSERT ... RETURNING`` exists (PostgreSQL, SQLite, MariaDB) that is one statement per
    ``_ROWS_PER_INSERT`` rows;
    MySQL cannot return the ids of a multi-row insert, so there each row is its own INSERT.
    """
    if not rows:
        return
    manager = InstanceRow.objects.using(using)
    if can_return_ids:
        # In statements of _ROWS_PER_INSERT rows: the driver's cost to bind one statement grows
        # faster than its length (psycopg splits the whole text for each), so one INSERT of
        # 5,000 rows took longer than ten of 500.
        manager.bulk_create(rows, batch_size=_ROWS_PER_INSERT)
        return
    for row in rows:
        row.save(using=using, force_insert=True)
