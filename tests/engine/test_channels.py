"""Channels, select and wait groups (engine.futures), driven by the coroutine scheduler."""

from __future__ import annotations

from typing import Any

import pytest

from django_workflows.engine.coroutines import Scheduler
from django_workflows.engine.errors import ChannelClosed
from django_workflows.engine.futures import (
    Channel,
    Future,
    WaitGroup,
    on_default,
    on_future,
    on_receive,
    on_send,
    resolved,
    select,
)

from .drive import run


def test_unbuffered_send_waits_for_a_receiver() -> None:
    channel: Channel[int] = Channel()
    trace: list[str] = []

    async def sender() -> None:
        trace.append("sending")
        await channel.send(None, 1)
        trace.append("sent")

    scheduler = run(sender())
    assert trace == ["sending"]
    assert not channel.send_nonblocking(2)  # nobody receives, no buffer
    assert channel.receive_nonblocking() == (1, True)
    scheduler.run_until_blocked()
    assert trace == ["sending", "sent"]


def test_unbuffered_receive_waits_for_a_sender() -> None:
    channel: Channel[str] = Channel()
    got: list[Any] = []

    async def receiver() -> None:
        got.append(await channel.receive(None))

    scheduler = run(receiver())
    assert got == []
    assert channel.send_nonblocking("hello")  # hands it straight to the waiting receiver
    scheduler.run_until_blocked()
    assert got == ["hello"]


def test_receivers_and_senders_are_served_fifo() -> None:
    channel: Channel[int] = Channel()
    got: list[tuple[str, int]] = []

    async def receiver(name: str) -> None:
        got.append((name, await channel.receive(None)))

    async def sender(value: int) -> None:
        await channel.send(None, value)

    run(receiver("r1"), receiver("r2"), receiver("r3"), sender(1), sender(2), sender(3))
    assert got == [("r1", 1), ("r2", 2), ("r3", 3)]

    channel2: Channel[int] = Channel()
    run(*(_send(channel2, n) for n in range(3)))
    assert [channel2.receive_nonblocking()[0] for _ in range(3)] == [0, 1, 2]


async def _send(channel: Channel[int], value: int) -> None:
    await channel.send(None, value)


def test_buffered_channel() -> None:
    channel: Channel[str] = Channel(2)
    assert channel.send_nonblocking("a") and channel.send_nonblocking("b")
    assert not channel.send_nonblocking("c")
    assert channel.len() == len(channel) == 2
    blocked = run(_send(channel, "c"))  # type: ignore[arg-type]
    assert not blocked.all_done()
    # Taking a value moves the blocked sender's value into the freed slot.
    assert channel.receive_nonblocking() == ("a", True)
    blocked.run_until_blocked()
    assert blocked.all_done()
    assert [channel.receive_nonblocking() for _ in range(3)] == [("b", True), ("c", True), (None, False)]


def test_unbounded_channel_never_refuses() -> None:
    channel: Channel[int] = Channel(None)
    assert all(channel.send_nonblocking(n) for n in range(1000))
    assert channel.len() == 1000


def test_negative_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Channel(-1)


def test_close_wakes_receivers_and_drains_the_buffer() -> None:
    channel: Channel[int] = Channel(1)
    waiting: Channel[int] = Channel()
    got: list[Any] = []

    async def receiver() -> None:
        got.append(await waiting.receive_with_ok(None))
        try:
            await waiting.receive(None)
        except ChannelClosed as exc:
            got.append(str(exc))

    scheduler = run(receiver())
    waiting.close()
    scheduler.run_until_blocked()
    assert got == [(None, False), "channel closed"]
    assert waiting.closed

    channel.send_nonblocking(1)
    channel.close()
    assert channel.receive_nonblocking() == (1, True)  # values sent before the close remain
    assert channel.receive_nonblocking() == (None, False)


def test_close_misuse() -> None:
    channel: Channel[int] = Channel()
    channel.close()
    with pytest.raises(RuntimeError, match="close of closed channel"):
        channel.close()
    with pytest.raises(RuntimeError, match="send on closed channel"):
        channel.send_nonblocking(1)
    busy: Channel[int] = Channel()
    run(_send(busy, 1))
    with pytest.raises(RuntimeError, match="send on closed channel"):
        busy.close()


# -- select ------------------------------------------------------------------------------------


def _select(*cases: Any) -> list[Any]:
    out: list[Any] = []

    async def main() -> None:
        out.append(await select(None, *cases))

    run(main())
    return out


