"""The plans of the ORM backend's idle look-ups (issue 21): with thousands of executions waiting
on timers, finding ready work must read the pending events through their ready index (no scan of
the waiting rows, no sort of them), and the sweeps for timed-out executions and expired
activities must bound their index scans by the clock. With a backlog of thousands of new
instances ready to start, the look-up still reads only the first few of them, in ready order,
beside the ready work of running executions (no sort of the backlog either).

``EXPLAIN`` on PostgreSQL and SQLite (``EXPLAIN QUERY PLAN``), with fresh and with stale
statistics; MariaDB's optimiser is not checked here (``bench.scale`` shows its plan and figures).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from django_workflows.backends.orm.sql import HotSql
from django_workflows.engine.clock import utcnow
from django_workflows.models import ActivityTask as ActivityRow
from django_workflows.models import Payload, PendingEvent
from django_workflows.models import WorkflowInstance as InstanceRow

from . import test_orm_support
from .test_orm_support import VENDOR, BackendMaker

orm = test_orm_support.orm  # the fixture

pytestmark = pytest.mark.skipif(VENDOR not in ("postgresql", "sqlite"), reason="plans checked on PostgreSQL and SQLite")

WAITING = 2000
READY = 3
BACKLOG = 2000


def _populate_backlog() -> list[int]:
    """``BACKLOG`` new instances on the queue ``q`` whose starts are ready (since before any
    other row); returns their row ids, oldest start first."""
    now = utcnow()
    rows = InstanceRow.objects.bulk_create(
        InstanceRow(
            instance_id=f"new-{i}", execution_id="e", active_instance_id=f"new-{i}", workflow_name="w", queue="q",
            created_at=now,
        )
        for i in range(BACKLOG)
    )
    payload = Payload.objects.create(id="new-payload", instance=rows[0], data="{}")
    PendingEvent.objects.bulk_create(
        (
            PendingEvent(
                instance=row, payload=payload, event_id=f"n{index}", event_type="WorkflowExecutionStarted",
                timestamp=now, queue="q", ready_at=now - timedelta(minutes=10, seconds=-index), new_instance=True,
            )
            for index, row in enumerate(rows)
        ),
        batch_size=500,
    )
    return [row.pk for row in rows]


def _populate() -> list[int]:
    """``WAITING`` executions whose timer is due in an hour (and whose activity runs until then),
    ``READY`` with a signal ready now, on the queue ``q``; returns the ready executions' row ids."""
    now = utcnow()
    rows = InstanceRow.objects.bulk_create(
        InstanceRow(
            instance_id=f"plan-{i}", execution_id="e", active_instance_id=f"plan-{i}", workflow_name="w", queue="q",
            created_at=now, last_sequence_id=2,
        )
        for i in range(WAITING + READY)
    )
    payload = Payload.objects.create(id="plan-payload", instance=rows[0], data="{}")
    later = now + timedelta(hours=1)
    PendingEvent.objects.bulk_create(
        (
            PendingEvent(
                instance=row, payload=payload, event_id=f"t{index}", event_type="TimerFired", timestamp=now,
                visible_at=later, queue="q", ready_at=later,
            )
            for index, row in enumerate(rows[:WAITING])
        ),
        batch_size=500,
    )
    PendingEvent.objects.bulk_create(
        PendingEvent(
            instance=row, payload=payload, event_id=f"s{index}", event_type="SignalReceived", timestamp=now,
            queue="q", ready_at=now - timedelta(seconds=1),
        )
        for index, row in enumerate(rows[WAITING:])
    )
    # Activities running on other workers, whose deadlines are an hour away.
    ActivityRow.objects.bulk_create(
        (
            ActivityRow(
                instance=row, payload=payload, event_id=f"a{index}", event_type="ActivityScheduled", timestamp=now,
                queue="q", locked_until=later, deadline=later,
            )
            for index, row in enumerate(rows[:WAITING])
        ),
        batch_size=500,
    )
    return [row.pk for row in rows[WAITING:]]


def _plan(sql: HotSql, name: str, template: str, **values: Any) -> str:
    text, params = sql._statement(name, template).render(values)
    with connection.cursor() as cursor:
        if VENDOR == "postgresql":
            cursor.cursor.execute("EXPLAIN " + text, params)
            return "\n".join(row[0] for row in cursor.fetchall())
        cursor.cursor.execute("EXPLAIN QUERY PLAN " + text, params)
        return "\n".join(row[-1] for row in cursor.fetchall())


