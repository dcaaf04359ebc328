"""The ORM backend's SQL: every statement of its task paths, named, beside the method that runs it.

Every activity a workflow runs costs a few claims and completions. Built through the QuerySet
API, each of their statements spends more time in Django's query building and compiling than in
the database (2-4 ms of CPU per call, against well under a millisecond to run them). The
statements here are written once, from the models' table names, with named parameters
(``statements.Statement``), and run on the driver's cursor: the SQL the ORM would send,
parameterised the same way (no value is ever formatted into SQL), minus the per-call
compilation. Errors still pass through Django's error wrapping (so the backend's retries see
Django's exception classes) and statements are logged like Django's own when query logging is
on (``DEBUG``, ``CaptureQueriesContext``).

The lease vocabulary lives here too, once for every statement:

* ``new_token()`` mints a lease token;
* ``LEASED`` is the fence: the row is still leased with this token and the lease has not run out
  (``id = %(row_id)s AND lease_token = %(token)s AND locked_until > {now}``), the same for
  executions (workflow tasks) and activity tasks;
* ``free(alias)``: nobody holds the lease;
* ``in_time(alias)``: an activity task whose timeouts have not passed; ``ACTIVITY_LEASED`` is
  ``LEASED`` and ``in_time()``, the fence of an attempt's holder;
* ``earliest(a, b)``: the earlier of two deadlines, NULL meaning none;
* ``visible(alias)``: a pending event whose time has come; ``visible_q()`` is the same condition
  for QuerySets (stats, the admin).

Times are the database's (``{now}``, ``statements.Now``), never this process's clock.
Rarer work that touches other executions or creates them (starts, sub-workflows, terminations,
removals) stays on the QuerySet API in ``backend`` and ``delivery``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.db import connections
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from ...engine.errors import TimeoutType
from ...engine.history import Event, EventType, attributes_to_json
from ...models import ActivityTask as ActivityRow
from ...models import HistoryEvent, Payload, PendingEvent
from ...models import WorkflowInstance as InstanceRow
from ..rules import heartbeat_timeout, queued_deadlines, start_to_close
from .rows import NewExecution, PendingRow, TaskRow, event_from
from .statements import Dialect, Now, Statement
from .transactions import DbNow

_NOW = Now()

#: Columns of an execution that a workflow task needs, as ``rows.TaskRow`` names them.
TASK_COLUMNS = (
    "id",
    "queue",
    "workflow_name",
    "metadata",
    "last_sequence_id",
    "instance_id",
    "execution_id",
    "parent_instance_id",
    "parent_execution_id",
    "parent_schedule_event_id",
)
#: Columns of an event row (pending, history, activity), as ``rows.event_from`` takes them.
EVENT_COLUMNS = ("event_id", "event_type", "timestamp", "schedule_event_id", "sequence_id", "visible_at")

ACTIVE = 0  # engine.core.InstanceState.ACTIVE

# -- the lease vocabulary --------------------------------------------------------------------

#: The fence of a leased row (an execution's workflow task, or an activity task).
LEASED = "id = %(row_id)s AND lease_token = %(token)s AND locked_until > {now}"


def in_time(alias: str = "") -> str:
    """An activity task whose attempt has not timed out (``deadline`` NULL: no timeout)."""
    return f"({alias}deadline IS NULL OR {alias}deadline > {{now}})"


#: The fence of an activity attempt's holder: still leased, and none of its timeouts passed.
ACTIVITY_LEASED = LEASED + " AND " + in_time()


def earliest(a: str, b: str) -> str:
    """The earlier of the datetime expressions ``a`` and ``b``, where NULL means "none"."""
    return f"(CASE WHEN {b} IS NULL OR {a} <= {b} THEN {a} ELSE {b} END)"


def new_token() -> str:
    """A fresh lease token; every lease the backend hands out gets one."""
    return uuid.uuid4().hex


def free(alias: str = "") -> str:
    """Nobody holds the lease of the row (``alias.`` prefixes the columns)."""
    return f"({alias}locked_until IS NULL OR {alias}locked_until <= {{now}})"


def visible(alias: str = "") -> str:
    """A pending event whose time has come (``visible_at`` NULL means now)."""
    return f"({alias}visible_at IS NULL OR {alias}visible_at <= {{now}})"


def unblocked(alias: str = "") -> str:
    """The execution's workflow task is not blocked, or its retry time has come
    (``block_workflow_task``)."""
    return f"({alias}blocked_until IS NULL OR {alias}blocked_until <= {{now}})"


def started(alias: str = "") -> str:
    """The execution ran, or its start is due: one whose start was delayed (``start_delay``)
    waits until then, with every event sent to it meanwhile (only one that has no history yet
    can be waiting, so the subquery runs for new executions only)."""
    return (
        f"({alias}last_sequence_id > 0 OR NOT EXISTS (SELECT 1 FROM {{pending}} s WHERE s.instance_id = {alias}id"
        " AND s.event_type = 'WorkflowExecutionStarted' AND s.visible_at > {now}))"
    )


def visible_q() -> Q:
    """``visible()`` for QuerySets of ``PendingEvent``."""
    return Q(visible_at__isnull=True) | Q(visible_at__lte=DbNow())


class Candidates(NamedTuple):
    """Executions a claim may lease (row ids, oldest ready event first), by kind."""

    #: Executions with ready events of running work (results, timers, signals, sub-workflows).
    running: list[int]
    #: New instances waiting for their first workflow task.
    starts: list[int]


class ClaimedActivity(NamedTuple):
    """An activity task row a claim locked."""

    row_id: int
    instance_row_id: int
    lease_count: int
    queue: str
    payload_id: str
    #: What the attempt stored with ``activity.heartbeat(details)`` under an earlier lease.
    heartbeat_details: str | None
    #: ``EVENT_COLUMNS`` of the scheduled event.
    event_columns: tuple[Any, ...]
    #: (payload data, execution identity) where the claim could join them, else None.
    joined: tuple[Any, ...] | None


class HotSql:
    """The statements of one database alias."""

    def __init__(self, using: str, pinned: threading.local, *, prepared: bool = False) -> None:
        connection = connections[using]
        self.using = using
        # Where ``Transactions.run`` leaves the connection of the unit of work it runs.
        self._pinned = pinned
        self.vendor = connection.vendor
        # PostgreSQL: bind on the server and keep each statement prepared per connection, so the
        # server parses and plans it once instead of on every call (Django's own cursors bind
        # on the client and prepare nothing, which poolers in transaction mode need).
        self._server_cursor: Any = _server_binding_cursor() if prepared and self.vendor == "postgresql" else None
        #: Are the statements prepared on the server (``OrmBackend(prepared_statements=...)``)?
        self.prepared = self._server_cursor is not None
        self._dialect = Dialect(connection)
        self._statements: dict[str, Statement] = {}
        features = connection.features
        self._adapt_datetime = connection.ops.adapt_datetimefield_value
        self._tables = {
            "{instance}": connection.ops.quote_name(InstanceRow._meta.db_table),
            "{payload}": connection.ops.quote_name(Payload._meta.db_table),
            "{pending}": connection.ops.quote_name(PendingEvent._meta.db_table),
            "{history}": connection.ops.quote_name(HistoryEvent._meta.db_table),
            "{activity}": connection.ops.quote_name(ActivityRow._meta.db_table),
        }
        self._skip_locked = " FOR UPDATE SKIP LOCKED" if features.has_select_for_update_skip_locked else ""
        self._for_update = " FOR UPDATE" if features.has_select_for_update else ""
        self.returning = bool(features.can_return_rows_from_bulk_insert)
        # Activity completions only add to an execution's inbox; they need the execution not to
        # end under them, not to exclude each other. They try for the exclusive lock without
        # waiting (with it they may also lease the workflow's next task) and otherwise share the
        # lock, so the completions of a fan-out no longer queue behind one another.
        self.shares_execution_locks = bool(features.has_select_for_update_skip_locked)
        self._share = " FOR SHARE" if self.vendor == "postgresql" else " LOCK IN SHARE MODE"
        # Only where a transaction can lock further executions without waiting (no row locks at
        # all, or SKIP LOCKED) may it complete activities of several executions at once.
        self.locks_executions_without_waiting = self.shares_execution_locks or not features.has_select_for_update
        # Join the payload and the execution into the locking SELECT of an activity claim only
        # where the lock stays on the activity row: PostgreSQL (FOR UPDATE OF) and SQLite (no
        # row locks). MariaDB would lock the joined rows too; there a second SELECT reads them.
        self.activity_joined = bool(features.has_select_for_update_of) or not features.has_select_for_update
        self._lock_activity_only = " FOR UPDATE OF a SKIP LOCKED" if features.has_select_for_update_of else ""

    # -- running statements ------------------------------------------------------------------

    def _statement(self, name: str, template: str) -> Statement:
        statement = self._statements.get(name)
        if statement is None:
            text = template
            for token, table in self._tables.items():
                text = text.replace(token, table)
            statement = self._statements[name] = Statement(name, text, self._dialect)
        return statement

    def _execute(self, name: str, template: str, values: dict[str, Any]) -> Any:
        """Run the statement ``name`` with ``values`` on the driver's cursor; return the cursor."""
        sql, params = self._statement(name, template).render(values)
        db = getattr(self._pinned, "connection", None) or connections[self.using]
        if db.connection is None:  # what ensure_connection() checks, without its per-call wrappers
            db.ensure_connection()
        logged = db.queries_logged
        started = time.monotonic() if logged else 0.0
        with db.wrap_database_errors:
            if self._server_cursor is None:
                cursor = db.connection.cursor()
                cursor.execute(sql, params)
            else:
                cursor = self._server_cursor(db.connection)
                cursor.execute(sql, params, prepare=True)
        if logged:
            db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
        return cursor

    def _fetchone(self, name: str, template: str, **values: Any) -> Any:
        cursor = self._execute(name, template, values)
        try:
            return cursor.fetchone()
        finally:
            cursor.close()

    def _fetchall(self, name: str, template: str, **values: Any) -> list[Any]:
        cursor = self._execute(name, template, values)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _rowcount(self, name: str, template: str, **values: Any) -> int:
        cursor = self._execute(name, template, values)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    # -- values ------------------------------------------------------------------------------

    @staticmethod
    def read_datetime(value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = parse_datetime(value)
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # SQLite and MySQL keep naive UTC
        return value

    def _event(self, columns: Sequence[Any], data: str) -> Event:
        """The event of ``EVENT_COLUMNS`` values read by a statement, with its payload data."""
        event_id, event_type, timestamp, schedule_event_id, sequence_id, visible_at = columns
        return event_from(
            event_id,
            event_type,
            self.read_datetime(timestamp),
            schedule_event_id,
            sequence_id,
            self.read_datetime(visible_at),
            data,
        )

    def _event_row(self, row_id: int, payload_id: str, event: Event) -> tuple[Any, ...]:
        """The values of ``_EVENT_INSERT_COLUMNS`` for ``event``."""
        visible_at = event.visible_at
        return (
            event.id,
            event.type.value,
            self._adapt_datetime(event.timestamp),
            event.schedule_event_id,
            event.sequence_id,
            None if visible_at is None else self._adapt_datetime(visible_at),
            row_id,
            payload_id,
        )

    # -- workflow tasks: claims ----------------------------------------------------------------

    # Ready work is found through the pending events' (queue, ready_at) index: an execution that
    # waits for a timer, a signal or an activity has no ready row and costs nothing, however many
    # wait. The scan stops after ``limit`` rows; rows of executions that are leased or sticky to
    # another worker are skipped, and there are only as many of those as tasks in flight.
    # One queue per part, in ready order: the order is what keeps PostgreSQL on that index. It
    # cannot estimate ``ready_at <= statement_timestamp()`` (it assumes a third of the rows
    # match), and without the order it walked the pending rows by instance id into a merge join,
    # reading every waiting row on every poll (10,000 rows, 4.6 ms, at 10,000 waiting timers).
    # With the order, the index that yields it is the cheap plan whatever the estimate; a union
    # of one ordered part per queue, since PostgreSQL 15 gets no order from ``queue IN (...)``.
    #
    # Two parts per queue, each through the (queue, new_instance, ready_at) index in ready order:
    # the ready events of running executions (``new_instance`` false: results, timers, signals,
    # sub-workflow starts and results) and the starts of new instances. The claim prefers the
    # first (``WorkflowTasks.claim``): with a backlog of starts older than every result, the
    # oldest-first order alone started the whole backlog before it finished any workflow.
    # ``new_instance`` in the order (a constant in each part) leaves that index as the only one
    # that yields it: PostgreSQL, estimating a queue it has no statistics for, otherwise chose
    # the older (queue, ready_at) index and filtered, which walks a backlog of starts.
    # The execution is checked by a correlated scalar subquery, not a join, and ``state + 0``
    # leaves its primary key as the only index for it: one probe per pending row read. With
    # the tables never analysed (after a bulk creation) PostgreSQL joined the pending rows to
    # a materialised scan of every active execution (by the ``state`` indexes) instead,
    # rescanned for each row: completions at 10,000 ready instances fell to 40 % of the rate
    # at 100.
    _FIND_READY = (
        "SELECT p.instance_id FROM {pending} p"
        " WHERE p.queue = %(queue_N)s AND p.new_instance = KIND AND p.ready_at <= {stable_now}"
        " AND (SELECT i.id FROM {instance} i WHERE i.id = p.instance_id AND i.state + 0 = 0 AND "
        + free("i.") + " AND " + unblocked("i.") + " AND " + started("i.")
        + " AND (i.sticky_until IS NULL OR i.sticky_until <= {now} OR i.worker = %(worker)s)) IS NOT NULL"
        " ORDER BY p.new_instance, p.ready_at LIMIT %(limit)s"
    )

    @classmethod
    def find_candidates_template(cls, queues: int) -> str:
        """The look-up of ``find_candidates`` for that many queues (``queue_0``, ...): rows of
        (execution row id, 1 if a new instance's start else 0)."""
        return " UNION ALL ".join(
            f"SELECT c{n}{kind}.instance_id, {kind} FROM ("
            + cls._FIND_READY.replace("queue_N", f"queue_{n}").replace("KIND", "TRUE" if kind else "FALSE")
            + f") c{n}{kind}"
            for n in range(queues)
            for kind in (0, 1)
        )

    def find_candidates(self, queues: Sequence[str], worker: str, limit: int) -> Candidates:
        """Executions of ``queues`` (row ids, at most ``limit`` of each kind) whose workflow task
        this worker may lease now; a read that takes no lock, so an idle poll does not queue
        for SQLite's write lock."""
        queues = list(dict.fromkeys(queues))
        if not queues:
            return Candidates([], [])
        values = {f"queue_{n}": queue for n, queue in enumerate(queues)}
        template = self.find_candidates_template(len(queues))
        rows = self._fetchall(f"find_candidates_{len(queues)}", template, worker=worker, limit=limit, **values)
        running = list(dict.fromkeys(row[0] for row in rows if not row[1]))[:limit]
        # An execution with both (a start and a signal sent before it ran) counts as running.
        seen = set(running)
        starts = list(dict.fromkeys(row[0] for row in rows if row[1] and row[0] not in seen))[:limit]
        return Candidates(running, starts)

    _CLAIM_CANDIDATES = (
        "SELECT " + ", ".join(f"i.{c}" for c in TASK_COLUMNS) + " FROM {instance} i"
        " WHERE i.id IN (%(row_ids)s) AND i.state = 0 AND " + free("i.") + " AND " + unblocked("i.")
        + " AND " + started("i.") + " AND (i.sticky_until IS NULL OR i.sticky_until <= {now} OR i.worker = %(worker)s)"
        " ORDER BY {order}i.id LIMIT %(limit)s{skip_locked}"
    )

    def claim_candidates(
        self, row_ids: Sequence[int], worker: str, limit: int, *, tiers: Sequence[Sequence[int]] = ()
    ) -> list[TaskRow]:
        """Up to ``limit`` of the executions ``row_ids`` whose workflow task this worker may still
        lease, locked (skipping rows other transactions hold); those of ``tiers`` (parts of
        ``row_ids``) first, tier by tier, then the others, each in row id order."""
        template = self._CLAIM_CANDIDATES.replace("{skip_locked}", self._skip_locked)
        values: dict[str, Any] = {"row_ids": list(row_ids), "worker": worker, "limit": limit}
        tiers = [list(tier) for tier in tiers if tier]
        if len(tiers) > 1 or (tiers and len(tiers[0]) < len(row_ids)):
            cases = " ".join(f"WHEN i.id IN (%(tier_{n})s) THEN {n}" for n in range(len(tiers)))
            template = template.replace("{order}", f"CASE {cases} ELSE {len(tiers)} END, ")
            values.update({f"tier_{n}": tier for n, tier in enumerate(tiers)})
            name = f"claim_candidates_{len(tiers)}"
        else:
            template = template.replace("{order}", "")
            name = "claim_candidates"
        rows = self._fetchall(name, template, **values)
        return [TaskRow(*row) for row in rows]

    _HAS_UNFILLED = "SELECT 1 FROM {pending} WHERE ready_at IS NULL LIMIT 1"
    _FILL_READY = (
        "UPDATE {pending} SET ready_at = COALESCE(visible_at, timestamp),"
        " queue = (SELECT i.queue FROM {instance} i WHERE i.id = {pending}.instance_id) WHERE ready_at IS NULL"
    )

    def has_unfilled_pending(self) -> bool:
        """Whether pending rows written by an earlier version lack ``queue`` and ``ready_at``."""
        return self._fetchone("has_unfilled", self._HAS_UNFILLED) is not None

    def fill_ready_columns(self) -> int:
        """Give those rows their values, so claims find them; return how many there were."""
        return self._rowcount("fill_ready", self._FILL_READY)

    _LEASE_EXECUTIONS = (
        "UPDATE {instance} SET locked_until = %(until)s, lease_token = %(token)s, worker = %(worker)s"
        " WHERE id IN (%(row_ids)s) AND " + free()
    )

    def lease_executions(self, row_ids: Sequence[int], token: str, worker: str, lock: timedelta) -> int:
        """Lease the (locked, free) executions' workflow tasks; return how many were leased."""
        return self._rowcount(
            "lease_executions", self._LEASE_EXECUTIONS, row_ids=list(row_ids), token=token, worker=worker, until=Now(lock)
        )

    _LEASE_HANDED_OVER = (
        "UPDATE {instance} SET locked_until = %(until)s, lease_token = %(token)s, worker = %(worker)s"
        " WHERE id = %(row_id)s AND state = 0 AND " + free() + " AND " + unblocked()
        + " AND (sticky_until IS NULL OR sticky_until <= {now} OR worker = %(worker)s)"
    )

    def lease_handed_over(self, row_id: int, token: str, worker: str, lock: timedelta) -> bool:
        """Lease an active execution's workflow task to ``worker`` if it is free and not sticky
        to another worker (an activity completion continuing its workflow)."""
        values = {"row_id": row_id, "token": token, "worker": worker, "until": Now(lock)}
        return self._rowcount("lease_handed_over", self._LEASE_HANDED_OVER, **values) == 1

    # The rules of a claim (``_CLAIM_CANDIDATES``), on rows the caller's transaction created. The
    # subquery of ``started`` names the table: inside it, a bare ``id`` is the pending row's.
    _LEASE_STARTED = (
        "UPDATE {instance} SET locked_until = %(until)s, lease_token = %(token)s, worker = %(worker)s"
        " WHERE id IN (%(row_ids)s) AND state = 0 AND " + free() + " AND " + unblocked()
        + " AND " + started("{instance}.") + " AND (sticky_until IS NULL OR sticky_until <= {now} OR worker = %(worker)s)"
    )
    _LEASED_TASKS = (
        "SELECT " + ", ".join(TASK_COLUMNS) + " FROM {instance} WHERE id IN (%(row_ids)s) AND lease_token = %(token)s"
        " ORDER BY id"
    )

    def lease_started(self, row_ids: Sequence[int], token: str, worker: str, lock: timedelta) -> list[TaskRow]:
        """Inside the workflow-task completion that created the executions ``row_ids``: lease
        to ``worker``, under ``token``, the workflow tasks of those that a claim could take
        (free, not blocked, their start not delayed, not sticky to another worker); return
        their task rows."""
        values = {"row_ids": list(row_ids), "token": token, "worker": worker, "until": Now(lock)}
        if not self._rowcount("lease_started", self._LEASE_STARTED, **values):
            return []
        rows = self._fetchall("leased_tasks", self._LEASED_TASKS, row_ids=list(row_ids), token=token)
        return [TaskRow(*row) for row in rows]

    _VISIBLE_PENDING = (
        "SELECT p.instance_id, p.id, p.payload_id, " + ", ".join(f"p.{c}" for c in EVENT_COLUMNS) + ", pl.data"
        " FROM {pending} p INNER JOIN {payload} pl ON pl.id = p.payload_id"
        " WHERE p.instance_id IN (%(row_ids)s) AND " + visible("p.") + " ORDER BY p.id"
    )

    def visible_pending(self, row_ids: Sequence[int]) -> dict[int, list[PendingRow]]:
        """The visible pending events of executions, oldest first, by execution row id."""
        pending: dict[int, list[PendingRow]] = {}
        for instance_row_id, pending_id, payload_id, *columns, data in self._fetchall(
            "visible_pending", self._VISIBLE_PENDING, row_ids=list(row_ids)
        ):
            pending.setdefault(instance_row_id, []).append(PendingRow(pending_id, payload_id, self._event(columns, data)))
        return pending

    # -- workflow tasks: leases ----------------------------------------------------------------

    _EXTEND = "UPDATE {table} SET locked_until = %(until)s WHERE " + LEASED

    def extend_lease(self, table: str, row_id: int, token: str, lock: timedelta) -> bool:
        """Extend the lease of an execution's workflow task or of an activity task (``table`` is
        ``"instance"`` or ``"activity"``; an activity's only while its attempt is in time)."""
        template = self._EXTEND.replace("{table}", "{" + table + "}")
        if table == "activity":
            template += " AND " + in_time()
        return self._rowcount(f"extend_{table}", template, row_id=row_id, token=token, until=Now(lock)) == 1

    _RELEASE = "UPDATE {instance} SET locked_until = NULL, lease_token = '', sticky_until = NULL WHERE " + LEASED

    def release_execution(self, row_id: int, token: str) -> bool:
        """Give up a workflow task's lease (and the stickiness): another worker may take it."""
        return self._rowcount("release_execution", self._RELEASE, row_id=row_id, token=token) == 1

    _RELEASE_STICKY = (
        "UPDATE {instance} SET sticky_until = NULL"
        " WHERE state = 0 AND worker = %(worker)s AND sticky_until > {now} AND " + free()
    )

    def release_sticky(self, worker: str) -> int:
        """Forget that free executions are sticky to ``worker``; return how many were."""
        return self._rowcount("release_sticky", self._RELEASE_STICKY, worker=worker)

    # -- workflow tasks: blocking (safe deploys) -------------------------------------------------

    _LOCK_TO_BLOCK = "SELECT blocked_attempts FROM {instance} WHERE " + LEASED + "{for_update}"
    _BLOCK = (
        "UPDATE {instance} SET locked_until = NULL, lease_token = '', sticky_until = NULL,"
        " blocked_error = %(error)s, blocked_since = COALESCE(blocked_since, {now}),"
        " blocked_attempts = %(attempts)s, blocked_until = %(until)s WHERE " + LEASED
    )
    _BLOCKED = "SELECT blocked_since, blocked_until FROM {instance} WHERE id = %(row_id)s"

    def lock_to_block(self, row_id: int, token: str) -> int | None:
        """Lock the leased execution; the attempts of its current run of blocked tasks (None if
        the lease is lost)."""
        template = self._LOCK_TO_BLOCK.replace("{for_update}", self._for_update)
        row = self._fetchone("lock_to_block", template, row_id=row_id, token=token)
        return None if row is None else int(row[0])

    # Its waiting events become ready again at the retry time: claims do not scan a blocked
    # execution's events on every poll (after a bad deploy there may be many of them).
    _DEFER_PENDING = "UPDATE {pending} SET ready_at = %(until)s WHERE instance_id = %(row_id)s AND ready_at < %(until)s"

    def block(self, row_id: int, token: str, *, error: dict[str, Any], attempts: int, delay: timedelta) -> bool:
        """Release the lease and block the execution's workflow task until ``delay`` from now."""
        values = {"row_id": row_id, "token": token, "error": json.dumps(error), "attempts": attempts, "until": Now(delay)}
        if self._rowcount("block", self._BLOCK, **values) != 1:
            return False
        self._rowcount("defer_pending", self._DEFER_PENDING, row_id=row_id, until=Now(delay))
        return True

    def blocked(self, row_id: int) -> tuple[datetime | None, datetime | None]:
        """(blocked since, blocked until) as stored."""
        since, until = self._fetchone("blocked", self._BLOCKED, row_id=row_id)
        return self.read_datetime(since), self.read_datetime(until)

    _LOCK_LEASED = "SELECT id FROM {instance} WHERE " + LEASED + "{for_update}"

    def lock_leased(self, row_id: int, token: str) -> bool:
        """Lock the execution if this lease still holds it."""
        template = self._LOCK_LEASED.replace("{for_update}", self._for_update)
        return self._fetchone("lock_leased", template, row_id=row_id, token=token) is not None

    # -- workflow tasks: completion --------------------------------------------------------------

    _HAS_UNSEEN = "SELECT 1 FROM {pending} WHERE instance_id = %(row_id)s AND " + visible() + " LIMIT 1"
    _HAS_UNSEEN_BUT = (
        "SELECT 1 FROM {pending} WHERE instance_id = %(row_id)s AND " + visible() + " AND id NOT IN (%(seen)s) LIMIT 1"
    )

    def has_unseen_pending(self, row_id: int, seen: Sequence[int]) -> bool:
        """Whether a visible pending event arrived that is not in ``seen``."""
        if seen:
            return self._fetchone("has_unseen_but", self._HAS_UNSEEN_BUT, row_id=row_id, seen=list(seen)) is not None
        return self._fetchone("has_unseen", self._HAS_UNSEEN, row_id=row_id) is not None

    #: A completed task clears what ``block`` stored: the code could run it.
    _UNBLOCK = " blocked_error = NULL, blocked_since = NULL, blocked_attempts = 0, blocked_until = NULL,"
    _STEP = (
        "UPDATE {instance} SET locked_until = NULL, lease_token = '', sticky_until = %(sticky_until)s," + _UNBLOCK
        + " last_sequence_id = COALESCE(%(last_sequence_id)s, last_sequence_id) WHERE " + LEASED
    )

    def step(self, row_id: int, token: str, *, sticky: timedelta, last_sequence_id: int | None) -> bool:
        """Complete a task that keeps its execution active (fenced): release the lease, make
        the execution sticky to this worker, record how far its history reaches."""
        values = {"row_id": row_id, "token": token, "sticky_until": Now(sticky), "last_sequence_id": last_sequence_id}
        return self._rowcount("step", self._STEP, **values) == 1

    # The execution timeout ends with the execution: the sweep's index holds active ones only.
    _FINISH = (
        "UPDATE {instance} SET locked_until = NULL, lease_token = '', sticky_until = %(sticky_until)s,"
        " state = %(state)s, outcome = %(outcome)s, completed_at = {now}, active_instance_id = NULL,"
        " timeout_at = NULL," + _UNBLOCK
        + " last_sequence_id = COALESCE(%(last_sequence_id)s, last_sequence_id) WHERE " + LEASED
    )

    def finish(
        self, row_id: int, token: str, *, state: int, outcome: str, last_sequence_id: int | None, sticky: timedelta
    ) -> bool:
        """End an execution (fenced): state, outcome, completion time; no longer the active one."""
        values = {
            "row_id": row_id,
            "token": token,
            "sticky_until": Now(sticky),
            "state": state,
            "outcome": outcome,
            "last_sequence_id": last_sequence_id,
        }
        return self._rowcount("finish", self._FINISH, **values) == 1

    _DELETE_PENDING = "DELETE FROM {pending} WHERE id IN (%(ids)s)"

    def delete_pending(self, ids: Sequence[int]) -> None:
        """Delete pending rows (consumed events, whose payloads their history rows now share)."""
        if ids:
            self._rowcount("delete_pending", self._DELETE_PENDING, ids=list(ids))

    _PENDING_OF = "SELECT id, payload_id FROM {pending} WHERE instance_id = %(row_id)s"
    _TIMERS_OF = (
        "SELECT id, payload_id FROM {pending} WHERE instance_id = %(row_id)s"
        " AND event_type = %(event_type)s AND schedule_event_id IN (%(schedule_ids)s)"
    )
    _DELETE_PAYLOADS = "DELETE FROM {payload} WHERE id IN (%(ids)s)"

    def drop_pending(self, row_id: int, *, keep_payloads_of: Sequence[int]) -> None:
        """Delete every pending event of an ended execution, and the payloads of those not in
        ``keep_payloads_of`` (consumed events, whose payloads their history rows now share)."""
        self._drop(self._fetchall("pending_of", self._PENDING_OF, row_id=row_id), keep_payloads_of)

    def drop_canceled_timers(self, row_id: int, schedule_event_ids: Sequence[int]) -> None:
        """Delete the future ``TimerFired`` events of canceled timers, with their payloads."""
        rows = self._fetchall(
            "timers_of",
            self._TIMERS_OF,
            row_id=row_id,
            event_type=EventType.TIMER_FIRED.value,
            schedule_ids=list(schedule_event_ids),
        )
        self._drop(rows, ())

    def _drop(self, rows: Sequence[tuple[int, str]], keep_payloads_of: Sequence[int]) -> None:
        kept = set(keep_payloads_of)
        orphaned = [payload_id for pending_id, payload_id in rows if pending_id not in kept]
        if orphaned:
            self._rowcount("delete_payloads", self._DELETE_PAYLOADS, ids=orphaned)
        self.delete_pending([pending_id for pending_id, _ in rows])

    # -- workflow tasks: deliveries to other executions (``delivery``) ---------------------------

    _TARGET_COLUMNS = "SELECT id, instance_id, execution_id, state, active_instance_id, queue FROM {instance} WHERE "
    _TARGETS_TAIL = " AND id <> %(sender)s ORDER BY id{for_update}"
    _ACTIVE_TARGETS = "active_instance_id IN (%(active_ids)s)"
    # (instance_id IN ... AND execution_id IN ...) is a superset of the exact pairs; the few
    # extra rows it may lock are harmless, and the statement stays short.
    _EXACT_TARGETS = "(instance_id IN (%(instance_ids)s) AND execution_id IN (%(execution_ids)s))"

    def lock_targets(
        self, sender_row_id: int, active_ids: Sequence[str], instance_ids: Sequence[str], execution_ids: Sequence[str]
    ) -> list[tuple[Any, ...]]:
        """Lock, in id order, the executions other than the sender's that are the active one of
        ``active_ids`` or one of the exact executions (``instance_ids`` x ``execution_ids``):
        (row id, instance id, execution id, state, active instance id, queue) of each."""
        conditions = []
        if active_ids:
            conditions.append(("active", self._ACTIVE_TARGETS))
        if instance_ids and execution_ids:
            conditions.append(("exact", self._EXACT_TARGETS))
        if not conditions:
            return []
        name = "lock_targets_" + "_".join(kind for kind, _ in conditions)
        template = (
            self._TARGET_COLUMNS + "(" + " OR ".join(text for _, text in conditions) + ")"
            + self._TARGETS_TAIL.replace("{for_update}", self._for_update)
        )
        values: dict[str, Any] = {"sender": sender_row_id}
        if active_ids:
            values["active_ids"] = list(active_ids)
        if instance_ids and execution_ids:
            values.update(instance_ids=list(instance_ids), execution_ids=list(execution_ids))
        return [tuple(row) for row in self._fetchall(name, template, **values)]

    # -- executions: locks of writers that deliver events --------------------------------------

    _LOCK_EXECUTION = "SELECT state, " + ", ".join(TASK_COLUMNS) + " FROM {instance} WHERE id = %(row_id)s{lock}"

    def _lock(self, name: str, row_id: int, lock: str) -> tuple[int, TaskRow] | None:
        row = self._fetchone(name, self._LOCK_EXECUTION.replace("{lock}", lock), row_id=row_id)
        return None if row is None else (row[0], TaskRow(*row[1:]))

    def lock_execution_to_deliver(self, row_id: int) -> tuple[tuple[int, TaskRow] | None, bool]:
        """Lock an execution to add an event to its inbox (the first lock of every writer):
        ((state, task row) or None if it is gone, whether the lock is exclusive). Where the
        database has shared row locks, take the exclusive lock only if it is free at once, else
        a shared one (see ``shares_execution_locks``)."""
        if not self.shares_execution_locks:
            return self._lock("lock_execution", row_id, self._for_update), True
        row = self._lock("try_lock_execution", row_id, self._skip_locked)
        if row is not None:
            return row, True
        return self._lock("share_execution", row_id, self._share), False

    def try_lock_execution_to_deliver(self, row_id: int) -> tuple[tuple[int, TaskRow] | None, bool] | None:
        """``lock_execution_to_deliver`` without waiting: None if it would have to wait. Only
        where ``locks_executions_without_waiting``."""
        if not self.shares_execution_locks:
            return self._lock("lock_execution", row_id, self._for_update), True  # no row locks (SQLite)
        row = self._lock("try_lock_execution", row_id, self._skip_locked)
        if row is not None:
            return row, True
        row = self._lock("try_share_execution", row_id, self._share + " SKIP LOCKED")
        # None: held exclusively by another transaction (or gone; the waiting lock tells).
        return None if row is None else (row, False)

    # -- activity tasks ------------------------------------------------------------------------

    # Free to lease, and in time: an attempt whose timeout passed waits for the sweep instead.
    _ACTIVITY_FREE = " WHERE a.queue IN (%(queues)s) AND " + free("a.") + " AND " + in_time("a.")
    _HAS_FREE_ACTIVITY = "SELECT 1 FROM {activity} a" + _ACTIVITY_FREE + " LIMIT 1"

    def has_free_activity(self, queues: Sequence[str]) -> bool:
        """Whether ``queues`` hold an activity task free to lease (a read that takes no lock)."""
        return self._fetchone("has_free_activity", self._HAS_FREE_ACTIVITY, queues=list(queues)) is not None

    _CLAIM_COLUMNS = "a.id, a.instance_id, a.lease_count, a.queue, a.payload_id, a.heartbeat_details, " + ", ".join(
        f"a.{c}" for c in EVENT_COLUMNS
    )
    _IDENTITY = ", ".join(f"i.{c}" for c in TASK_COLUMNS[5:])
    _CLAIM_ACTIVITIES_JOINED = (
        "SELECT " + _CLAIM_COLUMNS + ", pl.data, " + _IDENTITY + " FROM {activity} a"
        " INNER JOIN {payload} pl ON pl.id = a.payload_id INNER JOIN {instance} i ON i.id = a.instance_id"
        + _ACTIVITY_FREE + " ORDER BY a.id LIMIT %(limit)s{lock}"
    )
    _CLAIM_ACTIVITIES = "SELECT " + _CLAIM_COLUMNS + " FROM {activity} a" + _ACTIVITY_FREE + " ORDER BY a.id LIMIT %(limit)s{lock}"

    def claim_activities(self, queues: Sequence[str], limit: int) -> list[ClaimedActivity]:
        """Up to ``limit`` free activity tasks of ``queues``, locked, with their payload and
        execution where one locking SELECT can join them (see ``activity_payload``)."""
        if self.activity_joined:
            template = self._CLAIM_ACTIVITIES_JOINED.replace("{lock}", self._lock_activity_only)
            name = "claim_activities_joined"
        else:
            template = self._CLAIM_ACTIVITIES.replace("{lock}", self._skip_locked)
            name = "claim_activities"
        width = 6 + len(EVENT_COLUMNS)
        return [
            ClaimedActivity(
                row_id=row[0],
                instance_row_id=row[1],
                lease_count=row[2],
                queue=row[3],
                payload_id=row[4],
                heartbeat_details=row[5],
                event_columns=tuple(row[6:width]),
                joined=tuple(row[width:]) if self.activity_joined else None,
            )
            for row in self._fetchall(name, template, queues=list(queues), limit=limit)
        ]

    _ACTIVITY_PAYLOAD = (
        "SELECT pl.data, " + _IDENTITY + " FROM {payload} pl INNER JOIN {instance} i ON i.id = pl.instance_id"
        " WHERE pl.id = %(payload_id)s"
    )

    def activity_payload(self, payload_id: str) -> tuple[Any, ...]:
        """The activity's payload and the identity of its execution."""
        return tuple(self._fetchone("activity_payload", self._ACTIVITY_PAYLOAD, payload_id=payload_id))

    def activity_event(self, claimed: ClaimedActivity, data: str) -> Event:
        return self._event(claimed.event_columns, data)

    _LEASE_ACTIVITIES = (
        "UPDATE {activity} SET locked_until = %(until)s, lease_token = %(token)s, worker = %(worker)s,"
        " lease_count = lease_count + 1 WHERE id IN (%(row_ids)s) AND " + free()
    )

    def lease_activities(self, row_ids: Sequence[int], token: str, worker: str, lock: timedelta) -> int:
        """Lease the (locked, free) activity rows; return how many were leased."""
        return self._rowcount(
            "lease_activities", self._LEASE_ACTIVITIES, row_ids=list(row_ids), token=token, worker=worker, until=Now(lock)
        )

    # Taken from the queue: schedule-to-start is over; start-to-close starts at the attempt's
    # first lease (a later lease after a crash keeps it) and the heartbeat deadline at every one.
    # The deadline column repeats run_by's new value rather than naming the column, because
    # MySQL reads columns assigned earlier in the same SET with their new values, others not.
    _RUN_BY = "COALESCE(run_by, %(run)s)"
    _LEASE_TIMED_ACTIVITIES = (
        "UPDATE {activity} SET locked_until = %(until)s, lease_token = %(token)s, worker = %(worker)s,"
        " lease_count = lease_count + 1, start_by = NULL, run_by = " + _RUN_BY + ", heartbeat_by = %(beat)s,"
        " deadline = " + earliest(earliest(_RUN_BY, "%(beat)s"), "close_by")
        + " WHERE id IN (%(row_ids)s) AND " + free()
    )

    def lease_timed_activities(
        self,
        row_ids: Sequence[int],
        token: str,
        worker: str,
        lock: timedelta,
        *,
        start_to_close: timedelta | None,
        heartbeat: timedelta | None,
    ) -> int:
        """``lease_activities`` for activities with timeouts, all with these two (offsets from
        now, None for none); moves their deadlines as a lease does."""
        values = {
            "row_ids": list(row_ids),
            "token": token,
            "worker": worker,
            "until": Now(lock),
            "run": None if start_to_close is None else Now(start_to_close),
            "beat": None if heartbeat is None else Now(heartbeat),
        }
        return self._rowcount("lease_timed_activities", self._LEASE_TIMED_ACTIVITIES, **values)

    # -- activity tasks: heartbeats, cancellation, timeouts --------------------------------------

    _HEARTBEAT = (
        "UPDATE {activity} SET locked_until = %(until)s, heartbeat_details = COALESCE(%(details)s, heartbeat_details)"
        " WHERE " + ACTIVITY_LEASED
    )
    # With a heartbeat timeout the heartbeat deadline moves, and with it the attempt's deadline
    # (start_by is NULL once leased, so run_by, heartbeat_by and close_by are all there is).
    _HEARTBEAT_TIMED = (
        "UPDATE {activity} SET locked_until = %(until)s, heartbeat_details = COALESCE(%(details)s, heartbeat_details),"
        " heartbeat_by = %(beat)s, deadline = " + earliest(earliest("run_by", "%(beat)s"), "close_by")
        + " WHERE " + ACTIVITY_LEASED
    )
    _SHOULD_STOP = (
        "SELECT a.cancel_requested, i.state FROM {activity} a INNER JOIN {instance} i ON i.id = a.instance_id"
        " WHERE a.id = %(row_id)s"
    )

    def heartbeat_activity(
        self, row_id: int, token: str, lock: timedelta, details: str | None, heartbeat: timedelta | None
    ) -> bool | None:
        """Record a heartbeat (fenced): extend the lease, store ``details`` unless None, move
        the heartbeat deadline. Returns whether the activity should stop (cancellation
        requested, execution ended), or None if the attempt is not this holder's any more."""
        values = {"row_id": row_id, "token": token, "until": Now(lock), "details": details}
        if heartbeat is None:
            written = self._rowcount("heartbeat", self._HEARTBEAT, **values)
        else:
            written = self._rowcount("heartbeat_timed", self._HEARTBEAT_TIMED, beat=Now(heartbeat), **values)
        if written != 1:
            return None
        row = self._fetchone("should_stop", self._SHOULD_STOP, row_id=row_id)
        return row is None or bool(row[0]) or row[1] != ACTIVE

    _LOCK_CANCELED = (
        "SELECT a.id, " + ", ".join(f"a.{c}" for c in EVENT_COLUMNS) + ", pl.data FROM {activity} a"
        " INNER JOIN {payload} pl ON pl.id = a.payload_id"
        " WHERE a.instance_id = %(row_id)s AND a.event_id IN (%(event_ids)s) AND " + free("a.") + "{for_update}"
    )
    _DELETE_ACTIVITIES = "DELETE FROM {activity} WHERE id IN (%(ids)s)"
    _FLAG_CANCELED = (
        "UPDATE {activity} SET cancel_requested = %(yes)s WHERE instance_id = %(row_id)s AND event_id IN (%(event_ids)s)"
    )

    def cancel_activities(self, row_id: int, event_ids: Sequence[str]) -> list[Event]:
        """The workflow of execution ``row_id`` canceled these activities (by the ids of their
        scheduled events): delete those nobody holds and return their events (they answer
        ``Canceled``); flag the others for their holders' next heartbeat. The caller holds the
        execution's lock."""
        template = self._LOCK_CANCELED.replace("{for_update}", self._for_update)
        rows = self._fetchall("lock_canceled", template, row_id=row_id, event_ids=list(event_ids))
        if rows:
            self._rowcount("delete_activities", self._DELETE_ACTIVITIES, ids=[row[0] for row in rows])
        self._rowcount("flag_canceled", self._FLAG_CANCELED, row_id=row_id, event_ids=list(event_ids), yes=True)
        return [self._event(row[1:-1], row[-1]) for row in rows]

    _EXPIRED = "SELECT id, instance_id FROM {activity} WHERE deadline <= {stable_now} ORDER BY deadline LIMIT %(limit)s"

    def expired_activities(self, limit: int) -> list[tuple[int, int]]:
        """(row id, execution row id) of activity tasks whose attempt timed out (no lock)."""
        return [(row[0], row[1]) for row in self._fetchall("expired_activities", self._EXPIRED, limit=limit)]

    _DEADLINE_COLUMNS = ("start_by", "close_by", "run_by", "heartbeat_by", "deadline")
    _LOCK_EXPIRED = (
        "SELECT " + ", ".join(f"a.{c}" for c in EVENT_COLUMNS) + ", pl.data, a.heartbeat_details, "
        + ", ".join(f"a.{c}" for c in _DEADLINE_COLUMNS) + " FROM {activity} a"
        " INNER JOIN {payload} pl ON pl.id = a.payload_id WHERE a.id = %(row_id)s AND a.deadline <= {now}{for_update}"
    )

    def take_expired_activity(self, row_id: int) -> tuple[Event, str | None, dict[str, datetime | None]] | None:
        """Delete an activity task whose attempt timed out; return its event, its heartbeat
        details and its deadlines by column name. None if it is gone (completed, or another
        sweeper took it) or in time after all."""
        template = self._LOCK_EXPIRED.replace("{for_update}", self._for_update)
        row = self._fetchone("lock_expired", template, row_id=row_id)
        if row is None:
            return None
        self._rowcount("delete_activity", self._DELETE_ACTIVITY, row_id=row_id)
        width = len(EVENT_COLUMNS)
        deadlines = {c: self.read_datetime(v) for c, v in zip(self._DEADLINE_COLUMNS, row[width + 2 :], strict=True)}
        return self._event(row[:width], row[width]), row[width + 1], deadlines

    _LOCK_EXHAUSTED = (
        "SELECT " + ", ".join(f"a.{c}" for c in EVENT_COLUMNS) + ", pl.data, a.heartbeat_details FROM {activity} a"
        " INNER JOIN {payload} pl ON pl.id = a.payload_id"
        " WHERE a.id = %(row_id)s AND a.lease_count >= %(max_leases)s AND " + free("a.") + "{for_update}"
    )
    _DELETE_ACTIVITY = "DELETE FROM {activity} WHERE id = %(row_id)s"

    def take_exhausted_activity(self, row_id: int, max_leases: int) -> tuple[Event, str | None] | None:
        """Delete a free activity task leased ``max_leases`` times and return its event and its
        heartbeat details; None if another poller got to it first."""
        template = self._LOCK_EXHAUSTED.replace("{for_update}", self._for_update)
        row = self._fetchone("lock_exhausted", template, row_id=row_id, max_leases=max_leases)
        if row is None:
            return None
        self._rowcount("delete_activity", self._DELETE_ACTIVITY, row_id=row_id)
        return self._event(row[:-2], row[-2]), row[-1]

    # A graceful release is not a crash: it does not count against max_activity_leases.
    _ABANDON_ACTIVITY = (
        "UPDATE {activity} SET locked_until = NULL, lease_token = '',"
        " lease_count = CASE WHEN lease_count > 0 THEN lease_count - 1 ELSE 0 END WHERE " + LEASED
    )

    def abandon_activity(self, row_id: int, token: str) -> bool:
        return self._rowcount("abandon_activity", self._ABANDON_ACTIVITY, row_id=row_id, token=token) == 1

    # The IN list leads every planner to the primary key; the (id, token) pairs are the fence,
    # with the attempt's deadline: a result that comes after a timeout is refused.
    _DELETE_LEASED_ACTIVITIES = (
        "DELETE FROM {activity} WHERE locked_until > {now} AND " + in_time()
        + " AND id IN (%(row_ids)s) AND (id, lease_token) IN (%(leases)s)"
    )

    def delete_leased_activities(self, leases: Sequence[tuple[int, str]]) -> int:
        """Delete the activity rows still leased with these (row id, token) pairs; return how
        many were."""
        return self._rowcount(
            "delete_leased_activities",
            self._DELETE_LEASED_ACTIVITIES,
            row_ids=[row_id for row_id, _ in leases],
            leases=list(leases),
        )

    # -- notifications (PostgreSQL) ---------------------------------------------------------

    _NOTIFY = "SELECT pg_notify(%(channel)s, '')"

    def notify(self, channel: str) -> None:
        """Notify ``channel``'s listeners when the current transaction commits."""
        self._fetchone("notify", self._NOTIFY, channel=channel)

    # -- executions: execution timeouts ---------------------------------------------------------

    # Through the timeout index, bounded by the clock: ``state + 0`` keeps SQLite (without
    # statistics) from taking the claim index for ``state = 0`` instead and sorting every active
    # execution by timeout (5.7 ms at 10,000 active ones, twice a second). Finished executions
    # have no timeout (``finish`` clears it), so the range holds the active ones that are due.
    _TIMED_OUT_EXECUTIONS = (
        "SELECT instance_id, execution_id FROM {instance} WHERE timeout_at <= {stable_now} AND state + 0 = 0"
        " ORDER BY timeout_at LIMIT %(limit)s"
    )

    def timed_out_executions(self, limit: int) -> list[tuple[str, str]]:
        """(instance id, execution id) of active executions whose execution timeout passed (no
        lock; the workers' sweep runs this twice a second)."""
        return [(row[0], row[1]) for row in self._fetchall("timed_out_executions", self._TIMED_OUT_EXECUTIONS, limit=limit)]

    # -- inserts ---------------------------------------------------------------------------------

    # Every column: the model's defaults are Django's, not the database's.
    _INSERT_EXECUTIONS = (
        "INSERT INTO {instance} (instance_id, execution_id, active_instance_id, parent_instance_id,"
        " parent_execution_id, parent_schedule_event_id, workflow_name, queue, metadata, last_sequence_id,"
        " created_at, timeout_at, state, outcome, lease_token, worker, blocked_attempts)"
        " VALUES %(rows)s{returning}"
    )
    _EXECUTION_IDS = "SELECT id, instance_id FROM {instance} WHERE active_instance_id IN (%(instance_ids)s)"

    def insert_executions(self, rows: Sequence[NewExecution]) -> None:
        """Insert new, active executions and set their ``row_id``: one statement per
        ``_ROWS_PER_INSERT`` rows where ``INSERT ... RETURNING`` exists (PostgreSQL, SQLite,
        MariaDB), else (MySQL) a SELECT of the new rows by their active instance ids, which are
        unique. A start of an instance id that is active already fails on that unique column
        (``IntegrityError``). A bulk creation on PostgreSQL goes in one statement of column arrays
        (``arrays``)."""
        if self.arrays(rows):
            self._insert_execution_arrays(rows)
            return
        template = self._INSERT_EXECUTIONS.replace("{returning}", " RETURNING id, instance_id" if self.returning else "")
        for chunk in _chunks(list(rows)):
            values = []
            for row in chunk:
                instance = row.instance
                values.append(
                    (
                        instance.instance_id,
                        instance.execution_id,
                        instance.instance_id,
                        *row.parent_columns,
                        row.workflow_name,
                        row.queue,
                        json.dumps(row.metadata),
                        row.last_sequence_id,
                        _NOW,
                        None if row.timeout is None else Now(row.timeout),
                        ACTIVE,
                        "",
                        "",
                        "",
                        0,
                    )
                )
            by_instance = {row.instance.instance_id: row for row in chunk}
            if self.returning:
                inserted = self._fetchall("insert_executions", template, rows=values)
            else:
                self._rowcount("insert_executions", template, rows=values)
                inserted = self._fetchall("execution_ids", self._EXECUTION_IDS, instance_ids=list(by_instance))
            for row_id, instance_id in inserted:
                by_instance[instance_id].row_id = int(row_id)

    _INSERT_PAYLOADS = "INSERT INTO {payload} (id, instance_id, data) VALUES %(rows)s"

    _INSERT_PAYLOAD_ARRAYS = (
        "INSERT INTO {payload} (id, instance_id, data)"
        " SELECT * FROM unnest(%(ids)s::text[], %(row_ids)s::bigint[], %(data)s::text[])"
    )

    def insert_payloads(self, rows: Sequence[tuple[str, int, str]]) -> None:
        """(id, execution row id, attributes JSON) per payload; large payloads split the rows
        into more statements, so no statement outgrows a packet limit (``max_allowed_packet``)."""
        if self.arrays(rows):
            ids, row_ids, data = zip(*rows, strict=True)
            self._rowcount(
                "insert_payload_arrays", self._INSERT_PAYLOAD_ARRAYS, ids=text_array(ids), row_ids=number_array(row_ids), data=text_array(data)
            )
            return
        for chunk in _chunks(list(rows), size=lambda row: len(row[2])):
            self._rowcount("insert_payloads", self._INSERT_PAYLOADS, rows=chunk)

    def arrays(self, rows: Sequence[Any]) -> bool:
        """Whether to insert ``rows`` as one statement of column arrays (PostgreSQL's ``INSERT
        ... SELECT FROM unnest(...)``) rather than as multi-row VALUES: for a bulk creation,
        where binding thousands of placeholders on the client and splitting the statement's text
        for each (psycopg) cost more than the database's work."""
        return self.vendor == "postgresql" and len(rows) >= _ARRAY_ROWS

    # The columns of a new execution whose model default is not NULL; the others stay NULL.
    _INSERT_EXECUTION_ARRAYS = (
        "INSERT INTO {instance} (instance_id, execution_id, active_instance_id, parent_instance_id, parent_execution_id,"
        " parent_schedule_event_id, workflow_name, queue, state, outcome, metadata, created_at, last_sequence_id,"
        " lease_token, worker, blocked_attempts, timeout_at)"
        " SELECT r.iid, r.eid, r.iid, r.piid, r.peid, r.pse, r.name, r.queue, 0, '', r.meta::jsonb, {now}, r.seq, '', '', 0,"
        " CASE WHEN r.timeout IS NULL THEN NULL ELSE {now} + MAKE_INTERVAL(secs => r.timeout) END"
        " FROM unnest(%(iids)s::text[], %(eids)s::text[], %(piids)s::text[], %(peids)s::text[], %(pses)s::bigint[],"
        " %(names)s::text[], %(queues)s::text[], %(metas)s::text[], %(seqs)s::bigint[], %(timeouts)s::float8[])"
        " AS r(iid, eid, piid, peid, pse, name, queue, meta, seq, timeout)"
        " RETURNING id, instance_id"
    )

    def _insert_execution_arrays(self, rows: Sequence[NewExecution]) -> None:
        """``insert_executions`` as column arrays (``arrays``: PostgreSQL); sets ``row_id``."""
        piids, peids, pses = zip(*(row.parent_columns for row in rows), strict=True)
        values = {
            "iids": text_array([row.instance.instance_id for row in rows]),
            "eids": text_array([row.instance.execution_id for row in rows]),
            "piids": text_array(piids),
            "peids": text_array(peids),
            "pses": number_array(pses),
            "names": text_array([row.workflow_name for row in rows]),
            "queues": text_array([row.queue for row in rows]),
            "metas": text_array([json.dumps(row.metadata) for row in rows]),
            "seqs": number_array([row.last_sequence_id for row in rows]),
            "timeouts": number_array([None if row.timeout is None else row.timeout.total_seconds() for row in rows]),
        }
        by_instance = {row.instance.instance_id: row for row in rows}
        for row_id, instance_id in self._fetchall("insert_execution_arrays", self._INSERT_EXECUTION_ARRAYS, **values):
            by_instance[instance_id].row_id = int(row_id)

    _EVENT_INSERT_COLUMNS = ", ".join(EVENT_COLUMNS) + ", instance_id, payload_id"
    _INSERT_HISTORY = "INSERT INTO {history} (" + _EVENT_INSERT_COLUMNS + ") VALUES %(rows)s"

    def insert_history(self, rows: Iterable[tuple[int, str, Event]]) -> None:
        """History rows: (execution row id, payload id, event)."""
        values = [self._event_row(row_id, payload_id, event) for row_id, payload_id, event in rows]
        for chunk in _chunks(values):
            self._rowcount("insert_history", self._INSERT_HISTORY, rows=chunk)

    _INSERT_PENDING = (
        "INSERT INTO {pending} (" + _EVENT_INSERT_COLUMNS + ", queue, ready_at, new_instance) VALUES %(rows)s"
    )

    def insert_pending(self, rows: Iterable[tuple[int, str, str, Event]], *, new_instances: bool = False) -> None:
        """Pending rows: (execution row id, the execution's queue, payload id, event); ready when
        visible, or at once (the database's clock). ``new_instances``: the rows are the start
        events of instances created from outside any workflow (claimed after running work)."""
        rows = list(rows)
        if self.arrays(rows):
            self._insert_pending_arrays(rows, new_instances)
            return
        values = [
            (
                *self._event_row(row_id, payload_id, event),
                queue,
                _NOW if event.visible_at is None else self._adapt_datetime(event.visible_at),
                new_instances,
            )
            for row_id, queue, payload_id, event in rows
        ]
        for chunk in _chunks(values):
            self._rowcount("insert_pending", self._INSERT_PENDING, rows=chunk)

    _INSERT_PENDING_ARRAYS = (
        "INSERT INTO {pending} (" + _EVENT_INSERT_COLUMNS + ", queue, ready_at, new_instance)"
        " SELECT r.event_id, r.event_type, r.ts, r.schedule_event_id, r.sequence_id, r.visible_at, r.row_id,"
        " r.payload_id, r.queue, COALESCE(r.visible_at, {now}), %(new)s"
        " FROM unnest(%(event_ids)s::text[], %(types)s::text[], %(timestamps)s::timestamptz[], %(schedule_ids)s::bigint[],"
        " %(sequence_ids)s::bigint[], %(visible)s::timestamptz[], %(row_ids)s::bigint[], %(payload_ids)s::text[],"
        " %(queues)s::text[])"
        " AS r(event_id, event_type, ts, schedule_event_id, sequence_id, visible_at, row_id, payload_id, queue)"
    )

    def _insert_pending_arrays(self, rows: list[tuple[int, str, str, Event]], new_instances: bool) -> None:
        events = [event for _, _, _, event in rows]
        arrays = {
            "event_ids": text_array([event.id for event in events]),
            "types": text_array([event.type.value for event in events]),
            "timestamps": time_array([event.timestamp for event in events]),
            "schedule_ids": number_array([event.schedule_event_id for event in events]),
            "sequence_ids": number_array([event.sequence_id for event in events]),
            "visible": time_array([event.visible_at for event in events]),
            "row_ids": number_array([row_id for row_id, _, _, _ in rows]),
            "payload_ids": text_array([payload_id for _, _, payload_id, _ in rows]),
            "queues": text_array([queue for _, queue, _, _ in rows]),
        }
        self._rowcount("insert_pending_arrays", self._INSERT_PENDING_ARRAYS, new=new_instances, **arrays)

    _INSERT_ACTIVITIES = (
        "INSERT INTO {activity} (" + _EVENT_INSERT_COLUMNS + ", queue, locked_until, lease_token, worker, lease_count,"
        " start_by, close_by, run_by, heartbeat_by, deadline, cancel_requested)"
        " VALUES %(rows)s{returning}"
    )
    _ACTIVITY_IDS = "SELECT id, event_id FROM {activity} WHERE instance_id = %(row_id)s AND event_id IN (%(event_ids)s)"

    def insert_activities(
        self,
        rows: Sequence[tuple[int, str, Event, str]],
        leases: dict[str, str],
        worker: str,
        lock: timedelta,
    ) -> dict[str, int]:
        """Activity tasks: (execution row id, payload id, event, queue). Those whose event id
        is in ``leases`` are leased at once to ``worker`` with that token. Returns the row ids
        of the leased ones, by event id. Their deadlines are offsets from the database's now."""
        if not rows:
            return {}
        until = Now(lock)
        values = []
        for row_id, payload_id, event, queue in rows:
            token = leases.get(event.id)
            lease = (None, "", "", 0) if token is None else (until, token, worker, 1)
            values.append((*self._event_row(row_id, payload_id, event), queue, *lease, *_deadlines(event, token is not None), False))
        template = self._INSERT_ACTIVITIES.replace("{returning}", " RETURNING id, event_id" if self.returning else "")
        if self.returning:
            inserted = self._fetchall("insert_activities", template, rows=values)
            return {event_id: row_id for row_id, event_id in inserted if event_id in leases}
        self._rowcount("insert_activities", template, rows=values)
        if not leases:
            return {}
        # No RETURNING (MySQL): one SELECT finds the new rows' ids.
        found = self._fetchall("activity_ids", self._ACTIVITY_IDS, row_id=rows[0][0], event_ids=list(leases))
        return {event_id: row_id for row_id, event_id in found}


    # -- backlog (``Backend.get_backlog``; observed by metrics and the admin) ----------------------

    # Ready workflow tasks through the pending events' (queue, ready_at) index, as claims find
    # them: executions with a visible event that no worker holds (stickiness does not matter:
    # the work is ready, for its sticky worker).
    _WORKFLOW_BACKLOG = (
        "SELECT p.queue, COUNT(DISTINCT p.instance_id), MIN(p.ready_at), {now} FROM {pending} p"
        " INNER JOIN {instance} i ON i.id = p.instance_id"
        " WHERE p.ready_at <= {stable_now} AND i.state = 0 AND " + free("i.") + " GROUP BY p.queue"
    )
    # Activity tasks no worker holds, through the (queue, locked_until) index: ready since they
    # were scheduled, or since the lease of a worker that died ran out.
    _ACTIVITY_BACKLOG = (
        "SELECT a.queue, COUNT(*), MIN(CASE WHEN a.locked_until IS NULL THEN a.timestamp ELSE a.locked_until END),"
        " {now} FROM {activity} a WHERE " + free("a.") + " GROUP BY a.queue"
    )

    def backlog(self) -> tuple[dict[str, tuple[int, float]], dict[str, tuple[int, float]]]:
        """(workflow tasks, activity tasks): queue -> (ready tasks, seconds the oldest waited),
        by the database's clock."""
        return (
            self._ages(self._fetchall("workflow_backlog", self._WORKFLOW_BACKLOG)),
            self._ages(self._fetchall("activity_backlog", self._ACTIVITY_BACKLOG)),
        )

    def _ages(self, rows: Sequence[tuple[Any, ...]]) -> dict[str, tuple[int, float]]:
        out = {}
        for queue, count, oldest, now in rows:
            ready_at, clock = self.read_datetime(oldest), self.read_datetime(now)
            age = 0.0 if ready_at is None or clock is None else max(0.0, (clock - ready_at).total_seconds())
            out[queue] = (int(count), age)
        return out


def _server_binding_cursor() -> Any:
    import psycopg  # only on PostgreSQL, where Django needs it anyway

    return psycopg.Cursor


#: Rows per multi-row INSERT: well under SQLite's 32,766 parameters and any packet limit.
_ROWS_PER_INSERT = 500
#: Characters of payload data per multi-row INSERT: a statement holds more only when one row
#: does (a payload up to ``max_payload_size``). ``checks.W003`` counts this in.
BYTES_PER_INSERT = 1024 * 1024


#: Rows from which ``HotSql.arrays`` inserts them as column arrays (PostgreSQL).
_ARRAY_ROWS = 100


# PostgreSQL array literals (``'{"a","b",NULL}'``), bound as one text value and cast in the
# statement (``%(ids)s::text[]``). Written here rather than by the driver's list adapter, which
# adapts item by item in Python and took most of a bulk creation's client time.


def text_array(items: Sequence[str | None]) -> str:
    """A ``text[]`` literal of ``items``."""
    return "{" + ",".join(["NULL" if item is None else '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items]) + "}"


def number_array(items: Sequence[int | float | None]) -> str:
    """A literal of numbers (``bigint[]``, ``float8[]``)."""
    return "{" + ",".join(["NULL" if item is None else repr(item) for item in items]) + "}"


def time_array(items: Sequence[datetime | None]) -> str:
    """A ``timestamptz[]`` literal of aware datetimes."""
    return "{" + ",".join(["NULL" if item is None else '"' + item.isoformat() + '"' for item in items]) + "}"


def _chunks(rows: list[Any], size: Callable[[Any], int] | None = None) -> list[list[Any]]:
    """``rows`` in statements of at most ``_ROWS_PER_INSERT`` rows and, with ``size``, of
    ``BYTES_PER_INSERT`` characters (or one row that is larger by itself)."""
    if size is None:
        return [rows[start : start + _ROWS_PER_INSERT] for start in range(0, len(rows), _ROWS_PER_INSERT)]
    chunks: list[list[Any]] = []
    current: list[Any] = []
    total = 0
    for row in rows:
        length = size(row)
        if current and (len(current) >= _ROWS_PER_INSERT or total + length > BYTES_PER_INSERT):
            chunks.append(current)
            current, total = [], 0
        current.append(row)
        total += length
    if current:
        chunks.append(current)
    return chunks


def payload_json(event: Event) -> str:
    return attributes_to_json(event.attributes)


def _deadlines(event: Event, leased: bool) -> tuple[Now | None, ...]:
    """start_by, close_by, run_by, heartbeat_by and deadline of a new activity task (leased at
    once or queued): every one an offset from the same now, so the earliest is known here."""
    offsets = dict(queued_deadlines(event))
    if leased:
        offsets.pop(TimeoutType.SCHEDULE_TO_START, None)
        run, beat = start_to_close(event), heartbeat_timeout(event)
        if run is not None:
            offsets[TimeoutType.START_TO_CLOSE] = run
        if beat is not None:
            offsets[TimeoutType.HEARTBEAT] = beat
    columns = (TimeoutType.SCHEDULE_TO_START, TimeoutType.SCHEDULE_TO_CLOSE, TimeoutType.START_TO_CLOSE, TimeoutType.HEARTBEAT)
    first = min(offsets.values()) if offsets else None
    return (*(Now(offsets[c]) if c in offsets else None for c in columns), None if first is None else Now(first))


#: Which timeout each deadline column is.
DEADLINE_TYPES = {
    "start_by": TimeoutType.SCHEDULE_TO_START,
    "close_by": TimeoutType.SCHEDULE_TO_CLOSE,
    "run_by": TimeoutType.START_TO_CLOSE,
    "heartbeat_by": TimeoutType.HEARTBEAT,
}


def read_json(value: Any) -> Any:
    """A JSON column as a driver returns it: text on SQLite and MySQL, decoded on PostgreSQL."""
    if isinstance(value, (str, bytes, bytearray)):
        return json.loads(value)
    return value
