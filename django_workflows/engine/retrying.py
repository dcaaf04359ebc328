"""``with_retries`` (port of go-workflows ``workflow/retries.go``).

Retries run inside the workflow: a coroutine calls ``fn(ctx, attempt)`` until it succeeds, the
error is permanent or ``Canceled``, the attempts are used up, or the retry timeout would pass.
Waits between attempts are durable timers named ``Retry-Backoff``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from .concurrency import go
from .context import Context
from .errors import Canceled, can_retry
from .futures import Future, resolved
from .retries import RetryOptions
from .state import state_of
from .timers import schedule_timer

T = TypeVar("T")


def with_retries(
    ctx: Context, retry_options: RetryOptions, fn: Callable[[Context, int], Future[T]]
) -> Future[T]:
    """Call ``fn(ctx, attempt)`` (``attempt`` counts from 0) and retry it as ``retry_options`` says."""
    if ctx.err() is not None:
        return resolved(error=Canceled())
    if retry_options.max_attempts <= 1:
        return fn(ctx, 0)

    state = state_of(ctx)
    result: Future[T] = Future()

    async def retry_loop(ctx: Context) -> None:
        first_attempt_at = state.time
        retry_timeout: timedelta = retry_options.retry_timeout  # type: ignore[assignment]
        attempt = 0
        while True:
            try:
                value: Any = await fn(ctx, attempt)
            except Exception as err:  # every error is judged below; GeneratorExit (close) is not one
                attempt += 1
                if attempt >= retry_options.max_attempts or isinstance(err, Canceled) or not can_retry(err):
                    result.set_error(err)
                    return
                backoff = retry_options.backoff(attempt - 1)
                if retry_timeout > timedelta(0) and state.time + backoff > first_attempt_at + retry_timeout:
                    result.set_error(err)
                    return
                if backoff > timedelta(0):
                    try:
                        await schedule_timer(ctx, backoff, name="Retry-Backoff")
                    except Canceled as canceled:
                        result.set_error(canceled)
                        return
                continue
            result.set_result(value)
            return

    go(ctx, retry_loop, name="retries")
    return result
