"""Wake-ups of waiting pollers in this process (the role of go-workflows' ``monoprocess`` decorator).

Pollers of the ORM backend ask the database for work, and when there is none they sleep until
either this process commits work for them (a start, a signal, a completion: ``notify``), a timer
this process stored comes due, or ``poll_interval`` passes (work committed by other processes).
One ``Waker`` per database alias is shared by every backend object of the process, so a client
and a worker built separately still wake each other. Workflow and activity pollers wait on
separate conditions: finishing an activity does not wake activity pollers for nothing.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

Kind = Literal["workflow", "activity"]

# Wake slightly after a timer's time: its visibility is decided by the database clock.
_TIMER_GRACE = 0.005


class Waker:
    def __init__(self) -> None:
        lock = threading.Lock()
        self._conditions: dict[str, threading.Condition] = {
            "workflow": threading.Condition(lock),
            "activity": threading.Condition(lock),
        }
        self._lock = lock
        self._generations: dict[str, int] = {"workflow": 0, "activity": 0}
        #: Epoch seconds at which timers stored by this process come due (a min-heap).
        self._timers: list[float] = []

    def generation(self, kind: Kind) -> int:
        """A counter that changes whenever ``kind`` pollers are notified; read it *before*
        looking for work, so a notification between the look and the wait is not missed."""
        with self._lock:
            return self._generations[kind]

    def notify(self, kind: Kind, timers: Iterable[datetime] = ()) -> None:
        with self._lock:
            for at in timers:
                heapq.heappush(self._timers, at.timestamp() + _TIMER_GRACE)
            self._generations[kind] += 1
            self._conditions[kind].notify_all()

    def wait(self, kind: Kind, seen: int, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, less if notified since ``seen`` or a timer came due."""
        end = time.monotonic() + timeout
        condition = self._conditions[kind]
        with self._lock:
            while self._generations[kind] == seen:
                remaining = end - time.monotonic()
                if kind == "workflow" and self._timers:
                    due_in = self._timers[0] - time.time()
                    if due_in <= 0:
                        heapq.heappop(self._timers)
                        return
                    remaining = min(remaining, due_in)
                if remaining <= 0:
                    return
                condition.wait(remaining)


_wakers: dict[str, Waker] = {}
_wakers_lock = threading.Lock()


def waker_for(alias: str) -> Waker:
    with _wakers_lock:
        waker = _wakers.get(alias)
        if waker is None:
            waker = _wakers[alias] = Waker()
        return waker
