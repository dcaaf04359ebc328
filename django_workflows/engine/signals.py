"""Signals (port of go-workflows ``workflow/signal.go``).

A signal is a named message sent to a running instance. ``new_signal_channel`` returns the
channel for a name (the same one on every call); signals that arrived before the channel was
created wait for it and are delivered in arrival order. The channel is unbounded, so no signal
is ever dropped.

``signal_workflow`` sends a signal from one workflow to another. Like go-workflows it runs as a
system activity on the system queue, so a missing target comes back as an error of the future.
"""

from __future__ import annotations

from typing import Any

from .activities import schedule_activity
from .context import Context
from .converter import PayloadError
from .core import SYSTEM_QUEUE, validate_id, validate_signal_name
from .errors import Canceled, PayloadTooLarge, WorkflowError
from .futures import Channel, Future, resolved
from .state import state_of

#: The system activity that delivers a signal from a workflow; every worker registers it.
SIGNAL_ACTIVITY_NAME = "DeliverWorkflowSignal"


def new_signal_channel(ctx: Context, name: str) -> Channel[Any]:
    return state_of(ctx).signal_channel(validate_signal_name(name))


def signal_workflow(ctx: Context, instance_id: str, name: str, arg: Any = None) -> Future[None]:
    """Send signal ``name`` with ``arg`` to the active execution of ``instance_id``."""
    validate_id(instance_id)
    validate_signal_name(name)
    state = state_of(ctx)
    if ctx.err() is not None:
        return resolved(error=Canceled())
    try:
        payload = state.encode(arg, "signal value")
    except PayloadError as exc:
        return resolved(error=WorkflowError(f"converting signal argument: {exc}", type="PayloadError", permanent=True))
    except PayloadTooLarge as exc:
        return resolved(error=exc)
    # Not checked again: the value's payload was, and this wraps it in a string.
    inputs = [state.encode(instance_id), state.encode(name), state.encode(payload)]
    return schedule_activity(ctx, SIGNAL_ACTIVITY_NAME, inputs, SYSTEM_QUEUE, 0)
