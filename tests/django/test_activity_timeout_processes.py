"""Activity timeouts enforced by the store, with real worker processes (``manage.py
runworkflows``): an attempt on a worker that is paused (SIGSTOP) times out on schedule and is
retried by another worker, and its late result changes nothing; an attempt stuck in a live
worker frees its slot at its deadline and does not keep SIGTERM from ending the worker."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.history import ActivityFailedAttributes, EventType
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Leases far longer than the activity's 3 s start-to-close timeout: only the timeout ends it.
OPTIONS = {"activity_lock_timeout": 60, "workflow_lock_timeout": 10, "sticky_timeout": 0}


@pytest.fixture(params=["orm", pytest.param("redis", marks=pytest.mark.redis)])
def workers(request: pytest.FixtureRequest, manage: Callable[..., Any]) -> Iterator[tuple[Client, Callable[..., Any]]]:
    """A client and ``start(*args)`` for ``runworkflows`` processes, on the ORM backend (the test
    database) or on Redis (keys under a fresh prefix)."""
    if request.param == "orm":
        yield Client(), lambda *args: manage("runworkflows", *args, workflow_options=OPTIONS)
        return
    from django_redis import get_redis_connection

    from django_workflows.backends.redis import RedisBackend

    prefix = f"wf-timeout-test-{uuid.uuid4().hex[:12]}:"
    options = {**OPTIONS, "key_prefix": prefix}
    yield (
        Client(RedisBackend(connection="workflows", key_prefix=prefix)),
        lambda *args: manage("runworkflows", *args, workflow_options=options, WORKFLOWS_BACKEND="redis"),
    )
    connection = get_redis_connection("workflows")
    for key in connection.scan_iter(match=f"{prefix}*", count=1000):
        connection.delete(key)


def lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


def test_attempt_on_a_paused_worker_times_out_and_its_late_result_is_refused(workers: Any, tmp_path: Path) -> None:
    client, start = workers
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    instance = client.create_workflow_instance(
        WorkflowInstanceOptions(instance_id="paused-attempt"), "timed_workflow", str(ledger), str(gate), 2
    )
    paused = start()
    wait_for(lambda: any(line.startswith("start 0 ") for line in lines(ledger)), what="the first attempt to start")
    paused.send(signal.SIGSTOP)
    try:
        start()
        result = client.get_workflow_result(instance, timeout=90)
        assert result.startswith("attempt 1 ") and f"pid={paused.pid}" not in result
        history = client.backend.get_workflow_instance_history(instance)
        failures = [e.attributes for e in history if e.type is EventType.ACTIVITY_FAILED]
        assert len(failures) == 1 and isinstance(failures[0], ActivityFailedAttributes)
        assert (failures[0].error.type, failures[0].error.timeout_type) == ("ActivityTimeout", "start_to_close")
        # The paused worker wakes up, its attempt finishes, and its result is refused.
        gate.touch()
    finally:
        paused.send(signal.SIGCONT)
    wait_for(lambda: f"done 0 pid={paused.pid}" in lines(ledger), what="the late attempt to finish")
    wait_for(lambda: "discarding its result" in paused.output(), what="the late result to be discarded")
    assert client.backend.get_workflow_instance_history(instance) == history
    paused.send(signal.SIGTERM)
    assert paused.wait(20) == 0


def test_stuck_attempt_frees_its_slot_and_does_not_hold_up_sigterm(workers: Any, tmp_path: Path) -> None:
    client, start = workers
    ledger, gate = tmp_path / "ledger", tmp_path / "gate-never-opened"
    stuck = client.create_workflow_instance(
        WorkflowInstanceOptions(instance_id="stuck-attempt"), "timed_workflow", str(ledger), str(gate), 1
    )
    # One activity slot: the next activity can only run once the stuck one gave its slot back.
    worker = start("--max-parallel-activity-tasks", "1")
    wait_for(lambda: any(line.startswith("start 0 ") for line in lines(ledger)), what="the stuck attempt to start")
    after = client.create_workflow_instance(
        WorkflowInstanceOptions(instance_id="after-the-stuck-one"), "slow_workflow", 0.01
    )
    assert client.get_workflow_result(after, timeout=60) == 0.01
    assert client.get_workflow_result(stuck, timeout=60) == "timed out: start_to_close"
    assert not any(line.startswith("done 0 ") for line in lines(ledger))  # still stuck
    # The bound: a worker whose activity hangs still exits within 20 s of SIGTERM.
    worker.send(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()
