"""Rows of the ORM backend to and from engine values (events, instances), and the shapes of the
rows the backend reads and keeps.

Event attributes are stored with the engine's JSON form (``engine.history.attributes_to_json``)
in one ``Payload`` row per event; pending, history and activity rows point at it (``sql.HotSql``
inserts them, payloads first, as the foreign keys need).
"""

from __future__ import annotations

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


@dataclass(slots=True)
class NewExecution:
    """A new, active execution to insert (``sql.HotSql.insert_executions``, which sets
    ``row_id``); its times come from the database clock."""

    instance: WorkflowInstance
    workflow_name: str
    queue: str
    metadata: dict[str, Any]
    #: When, from now, its execution timeout ends it (``rules.execution_deadline``); None: never.
    timeout: timedelta | None = None
    #: Sequence id of its last history event (an execution created with its history).
    last_sequence_id: int = 0
    #: Primary key, once inserted.
    row_id: int = 0

    @property
    def parent_columns(self) -> tuple[str, str, int]:
        """parent_instance_id, parent_execution_id, parent_schedule_event_id (empty: a root)."""
        parent = self.instance.parent
        if parent is None:
            return "", "", 0
        return parent.instance_id, parent.execution_id, self.instance.parent_event_id


def new_execution(
    instance: WorkflowInstance, attributes: WorkflowExecutionStartedAttributes, timeout: timedelta | None = None
) -> NewExecution:
    """The row of a new, active execution (not inserted yet). ``timeout``: when, from now, its
    execution timeout ends it (``rules.execution_deadline``)."""
    return NewExecution(instance, attributes.name, attributes.queue, dict(attributes.metadata), timeout)
