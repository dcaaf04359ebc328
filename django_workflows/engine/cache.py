"""The executor cache behind sticky execution (port of go-workflows
``internal/workflow/cache``).

A worker keeps the executors of recently run instances; the backend keeps those instances
"sticky" to the worker for a while, so the next task continues the cached executor without
replaying history. Entries are evicted least recently used first, when idle for longer than the
TTL, and when their workflow ends; eviction closes the executor.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import timedelta

from .backend import DEFAULT_EXECUTOR_CACHE_SIZE, DEFAULT_EXECUTOR_CACHE_TTL
from .clock import to_timedelta
from .executor import Executor

_Key = tuple[str, str]


class ExecutorCache:
    def __init__(self, size: int = DEFAULT_EXECUTOR_CACHE_SIZE, ttl: float | timedelta = DEFAULT_EXECUTOR_CACHE_TTL) -> None:
        if size < 0:
            raise ValueError(f"executor cache size must not be negative (0 caches nothing), got {size!r}")
        self.size = size
        self.ttl = to_timedelta(ttl, what="executor cache TTL").total_seconds()
        self._lock = threading.Lock()
        self._entries: OrderedDict[_Key, tuple[Executor, float]] = OrderedDict()
        self.evictions = {"capacity": 0, "expired": 0}

    def get(self, key: _Key) -> Executor | None:
        """Take the executor out of the cache (a task owns it while it runs)."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return None
            executor, stored_at = entry
            if time.monotonic() - stored_at <= self.ttl:
                return executor
            self.evictions["expired"] += 1
        executor.close()
        return None

    def put(self, key: _Key, executor: Executor) -> None:
        if self.size <= 0:
            executor.close()
            return
        evicted: list[Executor] = []
        now = time.monotonic()
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None and old[0] is not executor:
                evicted.append(old[0])
            self._entries[key] = (executor, now)
            while len(self._entries) > self.size:
                _, (victim, _) = self._entries.popitem(last=False)
                self.evictions["capacity"] += 1
                evicted.append(victim)
            evicted.extend(self._take_expired(now))
        for victim in evicted:
            victim.close()

    def expire(self) -> int:
        """Close the executors idle for longer than the TTL (the worker calls it on a timer, so
        an idle worker does not keep their memory until the next ``put``); how many."""
        with self._lock:
            expired = self._take_expired(time.monotonic())
        for victim in expired:
            victim.close()
        return len(expired)

    def _take_expired(self, now: float) -> list[Executor]:
        # Entries are in order of their last put, oldest first: stop at the first fresh one.
        expired: list[Executor] = []
        while self._entries:
            key, (executor, stored_at) = next(iter(self._entries.items()))
            if now - stored_at <= self.ttl:
                break
            del self._entries[key]
            self.evictions["expired"] += 1
            expired.append(executor)
        return expired

    def evict(self, key: _Key) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is not None:
            entry[0].close()

    def clear(self) -> None:
        with self._lock:
            entries, self._entries = list(self._entries.values()), OrderedDict()
        for executor, _ in entries:
            executor.close()

    def __len__(self) -> int:
        return len(self._entries)
