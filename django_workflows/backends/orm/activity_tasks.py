"""Activity tasks of the ORM backend (go-workflows' SQL ``GetActivityTask``, ``ExtendActivityTask``,
``CompleteActivityTask``); ``OrmBackend`` delegates its activity methods here.

An activity row is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and leased with a token;
extend, complete and abandon are fenced on that token and on ``locked_until > <db now>``. Every
lease counts (``lease_count``); an activity whose workers died ``max_activity_leases`` times is
failed with ``ActivityAbandoned`` instead of being leased again. Writers that touch both an
execution and its activities lock the execution first, so they cannot deadlock each other.

Timeouts are deadline columns on the row, on the database clock (``sql``: ``in_time``,
``ACTIVITY_LEASED``): past its ``deadline`` an attempt can be neither claimed, extended,
heartbeated nor completed, and ``time_out`` (the workers' sweep) fails it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...engine.backend import ActivityTask, WorkflowTask
from ...engine.clock import system_clock
from ...engine.converter import Payload
from ...engine.errors import LeaseLost, TimeoutType
from ...engine.history import ActivityScheduledAttributes, Event
from ..group_commit import GroupCommit
from ..rules import abandoned_activity_result, earliest, heartbeat_timeout, start_to_close, timed_out_activity_result
from .rows import ActivityTaskData, TaskRow, instance_from
from .sql import DEADLINE_TYPES, ClaimedActivity, new_token, payload_json
from .store import ACTIVE, OrmStore
from .transactions import first
from .workflow_tasks import WorkflowTasks

#: Most activity completions one transaction writes (GroupCommit).
_MAX_COMPLETIONS_PER_TRANSACTION = 32


class ActivityTasks:
    """The activity half of one ``OrmBackend``."""

    def __init__(self, store: OrmStore, workflow_tasks: WorkflowTasks) -> None:
        self.store = store
        self.options = store.options
        self._workflow_tasks = workflow_tasks
        # Concurrent completions share a transaction where that cannot make them wait for
        # locks while holding others (see _write_batch).
        self._group: GroupCommit[_Completion, _Outcome] | None = (
            GroupCommit(self._complete_batch, max_batch=_MAX_COMPLETIONS_PER_TRANSACTION)
            if store.sql.locks_executions_without_waiting
            else None
        )

    def claim(self, queues: Sequence[str], limit: int = 1) -> list[ActivityTask]:
        """Lease up to ``limit`` activity tasks in one transaction."""
        db = self.store.db
        # Look first without locking, as workflow claims do.
        if not db.run(lambda: self.store.sql.has_free_activity(queues), atomic=False, reconnect=True):
            return []
        while True:
            try:
                tasks, exhausted = db.run(lambda: self._lease(queues, limit), reconnect=True)
            except _ClaimRace:
                return []
            for worn_out in exhausted:
                db.run(functools.partial(self._fail_exhausted, worn_out))
            if tasks or not exhausted:
                return tasks

    def _lease(self, queues: Sequence[str], limit: int) -> tuple[list[ActivityTask], list[ClaimedActivity]]:
        sql = self.store.sql
        leasable: list[ClaimedActivity] = []
        exhausted: list[ClaimedActivity] = []
        for claimed in sql.claim_activities(queues, limit):
            (exhausted if claimed.lease_count >= self.options.max_activity_leases else leasable).append(claimed)
        if not leasable:
            return [], exhausted
        # One token for the batch: a lease is fenced by (row id, token), so tasks stay apart.
        token = new_token()
        events = {}
        identities = {}
        for claimed in leasable:
            data, *identity = claimed.joined or sql.activity_payload(claimed.payload_id)
            events[claimed.row_id] = sql.activity_event(claimed, data)
            identities[claimed.row_id] = identity
        # Activities without timeouts in one UPDATE; those with, one per pair of timeouts.
        groups: dict[tuple[Any, Any] | None, list[int]] = {}
        for claimed in leasable:
            event = events[claimed.row_id]
            attributes = event.attributes
            timed = isinstance(attributes, ActivityScheduledAttributes) and attributes.has_timeouts
            groups.setdefault((start_to_close(event), heartbeat_timeout(event)) if timed else None, []).append(claimed.row_id)
        leased = 0
        worker, lock = self.options.worker_name, self.options.activity_lock
        for timeouts, row_ids in groups.items():
            if timeouts is None:
                leased += sql.lease_activities(row_ids, token, worker, lock)
            else:
                run, beat = timeouts
                leased += sql.lease_timed_activities(row_ids, token, worker, lock, start_to_close=run, heartbeat=beat)
        if leased != len(leasable):  # only possible on a SQLite connection in DEFERRED mode
            raise _ClaimRace()
        tasks = []
        for claimed in leasable:
            event, identity = events[claimed.row_id], identities[claimed.row_id]
            tasks.append(
                ActivityTask(
                    id=str(claimed.row_id),
                    activity_id=event.id,
                    queue=claimed.queue,
                    instance=instance_from(*identity),
                    event=event,
                    lease_token=token,
                    lease_count=claimed.lease_count + 1,
                    custom_data=ActivityTaskData(claimed.row_id, claimed.instance_row_id),
                    heartbeat_details=claimed.heartbeat_details,
                )
            )
        return tasks, exhausted

    def _fail_exhausted(self, exhausted: ClaimedActivity) -> None:
        """Fail an activity whose workers kept dying, instead of leasing it again.

        Locks the execution before the activity, the order every other writer uses."""
        store = self.store
        execution = first(
            store.instances().filter(pk=exhausted.instance_row_id).select_for_update().values_list("state", "queue")
        )
        taken = store.sql.take_exhausted_activity(exhausted.row_id, self.options.max_activity_leases)
        if taken is None:
            return  # another poller got there first
        event, details = taken
        if execution is not None and execution[0] == ACTIVE:
            result = abandoned_activity_result(event, exhausted.lease_count, system_clock.now(), details)
            store.insert_events([(exhausted.instance_row_id, execution[1], result)])
            store.notify_on_commit("workflow")

    def heartbeat(self, task: ActivityTask, details: Payload | None) -> bool:
        store = self.store
        data = _data(task)
        beat = heartbeat_timeout(task.event)
        stop = store.db.run(
            lambda: store.sql.heartbeat_activity(data.row_id, task.lease_token, self.options.activity_lock, details, beat),
            atomic=False,
            reconnect=True,
        )
        if stop is None:
            raise LeaseLost()
        return stop

    def time_out(self, limit: int) -> int:
        """Fail up to ``limit`` attempts whose deadline passed, each in its own transaction."""
        store = self.store
        expired = store.db.run(lambda: store.sql.expired_activities(limit), atomic=False, reconnect=True)
        return sum(store.db.run(functools.partial(self._time_out, row_id, instance_row_id)) for row_id, instance_row_id in expired)

    def _time_out(self, row_id: int, instance_row_id: int) -> int:
        """Locks the execution before the activity, the order every other writer uses."""
        store = self.store
        execution = first(store.instances().filter(pk=instance_row_id).select_for_update().values_list("state", "queue"))
        taken = store.sql.take_expired_activity(row_id)
        if taken is None:
            return 0  # completed in time, or another sweeper got there first
        event, details, deadlines = taken
        by_type = {kind: deadlines[column] for column, kind in DEADLINE_TYPES.items()}
        fired = earliest(by_type)
        kind = fired[0] if fired is not None else TimeoutType.START_TO_CLOSE
        if execution is not None and execution[0] == ACTIVE:
            result = timed_out_activity_result(event, kind, system_clock.now(), details)
            store.insert_events([(instance_row_id, execution[1], result)])
            store.notify_on_commit("workflow")
        return 1

    def extend(self, task: ActivityTask) -> None:
        self.store.extend_lease("activity", _data(task).row_id, task.lease_token, self.options.activity_lock)

    def complete(self, task: ActivityTask, result: Event, workflow_queues: Sequence[str] = ()) -> WorkflowTask | None:
        data = _data(task)
        # Serialised here, in the caller's thread, not in the shared transaction.
        completion = _Completion(
            data.row_id, data.instance_row_id, task.lease_token, result, new_token(), payload_json(result), workflow_queues
        )
        if self._group is None or self.store.db.connection.in_atomic_block:
            # In a transaction the caller opened, a batch would commit or roll back with it,
            # taking other callers' completions along: those go alone.
            outcome = self._complete_alone(completion)
        else:
            outcome = self._group.submit(completion)
        if isinstance(outcome, LeaseLost):
            raise LeaseLost()
        return outcome

    def _complete_batch(self, completions: Sequence[_Completion]) -> list[_Outcome]:
        """Complete several activities in one transaction, or a few where a lock was taken
        (``GroupCommit``'s write)."""
        outcomes: dict[int, _Outcome] = {}
        todo = list(completions)
        while todo:
            try:
                done, todo = self.store.db.run(functools.partial(self._write_batch, todo), reconnect=True)
            except _LeaseLostInBatch:
                # Rare: some lease ran out. One by one, so each gets its own answer.
                done = {id(c): self._complete_alone(c) for c in todo}
                todo = []
            outcomes.update(done)
        return [outcomes[id(c)] for c in completions]

    def _write_batch(self, completions: list[_Completion]) -> tuple[dict[int, _Outcome], list[_Completion]]:
        """Inside the transaction: complete what can be without waiting for a lock after the
        first; return the outcomes (by ``id`` of the completion) and the completions left over."""
        store, sql = self.store, self.store.sql
        by_execution: dict[int, list[_Completion]] = {}
        for completion in completions:
            by_execution.setdefault(completion.instance_row_id, []).append(completion)
        # Executions first (the lock order of every writer), in id order. Only the first lock
        # may wait: a transaction that waited while holding locks could deadlock with one that
        # completes a workflow task and delivers to several executions. The rest are taken if
        # free at once, else their completions go to the next transaction.
        locked: dict[int, tuple[tuple[int, TaskRow] | None, bool]] = {}
        left: list[_Completion] = []
        for position, instance_row_id in enumerate(sorted(by_execution)):
            take = sql.lock_execution_to_deliver if position == 0 else sql.try_lock_execution_to_deliver
            lock = take(instance_row_id)
            if lock is None:
                left += by_execution.pop(instance_row_id)
            else:
                locked[instance_row_id] = lock
        taken = [c for group in by_execution.values() for c in group]
        if sql.delete_leased_activities([(c.row_id, c.lease_token) for c in taken]) != len(taken):
            raise _LeaseLostInBatch()  # rolls back: a batch is redone one by one, one alone is LeaseLost
        outcomes: dict[int, _Outcome] = {id(c): None for c in taken}
        active: dict[int, tuple[TaskRow, bool]] = {
            row_id: (execution[1], exclusive)
            for row_id, (execution, exclusive) in locked.items()
            if execution is not None and execution[0] == ACTIVE
        }
        delivered = [c for c in taken if c.instance_row_id in active]
        sql.insert_payloads([(c.payload_id, c.instance_row_id, c.payload) for c in delivered])
        sql.insert_pending([(c.instance_row_id, active[c.instance_row_id][0].queue, c.payload_id, c.result) for c in delivered])
        notify = False
        for instance_row_id in sorted(active):
            row, exclusive = active[instance_row_id]
            # Continue the workflow here, in this transaction, if its task is free for one of
            # these callers (leasing writes the execution row: only with the exclusive lock).
            taker = next((c for c in by_execution[instance_row_id] if row.queue in c.workflow_queues), None)
            next_task = None
            if exclusive and taker is not None:
                next_task = self._workflow_tasks.lease_for(row)
            if next_task is None:
                notify = True
            else:
                outcomes[id(taker)] = next_task
        if notify:
            store.notify_on_commit("workflow")
        return outcomes, left

    def _complete_alone(self, completion: _Completion) -> _Outcome:
        """Complete one activity in its own transaction, waiting for its execution's lock (a
        batch of one: its only lock is the first, which may wait)."""
        try:
            done, _ = self.store.db.run(functools.partial(self._write_batch, [completion]), reconnect=True)
        except _LeaseLostInBatch:
            return LeaseLost()
        return done[id(completion)]

    def abandon(self, task: ActivityTask) -> None:
        store = self.store
        data = _data(task)
        released = store.db.run(
            lambda: store.sql.abandon_activity(data.row_id, task.lease_token), atomic=False, reconnect=True
        )
        if released:
            store.waker.notify("activity")


@dataclass(slots=True, eq=False)
class _Completion:
    """One activity's result on its way into its execution's inbox."""

    row_id: int
    instance_row_id: int
    lease_token: str
    result: Event
    payload_id: str
    payload: str
    workflow_queues: Sequence[str]


#: What completing one activity came to: the workflow's next task (leased to the caller), None,
#: or LeaseLost (returned, not raised, so that one lost lease does not fail a whole batch).
_Outcome = WorkflowTask | LeaseLost | None


class _LeaseLostInBatch(Exception):
    """A batch found a lease that ran out; the transaction rolls back."""


class _ClaimRace(Exception):
    """Another connection leased a row between our SELECT and UPDATE; the transaction rolls back."""


def _data(task: ActivityTask) -> ActivityTaskData:
    if not isinstance(task.custom_data, ActivityTaskData):
        raise LeaseLost("this activity task was not leased from the ORM backend")
    return task.custom_data
