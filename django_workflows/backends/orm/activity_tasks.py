"""Activity tasks of the ORM backend (go-workflows' SQL ``GetActivityTask``, ``ExtendActivityTask``,
``CompleteActivityTask``); ``OrmBackend`` delegates its activity methods here.

An activity row is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and leased with a token;
extend, complete and abandon are fenced on that token and on ``locked_until > <db now>``. Every
lease counts (``lease_count``); an activity whose workers died ``max_activity_leases`` times is
failed with ``ActivityAbandoned`` instead of being leased again. Writers that touch both an
execution and its activities lock the execution first, so they cannot deadlock each other.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import F, Q
from django.db.models.functions import Greatest

from ...engine.backend import ActivityTask, WorkflowTask
from ...engine.clock import system_clock
from ...engine.core import InstanceState
from ...engine.errors import LeaseLost
from ...engine.history import Event
from ..rules import abandoned_activity_result
from .group_commit import GroupCommit
from .rows import EVENT_COLUMNS, event_from, instance_from
from .sql import payload_json
from .transactions import DbNow, first, raw_delete

if TYPE_CHECKING:
    from .backend import OrmBackend

ACTIVE = InstanceState.ACTIVE.value

#: Most activity completions one transaction writes (GroupCommit).
_MAX_COMPLETIONS_PER_TRANSACTION = 32


class ActivityTasks:
    """The activity half of one ``OrmBackend`` (its database alias, options and wake-ups)."""

    def __init__(self, backend: OrmBackend) -> None:
        self.backend = backend
        self.using = backend.using
        self.options = backend.options
        # Concurrent completions share a transaction where that cannot make them wait for
        # locks while holding others (see _write_batch).
        self._group: GroupCommit[_Completion, _Outcome] | None = (
            GroupCommit(self._complete_batch, max_batch=_MAX_COMPLETIONS_PER_TRANSACTION)
            if backend._sql.locks_executions_without_waiting
            else None
        )

    def claim(self, queues: list[str], limit: int = 1) -> list[ActivityTask]:
        """Lease up to ``limit`` activity tasks in one transaction."""
        # Look first without locking, as workflow claims do.
        if not self.backend._db.run(lambda: self.backend._sql.has_free_activity(queues), atomic=False, reconnect=True):
            return []
        while True:
            try:
                tasks, exhausted = self.backend._db.run(lambda: self._lease(queues, limit), reconnect=True)
            except _ClaimRace:
                return []
            for worn_out in exhausted:
                self.backend._db.run(functools.partial(self._fail_exhausted, worn_out))
            if tasks or not exhausted:
                return tasks

    def _lease(self, queues: list[str], limit: int) -> tuple[list[ActivityTask], list[_Exhausted]]:
        sql = self.backend._sql
        leasable: list[tuple[tuple[Any, ...], tuple[Any, ...] | None]] = []
        exhausted: list[_Exhausted] = []
        for row, joined in sql.claim_activities(queues, limit):
            row_id, instance_row_id, lease_count = row[:3]
            if lease_count >= self.options.max_activity_leases:
                exhausted.append(_Exhausted(row_id, instance_row_id, lease_count))
            else:
                leasable.append((row, joined))
        if not leasable:
            return [], exhausted
        # One token for the batch: a lease is fenced by (row id, token), so tasks stay apart.
        token = uuid.uuid4().hex
        leased = sql.lease_activities([row[0] for row, _ in leasable], token, self.options.worker_name, self.options.activity_lock)
        if leased != len(leasable):  # only possible on a SQLite connection in DEFERRED mode
            raise _ClaimRace()
        tasks = []
        for row, joined in leasable:
            row_id, instance_row_id, lease_count, queue, payload_id, *event_columns = row
            data, *identity = joined or sql.activity_payload(payload_id)
            event = event_from(*event_columns, data)  # type: ignore[call-arg]  # (six columns, then the data)
            tasks.append(
                ActivityTask(
                    id=str(row_id),
                    activity_id=event.id,
                    queue=queue,
                    instance=instance_from(*identity),
                    event=event,
                    lease_token=token,
                    lease_count=lease_count + 1,
                    custom_data=(row_id, instance_row_id),
                )
            )
        return tasks, exhausted

    def _fail_exhausted(self, exhausted: _Exhausted) -> None:
        """Fail an activity whose workers kept dying, instead of leasing it again.

        Locks the execution before the activity, the order every other writer uses."""
        state = first(
            self.backend._instances().filter(pk=exhausted.instance_row_id).select_for_update().values_list("state", flat=True)
        )
        free = Q(locked_until__isnull=True) | Q(locked_until__lte=DbNow())
        row = first(
            self.backend._activities()
            .filter(free, pk=exhausted.row_id, lease_count__gte=self.options.max_activity_leases)
            .select_for_update()
            .values_list(*EVENT_COLUMNS)
        )
        if row is None:
            return  # another poller got there first
        raw_delete(self.backend._activities().filter(pk=exhausted.row_id))
        if state == ACTIVE:
            result = abandoned_activity_result(event_from(*row), exhausted.lease_count, system_clock.now())
            self.backend._insert_event(exhausted.instance_row_id, result)
            self.backend._notify_on_commit("workflow")

    def _leased(self, task: ActivityTask) -> Any:
        row_id, _ = _activity_keys(task)
        return self.backend._activities().filter(
            pk=row_id, lease_token=task.lease_token, locked_until__gt=DbNow()
        )

    def extend(self, task: ActivityTask) -> None:
        extended = self.backend._db.run(
            lambda: self._leased(task).update(locked_until=DbNow(self.options.activity_lock)),
            atomic=False,
            reconnect=True,
        )
        if extended != 1:
            raise LeaseLost()

    def complete(self, task: ActivityTask, result: Event, workflow_queues: Sequence[str] = ()) -> WorkflowTask | None:
        row_id, instance_row_id = _activity_keys(task)
        # Serialised here, in the caller's thread, not in the shared transaction.
        completion = _Completion(
            row_id, instance_row_id, task.lease_token, result, uuid.uuid4().hex, payload_json(result), workflow_queues
        )
        if self._group is None or self.backend._db.connection.in_atomic_block:
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
                done, todo = self.backend._db.run(functools.partial(self._write_batch, todo), reconnect=True)
            except _LeaseLostInBatch:
                # Rare: some lease ran out. One by one, so each gets its own answer.
                done = {id(c): self._complete_alone(c) for c in todo}
                todo = []
            outcomes.update(done)
        return [outcomes[id(c)] for c in completions]

    def _write_batch(self, completions: list[_Completion]) -> tuple[dict[int, _Outcome], list[_Completion]]:
        """Inside the transaction: complete what can be without waiting for a lock after the
        first; return the outcomes (by ``id`` of the completion) and the completions left over."""
        sql = self.backend._sql
        by_execution: dict[int, list[_Completion]] = {}
        for completion in completions:
            by_execution.setdefault(completion.instance_row_id, []).append(completion)
        # Executions first (the lock order of every writer), in id order. Only the first lock
        # may wait: a transaction that waited while holding locks could deadlock with one that
        # completes a workflow task and delivers to several executions. The rest are taken if
        # free at once, else their completions go to the next transaction.
        locked: dict[int, tuple[tuple[Any, ...] | None, bool]] = {}
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
        active = {row_id for row_id, (execution, _) in locked.items() if execution is not None and execution[0] == ACTIVE}
        delivered = [c for c in taken if c.instance_row_id in active]
        sql.insert_payloads([(c.payload_id, c.instance_row_id, c.payload) for c in delivered])
        sql.insert_events(sql.pending, [(c.instance_row_id, c.payload_id, c.result) for c in delivered])
        notify = False
        for instance_row_id in sorted(active):
            execution, exclusive = locked[instance_row_id]
            _, *row = execution  # type: ignore[misc]  # active: not None
            # Continue the workflow here, in this transaction, if its task is free for one of
            # these callers (leasing writes the execution row: only with the exclusive lock).
            taker = next((c for c in by_execution[instance_row_id] if row[1] in c.workflow_queues), None)
            next_task = None
            if exclusive and taker is not None:
                next_task = self.backend._lease_workflow_task(row, require_not_sticky=True)
            if next_task is None:
                notify = True
            else:
                outcomes[id(taker)] = next_task
        if notify:
            self.backend._notify_on_commit("workflow")
        return outcomes, left

    def _complete_alone(self, completion: _Completion) -> _Outcome:
        """Complete one activity in its own transaction, waiting for its execution's lock (a
        batch of one: its only lock is the first, which may wait)."""
        try:
            done, _ = self.backend._db.run(functools.partial(self._write_batch, [completion]), reconnect=True)
        except _LeaseLostInBatch:
            return LeaseLost()
        return done[id(completion)]

    def abandon(self, task: ActivityTask) -> None:
        # A graceful release is not a crash: it does not count against max_activity_leases.
        released = self.backend._db.run(
            lambda: self._leased(task).update(
                locked_until=None, lease_token="", lease_count=Greatest(F("lease_count") - 1, 0)
            ),
            atomic=False,
            reconnect=True,
        )
        if released:
            self.backend._waker.notify("activity")


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


class _Exhausted:
    """A claim found an activity at ``max_activity_leases``: fail it in its own transaction."""

    def __init__(self, row_id: int, instance_row_id: int, lease_count: int) -> None:
        self.row_id = row_id
        self.instance_row_id = instance_row_id
        self.lease_count = lease_count


def _activity_keys(task: ActivityTask) -> tuple[int, int]:
    keys = task.custom_data
    if not (isinstance(keys, tuple) and len(keys) == 2):
        raise LeaseLost("this activity task was not leased from the ORM backend")
    return keys