def test_select_takes_the_first_ready_case_in_argument_order() -> None:
    full: Channel[str] = Channel(1)
    full.send_nonblocking("x")
    room: Channel[str] = Channel(1)
    assert _select(on_future(Future(), lambda f: "never"), on_send(room, "y", lambda: "send"), on_receive(full, lambda v, ok: "receive")) == ["send"]
    assert _select(on_receive(full, lambda v, ok: (v, ok)), on_future(resolved(1), lambda f: "future")) == [("x", True)]
    assert _select(on_future(resolved(1), lambda f: f.result()), on_default(lambda: "default")) == [1]


def test_select_default_only_when_nothing_is_ready() -> None:
    empty: Channel[int] = Channel()
    assert _select(on_default(lambda: "default"), on_receive(empty, lambda v, ok: "receive")) == ["default"]
    assert _select(on_default(lambda: "default"), on_future(resolved(2), lambda f: "future")) == ["future"]
    assert _select(on_default()) == [None]


def test_select_handler_may_return_a_future_or_be_async() -> None:
    future = resolved("value")

    async def handler(f: Future[str]) -> str:
        return "async " + await f

    assert _select(on_future(future, lambda f: f)) == [future]
    assert _select(on_future(future, handler)) == ["async value"]


def test_blocking_select_wakes_on_the_first_case_that_becomes_ready() -> None:
    later: Future[int] = Future()
    unbuffered: Channel[str] = Channel()
    out: list[Any] = []

    async def main() -> None:
        out.append(await select(None, on_future(later, lambda f: "future"), on_receive(unbuffered, lambda v, ok: ["receive", v])))

    scheduler = run(main())
    assert out == []
    # A blocked select counts as a receiver: a non-blocking send on an unbuffered channel succeeds.
    assert unbuffered.send_nonblocking("hi")
    later.set_result(1)
    scheduler.run_until_blocked()
    assert out == [["receive", "hi"]]
    # The select's registration is gone: the next send finds no receiver.
    assert not unbuffered.send_nonblocking("again")


def test_select_on_a_closed_channel() -> None:
    channel: Channel[int] = Channel()
    channel.close()
    assert _select(on_receive(channel, lambda v, ok: (v, ok))) == [(None, False)]


def test_select_send_to_a_waiting_receiver() -> None:
    channel: Channel[str] = Channel()
    got: list[str] = []

    async def receiver() -> None:
        got.append(await channel.receive(None))

    async def sender() -> None:
        await select(None, on_send(channel, "via select", lambda: got.append("sent")))

    run(receiver(), sender())
    # The value is handed over (and the send handler runs) before the receiver resumes.
    assert got == ["sent", "via select"]


def test_select_needs_a_case() -> None:
    async def main() -> None:
        await select(None)

    scheduler = Scheduler()
    co = scheduler.spawn("main", main())
    scheduler.run_until_blocked()
    assert isinstance(co.error, ValueError) and "at least one case" in str(co.error)


# -- wait groups -------------------------------------------------------------------------------


def test_wait_group() -> None:
    wg = WaitGroup()
    wg.add(2)
    trace: list[str] = []

    async def waiter() -> None:
        await wg.wait()
        trace.append("all done")

    scheduler = run(waiter())
    wg.done()
    scheduler.run_until_blocked()
    assert trace == []
    wg.done()
    scheduler.run_until_blocked()
    assert trace == ["all done"]


def test_wait_group_misuse() -> None:
    wg = WaitGroup()
    with pytest.raises(RuntimeError, match="negative WaitGroup counter"):
        wg.done()
    wg = WaitGroup()
    wg.add(1)

    async def waiter() -> None:
        await wg.wait()

    scheduler = run(waiter())
    wg.done()
    # Wait is still registered until the waiter runs again: adding now is a race in Go.
    with pytest.raises(RuntimeError, match="Add called concurrently with Wait"):
        wg.add(1)
    scheduler.run_until_blocked()
    assert scheduler.all_done()


def test_send_case_ignores_a_select_that_already_took_another_case() -> None:
    first: Channel[int] = Channel()
    second: Channel[int] = Channel()
    out: list[Any] = []

    async def receiver() -> None:
        out.append(await select(None, on_receive(first, lambda v, ok: ("first", v)), on_receive(second, lambda v, ok: ("second", v))))

    async def sender() -> None:
        await first.send(None, 1)

    async def select_sender() -> None:
        # The receiver's select already took "first"; its registration on "second" is stale
        # until it resumes, so this send must wait instead of failing.
        out.append(await select(None, on_send(second, 2, lambda: "sent")))

    scheduler = Scheduler()
    blocked = [scheduler.spawn(name, coro) for name, coro in (("r", receiver()), ("s", sender()), ("t", select_sender()))]
    scheduler.run_until_blocked()
    assert out == [("first", 1)]
    assert [co.error for co in blocked] == [None, None, None] and not blocked[2].done
    assert second.receive_nonblocking() == (None, False)
