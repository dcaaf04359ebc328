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

``OrmBackend`` is the facade: settings validation, instance operations and stats; it hands tasks
to ``workflow_tasks`` (claim, extend, abandon, complete through ``completion``) and
``activity_tasks``, which share one ``store.OrmStore`` (transactions, the named SQL of ``sql``,
wake-ups). docs/architecture.md maps the package.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    close_old_connections,
    connections,
)
from django.db.models import Count, Exists, OuterRef

from ...engine.backend import (
    ActivityTask,
    Feature,
    InstanceInfo,
    QueueBacklog,
    Stats,
    WorkerInfo,
    WorkflowTask,
    WorkflowTaskCompletion,
)
from ...engine.clock import system_clock, to_timedelta
from ...engine.core import InstanceState, WorkflowInstance, validate_id
from ...engine.errors import (
    InstanceAlreadyExists,
    InstanceFinished,
    InstanceNotFinished,
    InstanceNotFound,
)
from ...engine.history import Event, WorkflowExecutionStartedAttributes
from ...models import HistoryEvent, Outcome, PendingEvent
from ..base import BaseBackend
from ..handler import InvalidWorkflowBackend
from ..rules import terminated_events
from .activity_tasks import ActivityTasks
from .checks import check_orm_backend
from .completion import delete_execution_rows
from .rows import EVENT_COLUMNS, INSTANCE_COLUMNS, event_from, instance_from, new_execution
from .schedules import OrmScheduleStore
from .sql import new_token, payload_json, visible_q
from .store import ACTIVE, OrmStore
from .transactions import DEFAULT_LOCK_RETRY_TIMEOUT, SUPPORTED_VENDORS, DbNow, first, raw_delete
from .workers import OrmWorkers
from .workflow_tasks import WorkflowTasks

#: Default seconds between two looks at the database of an idle poller.
DEFAULT_POLL_INTERVAL = 0.2


