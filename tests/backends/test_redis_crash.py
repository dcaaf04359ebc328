"""``manage.py runworkflows`` workers on the Redis backend killed with SIGKILL: another worker
recovers the task after the lock timeout, and an activity that kills every worker fails after
``max_activity_leases`` (reliability.md F1/F2). The workflows are the test project's."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django_redis import get_redis_connection

from django_workflows.backends.redis import RedisBackend
from django_workflows.client import Client, WorkflowInstanceOptions
from tests.conftest import wait_for
from tests.django.test_crash_recovery import FAST_LEASES, assert_clean_history

# The subprocesses find the test database through the manage fixture, as in test_crash_recovery.
pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_workers(manage: Callable[..., Any]) -> Iterator[tuple[Client, Callable[..., Any]]]:
    """A client and ``start(**options)`` for workers, all on keys under a fresh prefix."""
    prefix = f"wf-crash-test-{uuid.uuid4().hex[:12]}:"
    client = Client(RedisBackend(connection="workflows", key_prefix=prefix))

    def start(**options: Any) -> Any:
        options = {**FAST_LEASES, "key_prefix": prefix, **options}
        return manage("runworkflows", workflow_options=options, WORKFLOWS_BACKEND="redis")

    yield client, start
    connection = get_redis_connection("workflows")
    for key in connection.scan_iter(match=f"{prefix}*", count=1000):
        connection.delete(key)


def test_worker_killed_in_the_middle_of_an_activity(redis_workers: Any, tmp_path: Path) -> None:
    client, start = redis_workers
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    instance = client.create_workflow_instance(
        WorkflowInstanceOptions(instance_id="killed-mid-activity"), "ledger_workflow", str(ledger), 3, 2, str(gate)
    )
    first = start()
    wait_for(lambda: ledger.exists() and "start 2" in ledger.read_text(), timeout=180, what="activity 2 to start")
    first.send(signal.SIGKILL)
    first.wait(30)
    gate.touch()
    start()
    assert client.get_workflow_result(instance, timeout=90) == [1, 2, 3]
    assert_clean_history(client.backend.get_workflow_instance_history(instance))
    lines = ledger.read_text().splitlines()
    assert sum(line.startswith("start 2 ") for line in lines) == 2  # at least once: it ran again
    assert sum(line.startswith("done 1 ") for line in lines) == 1
    assert sum(line.startswith("done 3 ") for line in lines) == 1


def test_activity_that_kills_every_worker_fails_after_bounded_leases(redis_workers: Any, tmp_path: Path) -> None:
    client, start = redis_workers
    ledger = tmp_path / "ledger"
    instance = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="poison"), "poison_workflow", str(ledger))
    workers = [start(max_activity_leases=3)]

    def crashes() -> int:
        return len(ledger.read_text().splitlines()) if ledger.exists() else 0

    for expected in range(1, 4):
        wait_for(lambda n=expected: crashes() >= n, timeout=90, what=f"crash {expected}")
        workers[-1].wait(30)
        workers.append(start(max_activity_leases=3))
    result = client.get_workflow_result(instance, timeout=90)
    assert result.startswith("ActivityAbandoned: activity crash_worker was leased 3 times")
    assert crashes() == 3
    assert_clean_history(client.backend.get_workflow_instance_history(instance))
