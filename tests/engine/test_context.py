"""Workflow contexts (engine.context): cancellation propagation, values, disconnected contexts,
and what a canceled context does to timers scheduled with it."""

from __future__ import annotations

from typing import Any

import pytest

from django_workflows.engine.commands import CommandState, ScheduleTimerCommand
from django_workflows.engine.context import new_disconnected_context, with_cancel, with_value
from django_workflows.engine.errors import Canceled
from django_workflows.engine.state import state_of
from django_workflows.engine.timers import schedule_timer

from .drive import run, workflow_state


def test_cancel_propagates_to_descendants_only() -> None:
    root = workflow_state().root
    parent, cancel_parent = with_cancel(root)
    child, _ = with_cancel(parent)
    grandchild, _ = with_cancel(with_value(child, "k", "v"))
    sibling, _ = with_cancel(root)
    cancel_parent()
    for ctx in (parent, child, grandchild):
        assert isinstance(ctx.err(), Canceled)
        assert str(ctx.err()) == "context canceled"
    assert sibling.err() is None and root.err() is None


def test_cancel_twice_is_harmless_and_keeps_the_first_error() -> None:
    ctx, cancel = with_cancel(workflow_state().root)
    cancel()
    first = ctx.err()
    cancel()
    assert ctx.err() is first


def test_context_derived_from_a_canceled_one_is_canceled() -> None:
    ctx, cancel = with_cancel(workflow_state().root)
    cancel()
    late, _ = with_cancel(ctx)
    assert isinstance(late.err(), Canceled)
    _, ok = late.done().receive_nonblocking()
    assert late.done().closed and ok is False


def test_canceling_a_child_leaves_the_parent_alone() -> None:
    parent, _ = with_cancel(workflow_state().root)
    child, cancel_child = with_cancel(parent)
    cancel_child()
    assert child.err() is not None and parent.err() is None


def test_done_channel_is_closed_on_cancel() -> None:
    ctx, cancel = with_cancel(workflow_state().root)
    woke: list[Any] = []

    async def waiter() -> None:
        woke.append(await ctx.done().receive_with_ok(ctx))

    scheduler = run(waiter())
    assert woke == []
    cancel()
    scheduler.run_until_blocked()
    assert woke == [(None, False)]


def test_disconnected_context_keeps_values_not_cancellation() -> None:
    root = workflow_state().root
    ctx, cancel = with_cancel(with_value(root, "tenant", "acme"))
    cancel()
    cleanup = new_disconnected_context(ctx)
    assert cleanup.err() is None
    assert cleanup.value("tenant") == "acme"
    # It can itself be canceled, independently.
    inner, cancel_inner = with_cancel(cleanup)
    cancel_inner()
    assert inner.err() is not None and cleanup.err() is None


def test_values() -> None:
    root = workflow_state().root
    ctx = with_value(with_value(root, "a", 1), "b", 2)
    shadowed = with_value(ctx, "a", 3)
    assert (ctx.value("a"), ctx.value("b"), shadowed.value("a")) == (1, 2, 3)
    assert ctx.value("missing") is None and ctx.value("missing", "default") == "default"
    with pytest.raises(ValueError, match="must not be None"):
        with_value(root, None, 1)


def test_on_cancel_callbacks() -> None:
    ctx, cancel = with_cancel(workflow_state().root)
    calls: list[str] = []
    ctx.on_cancel(lambda: calls.append("a"))
    unregister = ctx.on_cancel(lambda: calls.append("b"))
    unregister()
    cancel()
    ctx.on_cancel(lambda: calls.append("after"))  # already canceled: runs at once
    assert calls == ["a", "after"]


def test_state_of_needs_a_workflow_context() -> None:
    with pytest.raises(TypeError, match="expected a workflow.Context"):
        state_of("not a context")  # type: ignore[arg-type]


def test_canceling_a_timer_before_and_after_it_is_committed() -> None:
    state = workflow_state()
    ctx, cancel = with_cancel(state.root)
    uncommitted = schedule_timer(ctx, 10)
    committed_ctx, cancel_committed = with_cancel(state.root)
    committed = schedule_timer(committed_ctx, 10)
    first, second = state.to_execute
    assert isinstance(first, ScheduleTimerCommand) and isinstance(second, ScheduleTimerCommand)
    second.commit()

    cancel()
    assert first.state is CommandState.CANCELED  # never committed: dropped
    assert isinstance(uncommitted.error(), Canceled)
    cancel_committed()
    assert second.state is CommandState.CANCEL_PENDING  # a TimerCanceled event is due
    assert isinstance(committed.error(), Canceled)
    cancel_committed()
    assert second.state is CommandState.CANCEL_PENDING
    # Scheduling with an already canceled context fails at once and records nothing.
    before = len(state.commands)
    assert isinstance(schedule_timer(ctx, 1).error(), Canceled)
    assert len(state.commands) == before


def test_timer_arguments() -> None:
    ctx = workflow_state().root
    with pytest.raises(ValueError, match="must not be negative"):
        schedule_timer(ctx, -1)
    with pytest.raises(TypeError, match="seconds"):
        schedule_timer(ctx, "5")  # type: ignore[arg-type]
