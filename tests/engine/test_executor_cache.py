"""The executor cache: capacity, the TTL, and expiry by time (``ExecutorCache.expire``, which
the worker's sweeper calls so that an idle worker releases executors it no longer needs)."""

from __future__ import annotations

from typing import Any

import pytest

from django_workflows.engine import cache as cache_module
from django_workflows.engine.cache import ExecutorCache


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
