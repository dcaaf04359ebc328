"""Schedules of the ORM backend: ``schedules.store.ScheduleStore`` on the ``Schedule`` model,
exposed as ``OrmBackend.schedules``.

``put`` and ``complete`` lock the schedule's row (``SELECT ... FOR UPDATE``; SQLite's write
lock) for their read-modify-write; two concurrent ``put`` of a schedule that does not exist yet
both try to insert, the unique ``schedule_id`` refuses one, and its retry finds the row. A
``claim`` first looks without locking (an idle scheduler must not queue for SQLite's write lock),
then locks the due row with ``SKIP LOCKED`` where the database has it, so concurrent schedulers
take different schedules, and leases it with a token: claim, complete and release are fenced on
that token and the lease times come from the database clock (``DbNow``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.db.models import Q

from ...engine.core import WorkflowInstance
from ...models import Schedule as ScheduleRow
from ...schedules.records import (
    ScheduleDefinition,
    ScheduleRecord,
    ScheduleRun,
    ScheduleState,
)
from ...schedules.spec import OverlapPolicy, ScheduleSpec
from ...schedules.store import Change, ScheduleClaim, ScheduleNotFound
from .sql import HotSql, new_token
from .transactions import DbNow, first, raw_delete

if TYPE_CHECKING:
    from .store import OrmStore


def _free() -> Q:
    """No claim holds the row (none, or its lease ended on the database clock)."""
    return Q(firing_until__isnull=True) | Q(firing_until__lte=DbNow())


def record_of(row: ScheduleRow) -> ScheduleRecord:
    last = WorkflowInstance(row.last_instance_id, row.last_execution_id) if row.last_instance_id else None
    return ScheduleRecord(
        definition=ScheduleDefinition(
            schedule_id=row.schedule_id,
            workflow_name=row.workflow_name,
            inputs=tuple(row.inputs or ()),
            spec=ScheduleSpec.from_json(row.spec),
            queue=row.queue,
            overlap=OverlapPolicy(row.overlap),
            catchup_window=timedelta(seconds=row.catchup_window),
            declared=row.declared,
        ),
        state=ScheduleState(
            created_at=row.created_at,
            updated_at=row.updated_at,
            paused=row.paused,
            note=row.note,
            next_fire_at=row.next_fire_at,
            buffered_at=row.buffered_at,
            due_at=row.due_at,
            last_instance=last,
            runs=tuple(ScheduleRun.from_json(run) for run in row.runs or ()),
            revision=row.revision,
        ),
    )


def columns_of(record: ScheduleRecord) -> dict[str, Any]:
    definition, state = record.definition, record.state
    last = state.last_instance
    return {
        "workflow_name": definition.workflow_name,
        "queue": definition.queue,
        "inputs": list(definition.inputs),
        "spec": definition.spec.to_json(),
        "overlap": definition.overlap.value,
        "catchup_window": definition.catchup_window.total_seconds(),
        "declared": definition.declared,
        "paused": state.paused,
        "note": state.note,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "next_fire_at": state.next_fire_at,
        "buffered_at": state.buffered_at,
        "due_at": state.due_at,
        "last_instance_id": last.instance_id if last else "",
        "last_execution_id": last.execution_id if last else "",
        "runs": [run.to_json() for run in state.runs],
        "revision": state.revision,
    }


class OrmScheduleStore:
    """The schedules of one ``OrmBackend`` (its store's database alias and transactions)."""

    def __init__(self, store: OrmStore) -> None:
        self.using = store.using
        self._db = store.db

    def _rows(self) -> Any:
        return ScheduleRow.objects.using(self.using).order_by()

    def _locking(self, queryset: Any, *, skip_locked: bool = False) -> Any:
        features = connections[self.using].features
        return queryset.select_for_update(skip_locked=skip_locked and bool(features.has_select_for_update_skip_locked))

    def _db_now(self) -> datetime:
        connection = connections[self.using]
        sql, params = DbNow().as_sql(None, connection)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {sql}", params)
            value = cursor.fetchone()[0]
        now = HotSql.read_datetime(value)
        assert now is not None
        return now.astimezone(UTC)

    # -- ScheduleStore -------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._db.run(self._db_now, atomic=False, reconnect=True)

    def get(self, schedule_id: str) -> ScheduleRecord:
        row = self._db.run(lambda: first(self._rows().filter(schedule_id=schedule_id)), atomic=False, reconnect=True)
        if row is None:
            raise ScheduleNotFound(schedule_id)
        return record_of(row)

    def list(self) -> list[ScheduleRecord]:
        rows = self._db.run(lambda: list(self._rows().order_by("schedule_id")), atomic=False, reconnect=True)
        return [record_of(row) for row in rows]

    def put(self, schedule_id: str, change: Change) -> ScheduleRecord:
        def attempt() -> ScheduleRecord:
            row = first(self._locking(self._rows().filter(schedule_id=schedule_id)))
            current = None if row is None else record_of(row)
            record = change(current)
            if record is current:
                return record
            if row is None:
                ScheduleRow(schedule_id=schedule_id, **columns_of(record)).save(using=self.using, force_insert=True)
            else:
                self._rows().filter(pk=row.pk).update(**columns_of(record))
            return record

        # A concurrent insert of the same id: the retry finds the row and updates it.
        return self._db.run(attempt, integrity_attempts=3)

    def delete(self, schedule_id: str) -> None:
        if not self._db.run(lambda: raw_delete(self._rows().filter(schedule_id=schedule_id))):
            raise ScheduleNotFound(schedule_id)

    def claim(self, lease: timedelta, schedule_id: str | None = None) -> ScheduleClaim | None:
        if schedule_id is None:
            candidates = self._rows().filter(_free(), due_at__lte=DbNow(stable=True))
            if not self._db.run(candidates.exists, atomic=False, reconnect=True):
                return None
        else:
            candidates = self._rows().filter(_free(), schedule_id=schedule_id)

        def attempt() -> ScheduleClaim | None:
            row = first(self._locking(candidates.order_by("due_at"), skip_locked=schedule_id is None))
            if row is None:
                return None
            token = new_token()
            # Fenced again: on SQLite nothing was locked until this write.
            leased = self._rows().filter(_free(), pk=row.pk).update(firing_token=token, firing_until=DbNow(lease))
            if leased != 1:
                return None
            return ScheduleClaim(record=record_of(row), token=token, now=self._db_now())

        return self._db.run(attempt, reconnect=True)

    def complete(self, claim: ScheduleClaim, change: Callable[[ScheduleRecord], ScheduleRecord]) -> ScheduleRecord | None:
        def attempt() -> ScheduleRecord | None:
            mine = self._rows().filter(schedule_id=claim.record.schedule_id, firing_token=claim.token)
            row = first(self._locking(mine))
            if row is None:
                return None
            record = change(record_of(row))
            self._rows().filter(pk=row.pk).update(**columns_of(record), firing_token="", firing_until=None)
            return record

        return self._db.run(attempt)

    def release(self, claim: ScheduleClaim) -> None:
        mine = self._rows().filter(schedule_id=claim.record.schedule_id, firing_token=claim.token)
        self._db.run(lambda: mine.update(firing_token="", firing_until=None), atomic=False, reconnect=True)
