"""The backlog (``Backend.get_backlog``), the registry of live workers (``register_worker``...),
the worker's presence in it, and the health report built on both, on the memory, ORM and Redis
backends (docs/observability.md)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync

from django_workflows import health, workflow
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.backend import Feature, WorkerInfo
from django_workflows.presence import WorkerPresence
from django_workflows.worker import Worker, WorkerOptions
from tests.conftest import wait_for


def pay(amount: int) -> int:
    return amount


async def invoice(ctx: workflow.Context, amount: int) -> int:
    return await workflow.execute_activity(ctx, workflow.ActivityOptions(), pay, amount)


def _backlog(backend: Any, queue: str) -> Any:
    return next((b for b in backend.get_backlog() if b.queue == queue), None)


def test_backlog_counts_ready_tasks_and_ages_the_oldest(backend_factory: Any) -> None:
    backend = backend_factory()
    queue = f"bq-{uuid.uuid4().hex[:8]}"
    client = Client(backend)
    first = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), "invoice", 1)
    client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), "invoice", 2)
    time.sleep(0.3)
    backlog = _backlog(backend, queue)
    assert backlog is not None
    assert (backlog.ready_workflow_tasks, backlog.ready_activity_tasks) == (2, 0)
    assert backlog.oldest_workflow_task_age >= 0.25 and backlog.oldest_activity_task_age is None

    # A leased task is not ready any more; released, it is again.
    task = backend.get_workflow_task([queue], 10)
    assert task is not None and task.instance.instance_id in {first.instance_id} | {task.instance.instance_id}
    assert _backlog(backend, queue).ready_workflow_tasks == 1
    backend.abandon_workflow_task(task)
    assert _backlog(backend, queue).ready_workflow_tasks == 2

    # Workflows run, their activities wait: no worker runs activities on this queue.
    options = WorkerOptions(
        workflow_pollers=1, activity_pollers=0, workflow_queues=[queue], activity_queues=[queue], run_scheduler=False
    )
    worker = Worker(backend, options)
    worker.register_workflow(invoice)
    with worker:
        wait_for(lambda: (b := _backlog(backend, queue)) is not None and b.ready_activity_tasks == 2, 30,
                 what="both activities to wait")
    backlog = _backlog(backend, queue)
    assert backlog.ready_workflow_tasks == 0 and backlog.oldest_workflow_task_age is None
    assert backlog.oldest_activity_task_age is not None and backlog.oldest_activity_task_age >= 0
    activity = backend.get_activity_task([queue], 10)
    assert activity is not None
    assert _backlog(backend, queue).ready_activity_tasks == 1
    assert _backlog(backend, f"other-{queue}") is None
    (through_client,) = [b for b in Client(backend).get_backlog() if b.queue == queue]
    assert (through_client.ready_workflow_tasks, through_client.ready_activity_tasks) == (0, 1)


def _info(worker_id: str, **fields: Any) -> WorkerInfo:
    return WorkerInfo(
        worker_id=worker_id, name="lease-name", host="box", pid=42, workflow_queues=("a", "_system_"),
        activity_queues=("a",), app_version="v7", library_version="0.1.0",
        started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), **fields,
    )


def test_registry_lists_live_workers_and_forgets_stopped_and_silent_ones(backend_factory: Any) -> None:
    backend = backend_factory()
    assert backend.feature_supported(Feature.WORKER_REGISTRY)
    one, two = f"w1-{uuid.uuid4().hex[:6]}", f"w2-{uuid.uuid4().hex[:6]}"
    backend.register_worker(_info(one), timedelta(seconds=30))
    backend.register_worker(_info(two), timedelta(seconds=30))
    listed = {w.worker_id: w for w in backend.list_workers()}
    assert set(listed) >= {one, two}
    entry = listed[one]
    assert (entry.host, entry.pid, entry.workflow_queues, entry.activity_queues) == ("box", 42, ("a", "_system_"), ("a",))
    assert (entry.name, entry.app_version, entry.library_version) == ("lease-name", "v7", "0.1.0")
    assert entry.started_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert entry.heartbeat_at is not None and abs((entry.heartbeat_at - datetime.now(UTC)).total_seconds()) < 60

    assert backend.heartbeat_worker(one, 5, timedelta(seconds=30)) is True
    assert {w.worker_id: w for w in backend.list_workers()}[one].tasks_in_flight == 5
    backend.unregister_worker(two)
    backend.unregister_worker(two)  # gone already: not an error
    assert two not in {w.worker_id for w in backend.list_workers()}

    # A worker that stops heartbeating expires by the store's clock.
    silent = f"w3-{uuid.uuid4().hex[:6]}"
    backend.register_worker(_info(silent), timedelta(milliseconds=300))
    assert silent in {w.worker_id for w in backend.list_workers()}
    wait_for(lambda: silent not in {w.worker_id for w in backend.list_workers()}, 30, what="the entry to expire")
    assert backend.heartbeat_worker(silent, 0, timedelta(seconds=30)) is False
    if getattr(backend, "using", None):  # the ORM store prunes dead workers' rows when a worker registers
        from django_workflows.models import RegisteredWorker

        assert RegisteredWorker.objects.filter(worker_id=silent).exists()
        backend.register_worker(_info(one), timedelta(seconds=30))
        assert not RegisteredWorker.objects.filter(worker_id=silent).exists()


def test_a_worker_registers_heartbeats_and_leaves(backend_factory: Any) -> None:
    backend = backend_factory()
    queue = f"pq-{uuid.uuid4().hex[:8]}"
    options = WorkerOptions(
        workflow_pollers=1, activity_pollers=1, workflow_queues=[queue], activity_queues=[queue],
        worker_heartbeat_interval=0.2, app_version="build-123", run_scheduler=False,
    )
    worker = Worker(backend, options)
    worker.start()
    try:
        mine = [w for w in backend.list_workers() if w.worker_id == worker._presence.worker_id]
        assert len(mine) == 1
        entry = mine[0]
        assert entry.workflow_queues == (queue, "_system_") and entry.activity_queues == (queue, "_system_")
        assert entry.app_version == "build-123" and entry.name == backend.options.worker_name
        first_beat = entry.heartbeat_at
        client = Client(backend)
        assert entry.worker_id in {w.worker_id for w in client.list_workers()}
        assert entry.worker_id in {w.worker_id for w in async_to_sync(client.alist_workers)()}
        wait_for(
            lambda: any(w.heartbeat_at > first_beat for w in backend.list_workers() if w.worker_id == entry.worker_id),
            30, what="a heartbeat",
        )
    finally:
        worker.stop()
        assert worker.wait_for_completion(60)
    assert entry.worker_id not in {w.worker_id for w in backend.list_workers()}


def test_a_worker_that_dies_expires_after_three_missed_heartbeats(backend_factory: Any) -> None:
    backend = backend_factory()
    presence = WorkerPresence(backend, interval=timedelta(milliseconds=200), app_version="", in_flight=lambda: 0)
    presence.start(["q"], ["q"])
    assert presence.worker_id in {w.worker_id for w in backend.list_workers()}
    # The process dies: no more heartbeats, and nobody unregisters.
    presence._stop.set()
    assert presence._thread is not None
    presence._thread.join(10)
    wait_for(lambda: presence.worker_id not in {w.worker_id for w in backend.list_workers()}, 30,
             what="the dead worker's entry to expire")


def test_health_report_and_exit_code(backend_factory: Any) -> None:
    backend = backend_factory()
    served, stranded = f"hs-{uuid.uuid4().hex[:6]}", f"hx-{uuid.uuid4().hex[:6]}"
    Client(backend).create_workflow_instance(WorkflowInstanceOptions(queue=stranded), "invoice", 1)
    options = WorkerOptions(workflow_pollers=1, activity_pollers=1, workflow_queues=[served], activity_queues=[served],
                            run_scheduler=False)
    with Worker(backend, options):
        report = health.collect(backend)
        assert report.registry and report.exit_code == health.UNSERVED
        assert stranded in report.unserved and served not in report.unserved
        queue = report.queue(stranded)
        assert queue is not None and queue.stranded == ["workflow"] and not queue.served
        assert report.queue(served).workflow_pollers >= 1

        assert health.collect(backend, [served]).exit_code == health.HEALTHY
        text, code = health.status(backend, [served, "nobody-polls-this"])
        assert code == health.UNSERVED
        assert "UNHEALTHY: no live worker polls nobody-polls-this" in text
        assert f"workflow queues: {served}, _system_" in text

        text, code = health.status(backend, as_json=True)
        data = json.loads(text)
        assert code == health.UNSERVED and data["healthy"] is False and stranded in data["unserved_queues"]
        row = next(q for q in data["queues"] if q["queue"] == stranded)
        assert row["ready_workflow_tasks"] == 1 and row["workflow_pollers"] == 0
        assert any(served in w["workflow_queues"] for w in data["workers"])
