"""Group commit: concurrent callers share one write to the store.

A worker runs many activities at once, and each finished activity is committed before its
thread moves on. Committed one by one, every completion pays for its own write: on the ORM
stores a transaction (a trip for BEGIN and COMMIT, a durable flush of the log, on SQLite a turn
at the one write lock), on Redis a script call (a round trip). ``GroupCommit`` lets the callers
that arrive while a write is under way wait for the next one and go in together: one caller
(the leader) writes the batch, the others sleep until their item is written, and when the
leader is done it hands the lead to the first caller still waiting. Nobody returns before their
own item committed, so durability is the same as committing alone; a caller that finds nobody
writing goes in at once, so an idle system adds no delay.

This module is only the coordinator; what a batch is and how it is written is the backend's
``write`` (``orm/activity_tasks.py``: one transaction, fenced per task; the Redis backend: one
``activity_complete.lua`` call, fenced per task). ``write`` returns one outcome per item, so an
item that cannot be written (a lease that ran out) is answered for itself, as a value, without
failing the rest. If ``write`` raises, every caller in that batch gets the exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class _Waiter(Generic[Item, Outcome]):
    __slots__ = ("item", "outcome", "error", "lead", "woken")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self.lead = False
        self.woken = threading.Event()


class GroupCommit(Generic[Item, Outcome]):
    """Runs ``write(items)`` for batches of up to ``max_batch`` items submitted concurrently.

    ``write`` returns one outcome per item, in order; it runs in the thread of one of the
    callers (the leader), one batch at a time.
    """

    def __init__(self, write: Callable[[Sequence[Item]], Sequence[Outcome]], max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"GroupCommit: max_batch must be at least 1, got {max_batch!r}")
        self._write = write
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Waiter[Item, Outcome]] = []
        self._writing = False
        #: Batches written and items in them (for tests and metrics).
        self.batches = 0
        self.items = 0

    def submit(self, item: Item) -> Outcome:
        """Write ``item`` (with whatever else is waiting) and return its outcome."""
        waiter: _Waiter[Item, Outcome] = _Waiter(item)
        with self._lock:
            self._queue.append(waiter)
            lead = not self._writing
            self._writing = True
        if not lead:
            waiter.woken.wait()
            if not waiter.lead:
                return self._result(waiter)
        self._lead()
        return self._result(waiter)

    def _lead(self) -> None:
        # The leader's own waiter is first in the queue: it either found the queue idle (and
        # empty) or was handed the lead as the first waiter.
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        try:
            outcomes = self._write([waiter.item for waiter in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"GroupCommit: write returned {len(outcomes)} outcomes for {len(batch)} items")
            for waiter, outcome in zip(batch, outcomes, strict=True):
                waiter.outcome = outcome
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch gets it
            for waiter in batch:
                waiter.error = exc
        finally:
            with self._lock:
                self.batches += 1
                self.items += len(batch)
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._writing = False
            if successor is not None:
                successor.lead = True
                successor.woken.set()
            for waiter in batch[1:]:
                waiter.woken.set()

    @staticmethod
    def _result(waiter: _Waiter[Item, Outcome]) -> Outcome:
        if waiter.error is not None:
            raise waiter.error
        return waiter.outcome  # type: ignore[return-value]