class OrmBackend(BaseBackend):
    features = frozenset({Feature.REMOVE_INSTANCES, Feature.LEASE_ON_COMPLETION, Feature.WORKER_REGISTRY})

    def __init__(
        self,
        using: str = DEFAULT_DB_ALIAS,
        *,
        poll_interval: float | timedelta = DEFAULT_POLL_INTERVAL,
        lock_retry_timeout: float | timedelta = DEFAULT_LOCK_RETRY_TIMEOUT,
        **options: Any,
    ) -> None:
        super().__init__(**options)
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
        self.store = OrmStore(using, self.options, poll_interval=interval, lock_retry_timeout=retry_timeout)
        self.workflow_tasks = WorkflowTasks(self.store)
        self.activity_tasks = ActivityTasks(self.store, self.workflow_tasks)
        #: The schedule store (``schedules.store.ScheduleStore``) on this backend's tables.
        self.schedules = OrmScheduleStore(self.store)
        self.workers = OrmWorkers(self.store)

    def release_finished_threads(self) -> None:
        self.store.db.close_orphans()

    def close(self) -> None:
        self.store.db.close_orphans()

    def check(self, **kwargs: Any) -> list[Any]:
        return check_orm_backend(self.using, alias=kwargs.get("alias", "default"), databases=kwargs.get("databases"))

    @property
    def retries(self) -> int:
        """Transactions this backend object retried (lock conflicts, lost connections)."""
        return self.store.db.retries

    # -- instances ---------------------------------------------------------------------------

    def create_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        validate_id(instance.instance_id)
        attributes = event.attributes
        if not isinstance(attributes, WorkflowExecutionStartedAttributes):
            raise TypeError(f"create_workflow_instance needs a WorkflowExecutionStarted event, got {event.type}")

        store = self.store

        def create() -> None:
            row = new_execution(instance, attributes)
            row.save(using=self.using, force_insert=True)
            store.insert_events([(row.pk, row.queue, event)])
            store.notify_on_commit("workflow")

        try:
            store.db.run(create)
        except IntegrityError:
            # The unique active_instance_id (or instance/execution pair) refused the row.
            raise InstanceAlreadyExists() from None

    def cancel_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        store = self.store

        def cancel() -> None:
            row = first(store.execution(instance).select_for_update().values_list("pk", "state", "queue"))
            if row is None:
                raise InstanceNotFound()
            if row[1] != ACTIVE:
                raise InstanceFinished()
            store.insert_events([(row[0], row[2], event)])
            store.notify_on_commit("workflow")

        store.db.run(cancel)

    def terminate_workflow_instance(self, instance: WorkflowInstance, reason: str) -> None:
        store = self.store

        def terminate() -> None:
            row = first(
                store.execution(instance)
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
            store.sql.drop_pending(row_id, keep_payloads_of=())
            raw_delete(store.activities().filter(instance_id=row_id))
            store.instances().filter(pk=row_id).update(
                state=InstanceState.FINISHED.value,
                outcome=str(Outcome.TERMINATED),
                completed_at=DbNow(),
                active_instance_id=None,
                locked_until=None,
                lease_token="",
                last_sequence_id=last_sequence_id + 1,
            )
            payload_id = new_token()
            store.sql.insert_payloads([(payload_id, row_id, payload_json(terminated))])
            store.sql.insert_history([(row_id, payload_id, terminated.with_sequence_id(last_sequence_id + 1))])
            if parent_event is not None and execution.parent is not None:
                store.deliver_to_execution(execution.parent, parent_event)

        store.db.run(terminate)

    def signal_workflow(self, instance_id: str, event: Event) -> WorkflowInstance:
        store = self.store

        def active_execution() -> Any:
            return first(
                store.instances()
                .filter(active_instance_id=instance_id)
                .select_for_update()
                .values_list("pk", "queue", *INSTANCE_COLUMNS)
            )

        def signal() -> WorkflowInstance:
            # Twice if need be: an execution that continued as new while the first statement
            # waited for its lock no longer matches, and its successor was not in that
            # statement's snapshot (PostgreSQL, READ COMMITTED); the second statement sees it.
            row = active_execution() or active_execution()
            if row is None:
                if store.instances().filter(instance_id=instance_id).exists():
                    raise InstanceFinished()
                raise InstanceNotFound()
            store.insert_events([(row[0], row[1], event)])
            store.notify_on_commit("workflow")
            return instance_from(*row[2:])

        return store.db.run(signal)

    def remove_workflow_instance(self, instance: WorkflowInstance) -> None:
        def remove() -> None:
            row = first(self.store.execution(instance).select_for_update().values_list("pk", "state"))
            if row is None:
                raise InstanceNotFound()
            if row[1] == ACTIVE:
                raise InstanceNotFinished()
            delete_execution_rows(self.using, [row[0]])

        self.store.db.run(remove)

    def remove_workflow_instances(self, *, finished_before: datetime, batch_size: int = 100) -> int:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")

        def remove_batch() -> int:
            candidates = self.store.locking(
                self.store.instances().filter(completed_at__lt=finished_before).exclude(state=ACTIVE)
            )
            ids = list(candidates.order_by("completed_at", "id").values_list("pk", flat=True)[:batch_size])
            if ids:
                delete_execution_rows(self.using, ids)
            return len(ids)

        # Until a batch comes back empty, not merely short: rows another transaction held for a
        # moment (SKIP LOCKED) are picked up by the next batch.
        removed = 0
        while True:
            count = self.store.db.run(remove_batch)
            removed += count
            if count == 0:
                return removed

    def get_workflow_instance_state(self, instance: WorkflowInstance) -> InstanceState:
        state = self.store.db.run(
            lambda: first(self.store.execution(instance).values_list("state", flat=True)), atomic=False, reconnect=True
        )
        if state is None:
            raise InstanceNotFound()
        return InstanceState(state)

    def get_workflow_instance_info(self, instance: WorkflowInstance) -> InstanceInfo:
        columns = ("workflow_name", "queue", "state", "created_at", "completed_at", "metadata", *INSTANCE_COLUMNS)
        row = self.store.db.run(
            lambda: first(self.store.execution(instance).values_list(*columns)), atomic=False, reconnect=True
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
            if not events and not self.store.execution(instance).exists():
                raise InstanceNotFound()
            return events

        return self.store.db.run(history, atomic=False, reconnect=True)

    def get_latest_execution(self, instance_id: str) -> WorkflowInstance:
        row = self.store.db.run(
            lambda: first(
                self.store.instances()
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

    # -- tasks (workflow_tasks, activity_tasks) -----------------------------------------------

    @contextlib.contextmanager
    def task_scope(self) -> Iterator[None]:
        """Close stale or broken connections before every task, as Django does around requests:
        a worker thread lives for days, longer than the server keeps an idle connection. Once
        per task is enough: the pool's threads take task after task, so a connection a task
        broke or outlived is closed before the next one uses it."""
        if not connections[self.using].in_atomic_block:
            close_old_connections()
        yield

    def prepare_workflow_queues(self, queues: Sequence[str]) -> None:
        self.workflow_tasks.prepare()

    def get_workflow_task(self, queues: Sequence[str], timeout: float) -> WorkflowTask | None:
        tasks = self.get_workflow_tasks(queues, timeout, 1)
        return tasks[0] if tasks else None

    def get_workflow_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[WorkflowTask]:
        queues = list(queues)
        return self.store.poll("workflow", lambda: self.workflow_tasks.claim(queues, max_tasks), timeout)

    def extend_workflow_task(self, task: WorkflowTask) -> None:
        self.workflow_tasks.extend(task)

    def abandon_workflow_task(self, task: WorkflowTask) -> None:
        self.workflow_tasks.abandon(task)

    def complete_workflow_task(self, task: WorkflowTask, completion: WorkflowTaskCompletion) -> list[ActivityTask]:
        return self.workflow_tasks.complete(task, completion)

    def release_sticky_instances(self) -> int:
        return self.workflow_tasks.release_sticky()

    def get_activity_task(self, queues: Sequence[str], timeout: float) -> ActivityTask | None:
        tasks = self.get_activity_tasks(queues, timeout, 1)
        return tasks[0] if tasks else None

    def get_activity_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[ActivityTask]:
        queues = list(queues)
        return self.store.poll("activity", lambda: self.activity_tasks.claim(queues, max_tasks), timeout)

    def extend_activity_task(self, task: ActivityTask) -> None:
        self.activity_tasks.extend(task)

    def complete_activity_task(
        self, task: ActivityTask, result: Event, *, workflow_queues: Sequence[str] = ()
    ) -> WorkflowTask | None:
        return self.activity_tasks.complete(task, result, workflow_queues)

    def abandon_activity_task(self, task: ActivityTask) -> None:
        self.activity_tasks.abandon(task)

    # -- misc --------------------------------------------------------------------------------

    def get_stats(self) -> Stats:
        def stats() -> Stats:
            active = self.store.instances().filter(state=ACTIVE)
            has_events = Exists(PendingEvent.objects.filter(visible_q(), instance_id=OuterRef("pk")))
            workflow_tasks = active.filter(has_events).order_by().values("queue").annotate(n=Count("id"))
            activity_tasks = self.store.activities().order_by().values("queue").annotate(n=Count("id"))
            return Stats(
                active_workflow_instances=active.count(),
                pending_workflow_tasks={r["queue"]: r["n"] for r in workflow_tasks},
                pending_activity_tasks={r["queue"]: r["n"] for r in activity_tasks},
            )

        return self.store.db.run(stats, atomic=False, reconnect=True)

    # -- observability: backlog and live workers (``workers``) ---------------------------------

    def get_backlog(self) -> list[QueueBacklog]:
        return self.workers.backlog()

    def register_worker(self, info: WorkerInfo, ttl: timedelta) -> None:
        self.workers.register(info, ttl)

    def heartbeat_worker(self, worker_id: str, tasks_in_flight: int, ttl: timedelta) -> bool:
        return self.workers.heartbeat(worker_id, tasks_in_flight, ttl)

    def unregister_worker(self, worker_id: str) -> None:
        self.workers.unregister(worker_id)

    def list_workers(self) -> list[WorkerInfo]:
        return self.workers.live()
