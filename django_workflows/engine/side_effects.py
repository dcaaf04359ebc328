"""Side effects (port of go-workflows ``workflow/sideeffect.go``).

``side_effect(ctx, fn)`` runs ``fn`` once, the first time the workflow reaches it, and records its
result in history; replays return the recorded value without calling ``fn``. Use it for small
non-deterministic values (a random id, a reading of the clock) that do not deserve an activity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .commands import SideEffectCommand
from .context import Context
from .errors import PayloadTooLarge
from .futures import Future
from .state import state_of

T = TypeVar("T")


def side_effect(ctx: Context, fn: Callable[[], T]) -> Future[T]:
    state = state_of(ctx)
    schedule_event_id = state.next_schedule_event_id()
    future: Future[T] = Future()
    if state.replaying:
        # Resolved when the recorded SideEffectResult is replayed.
        command = SideEffectCommand(schedule_event_id, result=None)
    else:
        try:
            payload = state.encode(fn(), "side effect result")
        except PayloadTooLarge as exc:
            # Nothing is recorded, so a replay would not see this raise: the workflow fails
            # with it even if the code catches it.
            state.failure = exc
            raise
        command = SideEffectCommand(schedule_event_id, result=payload)
        # Return the decoded payload, exactly what a replay will return.
        future.set_result(state.decode(payload))
    command.future = future
    state.add_command(command)
    return future
