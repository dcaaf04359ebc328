"""``Worker.shutdown`` on every backend: after the grace period the leases of the tasks still
running are released, and another worker takes them at once (the leases are ten minutes long);
a released activity does not count as a crash (``max_activity_leases``)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.worker import Worker, WorkerOptions
from django_workflows.workflow import ActivityOptions, RetryOptions
from tests.conftest import wait_for

_gates: dict[str, threading.Event] = {}
_runs: dict[str, list[int]] = {}


def gated(key: str) -> int:
    """The first run waits for its gate (stuck, as far as the worker knows); later runs return."""
    runs = _runs.setdefault(key, [])
    runs.append(len(runs))
    if len(runs) == 1:
        _gates[key].wait(120)
    return len(runs)


async def gated_workflow(ctx: workflow.Context, key: str) -> int:
    options = ActivityOptions(retry_options=RetryOptions(max_attempts=1))
    return await workflow.execute_activity(ctx, options, gated, key)


def _worker(backend: Any, queue: str) -> Worker:
    worker = Worker(
        backend,
        WorkerOptions(
            workflow_queues=[queue], activity_queues=[queue], run_scheduler=False, grace_period=timedelta(seconds=0.5)
        ),
    )
    worker.register_workflow(gated_workflow)
    worker.register_activity(gated)
    return worker


def test_a_task_still_running_after_the_grace_period_is_released_to_another_worker(backend_factory: Any) -> None:
    # One lease only: had the release counted as a crash, the next lease would fail the activity.
    options = {"activity_lock_timeout": 600, "workflow_lock_timeout": 600, "max_activity_leases": 1}
    first_backend, second_backend = backend_factory(**options), backend_factory(**options)
    queue, key = f"q-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    _gates[key] = threading.Event()
    first = _worker(first_backend, queue)
    first.start()
    try:
        client = Client(first_backend, registry=first.registry)
        instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), gated_workflow, key)
        wait_for(lambda: _runs.get(key), what="the first attempt to start")
        assert first.shutdown() is False  # the attempt was still running: its lease was released
        with _worker(second_backend, queue):
            assert client.get_workflow_result(instance, timeout=60) == 2
    finally:
        _gates[key].set()  # the first attempt returns; its result is refused
    assert _runs[key] == [0, 1]


def test_grace_period_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="grace_period must not be negative"):
        WorkerOptions(grace_period=-1)
