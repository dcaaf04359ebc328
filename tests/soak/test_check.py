"""The soak's check finds what it is meant to find: broken histories, signals and
re-executions that no kill explains (synthetic histories and ledgers), and unfinished
instances and leftovers in a real store (ORM and Redis; no workers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.errors import ErrorInfo
from django_workflows.engine.history import (
    ActivityCompletedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Attributes,
    Event,
    TimerScheduledAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    new_event,
)
from tests.soak.check import RunRecord, check_history, check_ledger, check_signals, check_store, instance_id, read_ledger
from tests.soak.leftovers import leftovers

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def history(*items: tuple[Attributes, int]) -> list[Event]:
    """Events numbered 1, 2, ... from (attributes, schedule event id) pairs."""
    return [new_event(a, NOW, schedule_event_id=s).with_sequence_id(n) for n, (a, s) in enumerate(items, 1)]


STARTED = (WorkflowExecutionStartedAttributes(name="soak_workflow", queue="default"), 0)
SCHEDULED = (ActivityScheduledAttributes(name="soak_step"), 1)
COMPLETED = (ActivityCompletedAttributes(), 1)
FINISHED = (WorkflowExecutionFinishedAttributes(), 0)


def test_a_clean_history_passes():
    assert check_history("i", history(STARTED, SCHEDULED, COMPLETED, FINISHED)) == []


def test_broken_histories_are_reported():
    gap = history(STARTED, SCHEDULED, COMPLETED, FINISHED)
    gap[2] = gap[2].with_sequence_id(7)
    assert any("sequence ids are not 1..4" in p for p in check_history("i", gap))
    twice = check_history("i", history(STARTED, SCHEDULED, COMPLETED, COMPLETED, FINISHED))
    assert any("ActivityScheduled at [1] but outcomes for [1, 1]" in p for p in twice)
    timer = check_history("i", history(STARTED, (TimerScheduledAttributes(at=NOW), 1), FINISHED))
    assert any("TimerScheduled at [1] but outcomes for []" in p for p in timer)
    unfinished = check_history("i", history(STARTED, SCHEDULED, COMPLETED))
    assert any("terminal events []" in p for p in unfinished)
    after_end = check_history("i", history(STARTED, FINISHED, SCHEDULED, COMPLETED))
    assert any("the last event" in p for p in after_end)
    failed = ActivityFailedAttributes(error=ErrorInfo(type="ValueError", message="boom"))
    assert any("ValueError: boom" in p for p in check_history("i", history(STARTED, SCHEDULED, (failed, 1), FINISHED)))


def _ledger(tmp_path: Path, *runs: tuple[str, int, float, float | None]) -> Path:
    """A ledger of one workflow (index 0) whose step ``a`` ran as ``runs`` (pid, start, end)
    and whose other steps ran once, on pid 1."""
    path = tmp_path / "ledger.jsonl"
    entries = []
    for step, pid, start, end in [*runs, ("b", 1, 0.0, 0.1), ("c", 1, 0.0, 0.1)]:
        entries.append({"instance": "soak-0", "step": step, "pid": pid, "attempt": 0, "event": "start", "at": start})
        if end is not None:
            entries.append({"instance": "soak-0", "step": step, "pid": pid, "attempt": 0, "event": "done", "at": end})
    entries.append({"instance": "soak-0-child", "step": "d", "pid": 1, "attempt": 0, "event": "start", "at": 0.0})
    entries.append({"instance": "soak-0-child", "step": "d", "pid": 1, "attempt": 0, "event": "done", "at": 0.1})
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def test_ledger_pairs_the_ends_with_their_starts(tmp_path: Path):
    executions = read_ledger(_ledger(tmp_path, ("a", 7, 1.0, None), ("a", 8, 6.0, 6.1)))
    assert [(e.pid, e.started, e.done) for e in executions[("soak-0", "a")]] == [(7, 1.0, None), (8, 6.0, 6.1)]


def test_a_reexecution_after_a_kill_is_allowed(tmp_path: Path):
    # Pid 7 was killed while it ran step a; pid 8 ran it again after the lease.
    record = RunRecord(workflows=1, ledger=_ledger(tmp_path, ("a", 7, 1.0, None), ("a", 8, 6.0, 6.1)), lease_seconds=4)
    record.killed = {7: 2.0}
    result = check_ledger(record)
    assert result.problems == [] and result.after_restart == []
    assert result.figures["reexecutions_after_kills"] == 1
    assert result.figures["recovery_after_kill_s"] == {"median": 4.0, "max": 4.0}


def test_a_reexecution_no_kill_explains_is_a_violation(tmp_path: Path):
    # Pid 7 ended step a, was killed long after its result should have been committed.
    record = RunRecord(workflows=1, ledger=_ledger(tmp_path, ("a", 7, 1.0, 1.1), ("a", 8, 9.0, 9.1)), lease_seconds=4)
    record.killed = {7: 8.0}
    problems = check_ledger(record).problems
    assert len(problems) == 1 and "after pid 7 (killed only at 8.000) ran it from 1.000 to 1.100" in problems[0]


def test_a_reexecution_the_lease_should_have_saved_from_a_restart_is_listed_apart(tmp_path: Path):
    # A 20 s lease outlives a 1.3 s outage by far: the completion's retries should have committed.
    record = RunRecord(workflows=1, ledger=_ledger(tmp_path, ("a", 7, 1.0, 1.1), ("a", 8, 6.0, 6.1)), lease_seconds=20)
    record.restarts, record.running_at_restart = [(1.2, 2.5)], [1]
    result = check_ledger(record)
    assert result.problems == []
    assert len(result.after_restart) == 1 and "as the store restarted (1.200 to 2.500)" in result.after_restart[0]


def test_a_reexecution_after_an_outage_longer_than_the_lease_allows_is_counted_only(tmp_path: Path):
    # A 4 s lease may have had under 2.2 s of retries left when the store went for 1.3 s (plus
    # the wait of the first retry after it): the result may be lost, as a lost lease's is.
    record = RunRecord(workflows=1, ledger=_ledger(tmp_path, ("a", 7, 1.0, 1.1), ("a", 8, 6.0, 6.1)), lease_seconds=4)
    record.restarts, record.running_at_restart = [(1.2, 2.5)], [1]
    result = check_ledger(record)
    assert result.problems == [] and result.after_restart == []
    assert result.figures["reexecutions_after_restart"] == result.figures["reexecutions_after_restart_beyond_lease"] == 1


def test_missing_and_unfinished_activities_are_violations(tmp_path: Path):
    path = _ledger(tmp_path, ("a", 7, 1.0, None))
    problems = check_ledger(RunRecord(workflows=2, ledger=path, lease_seconds=4)).problems
    assert "activity ('soak-0', 'a'): its last execution (pid 7) did not end" in problems
    assert "activity ('soak-1', 'a') never ran" in problems


def test_signals_are_counted_against_what_the_driver_sent():
    assert check_signals("i", ["t1"], accepted=["t1"], uncertain=[]) == []
    # A try that raised may have got there once; the retry's token must be there too.
    assert check_signals("i", ["t0", "t1"], accepted=["t1"], uncertain=["t0"]) == []
    assert check_signals("i", [], accepted=["t1"], uncertain=["t0"]) == ["i: accepted signal t1 is missing from its history"]
    assert check_signals("i", ["t1", "t1"], accepted=["t1"], uncertain=[]) == [
        "i: accepted signal t1 is in its history twice"
    ]
    assert check_signals("i", ["t1", "x"], accepted=["t1"], uncertain=[]) == [
        "i: signal x is in its history once, but the driver never sent it"
    ]
    assert check_signals("i", ["t0", "t0", "t1"], accepted=["t1"], uncertain=["t0"]) == [
        "i: signal t0 (whose call failed) is in its history twice"
    ]


@pytest.mark.django_db
def test_leftovers_and_unfinished_instances_are_found(store):
    """An instance no worker ran leaves its start event pending and stays active."""
    client = Client(store.backend)
    client.create_workflow_instance(WorkflowInstanceOptions(instance_id=instance_id(0)), "soak_workflow", "ledger", 0)
    found = leftovers(store.backend)
    if store.name == "orm":
        assert found == ["1 pending events left in the database", "1 active instances left in the database"]
    else:
        assert any(line.startswith("1 Redis keys pending:* left") for line in found), found
        assert any(line.startswith("1 Redis keys instances-active left") for line in found), found
    problems = check_store(client, RunRecord(workflows=1, ledger=Path("unused")))
    assert "soak-0: state ACTIVE, not FINISHED" in problems
    assert "soak-0-child: 0 executions, expected 1" in problems
    assert "1 active instances left" in problems
