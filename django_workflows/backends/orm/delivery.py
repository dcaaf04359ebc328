"""Where the workflow events of a completed workflow task go (go-workflows ``CompleteWorkflowTask``'s
"deliver workflow events" step, with the memory backend's rules).

A ``WorkflowExecutionStarted`` event creates a sub-workflow (or the next execution of a
continue-as-new); if its instance id already has an active execution, the parent receives
``SubWorkflowFailed`` instead. Cancellations and signals follow the target's *active* execution
(a child may have continued as new); other events go to the exact execution they name. Events
for executions that are not active are dropped.

Every target execution is locked (``SELECT ... FOR UPDATE``, in id order, one precompiled
statement: ``sql.HotSql.lock_targets``) before anything is
written for it, so that a target finishing at the same moment either sees the event (and its
completion is rejected) or has finished first (and the event is dropped): an event is never
left behind in the inbox of a finished execution. A concurrent start of the same instance id
that this transaction could not see surfaces as an ``IntegrityError`` on the unique
``active_instance_id``; the caller retries the whole completion, which then sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...engine.core import InstanceState, WorkflowInstance
from ...engine.history import (
    Event,
    EventType,
    WorkflowEvent,
    WorkflowExecutionStartedAttributes,
)
from ..rules import FOLLOW_ACTIVE_EXECUTION, duplicate_sub_workflow_result, execution_deadline
from .rows import NewExecution, new_execution
from .sql import HotSql

_Key = tuple[str, str]


@dataclass
class Target:
    """An execution that receives events: an existing row, or one this transaction creates."""

    active: bool
    queue: str
    row_id: int | None = None
    new_row: NewExecution | None = None

    @property
    def pk(self) -> int:
        if self.new_row is not None:
            return self.new_row.row_id
        assert self.row_id is not None
        return self.row_id


def _key(instance: WorkflowInstance) -> _Key:
    return (instance.instance_id, instance.execution_id)


def _lock_targets(
    sql: HotSql, workflow_events: Sequence[WorkflowEvent], sender: WorkflowInstance, sender_row_id: int
) -> list[tuple[Any, ...]]:
    follow: set[str] = set()  # targets of events that go to the active execution
    active_ids: set[str] = set()  # instance ids whose active execution must be known
    instance_ids: set[str] = set()
    execution_ids: set[str] = set()

    def exact(instance: WorkflowInstance) -> None:
        instance_ids.add(instance.instance_id)
        execution_ids.add(instance.execution_id)

    for workflow_event in workflow_events:
        target, event = workflow_event.instance, workflow_event.event
        if event.type is EventType.WORKFLOW_EXECUTION_STARTED:
            active_ids.add(target.instance_id)
            exact(target)
            if target.parent is not None:
                exact(target.parent)
        elif event.type in FOLLOW_ACTIVE_EXECUTION:
            follow.add(target.instance_id)
        else:
            exact(target)
    active_ids |= follow

    rows = sql.lock_targets(sender_row_id, sorted(active_ids), sorted(instance_ids), sorted(execution_ids))
    missing = follow - {row[4] for row in rows} - {sender.instance_id}
    if missing:
        # A target that continued as new while this statement waited for its lock no longer
        # matches, and its successor was not in the statement's snapshot (PostgreSQL, READ
        # COMMITTED): a second statement sees it. Without this a cancellation could be dropped.
        seen = {row[0] for row in rows}
        rows += [row for row in sql.lock_targets(sender_row_id, sorted(missing), (), ()) if row[0] not in seen]
    return rows


def resolve_deliveries(
    sql: HotSql,
    *,
    sender: WorkflowInstance,
    sender_row_id: int,
    sender_queue: str,
    sender_active: bool,
    workflow_events: Sequence[WorkflowEvent],
    now: datetime,
) -> list[tuple[Target, Event]]:
    """Lock the targets, create new executions, and return the (target, event) pairs to insert,
    in order. The sender's own row must already carry its new state."""
    if not workflow_events:
        return []
    known: dict[_Key, Target] = {}
    active: dict[str, Target] = {}
    own = Target(active=sender_active, queue=sender_queue, row_id=sender_row_id)
    known[_key(sender)] = own
    if sender_active:
        active[sender.instance_id] = own
    for row_id, instance_id, execution_id, state, active_id, queue in _lock_targets(
        sql, workflow_events, sender, sender_row_id
    ):
        locked = Target(active=state == InstanceState.ACTIVE.value, queue=queue, row_id=row_id)
        known[(instance_id, execution_id)] = locked
        if active_id is not None:
            active[active_id] = locked

    deliveries: list[tuple[Target, Event]] = []
    children: list[NewExecution] = []
    for workflow_event in workflow_events:
        instance, event = workflow_event.instance, workflow_event.event
        if event.type is EventType.WORKFLOW_EXECUTION_STARTED:
            if instance.instance_id in active or _key(instance) in known:
                parent = known.get(_key(instance.parent)) if instance.parent is not None else None
                if parent is not None and parent.active:
                    deliveries.append((parent, duplicate_sub_workflow_result(instance, now)))
                continue
            attributes = event.attributes
            assert isinstance(attributes, WorkflowExecutionStartedAttributes)
            row = new_execution(instance, attributes, execution_deadline(event))
            child = Target(active=True, queue=attributes.queue, new_row=row)
            children.append(row)
            known[_key(instance)] = child
            active[instance.instance_id] = child
            deliveries.append((child, event))
            continue
        if event.type in FOLLOW_ACTIVE_EXECUTION:
            target = active.get(instance.instance_id)
        else:
            target = known.get(_key(instance))
        if target is not None and target.active:
            deliveries.append((target, event))
    sql.insert_executions(children)
    return deliveries
