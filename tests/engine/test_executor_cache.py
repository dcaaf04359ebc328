"""The executor cache: capacity, the TTL, and expiry by time (``ExecutorCache.expire``, which
the worker's sweeper calls so that an idle worker releases executors it no longer needs); the
worker's cache sized from the backend's options, and the replays of tasks it had no executor for."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.backends.memory import MemoryBackend
from django_workflows.client import Client
from django_workflows.engine import cache as cache_module
from django_workflows.engine.cache import ExecutorCache
from django_workflows.engine.history import EventType
from django_workflows.worker import Worker, WorkerOptions


class FakeExecutor:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: now[0])
    return now


def test_expire_closes_only_the_executors_idle_past_the_ttl(clock: list[float]) -> None:
    cache = ExecutorCache(size=10, ttl=10)
    old, fresh = FakeExecutor(), FakeExecutor()
    cache.put(("i", "old"), old)  # type: ignore[arg-type]
    clock[0] += 8
    cache.put(("i", "fresh"), fresh)  # type: ignore[arg-type]
    clock[0] += 5  # old idle 13 s, fresh 5 s
    assert cache.expire() == 1
    assert old.closed and not fresh.closed
    assert len(cache) == 1 and cache.evictions["expired"] == 1
    assert cache.get(("i", "fresh")) is fresh


def test_a_put_refreshes_an_entry_and_capacity_evicts_the_least_recent(clock: list[float]) -> None:
    cache = ExecutorCache(size=2, ttl=10)
    executors: dict[str, Any] = {name: FakeExecutor() for name in "abc"}
    cache.put(("i", "a"), executors["a"])
    clock[0] += 6
    cache.put(("i", "b"), executors["b"])
    cache.put(("i", "a"), executors["a"])  # a is the most recent again
    clock[0] += 6  # b idle 6 s, a 6 s: nothing expired
    assert cache.expire() == 0
    cache.put(("i", "c"), executors["c"])  # over capacity: b goes
    assert executors["b"].closed and not executors["a"].closed
    assert cache.evictions == {"capacity": 1, "expired": 0}


def test_an_empty_cache_keeps_nothing(clock: list[float]) -> None:
    cache = ExecutorCache(size=0, ttl=10)
    executor = FakeExecutor()
    cache.put(("i", "a"), executor)  # type: ignore[arg-type]
    assert executor.closed and len(cache) == 0 and cache.expire() == 0


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        ExecutorCache(size=-1, ttl=10)


# -- the worker's cache: sizes from the backend's options, replays counted ----------------------

calls: list[int] = []


def step(n: int) -> int:
    calls.append(n)
    return n + 1


async def three_steps(ctx: workflow.Context) -> int:
    total = 0
    for _ in range(3):
        total = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, step, total)
    return total


def test_the_worker_takes_size_and_ttl_from_the_backend_options_unless_its_own_say_otherwise() -> None:
    backend = MemoryBackend(executor_cache_size=3, executor_cache_ttl=timedelta(seconds=5))
    assert (Worker(backend).cache.size, Worker(backend).cache.ttl) == (3, 5.0)
    own = Worker(backend, WorkerOptions(workflow_executor_cache_size=7, workflow_executor_cache_ttl=2))
    assert (own.cache.size, own.cache.ttl) == (7, 2.0)
    assert (Worker(MemoryBackend()).cache.size, Worker(MemoryBackend()).cache.ttl) == (256, 10.0)
    with pytest.raises(ValueError, match="executor_cache_size must not be negative"):
        MemoryBackend(executor_cache_size=-1)
    with pytest.raises(ValueError, match="workflow_executor_cache_size must not be negative"):
        WorkerOptions(workflow_executor_cache_size=-1)


@pytest.mark.parametrize("size", [0, None])
def test_tasks_without_a_cached_executor_are_counted_with_the_events_they_replay(
    size: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    backend = MemoryBackend()
    worker = Worker(backend, WorkerOptions(workflow_executor_cache_size=size, run_scheduler=False))
    worker.register_workflow(three_steps)
    worker.register_activity(step)
    with caplog.at_level(logging.INFO, logger="django_workflows.worker"):
        worker.start()
        client = Client(backend, registry=worker.registry)
        instance = client.create_workflow_instance(None, three_steps)
        assert client.get_workflow_result(instance, timeout=30) == 3
        worker.stop()
        assert worker.wait_for_completion(30)
    # The first task has no history to replay; each later one (three activity results) replays
    # what was stored before it when nothing is cached.
    history = backend.get_workflow_instance_history(instance)
    started = [e.sequence_id for e in history if e.type is EventType.WORKFLOW_TASK_STARTED]
    if size == 0:
        assert worker.replays.tasks == len(started) - 1 == 3
        assert worker.replays.events == sum(seq - 1 for seq in started[1:])
        assert f"3 workflow task(s) replayed their history ({worker.replays.events} events)" in caplog.text
    else:
        assert (worker.replays.tasks, worker.replays.events) == (0, 0)
        assert "replayed their history" not in caplog.text
