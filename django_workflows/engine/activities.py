"""Scheduling activities from a workflow (port of go-workflows ``workflow/activity.go``, with
Temporal's activity timeouts and cancellation types).

An activity is scheduled by name with its arguments converted to payloads. Retries follow
``ActivityOptions.retry_options``; each attempt is a separate ``ActivityScheduled`` event that
carries its attempt number, its timeouts and the heartbeat details of the attempt before it.

Timeouts are enforced by the backend on the database (or Redis) clock, not by the worker that
runs the attempt: an attempt that runs out of time fails with ``ActivityTimeoutError`` even if
its worker is stuck or paused, and a late result is discarded. Schedule-to-close spans all
attempts: its remainder goes to each attempt, and no retry starts once it is spent.

Canceling the context of a scheduled activity follows ``ActivityOptions.cancellation``
(``ActivityCancellation``); the default asks the activity to stop and waits for its outcome.

The activity is named by its registered name or its function; the function of a method
registered from an object (``MyActivities.charge``) stands for that bound method.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .clock import to_timedelta
from .commands import ActivityCancellation, CommandState, ScheduleActivityCommand
from .context import Context
from .converter import Payload, PayloadError
from .errors import ActivityTimeoutError, Canceled, PayloadTooLarge, TimeoutType, WorkflowError
from .futures import Future, resolved
from .registry import ArgumentMismatch, check_arguments
from .retries import DEFAULT_RETRY_OPTIONS, RetryOptions, with_retries
from .state import WorkflowState, state_of

_TIMEOUT_FIELDS = ("start_to_close_timeout", "schedule_to_close_timeout", "schedule_to_start_timeout", "heartbeat_timeout")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityOptions:
    """Where and how an activity runs.

    ``queue`` defaults to the workflow's own queue. The zero value of ``retry_options`` means a
    single attempt; ``DEFAULT_ACTIVITY_OPTIONS`` retries up to three attempts.

    Timeouts accept seconds or ``timedelta``; ``None`` (the default) means no such timeout:

    - ``start_to_close_timeout`` bounds one attempt, from the moment a worker takes it;
    - ``schedule_to_close_timeout`` bounds all attempts together, from the first schedule
      (retries stop when it is spent);
    - ``schedule_to_start_timeout`` bounds the wait in the queue until a worker takes it;
    - ``heartbeat_timeout`` fails an attempt that has not called ``activity.heartbeat()`` for
      that long (counted from its start, then from each heartbeat).

    ``cancellation`` says what canceling the activity's context does (``ActivityCancellation``;
    a string ``"wait"``, ``"try"`` or ``"abandon"`` works too).
    """

    queue: str | None = None
    retry_options: RetryOptions = field(default_factory=RetryOptions)
    start_to_close_timeout: timedelta | float | None = None
    schedule_to_close_timeout: timedelta | float | None = None
    schedule_to_start_timeout: timedelta | float | None = None
    heartbeat_timeout: timedelta | float | None = None
    cancellation: ActivityCancellation | str = ActivityCancellation.WAIT

    def __post_init__(self) -> None:
        for name in _TIMEOUT_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            delta = to_timedelta(value, what=name)
            if delta <= timedelta(0):
                raise ValueError(f"ActivityOptions.{name} must be positive (or None for no timeout), got {value!r}")
            object.__setattr__(self, name, delta)
        try:
            object.__setattr__(self, "cancellation", ActivityCancellation(self.cancellation))
        except ValueError:
            choices = ", ".join(repr(c.value) for c in ActivityCancellation)
            raise ValueError(f"ActivityOptions.cancellation must be one of {choices}, got {self.cancellation!r}") from None

    def timeout(self, name: str) -> timedelta | None:
        value = getattr(self, name)
        assert value is None or isinstance(value, timedelta)
        return value


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
    prepared = prepare_inputs(state, activity, args, skip_context=False, kind="activity input")
    if isinstance(prepared, Future):
        return prepared
    queue = options.queue or state.queue
    attempts = _Attempts(state, options)
    retry_options = options.retry_options
    total = options.timeout("schedule_to_close_timeout")
    if total is not None and retry_options.max_attempts > 1:
        # No retry starts once the schedule-to-close time is spent (with_retries' retry timeout).
        limit: timedelta = retry_options.retry_timeout  # type: ignore[assignment]
        retry_options = dataclasses.replace(retry_options, retry_timeout=min(limit, total) if limit else total)

    cancellation = ActivityCancellation(options.cancellation)

    def schedule(ctx: Context, attempt: int) -> Future[Any]:
        timeouts = attempts.timeouts(attempt)
        if timeouts is None:
            spent = ActivityTimeoutError(
                f"activity {name} timed out: its schedule-to-close time was spent before attempt {attempt + 1}",
                timeout_type=TimeoutType.SCHEDULE_TO_CLOSE,
            )
            return resolved(error=spent)
        return schedule_activity(
            ctx,
            name,
            prepared,
            queue,
            attempt,
            timeouts=timeouts,
            heartbeat_details=attempts.details,
            cancellation=cancellation,
            on_details=attempts.remember,
        )

    return with_retries(ctx, retry_options, schedule)


class _Attempts:
    """What the attempts of one ``execute_activity`` hand on to each other: the start of the
    schedule-to-close time and the last heartbeat details (both replay the same: workflow time
    and the details come from history)."""

    def __init__(self, state: WorkflowState, options: ActivityOptions) -> None:
        self._state = state
        self._options = options
        self._first_at: datetime | None = None
        self.details: Payload | None = None

    def timeouts(self, attempt: int) -> dict[str, float | None] | None:
        """The timeout attributes of the next attempt; None if schedule-to-close is spent."""
        if self._first_at is None or attempt == 0:
            self._first_at = self._state.time
        out: dict[str, float | None] = {}
        for name in _TIMEOUT_FIELDS:
            value = self._options.timeout(name)
            out[name] = None if value is None else value.total_seconds()
        total = self._options.timeout("schedule_to_close_timeout")
        if total is not None:
            left = total - (self._state.time - self._first_at)
            if left <= timedelta(0):
                return None
            out["schedule_to_close_timeout"] = left.total_seconds()
        return out

    def remember(self, details: Payload | None) -> None:
        if details is not None:
            self.details = details


def prepare_inputs(
    state: WorkflowState, target: Callable[..., Any] | str, args: tuple[Any, ...], *, skip_context: bool, kind: str
) -> list[str] | Future[Any]:
    """Check ``args`` against ``target`` and convert them (``kind`` names them for the payload
    limits); a failed future on bad arguments or a payload over the limit.

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
        return [state.encode(arg, kind) for arg in args]
    except PayloadError as exc:
        return resolved(error=WorkflowError(f"converting inputs: {exc}", type="PayloadError", permanent=True))
    except PayloadTooLarge as exc:
        return resolved(error=exc)


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


