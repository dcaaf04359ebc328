"""Bulk creation of new instances (``OrmBackend.create_workflow_instances``): executions, their
payloads and their start events, inside the caller's transaction.

On PostgreSQL each table gets one ``INSERT ... SELECT FROM unnest(...)`` of column arrays, a
dozen parameters for any number of rows; elsewhere multi-row inserts (``rows.execution_rows``,
``HotSql.insert_pending``). The rows are the same either way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ...engine.core import WorkflowInstance
from ...engine.history import Event, WorkflowExecutionStartedAttributes
from ..rules import execution_deadline
from .rows import execution_rows, new_execution, parent_columns
from .sql import NewExecution
from .store import OrmStore


def create_executions(store: OrmStore, starts: Sequence[tuple[WorkflowInstance, Event]]) -> None:
    """Write the new executions of ``starts`` (validated) with their start events; an instance
    id that is active already, or twice in ``starts``, raises ``IntegrityError``."""
    sql = store.sql
    deliveries: list[tuple[int, str, Event]] = []
    if sql.arrays(starts):
        rows = []
        for instance, event in starts:
            attributes = _attributes(event)
            timeout = execution_deadline(event)
            rows.append(
                NewExecution(
                    instance_id=instance.instance_id,
                    execution_id=instance.execution_id,
                    **parent_columns(instance),
                    workflow_name=attributes.name,
                    queue=attributes.queue,
                    metadata=json.dumps(dict(attributes.metadata)),
                    timeout=None if timeout is None else timeout.total_seconds(),
                )
            )
        row_ids = sql.insert_new_executions(rows)
        deliveries = [(row_ids[instance.instance_id], _attributes(event).queue, event) for instance, event in starts]
    else:
        executions = [new_execution(instance, _attributes(event), execution_deadline(event)) for instance, event in starts]
        execution_rows(store.using, executions, can_return_ids=store.can_return_ids)
        deliveries = [(row.pk, row.queue, event) for row, (_, event) in zip(executions, starts, strict=True)]
    # Starts of root instances are new work; one with a parent is part of its parent's.
    for new in (True, False):
        part = [delivery for delivery, (instance, _) in zip(deliveries, starts, strict=True) if (instance.parent is None) is new]
        if part:
            store.insert_events(part, new_instances=new)


def _attributes(event: Event) -> WorkflowExecutionStartedAttributes:
    attributes = event.attributes
    assert isinstance(attributes, WorkflowExecutionStartedAttributes)
    return attributes
