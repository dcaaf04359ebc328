"""Bulk creation of new instances (``OrmBackend.create_workflow_instances``): executions, their
payloads and their start events, inside the caller's transaction.

On PostgreSQL each table gets one ``INSERT ... SELECT FROM unnest(...)`` of column arrays, a
dozen parameters for any number of rows; elsewhere multi-row inserts
(``HotSql.insert_executions``, ``HotSql.insert_pending``). The rows are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...engine.core import WorkflowInstance
from ...engine.history import Event, WorkflowExecutionStartedAttributes
from ..rules import execution_deadline
from .rows import new_execution
from .store import OrmStore


def create_executions(store: OrmStore, starts: Sequence[tuple[WorkflowInstance, Event]]) -> None:
    """Write the new executions of ``starts`` (validated) with their start events; an instance
    id that is active already, or twice in ``starts``, raises ``IntegrityError``."""
    rows = [new_execution(instance, _attributes(event), execution_deadline(event)) for instance, event in starts]
    store.sql.insert_executions(rows)
    deliveries = [(row.row_id, row.queue, event) for row, (_, event) in zip(rows, starts, strict=True)]
    # Starts of root instances are new work; one with a parent is part of its parent's.
    for new in (True, False):
        part = [delivery for delivery, (instance, _) in zip(deliveries, starts, strict=True) if (instance.parent is None) is new]
        if part:
            store.insert_events(part, new_instances=new)


def _attributes(event: Event) -> WorkflowExecutionStartedAttributes:
    attributes = event.attributes
    assert isinstance(attributes, WorkflowExecutionStartedAttributes)
    return attributes
