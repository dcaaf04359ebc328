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
import functools
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    close_old_connections,
    connections,
)
from django.db.models import Count, Exists, OuterRef, Q

from ...engine.backend import (
    ActivityTask,
    BlockBackoff,
    BlockedInfo,
    ExecutionSeed,
    Feature,
    InstanceInfo,
    InstancePage,
    QueueBacklog,
    RemoveProgress,
    Stats,
    WorkerInfo,
    WorkflowTask,
    WorkflowTaskCompletion,
)
from ...engine.clock import system_clock, to_timedelta
from ...engine.converter import Payload
from ...engine.core import InstanceState, WorkflowInstance, validate_id
from ...engine.errors import (
    ErrorInfo,
    InstanceAlreadyExists,
    InstanceFinished,
    InstanceNotFinished,
    InstanceNotFound,
)
from ...engine.history import Event, EventType, WorkflowExecutionStartedAttributes, attributes_from_json
from ...engine.listing import InstanceFilter
from ...models import HistoryEvent, Outcome, PendingEvent
from ..base import BaseBackend
from ..handler import InvalidWorkflowBackend
from ..rules import activity_queue, canceled_before_start_events, execution_deadline, terminated_events, timed_out_events
from .activity_tasks import ActivityTasks
from .checks import check_orm_backend
from .completion import delete_execution_rows
from .creation import create_executions
from .listing import list_workflow_instances, pending_events
from .removal import remove_finished
from .rows import EVENT_COLUMNS, INSTANCE_COLUMNS, event_from, instance_from, new_execution
from .schedules import OrmScheduleStore
from .sql import new_token, payload_json, read_json, visible_q
from .store import ACTIVE, OrmStore
from .transactions import DEFAULT_LOCK_RETRY_TIMEOUT, SUPPORTED_VENDORS, DbNow, first, raw_delete
from .workers import OrmWorkers
from .workflow_tasks import WorkflowTasks

#: What ends an execution without running it: given the execution, the history events to
#: append (each with the payload id to reuse, or None for a new payload) and the event for its
#: parent (or None).
_Ending = Callable[[WorkflowInstance], tuple[list[tuple[Event, str | None]], Event | None]]

#: Default longest sleep of an idle poller between two looks at the database (it looks sooner
#: after it found work, see ``store.FAST_POLL_INTERVAL``): work committed by other processes is
#: found within it.
DEFAULT_POLL_INTERVAL = 0.2
#: The same where notifications wake pollers (PostgreSQL): a look is then only the fallback.
NOTIFIED_POLL_INTERVAL = 2.0


