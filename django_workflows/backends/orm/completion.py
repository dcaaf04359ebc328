"""Completing a workflow task in one transaction (port of go-workflows' SQL ``CompleteWorkflowTask``,
with the fences of reference/reliability.md §5 and the memory backend's semantics).

One plan for every task; the common one (the execution goes on, nothing delivered elsewhere)
is five statements: the fenced UPDATE, one DELETE and three multi-row INSERTs.

1. Fence. ``UPDATE instance SET <new state, lease released, sticky> WHERE <leased>``; no row
   means the lease is lost. A task that *ends* the execution first locks the row with the same
   fence (``SELECT ... FOR UPDATE``) and checks that no visible event arrived that the task did
   not see; if one did, the lease is released and the completion rejected, so a signal is never
   accepted and then lost (C4).
2. The consumed pending events are deleted (all of them if the execution ended, with the
   payloads of leftover timers); ``TimerCanceled`` deletes the canceled timer's future event;
   ``ActivityCancellationRequested`` drops the activity tasks nobody holds (they answer
   ``Canceled``) and flags the others (only when there are any).
3. Only if the task has workflow events: they are delivered (``delivery``), which locks their
   targets and creates sub-workflow executions.
4. Payloads, history, activity tasks and pending events (timers and deliveries) are inserted
   with one multi-row INSERT per table. Payloads of consumed events are reused by their history
   rows. Activities the worker asked for are leased to it in their INSERT.
5. Only for a continue-as-new with ``remove_continued_as_new_instances``: the execution's rows
   are deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ...engine.backend import ActivityTask, WorkflowTask, WorkflowTaskCompletion
from ...engine.clock import system_clock
from ...engine.core import InstanceState
from ...engine.errors import LeaseLost
from ...engine.history import Event, EventType, WorkflowExecutionFinishedAttributes
from ...models import ActivityTask as ActivityRow
from ...models import HistoryEvent, Outcome, Payload, PendingEvent
from ...models import WorkflowInstance as InstanceRow
from ..rules import activity_queue, canceled_activities, canceled_activity_result
from .delivery import resolve_deliveries
from .rows import ActivityTaskData, WorkflowTaskData
from .sql import new_token, payload_json
from .store import OrmStore
from .transactions import raw_delete


def outcome_of(state: InstanceState, executed_events: Sequence[Event]) -> str:
    """How an ending execution ended, for the ``outcome`` column."""
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


class Completion:
    """One call of ``complete_workflow_task``; ``run`` runs inside the backend's transaction."""

    def __init__(self, store: OrmStore, task: WorkflowTask, data: WorkflowTaskData, completion: WorkflowTaskCompletion) -> None:
        self.store = store
        self.task = task
        self.data = data
        self.completion = completion
        #: Set by ``run``: the completion was refused (new events arrived for an ending task).
        self.rejected = False
        #: Activity tasks were queued for pollers (not all leased by the completion).
        self.activities_queued = False
        #: Events were delivered to other executions.
        self.delivered = False
        #: (row id, queue) of the executions the task started (sub-workflows, the next
        #: execution of a continue-as-new), in order.
        self.started: list[tuple[int, str]] = []
        #: When the timers this task stored come due (wake-ups of this process's pollers).
        self.timers: list[datetime] = []
        #: Activity tasks the completion leased to the completing worker.
        self.leased: list[ActivityTask] = []
        #: Ids of the activities the task canceled, and the events of those that never ran.
        self.canceled_activities: set[str] = set()
        self.never_started: list[Event] = []

    def run(self) -> None:
        # Safe to run again after a rolled-back attempt: it only writes through the database.
        self.rejected, self.activities_queued, self.delivered, self.timers, self.leased = False, False, False, [], []
        self.started = []
        self.canceled_activities, self.never_started = set(), []
        result = self.completion.result
        finishing = self.completion.finishing
        store, sql, data = self.store, self.store.sql, self.data
        token = self.task.lease_token
        # 1. The fence.
        if finishing:
            if not sql.lock_leased(data.row_id, token):
                raise LeaseLost()
            if sql.has_unseen_pending(data.row_id, data.pending_ids):
                sql.release_execution(data.row_id, token)
                self.rejected = True
                return
            fenced = sql.finish(
                data.row_id,
                token,
                state=result.state.value,
                outcome=outcome_of(result.state, result.executed),
                last_sequence_id=self.completion.last_sequence_id,
                sticky=store.options.sticky,
            )
        else:
            fenced = sql.step(
                data.row_id, token, sticky=store.options.sticky, last_sequence_id=self.completion.last_sequence_id
            )
        if not fenced:
            raise LeaseLost()
        # 2. The consumed events (and, for an ending execution, whatever is left: future timers).
        if finishing:
            sql.drop_pending(data.row_id, keep_payloads_of=data.pending_ids)
        else:
            sql.delete_pending(data.pending_ids)
            canceled = [e.schedule_event_id for e in result.executed if e.type is EventType.TIMER_CANCELED]
            if canceled:
                sql.drop_canceled_timers(data.row_id, canceled)
        # Activities the workflow canceled: scheduled in this very task, they are never stored;
        # the others already are.
        self.canceled_activities = set(canceled_activities(result.executed))
        scheduled_now = {e.id for e in result.activity_events}
        earlier = [activity_id for activity_id in self.canceled_activities if activity_id not in scheduled_now]
        self.never_started = [e for e in result.activity_events if e.id in self.canceled_activities]
        if earlier:
            self.never_started += sql.cancel_activities(data.row_id, earlier)
        # 3. Deliveries to other executions.
        deliveries = resolve_deliveries(
            sql,
            sender=self.task.instance,
            sender_row_id=data.row_id,
            sender_queue=self.task.queue,
            sender_active=not finishing,
            workflow_events=result.workflow_events,
            now=system_clock.now(),
        )
        self.delivered = any(target.pk != data.row_id for target, _ in deliveries)
        self.started = [(target.pk, target.queue) for target, _ in deliveries if target.new_row is not None]
        removing = result.state is InstanceState.CONTINUED_AS_NEW and store.options.remove_continued_as_new_instances
        # 4. The rows.
        self._insert([(target.pk, target.queue, event) for target, event in deliveries], own_rows=not removing)
        # 5. Removal.
        if removing:
            delete_execution_rows(store.using, [data.row_id])

    def _insert(self, deliveries: list[tuple[int, str, Event]], *, own_rows: bool) -> None:
        store, sql, data = self.store, self.store.sql, self.data
        result = self.completion.result
        row_id = data.row_id
        payload_ids = dict(data.payload_ids)
        payloads: list[tuple[str, int, str]] = []

        def payload_for(owner: int, event: Event) -> str:
            payload_id = payload_ids.get(event.id) if owner == row_id else None
            if payload_id is None:
                payload_id = new_token()
                if owner == row_id:
                    payload_ids[event.id] = payload_id
                payloads.append((payload_id, owner, payload_json(event)))
            return payload_id

        history: list[tuple[int, str, Event]] = []
        activities: list[tuple[int, str, Event, str]] = []
        pending: list[tuple[int, str, str, Event]] = []
        if own_rows:
            history = [(row_id, payload_for(row_id, event), event) for event in result.executed]
            activities = [
                (row_id, payload_for(row_id, event), event, activity_queue(event, self.task.queue))
                for event in result.activity_events
                if event.id not in self.canceled_activities
            ]
            if not self.completion.finishing:  # timers of an ended execution never fire
                pending = [(row_id, self.task.queue, payload_for(row_id, event), event) for event in result.timer_events]
                self.timers = [event.visible_at for event in result.timer_events if event.visible_at is not None]
                now = system_clock.now()
                pending += [
                    (row_id, self.task.queue, payload_for(row_id, answer), answer)
                    for answer in (canceled_activity_result(event.schedule_event_id, now) for event in self.never_started)
                ]
        pending += [(target, queue, payload_for(target, event), event) for target, queue, event in deliveries]
        # Nothing is leased for an ended execution.
        request = self.completion.lease_activities
        leasable = [] if self.completion.finishing else [a[2].id for a in activities if a[3] in request.queues]
        leases = {event_id: new_token() for event_id in leasable[: request.max_tasks]}
        # Payloads first: MySQL checks the other rows' foreign keys at once.
        sql.insert_payloads(payloads)
        sql.insert_history(history)
        leased_ids = sql.insert_activities(activities, leases, store.options.worker_name, store.options.activity_lock)
        sql.insert_pending(pending)
        self.activities_queued = len(leases) < len(activities)
        self.leased = [
            ActivityTask(
                id=str(leased_ids[event.id]),
                activity_id=event.id,
                queue=queue,
                instance=self.task.instance,
                event=event,
                lease_token=leases[event.id],
                lease_count=1,
                custom_data=ActivityTaskData(leased_ids[event.id], row_id),
            )
            for _, _, event, queue in activities
            if event.id in leases
        ]
