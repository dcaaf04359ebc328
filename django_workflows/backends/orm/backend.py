"""The Django ORM backend: workflows stored in SQLite, MySQL/MariaDB or PostgreSQL through Django's
models (port of go-workflows ``backend/sqlite``, ``backend/mysql`` and ``backend/postgres``, plus the
``monoprocess`` wake-ups).

Semantics are those of ``backends.memory`` (the reference). What the database adds:

* Leases carry a token; extend, complete and abandon are fenced UPDATE/DELETEs
  (``... WHERE id=? AND lease_token=? AND locked_until > <db now>``), and every lease time comes
  from the database clock (``transactions.DbNow``), never from this process.
* Claims lock the candidate row with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL and
  MySQL/MariaDB (concurrent pollers skip each other's rows instead of queueing); SQLite has one
  writer at a time (IMMEDIATE transactions in WAL mode), and the claim UPDATE repeats the
  "lease is free" condition, so a connection left in DEFERRED mode stays correct too.
* Lock conflicts ("database is locked", deadlocks) are retried inside the backend, bounded and
  with jitter (``transactions.Transactions``); they do not reach callers.
* Uniqueness is the database's job: one active execution per instance id, one history event per
  (execution, sequence id).

Pollers in this process wake as soon as this process commits work for them (``wakeup``),
and otherwise look every ``poll_interval`` seconds for work committed by other processes.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    close_old_connections,
    connections,
    transaction,
)
from django.db.models import Count, Exists, OuterRef, Q

from ...engine.backend import ActivityTask, Feature, InstanceInfo, InstancePage, Stats, WorkflowTask
from ...engine.clock import system_clock, to_timedelta
from ...engine.core import InstanceState, WorkflowInstance, validate_id
from ...engine.errors import (
    CompletionRejected,
    InstanceAlreadyExists,
    InstanceFinished,
    InstanceNotFinished,
    InstanceNotFound,
    LeaseLost,
)
from ...engine.history import Event, WorkflowEvent, WorkflowExecutionStartedAttributes
from ...engine.listing import InstanceFilter
from ...models import ActivityTask as ActivityRow
from ...models import HistoryEvent, Outcome, PendingEvent
from ...models import WorkflowInstance as InstanceRow
from ..base import BaseBackend
from ..rules import terminated_events
from .activity_tasks import ActivityTasks
from .completion import (
    Completion,
    WorkflowTaskData,
    delete_execution_rows,
    delete_pending,
    visible,
)
from .rows import (
    EVENT_COLUMNS,
    INSTANCE_COLUMNS,
    RowBatch,
    event_from,
    instance_from,
    new_execution,
)
from .sql import HotSql
from .transactions import (
    DEFAULT_LOCK_RETRY_TIMEOUT,
    SUPPORTED_VENDORS,
    DbNow,
    Transactions,
    first,
    raw_delete,
)
from .wakeup import Kind, waker_for

T = TypeVar("T")

ACTIVE = InstanceState.ACTIVE.value

#: Default seconds between two looks at the database of an idle poller.
DEFAULT_POLL_INTERVAL = 0.2

class _NothingToClaim(Exception):
    """Rolls back a claim that found its candidate gone (only possible on a DEFERRED SQLite)."""


class OrmBackend(BaseBackend):
    features = frozenset({Feature.REMOVE_INSTANCES, Feature.LEASE_ON_COMPLETION})

    def __init__(
        self,
        using: str = DEFAULT_DB_ALIAS,
        *,
        poll_interval: float | timedelta = DEFAULT_POLL_INTERVAL,
        lock_retry_timeout: float | timedelta = DEFAULT_LOCK_RETRY_TIMEOUT,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        from ..handler import InvalidWorkflowBackend

        if using not in connections.settings:
            raise InvalidWorkflowBackend(f"OrmBackend: the database alias {using!r} is not in DATABASES")
        vendor = connections[using].vendor
        if vendor not in SUPPORTED_VENDORS:
            raise InvalidWorkflowBackend(
                f"OrmBackend: database {using!r} is {vendor}; supported are SQLite, MySQL/MariaDB and PostgreSQL"
            )
        time_zone = connections.settings[using].get("TIME_ZONE")
        if vendor != "postgresql" and time_zone not in (None, "UTC"):
            # Lease times come from the database clock in UTC (transactions.DbNow); Django would store
            # this database's datetimes in another zone.
            raise InvalidWorkflowBackend(
                f"OrmBackend: DATABASES[{using!r}]['TIME_ZONE'] is {time_zone!r}; the workflow tables need "
                "datetimes stored in UTC on SQLite and MySQL (remove the setting or set it to 'UTC')"
            )
        interval = to_timedelta(poll_interval, what="poll_interval").total_seconds()
        if interval <= 0:
            raise ValueError(f"OrmBackend: poll_interval must be positive, got {poll_interval!r}")
        retry_timeout = to_timedelta(lock_retry_timeout, what="lock_retry_timeout").total_seconds()
        if retry_timeout < 0:
            raise ValueError(f"OrmBackend: lock_retry_timeout must not be negative, got {lock_retry_timeout!r}")
        self.using = using
        self.poll_interval = interval
        self._db = Transactions(using, retry_timeout)
        self._sql = HotSql(using, pinned=self._db.pinned)
        self._waker = waker_for(using)
        self._activity_tasks = ActivityTasks(self)

    def release_finished_threads(self) -> None:
        self._db.close_orphans()

    def close(self) -> None:
        self._db.close_orphans()

    # -- helpers -----------------------------------------------------------------------------

    @property
    def retries(self) -> int:
        """Transactions this backend object retried (lock conflicts, lost connections)."""
        return self._db.retries

    def _instances(self) -> Any:
        # Unordered: the models' default ordering is for the admin, not for these queries.
        return InstanceRow.objects.using(self.using).order_by()

    def _activities(self) -> Any:
        return ActivityRow.objects.using(self.using).order_by()

    def _execution(self, instance: WorkflowInstance) -> Any:
        return self._instances().filter(instance_id=instance.instance_id, execution_id=instance.execution_id)

    def _notify_on_commit(self, kind: Kind, timers: Sequence[datetime] = ()) -> None:
        transaction.on_commit(lambda: self._waker.notify(kind, timers), using=self.using)

    def _insert_event(self, row_id: int, event: Event) -> None:
        batch = RowBatch()
        batch.add_pending(row_id, event)
        batch.save(self.using)

    def _deliver_to_execution(self, target: WorkflowInstance, event: Event) -> None:
        """Queue ``event`` for the exact execution ``target`` if it is active (locked first)."""
        row_id = first(self._execution(target).filter(state=ACTIVE).select_for_update().values_list("pk", flat=True))
        if row_id is not None:
            self._insert_event(row_id, event)
            self._notify_on_commit("workflow")

    def _can_return_ids(self) -> bool:
        return bool(connections[self.using].features.can_return_rows_from_bulk_insert)

    def _locking(self, queryset: Any) -> Any:
        """``FOR UPDATE SKIP LOCKED`` where the database has it (a no-op on SQLite)."""
        features = connections[self.using].features
        return queryset.select_for_update(skip_locked=bool(features.has_select_for_update_skip_locked))

    # -- instances ---------------------------------------------------------------------------

    def create_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        validate_id(instance.instance_id)
        attributes = event.attributes
        if not isinstance(attributes, WorkflowExecutionStartedAttributes):
            raise TypeError(f"create_workflow_instance needs a WorkflowExecutionStarted event, got {event.type}")

        def create() -> None:
            row = new_execution(instance, attributes)
            row.save(using=self.using, force_insert=True)
            self._insert_event(row.pk, event)
            self._notify_on_commit("workflow")

        try:
            self._db.run(create)
        except IntegrityError:
            # The unique active_instance_id (or instance/execution pair) refused the row.
            raise InstanceAlreadyExists() from None

    def cancel_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        def cancel() -> None:
            row = first(self._execution(instance).select_for_update().values_list("pk", "state"))
            if row is None:
                raise InstanceNotFound()
            if row[1] != ACTIVE:
                raise InstanceFinished()
            self._insert_event(row[0], event)
            self._notify_on_commit("workflow")

        self._db.run(cancel)

    def terminate_workflow_instance(self, instance: WorkflowInstance, reason: str) -> None:
        def terminate() -> None:
            row = first(
                self._execution(instance)
                .select_for_update()
                .values_list("pk", "state", "last_sequence_id", *INSTANCE_COLUMNS)
            )
            if row is None:
                raise InstanceNotFound()
            row_id, state, last_sequence_id, *identity = row
            if state != ACTIVE:
                raise InstanceFinished()
            execution = instance_from(*identity)
            terminated, parent_event = terminated_events(execution, reason, system_clock.now())
            delete_pending(self.using, row_id, Q())
            raw_delete(self._activities().filter(instance_id=row_id))
            self._instances().filter(pk=row_id).update(
                state=InstanceState.FINISHED.value,
                outcome=str(Outcome.TERMINATED),
                completed_at=DbNow(),
                active_instance_id=None,
                locked_until=None,
                lease_token="",
                last_sequence_id=last_sequence_id + 1,
            )
            batch = RowBatch()
            batch.add_history(row_id, terminated.with_sequence_id(last_sequence_id + 1))
            batch.save(self.using)
            if parent_event is not None and execution.parent is not None:
                self._deliver_to_execution(execution.parent, parent_event)

        self._db.run(terminate)

    def signal_workflow(self, instance_id: str, event: Event) -> WorkflowInstance:
        def active_execution() -> Any:
            return first(
                self._instances()
                .filter(active_instance_id=instance_id)
                .select_for_update()
                .values_list("pk", *INSTANCE_COLUMNS)
            )

        def signal() -> WorkflowInstance:
            # Twice if need be: an execution that continued as new while the first statement
            # waited for its lock no longer matches, and its successor was not in that
            # statement's snapshot (PostgreSQL, READ COMMITTED); the second statement sees it.
            row = active_execution() or active_execution()
            if row is None:
                if self._instances().filter(instance_id=instance_id).exists():
                    raise InstanceFinished()
                raise InstanceNotFound()
            self._insert_event(row[0], event)
            self._notify_on_commit("workflow")
            return instance_from(*row[1:])

        return self._db.run(signal)

    def remove_workflow_instance(self, instance: WorkflowInstance) -> None:
        def remove() -> None:
            row = first(self._execution(instance).select_for_update().values_list("pk", "state"))
            if row is None:
                raise InstanceNotFound()
            if row[1] == ACTIVE:
                raise InstanceNotFinished()
            delete_execution_rows(self.using, [row[0]])

        self._db.run(remove)

    def remove_workflow_instances(self, *, finished_before: datetime, batch_size: int = 100) -> int:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")

        def remove_batch() -> int:
            candidates = self._locking(
                self._instances().filter(completed_at__lt=finished_before).exclude(state=ACTIVE)
            )
            ids = list(candidates.order_by("completed_at", "id").values_list("pk", flat=True)[:batch_size])
            if ids:
                delete_execution_rows(self.using, ids)
            return len(ids)

        # Until a batch comes back empty, not merely short: rows another transaction held for a
        # moment (SKIP LOCKED) are picked up by the next batch.
        removed = 0
        while True:
            count = self._db.run(remove_batch)
            removed += count
            if count == 0:
                return removed

    def get_workflow_instance_state(self, instance: WorkflowInstance) -> InstanceState:
        state = self._db.run(
            lambda: first(self._execution(instance).values_list("state", flat=True)), atomic=False, reconnect=True
        )
        if state is None:
            raise InstanceNotFound()
        return InstanceState(state)

    def get_workflow_instance_info(self, instance: WorkflowInstance) -> InstanceInfo:
        columns = ("workflow_name", "queue", "state", "created_at", "completed_at", "metadata", *INSTANCE_COLUMNS)
        row = self._db.run(
            lambda: first(self._execution(instance).values_list(*columns)), atomic=False, reconnect=True
        )
        if row is None:
            raise InstanceNotFound()
        name, queue, state, created_at, completed_at, metadata, *identity = row
        return InstanceInfo(
            instance=instance_from(*identity),
            workflow_name=name,
            queue=queue,
            state=InstanceState(state),
            created_at=created_at,
            completed_at=completed_at,
            metadata=dict(metadata or {}),
        )

    def get_workflow_instance_history(
        self, instance: WorkflowInstance, last_sequence_id: int | None = None
    ) -> list[Event]:
        def history() -> list[Event]:
            rows = HistoryEvent.objects.using(self.using).filter(
                instance__instance_id=instance.instance_id, instance__execution_id=instance.execution_id
            )
            if last_sequence_id is not None:
                rows = rows.filter(sequence_id__gt=last_sequence_id)
            events = [event_from(*values) for values in rows.order_by("sequence_id").values_list(*EVENT_COLUMNS)]
            if not events and not self._execution(instance).exists():
                raise InstanceNotFound()
            return events

        return self._db.run(history, atomic=False, reconnect=True)

    def get_latest_execution(self, instance_id: str) -> WorkflowInstance:
        row = self._db.run(
            lambda: first(
                self._instances()
                .filter(instance_id=instance_id)
                .order_by("-created_at", "-id")
                .values_list(*INSTANCE_COLUMNS)
            ),
            atomic=False,
            reconnect=True,
        )
        if row is None:
            raise InstanceNotFound()
        return instance_from(*row)

    # -- polling -----------------------------------------------------------------------------

    def _poll(self, kind: Kind, claim: Callable[[], T | None], timeout: float) -> T | None:
        deadline = _monotonic() + max(0.0, timeout)
        while True:
            seen = self._waker.generation(kind)
            task = claim()
            if task is not None:
                return task
            remaining = deadline - _monotonic()
            if remaining <= 0:
                return None
            self._waker.wait(kind, seen, min(remaining, self.poll_interval))

    @contextlib.contextmanager
    def task_scope(self) -> Iterator[None]:
        """Close stale or broken connections before every task, as Django does around requests:
        a worker thread lives for days, longer than the server keeps an idle connection. Once
        per task is enough: the pool's threads take task after task, so a connection a task
        broke or outlived is closed before the next one uses it."""
        self._close_old_connections()
        yield

    def _close_old_connections(self) -> None:
        if not connections[self.using].in_atomic_block:
            close_old_connections()

    # -- workflow tasks ----------------------------------------------------------------------

    def get_workflow_task(self, queues: Sequence[str], timeout: float) -> WorkflowTask | None:
        tasks = self.get_workflow_tasks(queues, timeout, 1)
        return tasks[0] if tasks else None

    def get_workflow_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[WorkflowTask]:
        queues = list(queues)
        return self._poll("workflow", lambda: self._claim_workflow_tasks(queues, max_tasks) or None, timeout) or []

    def _claim_workflow_tasks(self, queues: list[str], limit: int) -> list[WorkflowTask]:
        me = self.options.worker_name
        # Look first without locking: an idle poll must not queue for SQLite's write lock (or
        # open a transaction at all elsewhere).
        if not self._db.run(lambda: self._sql.has_candidate(queues, me), atomic=False, reconnect=True):
            return []

        def claim() -> list[WorkflowTask]:
            # Three statements for the whole batch: lock the candidates, read their visible
            # pending events, lease those that have some (under one token; a lease is fenced
            # by row id and token, so the tasks stay apart).
            sql = self._sql
            rows = sql.claim_candidates(queues, me, limit)
            if not rows:
                return []
            pending = sql.visible_pending_of([row[0] for row in rows])
            rows = [row for row in rows if pending.get(row[0])]
            if not rows:
                return []
            token = uuid.uuid4().hex
            if sql.lease_executions([row[0] for row in rows], token, me, self.options.workflow_lock) != len(rows):
                raise _NothingToClaim()  # a SQLite connection in DEFERRED mode raced us: roll back
            return [self._workflow_task(row, pending[row[0]], token) for row in rows]

        try:
            return self._db.run(claim, reconnect=True)
        except _NothingToClaim:
            return []

    def _lease_workflow_task(self, row: Sequence[Any], *, require_not_sticky: bool) -> WorkflowTask | None:
        """Lease the execution ``row`` (``TASK_COLUMNS``) to this worker if its task is free
        (and, with ``require_not_sticky``, not sticky to another worker), with all its visible
        pending events; inside the caller's transaction."""
        row_id = row[0]
        token = uuid.uuid4().hex
        sql = self._sql
        if not sql.lease_execution(
            row_id, token, self.options.worker_name, self.options.workflow_lock, require_not_sticky=require_not_sticky
        ):
            return None
        pending = sql.visible_pending(row_id)
        if not pending:
            raise _NothingToClaim()  # rolls back the lease: nothing to execute
        return self._workflow_task(row, pending, token)

    def _workflow_task(self, row: Sequence[Any], pending: list[tuple[Any, ...]], token: str) -> WorkflowTask:
        """The task of the leased execution ``row`` (``TASK_COLUMNS``) with its visible pending events."""
        row_id, queue, name, metadata, last_sequence_id, *identity = row
        return WorkflowTask(
            id=identity[0],
            queue=queue,
            instance=instance_from(*identity),
            state=InstanceState.ACTIVE,
            metadata=dict(self._sql.read_json(metadata) or {}),
            last_sequence_id=last_sequence_id,
            new_events=[event_from(*values[2:]) for values in pending],
            lease_token=token,
            workflow_name=name,
            custom_data=WorkflowTaskData(
                row_id=row_id,
                pending_ids=tuple(values[0] for values in pending),
                payload_ids={values[2]: values[1] for values in pending},
            ),
        )

    def _leased_instance(self, task: WorkflowTask) -> Any:
        data: WorkflowTaskData = task.custom_data
        return self._instances().filter(pk=data.row_id, lease_token=task.lease_token, locked_until__gt=DbNow())

    def extend_workflow_task(self, task: WorkflowTask) -> None:
        extended = self._db.run(
            lambda: self._leased_instance(task).update(locked_until=DbNow(self.options.workflow_lock)),
            atomic=False,
            reconnect=True,
        )
        if extended != 1:
            raise LeaseLost()

    def abandon_workflow_task(self, task: WorkflowTask) -> None:
        released = self._db.run(
            lambda: self._leased_instance(task).update(locked_until=None, lease_token="", sticky_until=None),
            atomic=False,
            reconnect=True,
        )
        if released:
            self._waker.notify("workflow")

    def complete_workflow_task(
        self,
        task: WorkflowTask,
        *,
        state: InstanceState,
        executed_events: Sequence[Event],
        activity_events: Sequence[Event],
        timer_events: Sequence[Event],
        workflow_events: Sequence[WorkflowEvent],
        activity_queues: Sequence[str] = (),
        max_leased_activities: int = 0,
    ) -> list[ActivityTask]:
        if not isinstance(task.custom_data, WorkflowTaskData):
            raise LeaseLost("this workflow task was not leased from the ORM backend")
        completion = Completion(
            using=self.using,
            options=self.options,
            can_return_ids=self._can_return_ids(),
            task=task,
            state=state,
            executed_events=executed_events,
            activity_events=activity_events,
            timer_events=timer_events,
            workflow_events=workflow_events,
            now=system_clock.now(),
            activity_queues=activity_queues,
            max_leased_activities=max_leased_activities,
            sql=self._sql,
        )

        def complete() -> Any:
            result = completion.run()
            self._notify_on_commit("workflow", result.timers)
            if result.activities:
                self._notify_on_commit("activity")
            return result

        # Integrity races (a sub-workflow id started concurrently) resolve on a fresh attempt.
        result = self._db.run(complete, reconnect=True, integrity_attempts=3)
        if result.rejected:
            raise CompletionRejected()
        return result.leased

    # -- activity tasks (activity_tasks) ----------------------------------------------------

    def get_activity_task(self, queues: Sequence[str], timeout: float) -> ActivityTask | None:
        tasks = self.get_activity_tasks(queues, timeout, 1)
        return tasks[0] if tasks else None

    def get_activity_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[ActivityTask]:
        queues = list(queues)
        return self._poll("activity", lambda: self._activity_tasks.claim(queues, max_tasks) or None, timeout) or []

    def extend_activity_task(self, task: ActivityTask) -> None:
        self._activity_tasks.extend(task)

    def complete_activity_task(
        self, task: ActivityTask, result: Event, *, workflow_queues: Sequence[str] = ()
    ) -> WorkflowTask | None:
        return self._activity_tasks.complete(task, result, workflow_queues)

    def abandon_activity_task(self, task: ActivityTask) -> None:
        self._activity_tasks.abandon(task)

    # -- misc --------------------------------------------------------------------------------

    def get_stats(self) -> Stats:
        def stats() -> Stats:
            active = self._instances().filter(state=ACTIVE)
            has_events = Exists(PendingEvent.objects.filter(visible(), instance_id=OuterRef("pk")))
            workflow_tasks = active.filter(has_events).order_by().values("queue").annotate(n=Count("id"))
            activity_tasks = self._activities().order_by().values("queue").annotate(n=Count("id"))
            return Stats(
                active_workflow_instances=active.count(),
                pending_workflow_tasks={r["queue"]: r["n"] for r in workflow_tasks},
                pending_activity_tasks={r["queue"]: r["n"] for r in activity_tasks},
            )

        return self._db.run(stats, atomic=False, reconnect=True)

    def list_workflow_instances(
        self, filter: InstanceFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> InstancePage:
        from .listing import list_workflow_instances

        return list_workflow_instances(self.using, self._db.run, filter, limit, cursor)

    def get_pending_events(self, instance: WorkflowInstance) -> list[Event]:
        from .listing import pending_events

        return pending_events(self.using, self._db.run, instance)


def _monotonic() -> float:
    return time.monotonic()
