"""Rows of the ORM backend to and from engine values (events, instances).

Event attributes are stored with the engine's JSON form (``engine.history.attributes_to_json``)
in one ``Payload`` row per event; pending, history and activity rows point at it. ``RowBatch``
collects the rows one transaction writes and inserts them with one ``bulk_create`` per table, in
the order the foreign keys need: payloads, then history, activities and pending events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...engine.core import WorkflowInstance
from ...engine.history import (
    Event,
    EventType,
    WorkflowExecutionStartedAttributes,
    attributes_from_json,
    attributes_to_json,
)
from ...models import ActivityTask as ActivityRow
from ...models import EventRow, HistoryEvent, Payload, PendingEvent
from ...models import WorkflowInstance as InstanceRow

#: Columns that identify an execution and its parent (see ``instance_from``).
INSTANCE_COLUMNS = (
    "instance_id",
    "execution_id",
    "parent_instance_id",
    "parent_execution_id",
    "parent_schedule_event_id",
)

#: Columns of an execution that a workflow task needs (see ``OrmBackend._lease_workflow_task``).
TASK_COLUMNS = ("pk", "queue", "workflow_name", "metadata", "last_sequence_id", *INSTANCE_COLUMNS)

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


def _event_columns(event: Event) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "event_type": event.type.value,
        "timestamp": event.timestamp,
        "schedule_event_id": event.schedule_event_id,
        "sequence_id": event.sequence_id,
        "visible_at": event.visible_at,
    }


@dataclass
class RowBatch:
    """The rows one transaction inserts, written table by table in ``save``."""

    payloads: list[Payload] = field(default_factory=list)
    history: list[HistoryEvent] = field(default_factory=list)
    activities: list[ActivityRow] = field(default_factory=list)
    pending: list[PendingEvent] = field(default_factory=list)

    def payload(self, instance_row_id: int, event: Event) -> str:
        payload_id = uuid.uuid4().hex
        self.payloads.append(
            Payload(id=payload_id, instance_id=instance_row_id, data=attributes_to_json(event.attributes))
        )
        return payload_id

    def add_pending(self, instance_row_id: int, event: Event, payload_id: str | None = None) -> None:
        self.pending.append(self._row(PendingEvent, instance_row_id, event, payload_id))

    def add_history(self, instance_row_id: int, event: Event, payload_id: str | None = None) -> None:
        self.history.append(self._row(HistoryEvent, instance_row_id, event, payload_id))

    def add_activity(self, instance_row_id: int, event: Event, queue: str, payload_id: str | None = None) -> ActivityRow:
        row = self._row(ActivityRow, instance_row_id, event, payload_id)
        row.queue = queue
        self.activities.append(row)
        return row

    def _row(self, model: type[EventRow], instance_row_id: int, event: Event, payload_id: str | None) -> Any:
        if payload_id is None:
            payload_id = self.payload(instance_row_id, event)
        return model(instance_id=instance_row_id, payload_id=payload_id, **_event_columns(event))

    def save(self, using: str) -> None:
        # Payloads first: MySQL checks the history's foreign key at once.
        for model, rows in (
            (Payload, self.payloads),
            (HistoryEvent, self.history),
            (ActivityRow, self.activities),
            (PendingEvent, self.pending),
        ):
            if rows:
                model.objects.using(using).bulk_create(rows)


def new_execution(instance: WorkflowInstance, attributes: WorkflowExecutionStartedAttributes) -> InstanceRow:
    """The row of a new, active execution (not saved); its times come from the database clock."""
    from .transactions import DbNow

    return InstanceRow(
        instance_id=instance.instance_id,
        execution_id=instance.execution_id,
        active_instance_id=instance.instance_id,
        workflow_name=attributes.name,
        queue=attributes.queue,
        metadata=dict(attributes.metadata),
        created_at=DbNow(),
        **parent_columns(instance),
    )


def execution_rows(
    using: str, rows: Sequence[InstanceRow], *, can_return_ids: bool
) -> None:
    """Insert new executions and set their primary keys (needed for the rows that point at them).

    Where ``INSERT ... RETURNING`` exists (PostgreSQL, SQLite, MariaDB) that is one statement;
    MySQL cannot return the ids of a multi-row insert, so there each row is its own INSERT.
    """
    if not rows:
        return
    manager = InstanceRow.objects.using(using)
    if can_return_ids:
        manager.bulk_create(rows)
        return
    for row in rows:
        row.save(using=using, force_insert=True)
