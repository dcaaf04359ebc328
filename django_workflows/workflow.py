"""The API for writing workflows.

    from django_workflows import workflow

    async def order(ctx: workflow.Context, order_id: str) -> str:
        total = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, charge, order_id)
        await workflow.sleep(ctx, timedelta(days=1))
        ...

Workflow code must be deterministic: it runs again, from the start, whenever a worker replays
its history. Use the functions here instead of the clock, ``asyncio``, threads or I/O; put side
effects in activities. Every scheduling call returns a ``Future``; ``await`` it for the value.
"""

from __future__ import annotations

from .engine.activities import DEFAULT_ACTIVITY_OPTIONS, ActivityCancellation, ActivityOptions, execute_activity
from .engine.concurrency import ErrGroup, gather, go, with_err_group
from .engine.context import Context, new_disconnected_context, with_cancel, with_value
from .engine.continue_as_new import ContinueAsNew
from .engine.core import WorkflowInstance
from .engine.errors import (
    ActivityTimeoutError,
    Canceled,
    ChannelClosed,
    NondeterminismError,
    PanicError,
    PayloadTooLarge,
    PermanentError,
    TimeoutType,
    WorkflowError,
    WorkflowTimedOut,
    can_retry,
)
from .engine.futures import (
    Channel,
    Future,
    SelectCase,
    WaitGroup,
    on_default,
    on_future,
    on_receive,
    on_send,
    select,
)
from .engine.info import (
    InstanceExecutionDetails,
    instance_execution_details,
    logger,
    now,
    replaying,
    workflow_instance,
)
from .engine.retries import DEFAULT_RETRY_OPTIONS, RetryOptions, with_retries
from .engine.side_effects import side_effect
from .engine.signals import new_signal_channel, signal_workflow
from .engine.subworkflows import SubWorkflowOptions, create_sub_workflow_instance
from .engine.timers import schedule_timer, sleep
from .engine.versioning import deprecate_patch, patched


def new_channel() -> Channel:
    """An unbuffered channel: a send waits for a receiver."""
    return Channel(0)


def new_buffered_channel(size: int) -> Channel:
    """A channel that holds up to ``size`` values before a send waits."""
    if size < 0:
        raise ValueError("channel size must not be negative")
    return Channel(size)


__all__ = [
    "ActivityCancellation",
    "ActivityOptions",
    "ActivityTimeoutError",
    "Canceled",
    "Channel",
    "ChannelClosed",
    "Context",
    "ContinueAsNew",
    "DEFAULT_ACTIVITY_OPTIONS",
    "DEFAULT_RETRY_OPTIONS",
    "ErrGroup",
    "Future",
    "InstanceExecutionDetails",
    "NondeterminismError",
    "PanicError",
    "PayloadTooLarge",
    "PermanentError",
    "RetryOptions",
    "SelectCase",
    "SubWorkflowOptions",
    "TimeoutType",
    "WaitGroup",
    "WorkflowError",
    "WorkflowInstance",
    "WorkflowTimedOut",
    "can_retry",
    "create_sub_workflow_instance",
    "deprecate_patch",
    "execute_activity",
    "gather",
    "go",
    "instance_execution_details",
    "logger",
    "new_buffered_channel",
    "new_channel",
    "new_disconnected_context",
    "new_signal_channel",
    "now",
    "on_default",
    "on_future",
    "on_receive",
    "on_send",
    "patched",
    "replaying",
    "schedule_timer",
    "select",
    "side_effect",
    "signal_workflow",
    "sleep",
    "with_cancel",
    "with_err_group",
    "with_retries",
    "with_value",
    "workflow_instance",
]
