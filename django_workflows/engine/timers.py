"""Durable timers (port of go-workflows ``workflow/timer.go`` and ``sleep.go``).

A timer fires at workflow time ``now(ctx) + delay``; the backend stores its ``TimerFired`` event
as a future event that becomes visible at that time. Canceling the timer's context resolves the
future with ``Canceled`` at once: before the timer is committed nothing is recorded at all,
after it a ``TimerCanceled`` event is recorded and the backend drops the future event.
"""

from __future__ import annotations

from datetime import timedelta

from .clock import to_timedelta
from .commands import CommandState, ScheduleTimerCommand
from .context import Context
from .errors import Canceled
from .futures import Future, resolved
from .state import state_of


def schedule_timer(ctx: Context, delay: float | timedelta, name: str | None = None) -> Future[None]:
    """A future that resolves (to ``None``) when ``delay`` has passed in workflow time."""
    delay = to_timedelta(delay, what="timer delay")
    if delay < timedelta(0):
        raise ValueError(f"timer delay must not be negative, got {delay}")
    if ctx.err() is not None:
        return resolved(error=Canceled())
    state = state_of(ctx)
    command = ScheduleTimerCommand(state.next_schedule_event_id(), at=state.time + delay, delay=delay, name=name or "")
    future: Future[None] = Future()
    command.future = future
    state.add_command(command)

    def on_cancel() -> None:
        if future.ready():
            return
        command.cancel()
        if command.state is CommandState.CANCEL_PENDING:
            state.requeue(command)
        future.set_error(Canceled())

    unregister = ctx.on_cancel(on_cancel)
    future.add_done_callback(lambda _: unregister())
    return future


async def sleep(ctx: Context, delay: float | timedelta) -> None:
    """Wait ``delay`` in workflow time (a timer named ``Sleep``); raises ``Canceled`` if canceled."""
    await schedule_timer(ctx, delay, name="Sleep")