def schedule_activity(
    ctx: Context,
    name: str,
    inputs: list[str],
    queue: str,
    attempt: int,
    *,
    timeouts: dict[str, float | None] | None = None,
    heartbeat_details: Payload | None = None,
    cancellation: ActivityCancellation = ActivityCancellation.WAIT,
    on_details: Callable[[Payload | None], None] | None = None,
) -> Future[Any]:
    if ctx.err() is not None:
        return resolved(error=Canceled())
    state = state_of(ctx)
    metadata: dict[str, str] = {}
    for propagator in state.propagators:
        propagator.inject_from_workflow(ctx, metadata)
    command = ScheduleActivityCommand(
        state.next_schedule_event_id(),
        name=name,
        inputs=inputs,
        metadata=metadata,
        queue=queue,
        attempt=attempt,
        timeouts=timeouts,
        heartbeat_details=heartbeat_details,
        cancellation=cancellation,
    )
    command.on_details = on_details
    future: Future[Any] = Future()
    command.future = future
    state.add_command(command)

    def on_cancel() -> None:
        if future.ready():
            return
        if command.cancel():
            state.requeue(command)
        if command.cancellation is not ActivityCancellation.WAIT or command.state is CommandState.CANCELED:
            future.set_error(Canceled())

    unregister = ctx.on_cancel(on_cancel)
    future.add_done_callback(lambda _: unregister())
    return future
