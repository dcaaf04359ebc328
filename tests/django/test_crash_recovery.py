"""Workers killed with SIGKILL: another worker takes over after the lease expires, and history
holds exactly one outcome per activity (reliability.md F1/F2, B12)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.history import Event, EventType
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Short leases so that recovery takes seconds, not minutes.
FAST_LEASES = {"workflow_lock_timeout": 2, "activity_lock_timeout": 2, "sticky_timeout": 0}


def assert_clean_history(history: list[Event]) -> None:
    assert [e.sequence_id for e in history] == list(range(1, len(history) + 1)), "sequence ids dense and unique"
    scheduled = [e.schedule_event_id for e in history if e.type is EventType.ACTIVITY_SCHEDULED]
    outcomes = [
        e.schedule_event_id for e in history if e.type in (EventType.ACTIVITY_COMPLETED, EventType.ACTIVITY_FAILED)
    ]
    assert sorted(outcomes) == sorted(scheduled), "exactly one outcome per scheduled activity"
    assert [e.type for e in history].count(EventType.WORKFLOW_EXECUTION_STARTED) == 1
    terminal = [e for e in history if e.type is EventType.WORKFLOW_EXECUTION_FINISHED]
    assert len(terminal) == 1 and terminal[0] is history[-1]


def test_worker_killed_in_the_middle_of_an_activity(manage, tmp_path: Path):
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    client = Client()
    instance = client.create_workflow_instance(
        WorkflowInstanceOptions(instance_id="killed-mid-activity"), "ledger_workflow", str(ledger), 3, 2, str(gate)
    )
    first = manage("runworkflows", workflow_options=FAST_LEASES)
    wait_for(lambda: ledger.exists() and "start 2" in ledger.read_text(), what="activity 2 to start")
    first.send(signal.SIGKILL)
    first.wait(30)
    gate.touch()
    manage("runworkflows", workflow_options=FAST_LEASES)
    assert client.get_workflow_result(instance, timeout=90) == [1, 2, 3]
    assert_clean_history(client.backend.get_workflow_instance_history(instance))
    lines = ledger.read_text().splitlines()
    # At least once: step 2 ran again after the crash; the others ran exactly once.
    assert sum(line.startswith("start 2 ") for line in lines) == 2
    assert sum(line.startswith("done 1 ") for line in lines) == 1
    assert sum(line.startswith("done 3 ") for line in lines) == 1


def test_worker_killed_in_the_middle_of_a_workflow_task(manage, tmp_path: Path):
    ledger, marker = tmp_path / "ledger", tmp_path / "crashed-once"
    client = Client()
    instance = client.create_workflow_instance(
        WorkflowInstanceOptions(instance_id="killed-mid-task"), "crash_in_workflow_task", str(marker), str(ledger)
    )
    first = manage("runworkflows", workflow_options=FAST_LEASES)
    wait_for(lambda: marker.exists(), what="the workflow task to crash its worker")
    assert first.wait(30) != 0  # the workflow code killed it
    manage("runworkflows", workflow_options=FAST_LEASES)
    assert client.get_workflow_result(instance, timeout=90) == 3
    assert_clean_history(client.backend.get_workflow_instance_history(instance))
    lines = ledger.read_text().splitlines()
    assert sum(line.startswith("done 1 ") for line in lines) == 1
    assert sum(line.startswith("done 2 ") for line in lines) == 1


def test_activity_that_kills_every_worker_fails_after_bounded_leases(manage, tmp_path: Path):
    ledger = tmp_path / "ledger"
    options = {**FAST_LEASES, "max_activity_leases": 3}
    client = Client()
    instance = client.create_workflow_instance(
        WorkflowInstanceOptions(instance_id="poison"), "poison_workflow", str(ledger)
    )
    workers = [manage("runworkflows", workflow_options=options)]

    def crashes() -> int:
        return len(ledger.read_text().splitlines()) if ledger.exists() else 0

    # Keep a worker alive: each one dies when it runs the poison activity.
    for expected in range(1, 4):
        wait_for(lambda expected=expected: crashes() >= expected, timeout=90, what=f"crash {expected}")
        workers[-1].wait(30)
        workers.append(manage("runworkflows", workflow_options=options))
    result = client.get_workflow_result(instance, timeout=90)
    assert result.startswith("ActivityAbandoned: activity crash_worker was leased 3 times")
    assert crashes() == 3
    assert_clean_history(client.backend.get_workflow_instance_history(instance))