class OrmBackend(BaseBackend):
    features = frozenset({Feature.REMOVE_INSTANCES, Feature.LEASE_ON_COMPLETION, Feature.WORKER_REGISTRY})

    def __init__(
        self,
        using: str = DEFAULT_DB_ALIAS,
        *,
        poll_interval: float | timedelta | None = None,
        lock_retry_timeout: float | timedelta = DEFAULT_LOCK_RETRY_TIMEOUT,
        notifications: bool | None = None,
        prepared_statements: bool | None = None,
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
        if notifications is None:
            notifications = vendor == "postgresql"
        elif notifications and vendor != "postgresql":
            raise InvalidWorkflowBackend(
                f"OrmBackend: notifications need PostgreSQL (LISTEN/NOTIFY); database {using!r} is {vendor}"
            )
        if prepared_statements is None:
            prepared_statements = vendor == "postgresql"
        elif prepared_statements and vendor != "postgresql":
            raise InvalidWorkflowBackend(
                f"OrmBackend: prepared_statements is a PostgreSQL option; database {using!r} is {vendor}"
            )
        if poll_interval is None:
            poll_interval = NOTIFIED_POLL_INTERVAL if notifications else DEFAULT_POLL_INTERVAL
        interval = to_timedelta(poll_interval, what="poll_interval").total_seconds()
        if interval <= 0:
            raise ValueError(f"OrmBackend: poll_interval must be positive, got {poll_interval!r}")
        retry_timeout = to_timedelta(lock_retry_timeout, what="lock_retry_timeout").total_seconds()
        if retry_timeout < 0:
            raise ValueError(f"OrmBackend: lock_retry_timeout must not be negative, got {lock_retry_timeout!r}")
        self.using = using
        self.poll_interval = interval
        self.store = OrmStore(
            using,
            self.options,
            poll_interval=interval,
            lock_retry_timeout=retry_timeout,
            notifications=notifications,
            prepared_statements=prepared_statements,
        )
        # task_scope: a connection that will not be reused goes at the end of each task.
        self._close_after_task = self.store.db.pooled or connections.settings[using].get("CONN_MAX_AGE", 0) == 0
        self.workflow_tasks = WorkflowTasks(self.store)
        self.activity_tasks = ActivityTasks(self.store, self.workflow_tasks)
        #: The schedule store (``schedules.store.ScheduleStore``) on this backend's tables.
        self.schedules = OrmScheduleStore(self.store)
        self.workers = OrmWorkers(self.store)

    def release_finished_threads(self) -> None:
        self.store.stop_listening()
        self.store.db.close_orphans()

    def close(self) -> None:
        self.store.stop_listening()
        self.store.db.close_orphans()

    def check(self, **kwargs: Any) -> list[Any]:
        return check_orm_backend(
            self.using, alias=kwargs.get("alias", "default"), databases=kwargs.get("databases"),
            max_payload_size=self.options.max_payload_size, notifications=self.store.notifier is not None,
            prepared_statements=self.store.sql.prepared,
        )

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
            row = new_execution(instance, attributes, execution_deadline(event))
            store.sql.insert_executions([row])
            store.insert_events([(row.row_id, row.queue, event)], new_instances=instance.parent is None)
            store.notify_on_commit("workflow")

        try:
            store.db.run(create)
        except IntegrityError:
            # The unique active_instance_id (or instance/execution pair) refused the row.
            raise InstanceAlreadyExists() from None

    def create_workflow_instances(self, starts: Sequence[tuple[WorkflowInstance, Event]]) -> None:
        for instance, event in starts:
            validate_id(instance.instance_id)
            if not isinstance(event.attributes, WorkflowExecutionStartedAttributes):
                raise TypeError(f"create_workflow_instances needs WorkflowExecutionStarted events, got {event.type}")
        if not starts:
            return
        store = self.store

        def create() -> None:
            create_executions(store, starts)
            store.notify_on_commit("workflow")

        try:
            store.db.run(create)
        except IntegrityError:
            # One statement refused the batch: name the ids that are taken (or repeated in it).
            ids = [instance.instance_id for instance, _ in starts]
            taken = set(store.instances().filter(active_instance_id__in=ids).values_list("instance_id", flat=True))
            taken |= {instance_id for instance_id in ids if ids.count(instance_id) > 1}
            raise InstanceAlreadyExists(f"already started: {', '.join(sorted(taken)) or 'one of the ids'}") from None

    def create_workflow_instance_from_history(self, seed: ExecutionSeed) -> None:
        validate_id(seed.instance.instance_id)
        store, sql = self.store, self.store.sql

        def create() -> None:
            row = new_execution(seed.instance, seed.started)
            row.last_sequence_id = len(seed.history)
            sql.insert_executions([row])
            history = [(new_token(), event) for event in seed.history]
            activities = [(new_token(), event) for event in seed.activity_events]
            sql.insert_payloads([(payload_id, row.row_id, payload_json(event)) for payload_id, event in history + activities])
            sql.insert_history([(row.row_id, payload_id, event) for payload_id, event in history])
            queue = seed.started.queue
            sql.insert_activities(
                [(row.row_id, payload_id, event, activity_queue(event, queue)) for payload_id, event in activities],
                {},
                store.options.worker_name,
                store.options.activity_lock,
            )
            store.insert_events([(row.row_id, row.queue, event) for event in [*seed.pending_events, *seed.timer_events]])
            store.notify_on_commit("workflow", [e.visible_at for e in seed.timer_events if e.visible_at is not None])
            if activities:
                store.notify_on_commit("activity")

        try:
            store.db.run(create)
        except IntegrityError:
            raise InstanceAlreadyExists() from None

    def cancel_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        store = self.store

        def cancel() -> None:
            row = first(store.execution(instance).select_for_update().values_list("pk", "state", "last_sequence_id", "queue"))
            if row is None:
                raise InstanceNotFound()
            row_id, state, last_sequence_id, queue = row
            if state != ACTIVE:
                raise InstanceFinished()
            delayed = self._delayed_start(row_id) if last_sequence_id == 0 else None
            if delayed is None:
                store.insert_events([(row_id, queue, event)])
                store.notify_on_commit("workflow")
                return
            # Canceled before it started: it ends now, its code never runs; the start event
            # moves from the inbox to the history.
            pending_id, payload_id, started = delayed
            self._end(instance, str(Outcome.CANCELED), lambda execution: _before_start(execution, started, payload_id))

        store.db.run(cancel)

    def _delayed_start(self, row_id: int) -> tuple[int, str, Event] | None:
        """The pending start event of an execution whose start is still delayed."""
        row = first(
            PendingEvent.objects.using(self.using)
            .filter(instance_id=row_id, event_type=EventType.WORKFLOW_EXECUTION_STARTED.value, visible_at__gt=DbNow())
            .values_list("pk", "payload_id", *EVENT_COLUMNS)
        )
        if row is None:
            return None
        return row[0], row[1], event_from(*row[2:])

    def terminate_workflow_instance(self, instance: WorkflowInstance, reason: str) -> None:
        def ending(execution: WorkflowInstance) -> tuple[list[tuple[Event, str | None]], Event | None]:
            terminated, parent_event = terminated_events(execution, reason, system_clock.now())
            return [(terminated, None)], parent_event

        self.store.db.run(lambda: self._end(instance, str(Outcome.TERMINATED), ending))

    def _end(self, instance: WorkflowInstance, outcome: str, ending: _Ending, *, only_if: Q | None = None) -> bool:
        """End an active execution at once without running its code (terminated, timed out,
        canceled before it started), inside the caller's transaction: drop its pending work and
        activities, append the events ``ending(execution)`` returns ((event, payload id to reuse
        or None) pairs, and an event for the parent or None), tell the parent. ``only_if``
        narrows the locking query (the execution must still match it); returns whether it ended."""
        store = self.store
        query = store.execution(instance).select_for_update()
        if only_if is not None:
            query = query.filter(only_if)
        row = first(query.values_list("pk", "state", "last_sequence_id", *INSTANCE_COLUMNS))
        if row is None:
            if only_if is not None:
                return False
            raise InstanceNotFound()
        row_id, state, last_sequence_id, *identity = row
        if state != ACTIVE:
            if only_if is not None:
                return False
            raise InstanceFinished()
        execution = instance_from(*identity)
        events, parent_event = ending(execution)
        kept = [payload_id for _, payload_id in events if payload_id is not None]
        pending_keep = list(PendingEvent.objects.using(self.using).filter(payload_id__in=kept).values_list("pk", flat=True))
        store.sql.drop_pending(row_id, keep_payloads_of=pending_keep)
        raw_delete(store.activities().filter(instance_id=row_id))
        store.instances().filter(pk=row_id).update(
            state=InstanceState.FINISHED.value,
            outcome=outcome,
            completed_at=DbNow(),
            active_instance_id=None,
            locked_until=None,
            lease_token="",
            last_sequence_id=last_sequence_id + len(events),
            timeout_at=None,
            blocked_error=None,
            blocked_since=None,
            blocked_attempts=0,
            blocked_until=None,
        )
        payloads = []
        history = []
        for position, (event, payload_id) in enumerate(events, start=last_sequence_id + 1):
            if payload_id is None:
                payload_id = new_token()
                payloads.append((payload_id, row_id, payload_json(event)))
            history.append((row_id, payload_id, event.with_sequence_id(position)))
        store.sql.insert_payloads(payloads)
        store.sql.insert_history(history)
        if parent_event is not None and execution.parent is not None:
            store.deliver_to_execution(execution.parent, parent_event)
        return True

    def time_out_workflow_instances(self, max_instances: int = 100) -> int:
        store = self.store
        due = store.db.run(lambda: store.sql.timed_out_executions(max_instances), atomic=False, reconnect=True)
        ended = 0
        for instance_id, execution_id in due:
            instance = WorkflowInstance(instance_id, execution_id)

            def ending(execution: WorkflowInstance) -> tuple[list[tuple[Event, str | None]], Event | None]:
                ended_event, parent_event = timed_out_events(execution, self._execution_timeout(execution), system_clock.now())
                return [(ended_event, None)], parent_event

            only_if = Q(timeout_at__lte=DbNow())
            if store.db.run(functools.partial(self._end, instance, str(Outcome.TIMED_OUT), ending, only_if=only_if)):
                ended += 1
        return ended

    def _execution_timeout(self, execution: WorkflowInstance) -> float | None:
        """The execution's ``execution_timeout``, from its start event."""
        for model in (HistoryEvent, PendingEvent):
            data = first(
                model.objects.using(self.using)
                .filter(
                    instance__instance_id=execution.instance_id,
                    instance__execution_id=execution.execution_id,
                    event_type=EventType.WORKFLOW_EXECUTION_STARTED.value,
                )
                .values_list("payload__data", flat=True)
            )
            if data is not None:
                attributes = attributes_from_json(EventType.WORKFLOW_EXECUTION_STARTED, data)
                assert isinstance(attributes, WorkflowExecutionStartedAttributes)
                return attributes.execution_timeout
        return None

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

    def remove_workflow_instances(
        self, *, finished_before: datetime, batch_size: int = 100, progress: RemoveProgress | None = None
    ) -> int:
        # Bounded batches, each its own transaction, with pauses between them (removal.py).
        return remove_finished(self.store, finished_before, batch_size, progress)

    def get_workflow_instance_state(self, instance: WorkflowInstance) -> InstanceState:
        state = self.store.db.run(
            lambda: first(self.store.execution(instance).values_list("state", flat=True)), atomic=False, reconnect=True
        )
        if state is None:
            raise InstanceNotFound()
        return InstanceState(state)

    def get_workflow_instance_info(self, instance: WorkflowInstance) -> InstanceInfo:
        columns = (
            "pk", "last_sequence_id", "workflow_name", "queue", "state", "created_at", "completed_at", "metadata",
            "blocked_error", "blocked_since", "blocked_attempts", "blocked_until", *INSTANCE_COLUMNS,
        )

        def read() -> tuple[Any, datetime | None]:
            row = first(self.store.execution(instance).values_list(*columns))
            # Only an execution that never ran can have a delayed start.
            never_ran = row is not None and row[4] == ACTIVE and row[1] == 0
            delayed = self._delayed_start(row[0]) if never_ran else None
            return row, None if delayed is None else delayed[2].visible_at

        row, scheduled_for = self.store.db.run(read, atomic=False, reconnect=True)
        if row is None:
            raise InstanceNotFound()
        _, _, name, queue, state, created_at, completed_at, metadata, error, since, attempts, until, *identity = row
        blocked = None
        if since is not None and until is not None and error is not None:
            blocked = BlockedInfo(error=ErrorInfo.from_dict(read_json(error)), since=since, attempts=attempts, retry_at=until)
        return InstanceInfo(
            scheduled_for=scheduled_for,
            instance=instance_from(*identity),
            workflow_name=name,
            queue=queue,
            state=InstanceState(state),
            created_at=created_at,
            completed_at=completed_at,
            metadata=dict(metadata or {}),
            blocked=blocked,
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
        a worker thread lives for days, longer than the server keeps an idle connection; a
        connection a task broke or outlived is closed before the next task uses it. After the
        task, too, where the thread would otherwise keep a connection it cannot reuse: with
        ``CONN_MAX_AGE`` 0 (the next task would open a new one anyway; without this an idle
        thread held one each: 183 server connections for 8 workers) and with Django's
        connection pool (the connection goes back, so a pool need only be as large as the work
        that runs at once, not as the worker's threads). With persistent connections the check
        stays once per task: a second one cost about 10 % of the CPU per activity on W1."""
        connection = connections[self.using]
        if not connection.in_atomic_block:
            close_old_connections()
        try:
            yield
        finally:
            if self._close_after_task and not connection.in_atomic_block:
                close_old_connections()

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

    def block_workflow_task(self, task: WorkflowTask, error: ErrorInfo, backoff: BlockBackoff) -> BlockedInfo:
        return self.workflow_tasks.block(task, error, backoff)

    def complete_workflow_task(
        self, task: WorkflowTask, completion: WorkflowTaskCompletion
    ) -> list[ActivityTask | WorkflowTask]:
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

    def heartbeat_activity_task(self, task: ActivityTask, details: Payload | None = None) -> bool:
        return self.activity_tasks.heartbeat(task, details)

    def time_out_activity_tasks(self, max_tasks: int = 100) -> int:
        return self.activity_tasks.time_out(max_tasks)

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

    def list_workflow_instances(
        self, filter: InstanceFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> InstancePage:
        return list_workflow_instances(self.using, self.store.db.run, filter, limit, cursor)

    def get_pending_events(self, instance: WorkflowInstance) -> list[Event]:
        return pending_events(self.using, self.store.db.run, instance)

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


def _before_start(execution: WorkflowInstance, started: Event, payload_id: str) -> tuple[list[tuple[Event, str | None]], Event | None]:
    """The history of an execution canceled before its delayed start (its start event keeps
    its payload)."""
    events, parent_event = canceled_before_start_events(execution, system_clock.now())
    return [(started, payload_id), *((event, None) for event in events)], parent_event
