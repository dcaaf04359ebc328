"""The deterministic coroutine scheduler (engine.coroutines) and futures (engine.futures)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from django_workflows.engine.coroutines import ForeignAwaitable, Scheduler
from django_workflows.engine.futures import Future, resolved, wait_until

from .drive import run


def test_coroutines_run_in_creation_order_until_all_block() -> None:
    trace: list[str] = []
    gate: Future[int] = Future()

    async def first() -> int:
        trace.append("first start")
        value = await gate
        trace.append(f"first got {value}")
        return value

    async def second() -> None:
        trace.append("second start")

    scheduler = run(first(), second())
    assert trace == ["first start", "second start"]
    assert [co.name for co in scheduler.coroutines] == ["c0"]  # the finished one is dropped
    gate.set_result(7)
    scheduler.run_until_blocked()
    assert trace == ["first start", "second start", "first got 7"]
    assert scheduler.all_done()


def test_result_and_error_of_a_coroutine_are_recorded() -> None:
    async def ok() -> str:
        return "done"

    async def broken() -> None:
        raise ValueError("bad")

    scheduler = Scheduler()
    good = scheduler.spawn("good", ok())
    bad = scheduler.spawn("bad", broken())
    scheduler.run_until_blocked()
    assert (good.done, good.result, good.error) == (True, "done", None)
    assert bad.done and isinstance(bad.error, ValueError)


def test_coroutine_spawned_while_running_runs_in_the_same_pass() -> None:
    trace: list[str] = []
    scheduler = Scheduler()

    async def child() -> None:
        trace.append("child")

    async def parent() -> None:
        scheduler.spawn("child", child())
        trace.append("parent")

    scheduler.spawn("parent", parent())
    scheduler.run_until_blocked()
    assert trace == ["parent", "child"]


def test_on_done_callback() -> None:
    seen: list[Any] = []

    async def work() -> int:
        return 5

    scheduler = Scheduler()
    scheduler.spawn("work", work(), on_done=lambda co: seen.append((co.name, co.result)))
    scheduler.run_until_blocked()
    assert seen == [("work", 5)]


def test_awaiting_a_foreign_awaitable_raises_inside_the_workflow() -> None:
    caught: list[BaseException] = []

    async def uses_asyncio() -> None:
        try:
            await asyncio.sleep(0)
        except ForeignAwaitable as exc:
            caught.append(exc)

    scheduler = run(uses_asyncio())
    assert scheduler.all_done()
    assert len(caught) == 1
    message = str(caught[0])
    assert "not a workflow future" in message and "asyncio" in message and "workflow.sleep" in message


def test_uncaught_foreign_awaitable_ends_the_coroutine_with_the_error() -> None:
    async def uses_asyncio() -> None:
        await asyncio.sleep(0)

    scheduler = Scheduler()
    co = scheduler.spawn("main", uses_asyncio())
    scheduler.run_until_blocked()
    assert co.done and isinstance(co.error, ForeignAwaitable)


def test_close_abandons_blocked_coroutines() -> None:
    cleaned: list[str] = []

    async def blocked() -> None:
        try:
            await Future()
        finally:
            cleaned.append("finally ran")

    scheduler = run(blocked())
    scheduler.close()
    assert cleaned == ["finally ran"]
    assert scheduler.coroutines == []
    coro = blocked()
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.spawn("late", coro)


def test_wait_until_blocks_on_a_predicate() -> None:
    state = {"ready": False}
    trace: list[str] = []

    async def waiter() -> None:
        await wait_until(lambda: state["ready"])
        trace.append("woke")

    scheduler = run(waiter())
    assert trace == []
    scheduler.run_until_blocked()
    assert trace == []
    state["ready"] = True
    scheduler.run_until_blocked()
    assert trace == ["woke"]


# -- futures -------------------------------------------------------------------------------------


def test_future_resolves_once() -> None:
    future: Future[int] = Future()
    assert not future.ready()
    with pytest.raises(RuntimeError, match="not resolved"):
        future.result()
    future.set_result(1)
    assert future.ready() and future.result() == 1 and future.error() is None
    with pytest.raises(RuntimeError, match="already resolved"):
        future.set_result(2)
    with pytest.raises(RuntimeError, match="already resolved"):
        future.set_error(ValueError())


def test_future_with_error_raises_it() -> None:
    future = resolved(error=KeyError("k"))
    assert future.ready() and isinstance(future.error(), KeyError)
    with pytest.raises(KeyError):
        future.result()


def test_future_none_result_is_ready() -> None:
    assert resolved(None).ready()


def test_future_callbacks() -> None:
    seen: list[Any] = []
    future: Future[str] = Future()
    future.add_done_callback(lambda f: seen.append(("early", f.result())))
    future.set_result("v")
    future.add_done_callback(lambda f: seen.append(("late", f.result())))
    assert seen == [("early", "v"), ("late", "v")]


def test_awaiting_futures_in_a_coroutine() -> None:
    pending: Future[int] = Future()
    failing: Future[int] = Future()
    out: list[Any] = []

    async def main() -> None:
        out.append(await resolved(1))
        out.append(await pending)
        try:
            await failing
        except LookupError as exc:
            out.append(repr(exc))

    scheduler = run(main())
    assert out == [1]
    pending.set_result(2)
    failing.set_error(LookupError("gone"))
    scheduler.run_until_blocked()
    assert out == [1, 2, "LookupError('gone')"]
