"""End to end on the Redis backend: a real ``Worker`` and ``Client``, the backend chosen by the
``WORKFLOWS`` setting, against the server at REDIS_URL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings

from django_workflows import workflow
from django_workflows.backends import workflow_backends
from django_workflows.backends.redis import RedisBackend
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.core import InstanceState
from django_workflows.engine.history import EventType
from django_workflows.testing.conformance.support import WAIT, wait_until
from django_workflows.worker import Worker, WorkerOptions

from .test_redis import redis_prefix  # noqa: F401  (a fixture)

pytestmark = pytest.mark.redis


@pytest.fixture
def backend(redis_prefix: str) -> Iterator[RedisBackend]:  # noqa: F811
    setting = {
        "default": {
            "BACKEND": "django_workflows.backends.redis.RedisBackend",
            "OPTIONS": {"connection": "workflows", "key_prefix": redis_prefix},
        }
    }
    with override_settings(WORKFLOWS=setting):
        selected = workflow_backends["default"]
        assert isinstance(selected, RedisBackend)
        yield selected


def _start(worker: Worker) -> Worker:
    worker.start()
    return worker


def _stop(*workers: Worker) -> None:
    for worker in workers:
        worker.stop()
    assert all(worker.wait_for_completion(WAIT) for worker in workers)


def charge(order: str, amount: int) -> str:
    return f"charged {order} {amount}"


def ship(order: str) -> str:
    return f"shipped {order}"


async def order_workflow(ctx: workflow.Context, order: str) -> list[Any]:
    charged = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, charge, order, 12)
    await workflow.sleep(ctx, timedelta(milliseconds=300))
    approval = await workflow.new_signal_channel(ctx, "approved").receive(ctx)
    shipped = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, ship, order)
    return [charged, approval, shipped]


def test_workflow_with_activities_a_timer_and_a_signal(backend: RedisBackend) -> None:
    worker = Worker(backend, WorkerOptions(workflow_pollers=2, activity_pollers=2))
    worker.register_workflow(order_workflow)
    worker.register_activity(charge)
    worker.register_activity(ship)
    client = Client(backend, registry=worker.registry)
    _start(worker)
    try:
        instance = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="order-1"), order_workflow, "o-1")

        def waiting_for_signal() -> bool:
            types = [e.type for e in backend.get_workflow_instance_history(instance)]
            return EventType.TIMER_FIRED in types

        wait_until(waiting_for_signal, what="the timer to fire")
        client.signal_workflow("order-1", "approved", "yes")
        assert client.get_workflow_result(instance, WAIT) == ["charged o-1 12", "yes", "shipped o-1"]
    finally:
        _stop(worker)
    types = [e.type for e in backend.get_workflow_instance_history(instance)]
    for expected in (EventType.ACTIVITY_COMPLETED, EventType.TIMER_FIRED, EventType.SIGNAL_RECEIVED):
        assert expected in types
    assert types[-1] is EventType.WORKFLOW_EXECUTION_FINISHED
    stats = backend.get_stats()
    assert stats.active_workflow_instances == 0
    assert not any(stats.pending_workflow_tasks.values()) and not any(stats.pending_activity_tasks.values())


TOTAL_SIGNALS = 40


async def collector(ctx: workflow.Context, seen: list[Any]) -> list[Any]:
    # Continue as new after every batch of signals; a batch is all that is in the channel.
    channel = workflow.new_signal_channel(ctx, "item")
    seen = seen + [await channel.receive(ctx)]
    while True:
        value, ok = channel.receive_nonblocking()
        if not ok:
            break
        seen.append(value)
    if len(seen) < TOTAL_SIGNALS:
        raise workflow.ContinueAsNew(seen)
    return seen


def test_signals_racing_continue_as_new_reach_the_active_execution(backend: RedisBackend) -> None:
    # go-workflows #493: a signal sent while an execution continues as new could land on the
    # old execution and be lost. Two workers and a sender thread make the race likely.
    workers = []
    for _ in range(2):
        worker = Worker(backend, WorkerOptions(workflow_pollers=2, activity_pollers=1))
        worker.register_workflow(collector)
        workers.append(_start(worker))
    client = Client(backend, registry=workers[0].registry)
    try:
        first = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="collector"), collector, [])
        client.signal_workflow("collector", "item", 0)
        wait_until(lambda: backend.get_latest_execution("collector") != first, what="a first continue-as-new")

        def send_rest() -> None:
            for n in range(1, TOTAL_SIGNALS):
                client.signal_workflow("collector", "item", n)
                time.sleep(0.001 * (n % 4))  # uneven gaps: some signals meet a continue-as-new

        sender = threading.Thread(target=send_rest)
        sender.start()
        sender.join(WAIT)

        def last_finished() -> Any:
            latest = backend.get_latest_execution("collector")
            return latest if backend.get_workflow_instance_state(latest) is InstanceState.FINISHED else None

        latest = wait_until(last_finished, what="the last execution to finish")
        assert client.get_workflow_result(latest, WAIT) == list(range(TOTAL_SIGNALS))
    finally:
        _stop(*workers)
    # Along the chain of executions, every signal was received exactly once.
    executions = [first]
    while True:
        history = backend.get_workflow_instance_history(executions[-1])
        if history[-1].type is not EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            break
        executions.append(type(first)(first.instance_id, history[-1].attributes.continued_execution_id))  # type: ignore[attr-defined]
    assert executions[-1] == latest and len(executions) >= 2
    received = [e for x in executions for e in backend.get_workflow_instance_history(x) if e.type is EventType.SIGNAL_RECEIVED]
    assert sorted(int(e.attributes.arg) for e in received) == list(range(TOTAL_SIGNALS))  # type: ignore[attr-defined]
