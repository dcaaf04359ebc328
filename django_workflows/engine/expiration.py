"""Auto-expiration of finished instances: a system workflow (port of go-workflows' ``StartAutoExpiration``).

``Client.start_auto_expiration(delay)`` starts ``ExpireWorkflowInstances`` under the fixed
instance id ``expiration`` (or, when it already runs, sends it the new delay as the signal
``update-expiration``). The workflow waits ``delay``, then runs the system activity
``RemoveWorkflowInstances`` on the system queue, which removes the instances that finished more
than ``delay`` ago; after ten rounds it continues as new so its history stays short.

Every worker registers the workflow and the activity (the activity with its own backend), as
go-workflows' workers do, so nothing has to be registered by hand.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .activities import ActivityOptions, execute_activity
from .context import Context, with_cancel
from .continue_as_new import ContinueAsNew
from .core import SYSTEM_QUEUE
from .futures import on_future, on_receive, select
from .info import now
from .retries import RetryOptions
from .signals import new_signal_channel
from .timers import schedule_timer

EXPIRATION_INSTANCE_ID = "expiration"
EXPIRATION_WORKFLOW_NAME = "ExpireWorkflowInstances"
EXPIRATION_ACTIVITY_NAME = "RemoveWorkflowInstances"
UPDATE_SIGNAL = "update-expiration"
#: Rounds before the workflow continues as new (keeps its history bounded).
ROUNDS_PER_EXECUTION = 10

_REMOVE_OPTIONS = ActivityOptions(queue=SYSTEM_QUEUE, retry_options=RetryOptions(max_attempts=2))


async def expire_workflow_instances(ctx: Context, delay_seconds: float) -> None:
    """Remove finished instances older than ``delay_seconds``, every ``delay_seconds``."""
    updates = new_signal_channel(ctx, UPDATE_SIGNAL)
    for _ in range(ROUNDS_PER_EXECUTION):
        timer_ctx, cancel_timer = with_cancel(ctx)
        timer = schedule_timer(timer_ctx, delay_seconds, name="expiration")

        def take_update(value: Any, ok: bool) -> bool:
            nonlocal delay_seconds
            delay_seconds = float(value)
            return True

        updated = await select(ctx, on_future(timer), on_receive(updates, take_update))
        if updated:
            cancel_timer()
            continue  # wait the new delay before removing anything
        finished_before = now(ctx) - timedelta(seconds=delay_seconds)
        await execute_activity(ctx, _REMOVE_OPTIONS, EXPIRATION_ACTIVITY_NAME, finished_before.isoformat())
    raise ContinueAsNew(delay_seconds)
