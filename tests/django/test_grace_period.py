"""The graceful-shutdown timeout with real ``runworkflows`` processes, on the ORM backend (the
test database: SQLite, MariaDB or PostgreSQL) and on Redis.

A worker whose task is stuck in code Python cannot stop (an activity in ``time.sleep``, workflow
code that never yields with deadlock detection off) gets SIGTERM: after ``--grace-period`` it
releases the task's lease and exits with status 3, and another worker runs the task at once.
The leases are ten minutes long, so a test that passes did not wait for one to expire.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.runner import EXIT_GRACE_PERIOD_OVER
from tests.conftest import wait_for

from .stores import Store

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

OPTIONS = {"activity_lock_timeout": 600, "workflow_lock_timeout": 600, "sticky_timeout": 0}


def _started_by(ledger: Path, pid: int) -> bool:
    return ledger.exists() and any(line.endswith(f"pid={pid}") for line in ledger.read_text().splitlines())


@pytest.mark.parametrize(
    ("workflow", "flags"),
    [("stuck_activity_workflow", ()), ("stuck_workflow", ("--deadlock-timeout", "0"))],
    ids=["stuck-activity", "stuck-workflow-task"],
)
def test_after_the_grace_period_a_stuck_task_is_released_to_another_worker(
    store: Store, manage: Callable[..., Any], tmp_path: Path, workflow: str, flags: tuple[str, ...]
) -> None:
    def start(*args: str) -> Any:
        return manage("runworkflows", *flags, *args, workflow_options={**OPTIONS, **store.options}, **store.env)

    ledger = tmp_path / "ledger"
    Client().create_workflow_instance(WorkflowInstanceOptions(instance_id=f"stuck-{workflow}"), workflow, str(ledger))
    first = start("--grace-period", "1")
    wait_for(lambda: _started_by(ledger, first.pid), what="the first worker to start the task")
    first.send(signal.SIGTERM)
    assert first.wait(60) == EXIT_GRACE_PERIOD_OVER
    output = first.output()
    assert "released the leases of 1 running task(s)" in output
    assert f"exits with status {EXIT_GRACE_PERIOD_OVER}" in output
    second = start()
    # Long before the ten-minute lease could have expired.
    wait_for(lambda: _started_by(ledger, second.pid), timeout=60, what="another worker to take the released task")


def test_a_task_that_finishes_within_the_grace_period_commits_and_the_worker_exits_0(
    store: Store, manage: Callable[..., Any], tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    client = Client()
    instance = client.create_workflow_instance(
        WorkflowInstanceOptions(instance_id="graceful"), "ledger_workflow", str(ledger), 1, 1, str(gate)
    )
    worker = manage("runworkflows", "--grace-period", "60", workflow_options={**OPTIONS, **store.options}, **store.env)
    wait_for(lambda: _started_by(ledger, worker.pid), what="the activity to start")
    worker.send(signal.SIGTERM)
    wait_for(lambda: "SIGTERM received" in worker.output(), what="the worker to begin stopping")
    gate.touch()
    assert worker.wait(90) == 0
    assert "released the leases" not in worker.output()
    # Its result was committed: the next worker continues the workflow without running it again.
    manage("runworkflows", workflow_options={**OPTIONS, **store.options}, **store.env)
    assert client.get_workflow_result(instance, timeout=60) == [1]
    assert [line.split()[0] for line in ledger.read_text().splitlines()] == ["start", "done"]
