"""Precompiled SQL for the ORM backend's hot paths.

Every activity a workflow runs costs a few claims and completions. Built through the QuerySet
API, each of their statements spends more time in Django's query building and compiling than in
the database (about 2-4 ms of CPU per call, against well under a millisecond to run them). The
statements here are written once per database alias from the models' table and column names and
run with ``cursor.execute``: the same SQL the ORM would send, parameterised the same way (no
value is ever formatted into SQL), minus the per-call compilation.

Only the frequent paths use it: claiming a workflow or activity task, reading an execution's
pending events, completing an activity, and the common completion of a workflow task that keeps
its execution running. Rarer work (starts, signals, finishing executions, sub-workflow
deliveries) stays on the QuerySet API in ``orm``, ``orm_complete`` and ``orm_delivery``.

Lease times use the database clock, as ``orm_db.DbNow`` renders it for each database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.utils.dateparse import parse_datetime

from ..engine.history import Event, attributes_to_json
from ..models import ActivityTask as ActivityRow
from ..models import HistoryEvent, Payload, PendingEvent
from ..models import WorkflowInstance as InstanceRow
from .orm_db import DbNow

#: Columns of an execution that a workflow task needs, in ``orm_rows.TASK_COLUMNS`` order.
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


class HotSql:
    """The hot-path statements of one database alias."""

    def __init__(self, using: str) -> None:
        connection = connections[using]
        self.using = using
        self.vendor = connection.vendor
        features = connection.features
        quote = connection.ops.quote_name
        self._quote = quote
        self.instance = quote(InstanceRow._meta.db_table)
        self.payload = quote(Payload._meta.db_table)
        self.pending = quote(PendingEvent._meta.db_table)
        self.history = quote(HistoryEvent._meta.db_table)
        self.activity = quote(ActivityRow._meta.db_table)
        self.skip_locked = " FOR UPDATE SKIP LOCKED" if features.has_select_for_update_skip_locked else ""
        self.for_update = " FOR UPDATE" if features.has_select_for_update else ""
        # Only PostgreSQL can lock just the activity row of a join (MariaDB would lock all).
        self.lock_activity_only = " FOR UPDATE OF a SKIP LOCKED" if features.has_select_for_update_of else None
        self.returning = bool(features.can_return_rows_from_bulk_insert)
        self._now_cache: dict[float, tuple[str, list[Any]]] = {}

    # -- values ------------------------------------------------------------------------------

    def now(self, offset: timedelta | float = 0.0) -> tuple[str, list[Any]]:
        """SQL for the database's current time plus ``offset``, and its parameters."""
        seconds = offset.total_seconds() if isinstance(offset, timedelta) else float(offset)
        cached = self._now_cache.get(seconds)
        if cached is None:
            cached = self._now_cache[seconds] = DbNow(timedelta(seconds=seconds)).as_sql(None, connections[self.using])
        return cached[0], list(cached[1])

    def write_datetime(self, value: datetime | None) -> Any:
        return None if value is None else connections[self.using].ops.adapt_datetimefield_value(value)

    def read_datetime(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = parse_datetime(value)
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # SQLite and MySQL keep naive UTC
        return value

    def read_json(self, value: Any) -> Any:
        if isinstance(value, (str, bytes, bytearray)):
            return json.loads(value)
        return value

    def cursor(self) -> Any:
        return connections[self.using].cursor()

    @staticmethod
    def placeholders(count: int) -> str:
        return ", ".join(["%s"] * count)

    # -- workflow tasks ----------------------------------------------------------------------

    def claim_candidate(self, queues: Sequence[str], worker: str) -> tuple[Any, ...] | None:
        """The first execution of ``queues`` whose workflow task this worker may lease now,
        locked (skipping rows other transactions hold): ``_TASK_COLUMNS``."""
        now, now_params = self.now()
        columns = ", ".join(f"i.{self._quote(c)}" for c in _TASK_COLUMNS)
        sql = (
            f"SELECT {columns} FROM {self.instance} i"
            f" WHERE i.state = 0 AND i.queue IN ({self.placeholders(len(queues))})"
            f" AND (i.locked_until IS NULL OR i.locked_until <= {now})"
            f" AND (i.sticky_until IS NULL OR i.sticky_until <= {now} OR i.worker = %s)"
            f" AND EXISTS (SELECT 1 FROM {self.pending} p WHERE p.instance_id = i.id"
            f" AND (p.visible_at IS NULL OR p.visible_at <= {now}))"
            f" ORDER BY i.id LIMIT 1{self.skip_locked}"
        )
        params = [*queues, *now_params, *now_params, worker, *now_params]
        with self.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def lease_execution(
        self, row_id: int, token: str, worker: str, lock: timedelta, *, require_not_sticky: bool
    ) -> bool:
        """Lease the execution's workflow task if it is free (and, if asked, not sticky to
        another worker and still active)."""
        now, now_params = self.now()
        until, until_params = self.now(lock)
        condition = f"(locked_until IS NULL OR locked_until <= {now})"
        params: list[Any] = [*until_params, token, worker, row_id, *now_params]
        if require_not_sticky:
            condition += f" AND state = 0 AND (sticky_until IS NULL OR sticky_until <= {now} OR worker = %s)"
            params += [*now_params, worker]
        sql = f"UPDATE {self.instance} SET locked_until = {until}, lease_token = %s, worker = %s WHERE id = %s AND {condition}"
        with self.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount == 1

    def visible_pending(self, row_id: int) -> list[tuple[Any, ...]]:
        """The execution's visible pending events, oldest first: (id, payload id, event columns, data)."""
        now, now_params = self.now()
        columns = ", ".join(f"p.{self._quote(c)}" for c in _EVENT_COLUMNS)
        sql = (
            f"SELECT p.id, p.payload_id, {columns}, pl.data FROM {self.pending} p"
            f" INNER JOIN {self.payload} pl ON pl.id = p.payload_id"
            f" WHERE p.instance_id = %s AND (p.visible_at IS NULL OR p.visible_at <= {now}) ORDER BY p.id"
        )
        with self.cursor() as cursor:
            cursor.execute(sql, [row_id, *now_params])
            return [self._event_row(row, first_event_column=2) for row in cursor.fetchall()]

    def _event_row(self, row: Sequence[Any], first_event_column: int) -> tuple[Any, ...]:
        """Convert the timestamp and visible_at of an event's columns, in place in a copy."""
        values = list(row)
        values[first_event_column + 2] = self.read_datetime(values[first_event_column + 2])
        values[first_event_column + 5] = self.read_datetime(values[first_event_column + 5])
        return tuple(values)

    def lock_execution(self, row_id: int) -> tuple[Any, ...] | None:
        """Lock an execution row (the first lock of every writer): (state, ``_TASK_COLUMNS``)."""
        columns = ", ".join(self._quote(c) for c in _TASK_COLUMNS)
        with self.cursor() as cursor:
            cursor.execute(f"SELECT state, {columns} FROM {self.instance} WHERE id = %s{self.for_update}", [row_id])
            return cursor.fetchone()

    def fenced_release(self, row_id: int, token: str, sticky: timedelta, last_sequence_id: int | None) -> bool:
        """Complete a task that keeps its execution active: release the lease, make it sticky."""
        now, now_params = self.now()
        until, until_params = self.now(sticky)
        sets = f"locked_until = NULL, lease_token = '', sticky_until = {until}"
        params: list[Any] = [*until_params]
        if last_sequence_id is not None:
            sets += ", last_sequence_id = %s"
            params.append(last_sequence_id)
        sql = f"UPDATE {self.instance} SET {sets} WHERE id = %s AND lease_token = %s AND locked_until > {now}"
        with self.cursor() as cursor:
            cursor.execute(sql, [*params, row_id, token, *now_params])
            return cursor.rowcount == 1

    def lock_leased(self, row_id: int, token: str) -> bool:
        """Lock the execution if this lease still holds it."""
        now, now_params = self.now()
        sql = f"SELECT id FROM {self.instance} WHERE id = %s AND lease_token = %s AND locked_until > {now}{self.for_update}"
        with self.cursor() as cursor:
            cursor.execute(sql, [row_id, token, *now_params])
            return cursor.fetchone() is not None

    def has_unseen_pending(self, row_id: int, seen: Sequence[int]) -> bool:
        """Whether a visible pending event arrived that is not in ``seen``."""
        now, now_params = self.now()
        sql = f"SELECT 1 FROM {self.pending} WHERE instance_id = %s AND (visible_at IS NULL OR visible_at <= {now})"
        params: list[Any] = [row_id, *now_params]
        if seen:
            sql += f" AND id NOT IN ({self.placeholders(len(seen))})"
            params += list(seen)
        with self.cursor() as cursor:
            cursor.execute(sql + " LIMIT 1", params)
            return cursor.fetchone() is not None

    def release_lease(self, row_id: int, token: str) -> None:
        with self.cursor() as cursor:
            cursor.execute(
                f"UPDATE {self.instance} SET locked_until = NULL, lease_token = '', sticky_until = NULL"
                " WHERE id = %s AND lease_token = %s",
                [row_id, token],
            )

    def finish(
        self, row_id: int, token: str, *, state: int, outcome: str, last_sequence_id: int | None, sticky: timedelta
    ) -> bool:
        """End an execution (fenced): state, outcome, completion time; no longer the active one."""
        now, now_params = self.now()
        until, until_params = self.now(sticky)
        sets = (
            f"locked_until = NULL, lease_token = '', sticky_until = {until}, state = %s, outcome = %s,"
            f" completed_at = {now}, active_instance_id = NULL"
        )
        params: list[Any] = [*until_params, state, outcome, *now_params]
        if last_sequence_id is not None:
            sets += ", last_sequence_id = %s"
            params.append(last_sequence_id)
        sql = f"UPDATE {self.instance} SET {sets} WHERE id = %s AND lease_token = %s AND locked_until > {now}"
        with self.cursor() as cursor:
            cursor.execute(sql, [*params, row_id, token, *now_params])
            return cursor.rowcount == 1

    def drop_pending(self, row_id: int, keep_payloads_of: Sequence[int]) -> None:
        """Delete every pending event of an ended execution, and the payloads of those not in
        ``keep_payloads_of`` (consumed events, whose payloads their history rows now share)."""
        sql = f"SELECT payload_id FROM {self.pending} WHERE instance_id = %s"
        params: list[Any] = [row_id]
        if keep_payloads_of:
            sql += f" AND id NOT IN ({self.placeholders(len(keep_payloads_of))})"
            params += list(keep_payloads_of)
        with self.cursor() as cursor:
            cursor.execute(sql, params)
            orphaned = [row[0] for row in cursor.fetchall()]
            if orphaned:
                cursor.execute(f"DELETE FROM {self.payload} WHERE id IN ({self.placeholders(len(orphaned))})", orphaned)
            cursor.execute(f"DELETE FROM {self.pending} WHERE instance_id = %s", [row_id])

    def delete_pending(self, ids: Sequence[int]) -> None:
        if ids:
            with self.cursor() as cursor:
                cursor.execute(f"DELETE FROM {self.pending} WHERE id IN ({self.placeholders(len(ids))})", list(ids))

    # -- activity tasks ----------------------------------------------------------------------

    def claim_activity(self, queues: Sequence[str]) -> tuple[tuple[Any, ...], tuple[Any, ...] | None] | None:
        """The first free activity task of ``queues``, locked: (id, instance row id,
        lease_count, queue, payload id, event columns), and, where one locking SELECT can join
        them, (payload data, execution identity); otherwise None (see ``activity_payload``)."""
        now, now_params = self.now()
        columns = ", ".join(f"a.{self._quote(c)}" for c in _EVENT_COLUMNS)
        select = f"a.id, a.instance_id, a.lease_count, a.queue, a.payload_id, {columns}"
        where = (
            f" WHERE a.queue IN ({self.placeholders(len(queues))}) AND (a.locked_until IS NULL OR a.locked_until <= {now})"
            " ORDER BY a.id LIMIT 1"
        )
        # Join the payload and the execution only where the lock stays on the activity row:
        # PostgreSQL (FOR UPDATE OF) and SQLite (no row locks). MariaDB would lock them all.
        joined = self.lock_activity_only is not None or not self.for_update
        if joined:
            identity = ", ".join(f"i.{self._quote(c)}" for c in _TASK_COLUMNS[5:])
            sql = (
                f"SELECT {select}, pl.data, {identity} FROM {self.activity} a"
                f" INNER JOIN {self.payload} pl ON pl.id = a.payload_id"
                f" INNER JOIN {self.instance} i ON i.id = a.instance_id"
                f"{where}{self.lock_activity_only or ''}"
            )
        else:
            sql = f"SELECT {select} FROM {self.activity} a{where}{self.skip_locked}"
        with self.cursor() as cursor:
            cursor.execute(sql, [*queues, *now_params])
            row = cursor.fetchone()
        if row is None:
            return None
        width = 5 + len(_EVENT_COLUMNS)
        return self._event_row(row[:width], first_event_column=5), (tuple(row[width:]) if joined else None)

    def activity_payload(self, payload_id: str) -> tuple[Any, ...]:
        """The activity's payload and the identity of its execution."""
        identity = ", ".join(f"i.{self._quote(c)}" for c in _TASK_COLUMNS[5:])
        sql = (
            f"SELECT pl.data, {identity} FROM {self.payload} pl INNER JOIN {self.instance} i ON i.id = pl.instance_id"
            f" WHERE pl.id = %s"
        )
        with self.cursor() as cursor:
            cursor.execute(sql, [payload_id])
            return cursor.fetchone()  # type: ignore[no-any-return]

    def lease_activity(self, row_id: int, token: str, worker: str, lock: timedelta) -> bool:
        now, now_params = self.now()
        until, until_params = self.now(lock)
        sql = (
            f"UPDATE {self.activity} SET locked_until = {until}, lease_token = %s, worker = %s,"
            f" lease_count = lease_count + 1 WHERE id = %s AND (locked_until IS NULL OR locked_until <= {now})"
        )
        with self.cursor() as cursor:
            cursor.execute(sql, [*until_params, token, worker, row_id, *now_params])
            return cursor.rowcount == 1

    def delete_leased_activity(self, row_id: int, token: str) -> bool:
        now, now_params = self.now()
        sql = f"DELETE FROM {self.activity} WHERE id = %s AND lease_token = %s AND locked_until > {now}"
        with self.cursor() as cursor:
            cursor.execute(sql, [row_id, token, *now_params])
            return cursor.rowcount == 1

    # -- inserts -----------------------------------------------------------------------------

    def insert_payloads(self, rows: Sequence[tuple[str, int, str]]) -> None:
        """(id, execution row id, attributes JSON) per payload."""
        if rows:
            values = ", ".join(["(%s, %s, %s)"] * len(rows))
            with self.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {self.payload} (id, instance_id, data) VALUES {values}",
                    [value for row in rows for value in row],
                )

    def _event_values(self, row_id: int, payload_id: str, event: Event) -> list[Any]:
        return [
            event.id,
            event.type.value,
            self.write_datetime(event.timestamp),
            event.schedule_event_id,
            event.sequence_id,
            self.write_datetime(event.visible_at),
            row_id,
            payload_id,
        ]

    def insert_events(self, table: str, rows: Iterable[tuple[int, str, Event]]) -> None:
        """Pending or history rows: (execution row id, payload id, event)."""
        params: list[Any] = []
        count = 0
        for row_id, payload_id, event in rows:
            params += self._event_values(row_id, payload_id, event)
            count += 1
        if count:
            columns = ", ".join(self._quote(c) for c in (*_EVENT_COLUMNS, "instance_id", "payload_id"))
            values = ", ".join([f"({self.placeholders(8)})"] * count)
            with self.cursor() as cursor:
                cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {values}", params)

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
        until, until_params = self.now(lock)
        columns = ", ".join(
            self._quote(c)
            for c in (*_EVENT_COLUMNS, "instance_id", "payload_id", "queue", "locked_until", "lease_token", "worker", "lease_count")
        )
        groups = []
        params: list[Any] = []
        for row_id, payload_id, event, queue in rows:
            token = leases.get(event.id)
            params += self._event_values(row_id, payload_id, event)
            params.append(queue)
            if token is None:
                groups.append(f"({self.placeholders(9)}, NULL, '', '', 0)")
            else:
                groups.append(f"({self.placeholders(9)}, {until}, %s, %s, 1)")
                params += [*until_params, token, worker]
        sql = f"INSERT INTO {self.activity} ({columns}) VALUES {', '.join(groups)}"
        with self.cursor() as cursor:
            if not leases:
                cursor.execute(sql, params)
                return {}
            if self.returning:
                cursor.execute(sql + " RETURNING id, event_id", params)
                return {event_id: row_id for row_id, event_id in cursor.fetchall() if event_id in leases}
            cursor.execute(sql, params)
            # No RETURNING (MySQL): one SELECT finds the new rows' ids.
            cursor.execute(
                f"SELECT id, event_id FROM {self.activity} WHERE instance_id = %s AND event_id IN ({self.placeholders(len(leases))})",
                [rows[0][0], *leases],
            )
            return {event_id: row_id for row_id, event_id in cursor.fetchall()}


def payload_json(event: Event) -> str:
    return attributes_to_json(event.attributes)
