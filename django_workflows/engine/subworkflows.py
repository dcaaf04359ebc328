"""Sub-workflows (port of go-workflows ``workflow/subworkflow.go``).

A sub-workflow is a workflow instance started by another one; its result or error comes back
to the parent as a ``SubWorkflowCompleted``/``SubWorkflowFailed`` event. Without an explicit
``instance_id`` the child's id is derived from the parent's execution and the schedule event id,
so a replay names the same child. Canceling the parent's context before the child is committed
drops it; after, the child receives a cancellation and the parent's future waits for whatever the
child returns. A child that continues as new is transparent to its parent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .activities import prepare_inputs
from .commands import CommandState, ScheduleSubWorkflowCommand
from .context import Context
from .core import WorkflowInstance, check_start_options, validate_id
from .errors import Canceled
from .futures import Future, resolved
from .retries import DEFAULT_SUB_WORKFLOW_RETRY_OPTIONS, RetryOptions, with_retries
from .state import state_of

_ID_NAMESPACE = uuid.UUID("0b6d4bde-5c5f-4a43-9c2d-9f6f5b1f6b51")


@dataclass(frozen=True, slots=True, kw_only=True)
class SubWorkflowOptions:
    """``instance_id`` names the child (default: derived, unique); ``queue`` defaults to the
    parent's queue; ``retry_options`` default to a single attempt.

    ``execution_timeout`` (seconds or ``timedelta``; default None, no limit) ends the child with
    ``WorkflowTimedOut`` when it runs longer, which the parent receives as the child's error;
    ``start_delay`` (default None) starts the child that much later, in workflow time.
    """

    instance_id: str | None = None
    queue: str | None = None
    retry_options: RetryOptions | None = None
    execution_timeout: timedelta | float | None = None
    start_delay: timedelta | float | None = None

    def __post_init__(self) -> None:
        check_start_options(self, "SubWorkflowOptions")


def create_sub_workflow_instance(
    ctx: Context, options: SubWorkflowOptions, workflow: Callable[..., Any] | str, *args: Any
) -> Future[Any]:
    """Start ``workflow(*args)`` as a child of the current workflow; the future holds its result."""
    state = state_of(ctx)
    if not isinstance(options, SubWorkflowOptions):
        raise TypeError(f"create_sub_workflow_instance needs SubWorkflowOptions, got {type(options).__name__}")
    if options.instance_id is not None:
        validate_id(options.instance_id)
    if ctx.err() is not None:
        return resolved(error=Canceled())
    name = state.registry.workflow_name(workflow)
    prepared = prepare_inputs(state, workflow, args, skip_context=True, kind="sub-workflow input")
    if isinstance(prepared, Future):
        return prepared
    queue = options.queue or state.queue
    retry_options = options.retry_options or DEFAULT_SUB_WORKFLOW_RETRY_OPTIONS

    def schedule(ctx: Context, attempt: int) -> Future[Any]:
        return _schedule_sub_workflow(ctx, options, name, queue, prepared)

    return with_retries(ctx, retry_options, schedule)


def _schedule_sub_workflow(
    ctx: Context, options: SubWorkflowOptions, name: str, queue: str, inputs: list[str]
) -> Future[Any]:
    instance_id = options.instance_id
    if ctx.err() is not None:
        return resolved(error=Canceled())
    state = state_of(ctx)
    schedule_event_id = state.next_schedule_event_id()
    seed = f"{state.instance.instance_id}/{state.instance.execution_id}/{schedule_event_id}"
    child = WorkflowInstance(
        instance_id or str(uuid.uuid5(_ID_NAMESPACE, seed)),
        uuid.uuid5(_ID_NAMESPACE, seed + "/execution").hex,
        parent=state.instance,
        parent_event_id=schedule_event_id,
    )
    metadata: dict[str, str] = {}
    for propagator in state.propagators:
        propagator.inject_from_workflow(ctx, metadata)
    timeout: timedelta | None = options.execution_timeout  # type: ignore[assignment]
    command = ScheduleSubWorkflowCommand(
        schedule_event_id,
        instance=child,
        name=name,
        queue=queue,
        inputs=inputs,
        metadata=metadata,
        execution_timeout=None if timeout is None else timeout.total_seconds(),
        start_delay=options.start_delay,  # type: ignore[arg-type]
    )
    future: Future[Any] = Future()
    command.future = future
    state.add_command(command)

    def on_cancel() -> None:
        if future.ready():
            return
        command.cancel()
        if command.state is CommandState.CANCELED:
            # Never committed: the child was never started.
            future.set_error(Canceled())
        elif command.state is CommandState.CANCEL_PENDING:
            state.requeue(command)

    unregister = ctx.on_cancel(on_cancel)
    future.add_done_callback(lambda _: unregister())
    return future
