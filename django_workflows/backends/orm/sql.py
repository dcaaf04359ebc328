"""Precompiled SQL for the ORM backend's hot paths.

Every activity a workflow runs costs a few claims and completions. Built through the QuerySet
API, each of their statements spends more time in Django's query building and compiling than in
the database (2-4 ms of CPU per call, against well under a millisecond to run them). The
statements here are written once per database alias from the models' table and column names and
run on the driver's cursor: the same SQL the ORM would send, parameterised the same way (no value
is ever formatted into SQL), minus the per-call compilation. Errors still pass through Django's
error wrapping (so the backend's retries see Django's exception classes) and statements are
logged like Django's own when query logging is on (``DEBUG``, ``CaptureQueriesContext``).

Only the frequent paths use it: claiming a workflow or activity task, reading an execution's
pending events, completing an activity, and completing a workflow task that delivers nothing to
other executions. Rarer work (starts, signals, sub-workflows, continue-as-new, canceled timers)
stays on the QuerySet API in ``backend``, ``completion`` and ``delivery``.

Lease times use the database clock, as ``transactions.DbNow`` renders it for each database.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.utils.dateparse import parse_datetime

from ...engine.history import Event, attributes_to_json
from ...models import ActivityTask as ActivityRow
from ...models import HistoryEvent, Payload, PendingEvent
from ...models import WorkflowInstance as InstanceRow
from .transactions import DbNow

#: Columns of an execution that a workflow task needs, in ``rows.TASK_COLUMNS`` order.
_TASK_COLUMNS = (
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
_EVENT_COLUMNS = ("event_id", "event_type", "timestamp", "schedule_event_id", "sequence_id", "visible_at")
_ACTIVITY_COLUMNS = ("instance_id", "payload_id", "queue", "locked_until", "lease_token", "worker", "lease_count")


def payload_json(event: Event) -> str:
    return attributes_to_json(event.attributes)


def _in(count: int) -> str:
    return ", ".join(["%s"] * count)


class HotSql:
    """The hot-path statements of one database alias."""

    def __init__(self, using: str, pinned: threading.local) -> None:
        connection = connections[using]
        self.using = using
        # Where ``Transactions.run`` leaves the connection of the unit of work it runs.
        self._pinned = pinned
        self.vendor = connection.vendor
        features = connection.features
        q = connection.ops.quote_name
        self._adapt_datetime = connection.ops.adapt_datetimefield_value
        self.instance = q(InstanceRow._meta.db_table)
        self.payload = q(Payload._meta.db_table)
        self.pending = q(PendingEvent._meta.db_table)
        self.history = q(HistoryEvent._meta.db_table)
        self.activity = q(ActivityRow._meta.db_table)
        skip_locked = " FOR UPDATE SKIP LOCKED" if features.has_select_for_update_skip_locked else ""
        for_update = " FOR UPDATE" if features.has_select_for_update else ""
        returning = bool(features.can_return_rows_from_bulk_insert)
        self.returning = returning
        self._native: dict[str, str] = {}
        self._now: dict[float, tuple[str, tuple[Any, ...]]] = {}

        task_columns = ", ".join(f"i.{q(c)}" for c in _TASK_COLUMNS)
        identity = ", ".join(f"i.{q(c)}" for c in _TASK_COLUMNS[5:])
        event_columns = ", ".join(q(c) for c in _EVENT_COLUMNS)
        p_event_columns = ", ".join(f"p.{q(c)}" for c in _EVENT_COLUMNS)
        a_event_columns = ", ".join(f"a.{q(c)}" for c in _EVENT_COLUMNS)
        now, self._now_params = self._now_sql(0.0)

        # Workflow tasks. {queues} is filled with one placeholder per polled queue.
        candidate_where = (
            f" WHERE i.state = 0 AND i.queue IN ({{queues}})"
            f" AND (i.locked_until IS NULL OR i.locked_until <= {now})"
            f" AND (i.sticky_until IS NULL OR i.sticky_until <= {now} OR i.worker = %s)"
            f" AND EXISTS (SELECT 1 FROM {self.pending} p WHERE p.instance_id = i.id"
            f" AND (p.visible_at IS NULL OR p.visible_at <= {now}))"
        )
        self._has_candidate = f"SELECT 1 FROM {self.instance} i{candidate_where} LIMIT 1"
        self._candidate = f"SELECT {task_columns} FROM {self.instance} i{candidate_where} ORDER BY i.id LIMIT %s{skip_locked}"
        self._lease_free_batch = (
            f"UPDATE {self.instance} SET locked_until = {{until}}, lease_token = %s, worker = %s"
            f" WHERE id IN ({{ids}}) AND (locked_until IS NULL OR locked_until <= {now})"
        )
        self._lease_free = self._lease_free_batch.replace("{ids}", "%s")
        self._lease_free_unsticky = (
            self._lease_free + f" AND state = 0 AND (sticky_until IS NULL OR sticky_until <= {now} OR worker = %s)"
        )
        self._visible_pending_of = (
            f"SELECT p.instance_id, p.id, p.payload_id, {p_event_columns}, pl.data FROM {self.pending} p"
            f" INNER JOIN {self.payload} pl ON pl.id = p.payload_id"
            f" WHERE p.instance_id IN ({{ids}}) AND (p.visible_at IS NULL OR p.visible_at <= {now}) ORDER BY p.id"
        )
        self._lock_execution = (
            f"SELECT state, {', '.join(q(c) for c in _TASK_COLUMNS)} FROM {self.instance} WHERE id = %s{for_update}"
        )
        # Activity completions only add to an execution's inbox; they need the execution not to
        # end under them, not to exclude each other. They try for the exclusive lock without
        # waiting (with it they may also lease the workflow's next task) and otherwise share the
        # lock, so the completions of a fan-out no longer queue behind one another.
        lock_columns = f"state, {', '.join(q(c) for c in _TASK_COLUMNS)}"
        self.shares_execution_locks = bool(features.has_select_for_update_skip_locked)
        if self.shares_execution_locks:
            share = " FOR SHARE" if self.vendor == "postgresql" else " LOCK IN SHARE MODE"
            self._try_lock_execution = f"SELECT {lock_columns} FROM {self.instance} WHERE id = %s{skip_locked}"
            self._share_execution = f"SELECT {lock_columns} FROM {self.instance} WHERE id = %s{share}"
            self._try_share_execution = self._share_execution + " SKIP LOCKED"
        # Only where a transaction can lock further executions without waiting (no row locks at
        # all, or SKIP LOCKED) may it complete activities of several executions at once.
        self.locks_executions_without_waiting = self.shares_execution_locks or not features.has_select_for_update
        self._lock_leased = (
            f"SELECT id FROM {self.instance} WHERE id = %s AND lease_token = %s AND locked_until > {now}{for_update}"
        )
        self._unseen = f"SELECT 1 FROM {self.pending} WHERE instance_id = %s AND (visible_at IS NULL OR visible_at <= {now})"
        self._release = (
            f"UPDATE {self.instance} SET locked_until = NULL, lease_token = '', sticky_until = NULL"
            " WHERE id = %s AND lease_token = %s"
        )
        fence = f" WHERE id = %s AND lease_token = %s AND locked_until > {now}"
        self._step = (
            f"UPDATE {self.instance} SET locked_until = NULL, lease_token = '', sticky_until = {{until}},"
            f" last_sequence_id = COALESCE(%s, last_sequence_id){fence}"
        )
        self._finish = (
            f"UPDATE {self.instance} SET locked_until = NULL, lease_token = '', sticky_until = {{until}}, state = %s,"
            f" outcome = %s, completed_at = {now}, active_instance_id = NULL,"
            f" last_sequence_id = COALESCE(%s, last_sequence_id){fence}"
        )
        self._pending_payloads = f"SELECT payload_id FROM {self.pending} WHERE instance_id = %s"
        self._delete_all_pending = f"DELETE FROM {self.pending} WHERE instance_id = %s"

        # Activity tasks. Join the payload and the execution into the locking SELECT only
        # where the lock stays on the activity row: PostgreSQL (FOR UPDATE OF) and SQLite (no
        # row locks). MariaDB would lock the joined rows too; there a second SELECT reads them.
        activity_where = (
            f" WHERE a.queue IN ({{queues}}) AND (a.locked_until IS NULL OR a.locked_until <= {now})"
        )
        activity_select = f"a.id, a.instance_id, a.lease_count, a.queue, a.payload_id, {a_event_columns}"
        self.activity_joined = bool(features.has_select_for_update_of) or not features.has_select_for_update
        self._has_activity = f"SELECT 1 FROM {self.activity} a{activity_where} LIMIT 1"
        if self.activity_joined:
            lock = " FOR UPDATE OF a SKIP LOCKED" if features.has_select_for_update_of else ""
            self._claim_activity = (
                f"SELECT {activity_select}, pl.data, {identity} FROM {self.activity} a"
                f" INNER JOIN {self.payload} pl ON pl.id = a.payload_id"
                f" INNER JOIN {self.instance} i ON i.id = a.instance_id{activity_where} ORDER BY a.id LIMIT %s{lock}"
            )
        else:
            self._claim_activity = (
                f"SELECT {activity_select} FROM {self.activity} a{activity_where} ORDER BY a.id LIMIT %s{skip_locked}"
            )
        self._activity_payload = (
            f"SELECT pl.data, {identity} FROM {self.payload} pl INNER JOIN {self.instance} i ON i.id = pl.instance_id"
            " WHERE pl.id = %s"
        )
        self._lease_activities = (
            f"UPDATE {self.activity} SET locked_until = {{until}}, lease_token = %s, worker = %s,"
            f" lease_count = lease_count + 1 WHERE id IN ({{ids}}) AND (locked_until IS NULL OR locked_until <= {now})"
        )
        self._delete_leased_activities = f"DELETE FROM {self.activity} WHERE locked_until > {now}"

        # Inserts. {rows} is filled with one group of placeholders per row.
        self._insert_payloads = f"INSERT INTO {self.payload} (id, instance_id, data) VALUES {{rows}}"
        self._insert_events = {
            table: f"INSERT INTO {table} ({event_columns}, instance_id, payload_id) VALUES {{rows}}"
            for table in (self.pending, self.history)
        }
        self._insert_activities = (
            f"INSERT INTO {self.activity} ({event_columns}, {', '.join(q(c) for c in _ACTIVITY_COLUMNS)}) VALUES {{rows}}"
            + (" RETURNING id, event_id" if returning else "")
        )
        self._activity_ids = f"SELECT id, event_id FROM {self.activity} WHERE instance_id = %s AND event_id IN ({{ids}})"

    # -- running statements ------------------------------------------------------------------

    def _now_sql(self, seconds: float) -> tuple[str, tuple[Any, ...]]:
        cached = self._now.get(seconds)
        if cached is None:
            sql, params = DbNow(timedelta(seconds=seconds)).as_sql(None, connections[self.using])
            cached = self._now[seconds] = (sql, tuple(params))
        return cached

    def _until(self, template: str, lock: timedelta) -> tuple[str, tuple[Any, ...]]:
        sql, params = self._now_sql(lock.total_seconds())
        return template.replace("{until}", sql), params

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        """Run ``sql`` (Django's ``%s`` placeholders) on the driver's cursor; return the cursor."""
        db = getattr(self._pinned, "connection", None) or connections[self.using]
        if db.connection is None:  # what ensure_connection() checks, without its per-call wrappers
            db.ensure_connection()
        native = self._native.get(sql)
        if native is None:
            # The same rewriting Django's SQLite cursor does on every call, once.
            native = sql.replace("%s", "?").replace("%%", "%") if self.vendor == "sqlite" else sql
            self._native[sql] = native
        cursor = db.connection.cursor()
        logged = db.queries_logged
        started = time.monotonic() if logged else 0.0
        with db.wrap_database_errors:
            cursor.execute(native, tuple(params))
        if logged:
            db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
        return cursor

    def _fetchone(self, sql: str, params: Sequence[Any]) -> Any:
        cursor = self._execute(sql, params)
        try:
            return cursor.fetchone()
        finally:
            cursor.close()

    def _fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]:
        cursor = self._execute(sql, params)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _rowcount(self, sql: str, params: Sequence[Any]) -> int:
        cursor = self._execute(sql, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    # -- values ------------------------------------------------------------------------------

    def write_datetime(self, value: datetime | None) -> Any:
        return None if value is None else self._adapt_datetime(value)

    @staticmethod
    def read_datetime(value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = parse_datetime(value)
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # SQLite and MySQL keep naive UTC
        return value

    @staticmethod
    def read_json(value: Any) -> Any:
        if isinstance(value, (str, bytes, bytearray)):
            return json.loads(value)
        return value

    def _event_row(self, row: Sequence[Any], first_event_column: int) -> tuple[Any, ...]:
        """Convert the timestamp and visible_at of an event's columns, in a copy of ``row``."""
        values = list(row)
        values[first_event_column + 2] = self.read_datetime(values[first_event_column + 2])
        values[first_event_column + 5] = self.read_datetime(values[first_event_column + 5])
        return tuple(values)

    # -- workflow tasks ----------------------------------------------------------------------

    def has_candidate(self, queues: Sequence[str], worker: str) -> bool:
        """Whether an execution of ``queues`` has a workflow task for this worker (a read that
        takes no lock, so an idle poll does not queue for SQLite's write lock)."""
        now = self._now_params
        sql = self._has_candidate.replace("{queues}", _in(len(queues)))
        return self._fetchone(sql, (*queues, *now, *now, worker, *now)) is not None

    def claim_candidates(self, queues: Sequence[str], worker: str, limit: int) -> list[tuple[Any, ...]]:
        """Up to ``limit`` executions of ``queues`` whose workflow task this worker may lease
        now, oldest first, locked (skipping rows other transactions hold): ``_TASK_COLUMNS``."""
        now = self._now_params
        sql = self._candidate.replace("{queues}", _in(len(queues)))
        return self._fetchall(sql, (*queues, *now, *now, worker, *now, limit))

    def lease_executions(self, row_ids: Sequence[int], token: str, worker: str, lock: timedelta) -> int:
        """Lease the (locked, free) executions' workflow tasks; return how many were leased."""
        sql, until = self._until(self._lease_free_batch.replace("{ids}", _in(len(row_ids))), lock)
        return self._rowcount(sql, (*until, token, worker, *row_ids, *self._now_params))

    def visible_pending_of(self, row_ids: Sequence[int]) -> dict[int, list[tuple[Any, ...]]]:
        """``visible_pending`` of several executions in one query, by execution row id."""
        sql = self._visible_pending_of.replace("{ids}", _in(len(row_ids)))
        pending: dict[int, list[tuple[Any, ...]]] = {}
        for row in self._fetchall(sql, (*row_ids, *self._now_params)):
            pending.setdefault(row[0], []).append(self._event_row(row[1:], first_event_column=2))
        return pending

    def lease_execution(
        self, row_id: int, token: str, worker: str, lock: timedelta, *, require_not_sticky: bool
    ) -> bool:
        """Lease the execution's workflow task if it is free (and, if asked, not sticky to
        another worker and still active)."""
        now = self._now_params
        template = self._lease_free_unsticky if require_not_sticky else self._lease_free
        sql, until = self._until(template, lock)
        params: tuple[Any, ...] = (*until, token, worker, row_id, *now)
        if require_not_sticky:
            params += (*now, worker)
        return self._rowcount(sql, params) == 1

    def visible_pending(self, row_id: int) -> list[tuple[Any, ...]]:
        """The execution's visible pending events, oldest first: (id, payload id, event columns, data)."""
        return self.visible_pending_of([row_id]).get(row_id, [])

    def lock_execution(self, row_id: int) -> tuple[Any, ...] | None:
        """Lock an execution row (the first lock of every writer): (state, ``_TASK_COLUMNS``)."""
        return self._fetchone(self._lock_execution, (row_id,))  # type: ignore[no-any-return]

    def lock_execution_to_deliver(self, row_id: int) -> tuple[tuple[Any, ...] | None, bool]:
        """Lock an execution to add an event to its inbox: (``lock_execution``'s row, whether the
        lock is exclusive). Where the database has shared row locks, take the exclusive lock only
        if it is free at once, else a shared one (see ``_try_lock_execution``)."""
        if not self.shares_execution_locks:
            return self.lock_execution(row_id), True
        row = self._fetchone(self._try_lock_execution, (row_id,))
        if row is not None:
            return row, True
        return self._fetchone(self._share_execution, (row_id,)), False

    def try_lock_execution_to_deliver(self, row_id: int) -> tuple[tuple[Any, ...] | None, bool] | None:
        """``lock_execution_to_deliver`` without waiting: None if it would have to wait. Only
        where ``locks_executions_without_waiting``."""
        if not self.shares_execution_locks:
            return self.lock_execution(row_id), True  # no row locks (SQLite): nothing to wait for
        row = self._fetchone(self._try_lock_execution, (row_id,))
        if row is not None:
            return row, True
        row = self._fetchone(self._try_share_execution, (row_id,))
        # None: held exclusively by another transaction (or gone; the waiting lock tells).
        return None if row is None else (row, False)

    def lock_leased(self, row_id: int, token: str) -> bool:
        """Lock the execution if this lease still holds it."""
        return self._fetchone(self._lock_leased, (row_id, token, *self._now_params)) is not None

    def has_unseen_pending(self, row_id: int, seen: Sequence[int]) -> bool:
        """Whether a visible pending event arrived that is not in ``seen``."""
        sql = self._unseen + (f" AND id NOT IN ({_in(len(seen))})" if seen else "") + " LIMIT 1"
        return self._fetchone(sql, (row_id, *self._now_params, *seen)) is not None

    def release_lease(self, row_id: int, token: str) -> None:
        self._rowcount(self._release, (row_id, token))

    def fenced_release(self, row_id: int, token: str, sticky: timedelta, last_sequence_id: int | None) -> bool:
        """Complete a task that keeps its execution active: release the lease, make it sticky."""
        sql, until = self._until(self._step, sticky)
        return self._rowcount(sql, (*until, last_sequence_id, row_id, token, *self._now_params)) == 1

    def finish(
        self, row_id: int, token: str, *, state: int, outcome: str, last_sequence_id: int | None, sticky: timedelta
    ) -> bool:
        """End an execution (fenced): state, outcome, completion time; no longer the active one."""
        now = self._now_params
        sql, until = self._until(self._finish, sticky)
        return self._rowcount(sql, (*until, state, outcome, *now, last_sequence_id, row_id, token, *now)) == 1

    def drop_pending(self, row_id: int, keep_payloads_of: Sequence[int]) -> None:
        """Delete every pending event of an ended execution, and the payloads of those not in
        ``keep_payloads_of`` (consumed events, whose payloads their history rows now share)."""
        sql = self._pending_payloads
        if keep_payloads_of:
            sql += f" AND id NOT IN ({_in(len(keep_payloads_of))})"
        orphaned = [row[0] for row in self._fetchall(sql, (row_id, *keep_payloads_of))]
        if orphaned:
            self._rowcount(f"DELETE FROM {self.payload} WHERE id IN ({_in(len(orphaned))})", orphaned)
        self._rowcount(self._delete_all_pending, (row_id,))

    def delete_pending(self, ids: Sequence[int]) -> None:
        if ids:
            self._rowcount(f"DELETE FROM {self.pending} WHERE id IN ({_in(len(ids))})", ids)

    # -- activity tasks ----------------------------------------------------------------------

    def has_free_activity(self, queues: Sequence[str]) -> bool:
        """Whether ``queues`` hold an activity task free to lease (a read that takes no lock)."""
        sql = self._has_activity.replace("{queues}", _in(len(queues)))
        return self._fetchone(sql, (*queues, *self._now_params)) is not None

    def claim_activities(
        self, queues: Sequence[str], limit: int
    ) -> list[tuple[tuple[Any, ...], tuple[Any, ...] | None]]:
        """Up to ``limit`` free activity tasks of ``queues``, locked: per task (id, instance row
        id, lease_count, queue, payload id, event columns), and, where one locking SELECT can join
        them, (payload data, execution identity); otherwise None (see ``activity_payload``)."""
        sql = self._claim_activity.replace("{queues}", _in(len(queues)))
        width = 5 + len(_EVENT_COLUMNS)
        return [
            (self._event_row(row[:width], first_event_column=5), tuple(row[width:]) if self.activity_joined else None)
            for row in self._fetchall(sql, (*queues, *self._now_params, limit))
        ]

    def activity_payload(self, payload_id: str) -> tuple[Any, ...]:
        """The activity's payload and the identity of its execution."""
        return self._fetchone(self._activity_payload, (payload_id,))  # type: ignore[no-any-return]

    def lease_activities(self, row_ids: Sequence[int], token: str, worker: str, lock: timedelta) -> int:
        """Lease the (locked, free) activity rows; return how many were leased."""
        sql, until = self._until(self._lease_activities.replace("{ids}", _in(len(row_ids))), lock)
        return self._rowcount(sql, (*until, token, worker, *row_ids, *self._now_params))

    def delete_leased_activities(self, leases: Sequence[tuple[int, str]]) -> int:
        """Delete the activity rows still leased with these (row id, token) pairs; return how
        many were."""
        # The IN list leads every planner to the primary key; the pairs are the fence.
        fenced = " OR ".join(["(id = %s AND lease_token = %s)"] * len(leases))
        sql = f"{self._delete_leased_activities} AND id IN ({_in(len(leases))}) AND ({fenced})"
        params = (*self._now_params, *(row_id for row_id, _ in leases), *(value for lease in leases for value in lease))
        return self._rowcount(sql, params)

    # -- inserts -----------------------------------------------------------------------------

    def insert_payloads(self, rows: Sequence[tuple[str, int, str]]) -> None:
        """(id, execution row id, attributes JSON) per payload."""
        if rows:
            sql = self._insert_payloads.replace("{rows}", ", ".join(["(%s, %s, %s)"] * len(rows)))
            self._rowcount(sql, [value for row in rows for value in row])

    def _event_values(self, row_id: int, payload_id: str, event: Event) -> list[Any]:
        visible_at = event.visible_at
        return [
            event.id,
            event.type.value,
            self._adapt_datetime(event.timestamp),
            event.schedule_event_id,
            event.sequence_id,
            None if visible_at is None else self._adapt_datetime(visible_at),
            row_id,
            payload_id,
        ]

    def insert_events(self, table: str, rows: Iterable[tuple[int, str, Event]]) -> None:
        """Pending or history rows (``table`` is ``self.pending`` or ``self.history``):
        (execution row id, payload id, event)."""
        params: list[Any] = []
        count = 0
        for row_id, payload_id, event in rows:
            params += self._event_values(row_id, payload_id, event)
            count += 1
        if count:
            group = f"({_in(8)})"
            self._rowcount(self._insert_events[table].replace("{rows}", ", ".join([group] * count)), params)

    def insert_activities(
        self,
        rows: Sequence[tuple[int, str, Event, str]],
        leases: dict[str, str],
        worker: str,
        lock: timedelta,
    ) -> dict[str, int]:
        """Activity tasks: (execution row id, payload id, event, queue). Those whose event id
        is in ``leases`` are leased at once to ``worker`` with that token. Returns the row ids
        of the leased ones, by event id."""
        if not rows:
            return {}
        until, until_params = self._now_sql(lock.total_seconds())
        free = f"({_in(9)}, NULL, '', '', 0)"
        leased = f"({_in(9)}, {until}, %s, %s, 1)"
        groups = []
        params: list[Any] = []
        for row_id, payload_id, event, queue in rows:
            params += self._event_values(row_id, payload_id, event)
            params.append(queue)
            token = leases.get(event.id)
            if token is None:
                groups.append(free)
            else:
                groups.append(leased)
                params += [*until_params, token, worker]
        sql = self._insert_activities.replace("{rows}", ", ".join(groups))
        if self.returning:
            return {event_id: row_id for row_id, event_id in self._fetchall(sql, params) if event_id in leases}
        self._rowcount(sql, params)
        if not leases:
            return {}
        # No RETURNING (MySQL): one SELECT finds the new rows' ids.
        sql = self._activity_ids.replace("{ids}", _in(len(leases)))
        return {event_id: row_id for row_id, event_id in self._fetchall(sql, (rows[0][0], *leases))}
