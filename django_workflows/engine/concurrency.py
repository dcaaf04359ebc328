"""Coroutines inside a workflow: ``go``, ``gather`` and error groups (port of go-workflows
``workflow.Go`` and ``workflow.WithErrGroup``).

A workflow is complete only when every coroutine it started has finished, not just its main
function. An exception that is not a ``WorkflowError`` escaping a coroutine is a bug and fails
the workflow with ``PanicError``; a ``WorkflowError`` (an activity failure, ``Canceled``)
resolves the coroutine's future with that error instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .context import Context, with_cancel
from .coroutines import Coroutine
from .errors import WorkflowError
from .futures import Future, WaitGroup
from .state import state_of

T = TypeVar("T")


def go(ctx: Context, fn: Callable[[Context], Awaitable[T]], *, name: str | None = None) -> Future[T]:
    """Start ``fn(ctx)`` as a new workflow coroutine; the returned future resolves to its result."""
    state = state_of(ctx)
    coro = fn(ctx)
    if not inspect.iscoroutine(coro):
        raise TypeError(f"workflow.go needs an async function, {fn!r} returned {type(coro).__name__}")
    future: Future[T] = Future()

    def on_done(co: Coroutine) -> None:
        if co.error is None:
            future.set_result(co.result)
        elif isinstance(co.error, WorkflowError):
            future.set_error(co.error)
        else:
            if state.panic is None:
                state.panic = co.error
                state.panic_coroutine = co.name
            future.set_error(co.error)

    state.scheduler.spawn(name or str(getattr(fn, "__name__", "coroutine")), coro, on_done)
    return future


async def gather(ctx: Context, *futures: Future[Any]) -> list[Any]:
    """Wait for every future and return their results in order; raise the first error in order."""
    results = []
    for future in futures:
        results.append(await future)
    return results


class ErrGroup:
    """Go's ``errgroup`` for workflow coroutines: the first error cancels the group's context."""

    def __init__(self, ctx: Context, cancel: Callable[[], None]) -> None:
        self._ctx = ctx
        self._cancel = cancel
        self._wg = WaitGroup()
        self._error: BaseException | None = None
        self._waited = False

    def go(self, fn: Callable[[Context], Awaitable[Any]]) -> None:
        if self._waited:
            raise RuntimeError("ErrGroup misuse: Go called after Wait")
        self._wg.add(1)

        async def run(ctx: Context) -> None:
            try:
                await fn(ctx)
            except WorkflowError as err:
                if self._error is None:
                    self._error = err
                    self._cancel()
            finally:
                self._wg.done()

        go(self._ctx, run, name=getattr(fn, "__name__", "errgroup"))

    async def wait(self, ctx: Context | None = None) -> None:
        """Wait for every coroutine; raise the first error one of them raised."""
        self._waited = True
        await self._wg.wait()
        self._cancel()
        if self._error is not None:
            raise self._error


def with_err_group(ctx: Context) -> tuple[Context, ErrGroup]:
    group_ctx, cancel = with_cancel(ctx)
    return group_ctx, ErrGroup(group_ctx, cancel)
