"""Scheduling activities from a workflow (port of go-workflows ``workflow/activity.go``).

An activity is scheduled by name with its arguments converted to payloads. Once scheduled it
cannot be canceled: it runs to completion and its result is delivered even if the workflow's
context is canceled meanwhile. Retries follow ``ActivityOptions.retry_options``; each attempt is
a separate ``ActivityScheduled`` event that carries its attempt number.

The activity is named by its registered name or its function; the function of a method
registered from an object (``MyActivities.charge``) stands for that bound method.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .commands import ScheduleActivityCommand
from .context import Context
from .converter import PayloadError
from .errors import Canceled, WorkflowError
from .futures import Future, resolved
from .registry import ArgumentMismatch, check_arguments
from .retries import DEFAULT_RETRY_OPTIONS, RetryOptions, with_retries
from .state import WorkflowState, state_of


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityOptions:
    """Where and how an activity runs.

    ``queue`` defaults to the workflow's own queue. The zero value of ``retry_options`` means a
    single attempt; ``DEFAULT_ACTIVITY_OPTIONS`` retries up to three attempts.
    """

    queue: str | None = None
    retry_options: RetryOptions = field(default_factory=RetryOptions)


DEFAULT_ACTIVITY_OPTIONS = ActivityOptions(retry_options=DEFAULT_RETRY_OPTIONS)


def execute_activity(
    ctx: Context, options: ActivityOptions, activity: Callable[..., Any] | str, *args: Any
) -> Future[Any]:
    """Schedule ``activity(*args)``; the future resolves to its result or raises its error."""
    state = state_of(ctx)
    if not isinstance(options, ActivityOptions):
        raise TypeError(f"execute_activity needs ActivityOptions, got {type(options).__name__}")
    if ctx.err() is not None:
        return resolved(error=Canceled())
    if callable(activity):
        # MyActivities.charge stands for the bound method registered from an object.
        activity = state.registry.resolve_activity(activity)
    name = state.registry.activity_name(activity)
    prepared = prepare_inputs(state, activity, args, skip_context=False)
    if isinstance(prepared, Future):
        return prepared
    queue = options.queue or state.queue

    def schedule(ctx: Context, attempt: int) -> Future[Any]:
        return schedule_activity(ctx, name, prepared, queue, attempt)

    return with_retries(ctx, options.retry_options, schedule)


def prepare_inputs(
    state: WorkflowState, target: Callable[..., Any] | str, args: tuple[Any, ...], *, skip_context: bool
) -> list[str] | Future[Any]:
    """Check ``args`` against ``target`` and convert them; a failed future on bad arguments.

    As in go-workflows, bad arguments resolve the future with an error at once and record
    nothing in history.
    """
    if callable(target):
        try:
            check_arguments(target, args, skip_context=skip_context)
        except ArgumentMismatch as exc:
            message = f"{exc}{_unbound_method_hint(target)}"
            return resolved(error=WorkflowError(message, type="ArgumentMismatch", permanent=True))
    try:
        return [state.encode(arg) for arg in args]
    except PayloadError as exc:
        return resolved(error=WorkflowError(f"converting inputs: {exc}", type="PayloadError", permanent=True))


def _unbound_method_hint(fn: Callable[..., Any]) -> str:
    """Why a method taken from its class failed the argument check, when that is the cause."""
    owner = getattr(fn, "__qualname__", "").rpartition(".")[0]
    if not inspect.isfunction(fn) or not owner or owner.endswith("<locals>"):
        return ""
    try:
        parameters = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ""
    if not parameters or parameters[0] != "self":
        return ""
    return (
        f" ({fn.__qualname__} is a method: register an instance of {owner.rpartition('.')[2]} with "
        "register_activity so that it stands for the bound method)"
    )


def schedule_activity(ctx: Context, name: str, inputs: list[str], queue: str, attempt: int) -> Future[Any]:
    if ctx.err() is not None:
        return resolved(error=Canceled())
    state = state_of(ctx)
    metadata: dict[str, str] = {}
    for propagator in state.propagators:
        propagator.inject_from_workflow(ctx, metadata)
    command = ScheduleActivityCommand(
        state.next_schedule_event_id(), name=name, inputs=inputs, metadata=metadata, queue=queue, attempt=attempt
    )
    future: Future[Any] = Future()
    command.future = future
    state.add_command(command)
    return future
