"""The deterministic driver for workflow coroutines (port of go-workflows ``internal/sync``).

A workflow is an ``async def`` function, but it never runs on an asyncio event loop. The
scheduler drives every coroutine of a workflow by hand with ``send``: a coroutine runs until it
awaits something that is not ready (a ``Future``, a channel operation...), which yields a
*waiter* back to the scheduler. The scheduler then resumes, in creation order, every coroutine
whose waiter has become ready, until a full pass makes no progress. Nothing else can run in
between, so the interleaving of coroutines depends only on the events fed in: replay is
deterministic.

Awaiting anything else inside a workflow (``asyncio.sleep``, an HTTP client...) fails at once
with a clear error rather than silently breaking determinism.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine as PyCoroutine
from typing import Any, Protocol


class Waiter(Protocol):
    """What a blocked coroutine waits on."""

    def ready(self) -> bool: ...


class Condition:
    """A waiter over a predicate."""

    __slots__ = ("_predicate",)

    def __init__(self, predicate: Any) -> None:
        self._predicate = predicate

    def ready(self) -> bool:
        return bool(self._predicate())


class ForeignAwaitable(RuntimeError):
    """Workflow code awaited something that is not part of the workflow API."""


class Coroutine:
    """One coroutine of a workflow: the main function, or one started with ``workflow.go``."""

    __slots__ = ("name", "_coro", "waiting", "done", "result", "error", "_on_done")

    def __init__(self, name: str, coro: PyCoroutine[Any, Any, Any], on_done: Any = None) -> None:
        self.name = name
        self._coro = coro
        self.waiting: Waiter | None = None
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self._on_done = on_done

    def runnable(self) -> bool:
        return not self.done and (self.waiting is None or self.waiting.ready())

    def step(self) -> None:
        """Run until the coroutine blocks or ends."""
        self.waiting = None
        value: Any = None
        throw: BaseException | None = None
        while True:
            try:
                yielded = self._coro.send(value) if throw is None else self._coro.throw(throw)
            except StopIteration as stop:
                self._finish(result=stop.value)
                return
            except BaseException as exc:  # the coroutine raised: record it, never let it escape
                self._finish(error=exc)
                return
            throw = None
            if hasattr(yielded, "ready"):
                if yielded.ready():
                    # Ready already (e.g. a future resolved by a callback): keep going.
                    continue
                self.waiting = yielded
                return
            throw = ForeignAwaitable(
                f"workflow code awaited {yielded!r}, which is not a workflow future: asyncio and other "
                "event-loop APIs cannot be used in workflows (use workflow.sleep, workflow.go, "
                "workflow.select, or an activity)"
            )

    def _finish(self, *, result: Any = None, error: BaseException | None = None) -> None:
        self.done = True
        self.result = result
        self.error = error
        self.waiting = None
        if self._on_done is not None:
            self._on_done(self)

    def close(self) -> None:
        """Abandon the coroutine (the executor is being discarded)."""
        if not self.done:
            self.done = True
            try:
                self._coro.close()
            except BaseException:  # noqa: BLE001 - nothing useful can be done with it now
                pass


class Scheduler:
    """Runs a workflow's coroutines round-robin until none can make progress."""

    def __init__(self) -> None:
        self.coroutines: list[Coroutine] = []
        self.current: Coroutine | None = None
        #: ``time.monotonic()`` when the running step of ``current`` began, 0.0 between steps:
        #: what the deadlock watch of ``engine.deadlock`` looks at from another thread.
        self.step_started = 0.0
        self._closed = False

    def spawn(self, name: str, coro: PyCoroutine[Any, Any, Any], on_done: Any = None) -> Coroutine:
        if self._closed:
            coro.close()
            raise RuntimeError("the workflow executor was closed")
        co = Coroutine(name, coro, on_done)
        self.coroutines.append(co)
        return co

    def run_until_blocked(self) -> None:
        while True:
            progressed = False
            index = 0
            # New coroutines are appended while we iterate; they run in this same pass.
            while index < len(self.coroutines):
                co = self.coroutines[index]
                if co.runnable():
                    self.current = co
                    self.step_started = time.monotonic()
                    try:
                        co.step()
                    finally:
                        self.current = None
                        self.step_started = 0.0
                    progressed = True
                index += 1
            if not progressed:
                break
        self.coroutines = [co for co in self.coroutines if not co.done]

    def all_done(self) -> bool:
        return all(co.done for co in self.coroutines)

    def close(self) -> None:
        self._closed = True
        for co in self.coroutines:
            co.close()
        self.coroutines = []
