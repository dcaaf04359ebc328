"""Completing a workflow task in one transaction (port of go-workflows' SQL ``CompleteWorkflowTask``,
with the fences of reference/reliability.md §5 and the memory backend's semantics).

Statement plan (the common case, a task that keeps the execution active, is five statements:
the fenced UPDATE, one DELETE and three multi-row INSERTs):

1. Fence. ``UPDATE instance SET <new state, lease released, sticky> WHERE id=? AND lease_token=?
   AND locked_until > <db now>``; no row means the lease is lost. A task that *ends* the execution
   first locks the row with the same fence (``SELECT ... FOR UPDATE``) and checks that no visible
   event arrived that the task did not see; if one did, the lease is released and the completion
   rejected, so a signal is never accepted and then lost (C4).
2. The consumed pending events are deleted (all of them if the execution ended, with the
   payloads of leftover timers); ``TimerCanceled`` deletes the canceled timer's future event.
3. Workflow events are delivered (``delivery``), creating sub-workflow executions.
4. Payloads, history, activity tasks and pending events (timers and deliveries) are inserted with
   one multi-row INSERT per table. Payloads of consumed events are reused by their history rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q, Subquery

from ...engine.backend import ActivityTask, BackendOptions
from ...engine.core import InstanceState
from ...engine.errors import LeaseLost
from ...engine.history import (
    Event,
    EventType,
    WorkflowEvent,
    WorkflowExecutionFinishedAttributes,
)
from ...models import ActivityTask as ActivityRow
from ...models import HistoryEvent, Outcome, Payload, PendingEvent
from ...models import WorkflowInstance as InstanceRow
from ..rules import activity_queue
from .delivery import resolve_deliveries
from .rows import RowBatch
from .sql import HotSql, payload_json
from .transactions import DbNow, raw_delete


@dataclass(frozen=True)
class WorkflowTaskData:
    """What the backend keeps in ``WorkflowTask.custom_data``."""

    row_id: int
    #: Primary keys of the pending rows delivered in ``new_events``.
    pending_ids: tuple[int, ...]
    #: Payload of each delivered event, reused when the event moves to the history.
    payload_ids: dict[str, str] = field(default_factory=dict)


@dataclass
class CompletionResult:
    rejected: bool = False
    #: Activity tasks were queued for pollers (not all leased by the completion).
    activities: bool = False
    timers: list[datetime] = field(default_factory=list)
    #: Activity tasks the completion leased to the completing worker.
    leased: list[ActivityTask] = field(default_factory=list)


def visible() -> Q:
    """Pending events whose time has come (``visible_at`` NULL means now)."""
    return Q(visible_at__isnull=True) | Q(visible_at__lte=DbNow())


def outcome_of(state: InstanceState, executed_events: Sequence[Event]) -> str:
    if state is InstanceState.CONTINUED_AS_NEW:
        return str(Outcome.CONTINUED_AS_NEW)
    for event in reversed(executed_events):
        attributes = event.attributes
        if isinstance(attributes, WorkflowExecutionFinishedAttributes):
            if attributes.error is None:
                return str(Outcome.COMPLETED)
            return str(Outcome.CANCELED) if attributes.error.type == "Canceled" else str(Outcome.FAILED)
    return str(Outcome.COMPLETED)


def delete_execution_rows(using: str, row_ids: Sequence[int]) -> None:
    """Delete executions and everything stored for them, children first."""
    for model in (HistoryEvent, PendingEvent, ActivityRow, Payload):
        raw_delete(model.objects.using(using).filter(instance_id__in=row_ids))
    raw_delete(InstanceRow.objects.using(using).filter(pk__in=row_ids))


def delete_pending(using: str, row_id: int, condition: Q, keep: Sequence[int] = ()) -> None:
    """Delete the pending events of one execution matching ``condition`` and, except for those
    in ``keep`` (consumed events, whose payloads their history rows now share), their payloads."""
    pending = PendingEvent.objects.using(using).filter(condition, instance_id=row_id)
    orphaned = pending.exclude(pk__in=keep) if keep else pending
    raw_delete(Payload.objects.using(using).filter(pk__in=Subquery(orphaned.order_by().values("payload_id"))))
    raw_delete(pending)


class Completion:
    """One call of ``complete_workflow_task``, run inside the backend's transaction."""

    def __init__(
        self,
        *,
        using: str,
        options: BackendOptions,
        can_return_ids: bool,
        task: Any,
        state: InstanceState,
        executed_events: Sequence[Event],
        activity_events: Sequence[Event],
        timer_events: Sequence[Event],
        workflow_events: Sequence[WorkflowEvent],
        now: datetime,
        activity_queues: Sequence[str] = (),
        max_leased_activities: int = 0,
        sql: HotSql | None = None,
    ) -> None:
        self.using = using
        self.options = options
        self.can_return_ids = can_return_ids
        self.task = task
        self.data: WorkflowTaskData = task.custom_data
        self.state = state
        self.executed_events = executed_events
        self.activity_events = activity_events
        self.timer_events = timer_events
        self.workflow_events = workflow_events
        self.now = now
        self.activity_queues = activity_queues
        self.max_leased_activities = max_leased_activities
        self.sql = sql
        self._leased_rows: list[tuple[ActivityRow, Event]] = []

    def _leased(self) -> Any:
        return InstanceRow.objects.using(self.using).filter(
            pk=self.data.row_id, lease_token=self.task.lease_token, locked_until__gt=DbNow()
        )

    def run(self) -> CompletionResult:
        if self._is_plain_step():
            return self._run_plain_step()
        finishing = self.state is not InstanceState.ACTIVE
        if finishing:
            if not list(self._leased().select_for_update().values_list("pk")):
                raise LeaseLost()
            if self._unseen_events():
                self._leased().update(locked_until=None, lease_token="", sticky_until=None)
                return CompletionResult(rejected=True)
        if self._leased().update(**self._new_state(finishing)) != 1:
            raise LeaseLost()
        removing = self.state is InstanceState.CONTINUED_AS_NEW and self.options.remove_continued_as_new_instances
        self._delete_consumed(finishing)
        deliveries = resolve_deliveries(
            self.using,
            sender=self.task.instance,
            sender_row_id=self.data.row_id,
            sender_active=not finishing,
            workflow_events=self.workflow_events,
            now=self.now,
            can_return_ids=self.can_return_ids,
        )
        batch = RowBatch()
        result = CompletionResult()
        if not removing:
            self._own_rows(batch, finishing, result)
        for target, event in deliveries:
            batch.add_pending(target.pk, event)
        batch.save(self.using)
        if removing:
            delete_execution_rows(self.using, [self.data.row_id])
        result.leased = self._leased_tasks()
        return result

    def _is_plain_step(self) -> bool:
        """The common task: the execution goes on, nothing is delivered elsewhere, no timer is
        canceled. It runs on precompiled SQL (``sql``); everything else on the ORM below."""
        removing = self.state is InstanceState.CONTINUED_AS_NEW and self.options.remove_continued_as_new_instances
        return (
            self.sql is not None
            and not removing
            and not self.workflow_events
            and not any(e.type is EventType.TIMER_CANCELED for e in self.executed_events)
        )

    def _run_plain_step(self) -> CompletionResult:
        sql = self.sql
        assert sql is not None
        row_id = self.data.row_id
        token = self.task.lease_token
        last = max((e.sequence_id for e in self.executed_events), default=None)
        finishing = self.state is not InstanceState.ACTIVE
        if finishing:
            if not sql.lock_leased(row_id, token):
                raise LeaseLost()
            if sql.has_unseen_pending(row_id, self.data.pending_ids):
                sql.release_lease(row_id, token)
                return CompletionResult(rejected=True)
            outcome = outcome_of(self.state, self.executed_events)
            if not sql.finish(
                row_id, token, state=self.state.value, outcome=outcome, last_sequence_id=last, sticky=self.options.sticky
            ):
                raise LeaseLost()
            # Whatever is left (future timers) dies with the execution.
            sql.drop_pending(row_id, keep_payloads_of=self.data.pending_ids)
        else:
            if not sql.fenced_release(row_id, token, self.options.sticky, last):
                raise LeaseLost()
            sql.delete_pending(self.data.pending_ids)
        payload_ids = dict(self.data.payload_ids)
        payloads: list[tuple[str, int, str]] = []

        def payload_for(event: Event) -> str:
            payload_id = payload_ids.get(event.id)
            if payload_id is None:
                payload_id = payload_ids[event.id] = uuid.uuid4().hex
                payloads.append((payload_id, row_id, payload_json(event)))
            return payload_id

        history = [(row_id, payload_for(event), event) for event in self.executed_events]
        activities = [
            (row_id, payload_for(event), event, activity_queue(event, self.task.queue)) for event in self.activity_events
        ]
        # Timers of an ended execution never fire; nothing is leased for it either.
        timers = [] if finishing else [(row_id, payload_for(event), event) for event in self.timer_events]
        leasable = [] if finishing else [event.id for _, _, event, queue in activities if queue in self.activity_queues]
        leases = {event_id: uuid.uuid4().hex for event_id in leasable[: self.max_leased_activities]}
        sql.insert_payloads(payloads)
        sql.insert_events(sql.history, history)
        leased_ids = sql.insert_activities(activities, leases, self.options.worker_name, self.options.activity_lock)
        sql.insert_events(sql.pending, timers)
        result = CompletionResult(
            activities=len(leases) < len(activities),
            timers=[event.visible_at for _, _, event in timers if event.visible_at is not None],
        )
        result.leased = [
            ActivityTask(
                id=str(leased_ids[event.id]),
                activity_id=event.id,
                queue=queue,
                instance=self.task.instance,
                event=event,
                lease_token=leases[event.id],
                lease_count=1,
                custom_data=(leased_ids[event.id], row_id),
            )
            for _, _, event, queue in activities
            if event.id in leases
        ]
        return result

    def _unseen_events(self) -> bool:
        return (
            PendingEvent.objects.using(self.using)
            .filter(visible(), instance_id=self.data.row_id)
            .exclude(pk__in=self.data.pending_ids)
            .exists()
        )

    def _new_state(self, finishing: bool) -> dict[str, Any]:
        values: dict[str, Any] = {
            "locked_until": None,
            "lease_token": "",
            "sticky_until": DbNow(self.options.sticky),
        }
        if self.executed_events:
            values["last_sequence_id"] = max(e.sequence_id for e in self.executed_events)
        if finishing:
            values.update(
                state=self.state.value,
                outcome=outcome_of(self.state, self.executed_events),
                completed_at=DbNow(),
                active_instance_id=None,
            )
        return values

    def _delete_consumed(self, finishing: bool) -> None:
        consumed = self.data.pending_ids
        if finishing:
            # Whatever is left (future timers) dies with the execution.
            delete_pending(self.using, self.data.row_id, Q(), keep=consumed)
            return
        canceled = {e.schedule_event_id for e in self.executed_events if e.type is EventType.TIMER_CANCELED}
        if canceled:
            timers = Q(event_type=EventType.TIMER_FIRED.value, schedule_event_id__in=canceled)
            delete_pending(self.using, self.data.row_id, Q(pk__in=consumed) | timers, keep=consumed)
        elif consumed:
            raw_delete(PendingEvent.objects.using(self.using).filter(pk__in=consumed))

    def _own_rows(self, batch: RowBatch, finishing: bool, result: CompletionResult) -> None:
        row_id = self.data.row_id
        payload_ids = dict(self.data.payload_ids)
        for event in self.executed_events:
            payload_id = payload_ids.get(event.id)
            if payload_id is None:
                payload_id = payload_ids[event.id] = batch.payload(row_id, event)
            batch.add_history(row_id, event, payload_id)
        for event in self.activity_events:
            row = batch.add_activity(row_id, event, activity_queue(event, self.task.queue), payload_ids.get(event.id))
            if len(self._leased_rows) < self.max_leased_activities and row.queue in self.activity_queues:
                # Leased in the INSERT itself, on the database clock, to the completing worker.
                row.locked_until = DbNow(self.options.activity_lock)
                row.lease_token = uuid.uuid4().hex
                row.worker = self.options.worker_name
                row.lease_count = 1
                self._leased_rows.append((row, event))
            else:
                result.activities = True
        if finishing:
            return  # timers of an ended execution never fire
        for event in self.timer_events:
            batch.add_pending(row_id, event)
            if event.visible_at is not None:
                result.timers.append(event.visible_at)

    def _leased_tasks(self) -> list[ActivityTask]:
        if not self._leased_rows:
            return []
        if any(row.pk is None for row, _ in self._leased_rows):
            # No RETURNING from the bulk INSERT (MySQL): one SELECT finds the new ids.
            ids = dict(
                ActivityRow.objects.using(self.using)
                .filter(instance_id=self.data.row_id, event_id__in=[row.event_id for row, _ in self._leased_rows])
                .values_list("event_id", "pk")
            )
            for row, _ in self._leased_rows:
                row.pk = ids[row.event_id]
        return [
            ActivityTask(
                id=str(row.pk),
                activity_id=event.id,
                queue=row.queue,
                instance=self.task.instance,
                event=event,
                lease_token=row.lease_token,
                lease_count=1,
                custom_data=(row.pk, self.data.row_id),
            )
            for row, event in self._leased_rows
        ]
