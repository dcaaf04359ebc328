"""Workflow tasks of the ORM backend (go-workflows' SQL ``GetWorkflowTask``, ``ExtendWorkflowTask``,
``CompleteWorkflowTask``); ``OrmBackend`` delegates its workflow-task methods here.

An execution row doubles as its workflow task: it is claimable while it is active, has visible
pending events, is not leased, and is not sticky to another worker. A claim finds candidates
through the pending events' ready index without locking (``sql.HotSql.find_candidates``), then
locks a batch of them (``SKIP LOCKED`` where the database has it), reads their visible pending
events and leases them under one token; every lease stays fenced by (row id, token). An activity completion may hand the workflow's next task to its own worker in its
transaction (``lease_for``). Completion is ``completion.WorkflowTaskCompletion``'s plan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from ...engine.backend import ActivityTask, BlockBackoff, BlockedInfo, LeaseRequest, WorkflowTask, WorkflowTaskCompletion
from ...engine.core import InstanceState
from ...engine.errors import CompletionRejected, ErrorInfo, LeaseLost
from .completion import Completion
from .rows import PendingRow, TaskRow, WorkflowTaskData
from .sql import new_token, read_json
from .store import OrmStore

logger = logging.getLogger("django_workflows.backends.orm")

#: Candidates a claim looks at per task it wants: some are taken by others before they are locked.
_CANDIDATES_PER_TASK = 4
#: Seconds between two looks for pending rows without a ready time (written by an earlier version).
_FILL_INTERVAL = 30.0
#: Of the tasks a worker claims while both kinds are ready, at least one in this many is a new
#: instance's start; the others go to executions that already run (``WorkflowTasks.claim``).
START_SHARE = 8


class _NothingToClaim(Exception):
    """Rolls back a lease that found nothing to execute, or a claim whose candidate was taken
    (only possible on a SQLite connection in DEFERRED mode)."""


class WorkflowTasks:
    """The workflow-task half of one ``OrmBackend``."""

    def __init__(self, store: OrmStore) -> None:
        self.store = store
        self._next_fill = time.monotonic() + _FILL_INTERVAL
        #: Tasks of running executions claimed since the last start, while starts were ready.
        self._running_since_start = 0

    def claim(self, queues: Sequence[str], limit: int) -> list[WorkflowTask]:
        """Lease up to ``limit`` workflow tasks of ``queues``, waiting for none.

        Executions that already run come first, new instances' starts after them: finishing
        started work keeps the number of executions in flight (and their state in the cache)
        bounded by what the workers can run, so a backlog of starts drains at the rate of a
        small one (issue 21). Within each kind, the oldest ready event first. So that a stream
        of running work cannot hold new instances back for ever, at least one task in
        ``START_SHARE`` is a start while both are ready: a floor, not a latency bound (a
        bound on a start's wait would mean starting a whole backlog within it).
        """
        store, sql = self.store, self.store.sql
        me = store.options.worker_name
        self._fill_ready_columns()
        # Look first without locking: an idle poll must not queue for SQLite's write lock (or
        # open a transaction at all elsewhere). A few more than wanted: some may be taken by
        # the time they are locked.
        found = store.db.run(
            lambda: sql.find_candidates(queues, me, limit * _CANDIDATES_PER_TASK), atomic=False, reconnect=True
        )
        if not found.running and not found.starts:
            return []
        # The share of starts: owed ones first, then running work, then the rest of the starts.
        owed = 0
        if found.running and found.starts:
            owed = min(len(found.starts), (self._running_since_start + limit) // START_SHARE)
        tiers = [found.starts[:owed], found.running]
        candidates = found.starts[:owed] + found.running + found.starts[owed:]
        starts = set(found.starts)

        def claim() -> list[WorkflowTask]:
            # Three statements for the whole batch: lock the candidates, read their visible
            # pending events, lease those that have some (under one token; a lease is fenced
            # by row id and token, so the tasks stay apart).
            rows = sql.claim_candidates(candidates, me, limit, tiers=tiers)
            if not rows:
                return []
            pending = sql.visible_pending([row.row_id for row in rows])
            rows = [row for row in rows if pending.get(row.row_id)]
            if not rows:
                return []
            token = new_token()
            if sql.lease_executions([row.row_id for row in rows], token, me, store.options.workflow_lock) != len(rows):
                raise _NothingToClaim()
            return [_task(row, pending[row.row_id], token) for row in rows]

        try:
            tasks = store.db.run(claim, reconnect=True)
        except _NothingToClaim:
            return []
        if found.starts:
            claimed_starts = sum(1 for task in tasks if _data(task).row_id in starts)
            if claimed_starts:
                self._running_since_start = 0
            else:
                self._running_since_start += len(tasks)
        return tasks

    def _fill_ready_columns(self, *, now: bool = False) -> None:
        """Now and then (and when a worker starts), give pending rows that a worker of an
        earlier version wrote during a rolling upgrade the columns claims look for."""
        moment = time.monotonic()
        if moment < self._next_fill and not now:
            return
        self._next_fill = moment + _FILL_INTERVAL
        db, sql = self.store.db, self.store.sql
        if not db.run(sql.has_unfilled_pending, atomic=False, reconnect=True):
            return
        filled = db.run(sql.fill_ready_columns, reconnect=True)
        if filled:
            logger.info("gave %d pending event(s) of an earlier version their queue and ready time", filled)

    def prepare(self) -> None:
        """A worker is about to poll: fill in what an earlier version left."""
        self._fill_ready_columns(now=True)

    def lease_for(self, row: TaskRow) -> WorkflowTask | None:
        """Inside the caller's transaction, which holds the execution's exclusive lock: lease its
        workflow task to this worker if the task is free and not sticky to another worker,
        with all its visible pending events (an activity completion continuing the workflow)."""
        store, sql = self.store, self.store.sql
        token = new_token()
        if not sql.lease_handed_over(row.row_id, token, store.options.worker_name, store.options.workflow_lock):
            return None
        pending = sql.visible_pending([row.row_id]).get(row.row_id)
        if not pending:
            raise _NothingToClaim()  # rolls back the caller's transaction: it delivered nothing
        return _task(row, pending, token)

    def extend(self, task: WorkflowTask) -> None:
        self.store.extend_lease("instance", _data(task).row_id, task.lease_token, self.store.options.workflow_lock)

    def abandon(self, task: WorkflowTask) -> None:
        store = self.store
        data = _data(task)
        released = store.db.run(
            lambda: store.sql.release_execution(data.row_id, task.lease_token), atomic=False, reconnect=True
        )
        if released:
            store.waker.notify("workflow")

    def release_sticky(self) -> int:
        store = self.store
        released = store.db.run(
            lambda: store.sql.release_sticky(store.options.worker_name), atomic=False, reconnect=True
        )
        if released:
            store.waker.notify("workflow")
        return released

    def block(self, task: WorkflowTask, error: ErrorInfo, backoff: BlockBackoff) -> BlockedInfo:
        """Release the lease and keep claims away until the retry time (``Backend.block_workflow_task``)."""
        store, sql = self.store, self.store.sql
        data = _data(task)

        def block() -> BlockedInfo:
            previous = sql.lock_to_block(data.row_id, task.lease_token)
            if previous is None:
                raise LeaseLost()
            attempts = previous + 1
            if not sql.block(data.row_id, task.lease_token, error=error.to_dict(), attempts=attempts, delay=backoff.delay(attempts)):
                raise LeaseLost()
            since, until = sql.blocked(data.row_id)
            assert since is not None and until is not None
            return BlockedInfo(error=error, since=since, attempts=attempts, retry_at=until)

        blocked = store.db.run(block, reconnect=True)
        # Pollers of this process wake at the retry time (other processes poll anyway).
        store.waker.notify("workflow", [blocked.retry_at])
        return blocked

    def complete(
        self, task: WorkflowTask, completion: WorkflowTaskCompletion
    ) -> list[ActivityTask | WorkflowTask]:
        plan = Completion(self.store, task, _data(task), completion)
        handed: list[WorkflowTask] = []

        def complete() -> Completion:
            handed.clear()  # a retried attempt starts over
            plan.run()
            if not plan.rejected:
                handed.extend(self._lease_started(plan.started, completion.lease_workflows))
            # This process's pollers in any case: events that arrived during the task make the
            # execution (sticky to this worker) ready again, and its timers are due later. Other
            # processes only for work they may take: other executions' events, or this one
            # after a rejection (the task is free again, with the events it missed).
            self.store.notify_on_commit("workflow", plan.timers, other_processes=plan.rejected or plan.delivered)
            if plan.activities_queued:
                self.store.notify_on_commit("activity")
            return plan

        # Integrity races (a sub-workflow id started concurrently) resolve on a fresh attempt.
        self.store.db.run(complete, reconnect=True, integrity_attempts=3)
        if plan.rejected:
            raise CompletionRejected()
        return [*plan.leased, *handed]

    def _lease_started(self, started: Sequence[tuple[int, str]], request: LeaseRequest) -> list[WorkflowTask]:
        """Inside a completion: lease to this worker the first workflow tasks of the executions
        it started (sub-workflows, a continue-as-new's next execution) that ``request`` takes,
        with their visible pending events; not those whose start is delayed. The completion
        created those rows, so this waits for no lock.

        A parent the task reports its result to is left to the pollers: handed over at once,
        it ran once per child (measured on the bench's tree: 0.77 -> 0.95 workflow tasks per
        activity, more CPU), while a poll a moment later finds the results of several."""
        wanted = [row_id for row_id, queue in started if queue in request.queues][: request.max_tasks]
        if not wanted:
            return []
        store, sql = self.store, self.store.sql
        token = new_token()
        rows = sql.lease_started(wanted, token, store.options.worker_name, store.options.workflow_lock)
        if not rows:
            return []
        pending = sql.visible_pending([row.row_id for row in rows])
        for row in rows:
            if not pending.get(row.row_id):  # nothing to run yet (an event not visible until later)
                sql.release_execution(row.row_id, token)
        return [_task(row, pending[row.row_id], token) for row in rows if pending.get(row.row_id)]


def _data(task: WorkflowTask) -> WorkflowTaskData:
    if not isinstance(task.custom_data, WorkflowTaskData):
        raise LeaseLost("this workflow task was not leased from the ORM backend")
    return task.custom_data


def _task(row: TaskRow, pending: list[PendingRow], token: str) -> WorkflowTask:
    """The task of the leased execution ``row`` with its visible pending events."""
    metadata = read_json(row.metadata)
    return WorkflowTask(
        id=row.instance_id,
        queue=row.queue,
        instance=row.instance(),
        state=InstanceState.ACTIVE,
        metadata=dict(metadata or {}),
        last_sequence_id=row.last_sequence_id,
        new_events=[p.event for p in pending],
        lease_token=token,
        workflow_name=row.workflow_name,
        custom_data=WorkflowTaskData(
            row_id=row.row_id,
            pending_ids=tuple(p.pending_id for p in pending),
            payload_ids={p.event.id: p.payload_id for p in pending},
        ),
    )