def _assert_reads_ready_index(plan: str) -> None:
    assert "dj_wf_pending_claim_idx" in plan and "dj_wf_pending_ready_idx" not in plan, plan
    if VENDOR == "postgresql":
        # Each execution by its primary key: unanalysed, PostgreSQL joined the pending rows to
        # a materialised scan of every active execution.
        assert "workflowinstance_pkey" in plan and "Materialize" not in plan and " Join" not in plan, plan
        # The bad plan walked every pending row by instance id into a merge join.
        assert "Seq Scan on django_workflows_pendingevent" not in plan, plan
        assert "pendingevent_instance_id" not in plan.split("SubPlan")[0], plan
        assert "Sort" not in plan, plan
    else:
        assert "SCAN p" not in plan and "TEMP B-TREE" not in plan, plan


def _analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


@pytest.mark.parametrize("backlog", [False, True], ids=["no-backlog", "backlog"])
@pytest.mark.parametrize("statistics", ["none", "stale", "fresh"])
def test_the_claim_look_up_reads_ready_rows_through_the_ready_index(orm: BackendMaker, statistics: str, backlog: bool) -> None:
    backend = orm()
    starts = _populate_backlog() if backlog else []
    ready = _populate()
    if statistics == "stale":
        # As after a mass start whose executions then all went to sleep: the statistics still
        # say the pending rows are ready (PostgreSQL then chose a merge join by instance id that
        # read every waiting row on each poll).
        waiting = PendingEvent.objects.filter(event_type="TimerFired")
        later = waiting.values_list("ready_at", flat=True)[0]
        waiting.update(ready_at=utcnow() - timedelta(seconds=5))
        _analyze()
        waiting.update(ready_at=later)
    elif statistics == "fresh":
        _analyze()
    sql = backend.store.sql
    for queues in (1, 2):
        values = {f"queue_{n}": "q" if n == 0 else "other" for n in range(queues)}
        plan = _plan(sql, f"plan_find_{queues}", HotSql.find_candidates_template(queues), worker="me", limit=8, **values)
        _assert_reads_ready_index(plan)
    # And it finds exactly the ready executions, whichever queues are asked for, and of the
    # backlog the oldest starts, as many as asked for.
    for queues in (["q"], ["other", "q"]):
        found = sql.find_candidates(queues, "me", 10)
        assert sorted(found.running) == ready
        assert found.starts == starts[:10]
    assert sql.find_candidates(["other"], "me", 10) == ([], [])
    found = sql.find_candidates(["q"], "me", 2)
    assert len(found.running) == 2 and found.starts == starts[:2]


@pytest.mark.parametrize("statistics", ["none", "fresh"])
def test_the_sweeps_bound_their_index_scans_by_the_clock(orm: BackendMaker, statistics: str) -> None:
    if statistics == "none" and VENDOR == "postgresql":
        pytest.skip("PostgreSQL plans a table it never analysed by its size on disk (a scan may win)")
    backend = orm()
    _populate()
    if statistics == "fresh":
        _analyze()
    sql = backend.store.sql
    timeouts = _plan(sql, "plan_timeouts", HotSql._TIMED_OUT_EXECUTIONS, limit=10)
    expired = _plan(sql, "plan_expired", HotSql._EXPIRED, limit=10)
    if VENDOR == "postgresql":
        # An index condition, not a filter run on every indexed row (CLOCK_TIMESTAMP() is
        # volatile and cannot bound an index scan; STATEMENT_TIMESTAMP() can).
        assert "Index Cond: (timeout_at <=" in timeouts, timeouts
        assert "Index Cond: (deadline <=" in expired, expired
    else:
        # Not the claim index for ``state = 0`` with every active execution sorted by timeout.
        assert "dj_wf_instance_timeout_idx (timeout_at<?)" in timeouts and "TEMP B-TREE" not in timeouts, timeouts
        assert "dj_wf_activity_deadline_idx (deadline<?)" in expired, expired
    assert sql.timed_out_executions(10) == [] and sql.expired_activities(10) == []
