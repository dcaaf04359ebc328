"""The lease-loss warning and the ``workflows.lease.lost`` counter are for real losses only,
on every backend: a heartbeat that lands just after its own task's completion (which ended the
lease) says nothing, and a task still running whose lease another worker took is reported once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.worker import Worker, WorkerOptions
from django_workflows.workflow import ActivityOptions, RetryOptions
from tests.backends.test_telemetry import Otel
from tests.backends.test_telemetry import otel as otel_fixture  # noqa: F401 - provides the "otel" fixture
from tests.conftest import wait_for

_started = threading.Event()


def step(seconds: float) -> str:
    _started.set()
    time.sleep(seconds)
    return "done"


async def one_step(ctx: workflow.Context, seconds: float) -> str:
    options = ActivityOptions(retry_options=RetryOptions(max_attempts=1))
    return await workflow.execute_activity(ctx, options, step, seconds)


def _worker(backend: Any, otel: Otel, queue: str, **options: Any) -> Worker:
    worker = Worker(
        backend,
        WorkerOptions(workflow_queues=[queue], activity_queues=[queue], run_scheduler=False, **options),
        instrumentation=otel.instrumentation,
    )
    worker.register_workflow(one_step)
    worker.register_activity(step)
    return worker


def _lost_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "lost the lease" in r.getMessage()]


def test_a_heartbeat_racing_its_own_completion_is_not_a_loss(
    backend_factory: Any, otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    backend = backend_factory()
    queue = f"q-{uuid.uuid4().hex[:8]}"
    races: list[str] = []

    def committing_slowly(method: str) -> None:
        real = getattr(backend, method)

        def complete(*args: Any, **kwargs: Any) -> Any:
            value = real(*args, **kwargs)
            # The lease is gone now; heartbeats due in the meantime find it so.
            time.sleep(1.0)
            races.append(method)
            return value

        setattr(backend, method, complete)

    committing_slowly("complete_activity_task")
    committing_slowly("complete_workflow_task")
    # Heartbeats every 0.1 s: several land between each commit and the end of its call.
    worker = _worker(backend, otel, queue, workflow_heartbeat_interval=0.1, activity_heartbeat_interval=0.1)
    with caplog.at_level(logging.DEBUG, logger="django_workflows"), worker:
        client = Client(backend, registry=worker.registry)
        instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), one_step, 0.5)
        assert client.get_workflow_result(instance, timeout=60) == "done"
    assert "complete_activity_task" in races and "complete_workflow_task" in races
    assert any("finishing task gone" in r.getMessage() for r in caplog.records), "no heartbeat raced a completion"
    assert _lost_lines(caplog) == []
    assert otel.total("workflows.lease.lost") == 0


def test_a_running_task_whose_lease_another_worker_took_is_reported_once(
    backend_factory: Any, otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    backend = backend_factory(activity_lock_timeout=1)
    other = backend_factory(activity_lock_timeout=60)  # another worker's handle on the store
    queue = f"q-{uuid.uuid4().hex[:8]}"
    # The worker's extensions fail (its store connection is down) until another worker took
    # the expired lease.
    outage = threading.Event()
    real_extend = backend.extend_activity_task

    def extend(task: Any) -> None:
        if outage.is_set():
            raise ConnectionError("connection reset by peer")
        real_extend(task)

    backend.extend_activity_task = extend
    _started.clear()
    # One activity slot, held by the running attempt: this worker cannot take the task again.
    worker = _worker(backend, otel, queue, max_parallel_activity_tasks=1)
    with caplog.at_level(logging.INFO, logger="django_workflows"), worker:
        client = Client(backend, registry=worker.registry)
        instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), one_step, 4.0)
        assert _started.wait(30)
        outage.set()
        taken = wait_for(lambda: other.get_activity_task([queue], 0.2), timeout=30, what="the expired lease to be taken")
        outage.clear()
        wait_for(lambda: _lost_lines(caplog), timeout=30, what="the loss to be reported")
        other.abandon_activity_task(taken)  # the worker runs it again and completes it
        assert client.get_workflow_result(instance, timeout=60) == "done"
    assert len(_lost_lines(caplog)) == 1
    assert otel.total("workflows.lease.lost", kind="activity", queue=queue) == 1
