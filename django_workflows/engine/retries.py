"""Retry policies and ``with_retries`` (port of go-workflows ``workflow/retries.go``).

Retries are driven by the workflow, not the worker: every attempt is its own activity or
sub-workflow in history, and the backoff between attempts is a durable timer named
``Retry-Backoff``, so a retry schedule survives restarts. As in go-workflows' ``WithRetries``,
the first attempt is scheduled at once, in the caller's coroutine, so it takes its schedule
event id in code order and is scheduled even if the context is canceled right after; only the
retries run in a coroutine, which calls ``fn(ctx, attempt)`` again until it succeeds, the error
is permanent or ``Canceled``, the attempts are used up, or the retry timeout would pass.

Executions recorded before that (django_workflows 09bb8b5 and earlier) scheduled the first
attempt from the retry coroutine too, so it took its id only once the caller blocked. The
executor replays such a history in that order (``WorkflowState.legacy_retry_order``), which it
detects when the history does not match go-workflows' order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from .clock import to_timedelta
from .concurrency import go
from .context import Context
from .errors import Canceled, can_retry
from .futures import Future, resolved
from .state import state_of
from .timers import schedule_timer

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryOptions:
    """How an activity or sub-workflow is retried.

    ``max_attempts`` counts the first attempt: 1 (or 0) means no retries. Retry n (from 0) waits
    ``first_retry_interval * backoff_coefficient ** n``, capped by ``max_retry_interval`` when that
    is set; a zero wait retries in the same workflow task. No retry starts later than ``retry_timeout`` after the first attempt, when set.
    Intervals accept seconds or ``timedelta``.
    """

    max_attempts: int = 0
    first_retry_interval: timedelta | float = field(default=timedelta(0))
    backoff_coefficient: float = 1.0
    max_retry_interval: timedelta | float = field(default=timedelta(0))
    retry_timeout: timedelta | float = field(default=timedelta(0))

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 0:
            raise ValueError(f"max_attempts must be a non-negative int, got {self.max_attempts!r}")
        if self.backoff_coefficient < 0:
            raise ValueError(f"backoff_coefficient must not be negative, got {self.backoff_coefficient!r}")
        for name in ("first_retry_interval", "max_retry_interval", "retry_timeout"):
            object.__setattr__(self, name, to_timedelta(getattr(self, name), what=name))

    def backoff(self, retry: int) -> timedelta:
        """The wait before retry number ``retry + 1``: ``first_retry_interval`` before the first."""
        first: timedelta = self.first_retry_interval  # type: ignore[assignment]
        cap: timedelta = self.max_retry_interval  # type: ignore[assignment]
        delay = first * (self.backoff_coefficient**retry)
        if cap > timedelta(0) and delay > cap:
            delay = cap
        return delay


#: go-workflows' ``DefaultRetryOptions``: three attempts, no wait between them.
DEFAULT_RETRY_OPTIONS = RetryOptions(max_attempts=3, backoff_coefficient=1.0)
#: Sub-workflows are not retried unless asked to (go-workflows ``DefaultSubWorkflowRetryOptions``).
DEFAULT_SUB_WORKFLOW_RETRY_OPTIONS = RetryOptions(max_attempts=1)


def with_retries(
    ctx: Context, retry_options: RetryOptions, fn: Callable[[Context, int], Future[T]]
) -> Future[T]:
    """Call ``fn(ctx, attempt)`` (``attempt`` counts from 0) and retry it as ``retry_options`` says."""
    if ctx.err() is not None:
        return resolved(error=Canceled())
    state = state_of(ctx)
    first_attempt_at = state.time
    if retry_options.max_attempts <= 1:
        return fn(ctx, 0)
    # go-workflows' order: the first attempt now. The legacy order defers it to the coroutine.
    first = None if state.legacy_retry_order else fn(ctx, 0)

    result: Future[T] = Future()
    retry_timeout: timedelta = retry_options.retry_timeout  # type: ignore[assignment]

    async def retry_loop(ctx: Context) -> None:
        attempt = 0
        future = first if first is not None else fn(ctx, 0)
        while True:
            try:
                value: Any = await future
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
                future = fn(ctx, attempt)
                continue
            result.set_result(value)
            return

    go(ctx, retry_loop, name="retries")
    return result
