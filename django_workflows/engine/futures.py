"""Futures, channels, select and wait groups for workflow code (port of go-workflows
``internal/sync``: future.go, channel.go, select.go, waitgroup.go).

All of these only work inside a workflow: awaiting them yields to the deterministic scheduler
in ``engine.coroutines``. Channels follow Go's semantics: an unbuffered channel hands a value
from a sender to a receiver directly, receivers and senders are served first in, first out,
and a closed channel wakes all receivers.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

from .coroutines import Condition
from .errors import ChannelClosed

T = TypeVar("T")

_PENDING = object()


class Future(Generic[T]):
    """The eventual result of a workflow operation. ``await future`` returns it or raises."""

    __slots__ = ("_value", "_error", "_callbacks")

    def __init__(self) -> None:
        self._value: Any = _PENDING
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Future[T]], None]] | None = None

    def ready(self) -> bool:
        return self._value is not _PENDING or self._error is not None

    done = ready

    def set_result(self, value: T) -> None:
        if self.ready():
            raise RuntimeError("future already resolved")
        self._value = value
        self._run_callbacks()

    def set_error(self, error: BaseException) -> None:
        if self.ready():
            raise RuntimeError("future already resolved")
        self._error = error
        self._run_callbacks()

    def result(self) -> T:
        if self._error is not None:
            raise self._error
        if self._value is _PENDING:
            raise RuntimeError("future is not resolved yet")
        return self._value

    def error(self) -> BaseException | None:
        return self._error

    def add_done_callback(self, callback: Callable[[Future[T]], None]) -> None:
        if self.ready():
            callback(self)
            return
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append(callback)

    def _run_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            callback(self)

    def __await__(self) -> Generator[Any, None, T]:
        while not self.ready():
            yield self
        return self.result()

    def __repr__(self) -> str:
        state = "pending" if not self.ready() else ("error" if self._error is not None else "done")
        return f"<Future {state}>"


def resolved(value: Any = None, error: BaseException | None = None) -> Future[Any]:
    future: Future[Any] = Future()
    if error is not None:
        future.set_error(error)
    else:
        future.set_result(value)
    return future


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Block the calling coroutine until ``predicate()`` is true."""
    waiter = Condition(predicate)
    while not waiter.ready():
        await _Yield(waiter)


class _Yield:
    __slots__ = ("_waiter",)

    def __init__(self, waiter: Any) -> None:
        self._waiter = waiter

    def __await__(self) -> Generator[Any, None, None]:
        yield self._waiter


# ---------------------------------------------------------------------------------------------
# Channels


class _Receiver:
    """A blocked receive (plain or from a select), waiting for a sender or a close."""

    __slots__ = ("accept_fn", "waiting")

    def __init__(self, accept_fn: Callable[[Any, bool], bool], waiting: Callable[[], bool] = lambda: True) -> None:
        self.accept_fn = accept_fn
        #: False once a select this receiver belongs to took another case: until that select
        #: resumes and unregisters, the receiver is still queued but takes nothing.
        self.waiting = waiting


class _Sender:
    __slots__ = ("value", "taken")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.taken = False


class Channel(Generic[T]):
    """A Go-style channel for workflow coroutines.

    ``capacity`` 0 is unbuffered, ``None`` unbounded (signal channels: a signal is never
    dropped, unlike go-workflows' 100-slot buffer).
    """

    def __init__(self, capacity: int | None = 0) -> None:
        if capacity is not None and capacity < 0:
            raise ValueError("channel capacity must not be negative")
        self._capacity = capacity
        self._buffer: deque[Any] = deque()
        self._receivers: deque[_Receiver] = deque()
        self._senders: deque[_Sender] = deque()
        self._closed = False

    # -- sending -----------------------------------------------------------------------------

    def _has_room(self) -> bool:
        return self._capacity is None or len(self._buffer) < self._capacity

    def _can_send(self) -> bool:
        return any(receiver.waiting() for receiver in self._receivers) or self._has_room()

    def send_nonblocking(self, value: T) -> bool:
        """Send if a receiver waits or the buffer has room; return whether it was sent."""
        if self._closed:
            raise RuntimeError("send on closed channel")
        while self._receivers:
            receiver = self._receivers.popleft()
            if receiver.accept_fn(value, True):
                return True
        if self._has_room():
            self._buffer.append(value)
            return True
        return False

    async def send(self, ctx: Any, value: T) -> None:
        """Send, blocking until a receiver takes the value or the buffer has room."""
        if self.send_nonblocking(value):
            return
        sender = _Sender(value)
        self._senders.append(sender)
        await wait_until(lambda: sender.taken)

    # -- receiving ---------------------------------------------------------------------------

    def _can_receive(self) -> bool:
        return bool(self._buffer) or bool(self._senders) or self._closed

    def receive_nonblocking(self) -> tuple[T | None, bool]:
        """Take a value if one is there: ``(value, True)``; otherwise ``(None, False)``."""
        if self._buffer:
            value = self._buffer.popleft()
            if self._senders:  # a blocked sender can move into the freed slot
                sender = self._senders.popleft()
                sender.taken = True
                self._buffer.append(sender.value)
            return value, True
        if self._senders:
            sender = self._senders.popleft()
            sender.taken = True
            return sender.value, True
        return None, False

    async def receive(self, ctx: Any = None) -> T:
        """Receive the next value; raises ``ChannelClosed`` once the channel is closed and empty."""
        value, ok = await self.receive_with_ok(ctx)
        if not ok:
            raise ChannelClosed()
        return value  # type: ignore[return-value]

    async def receive_with_ok(self, ctx: Any = None) -> tuple[T | None, bool]:
        """Receive like Go's ``v, ok := <-ch``: ``ok`` is False when the channel is closed."""
        if self._can_receive():
            return self._take()
        slot: list[Any] = []

        def accept(value: Any, ok: bool) -> bool:
            slot.append((value, ok))
            return True

        self._receivers.append(_Receiver(accept))
        await wait_until(lambda: bool(slot))
        return slot[0]

    def _take(self) -> tuple[T | None, bool]:
        value, ok = self.receive_nonblocking()
        if ok:
            return value, True
        return None, False  # closed

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            raise RuntimeError("close of closed channel")
        if self._senders:
            raise RuntimeError("send on closed channel")
        self._closed = True
        receivers, self._receivers = self._receivers, deque()
        for receiver in receivers:
            receiver.accept_fn(None, False)

    @property
    def closed(self) -> bool:
        return self._closed

    def len(self) -> int:
        return len(self._buffer)

    def __len__(self) -> int:
        return len(self._buffer)


# ---------------------------------------------------------------------------------------------
# Select (go-workflows workflow/select.go): the first ready case in argument order wins.


Handler = Callable[..., Any]


class SelectCase:
    """One case of ``select``; build them with ``on_future``, ``on_receive``, ``on_send``, ``on_default``."""

    def ready(self) -> bool:
        raise NotImplementedError

    def fire(self) -> Any:
        """Take the case; return what its handler returned (maybe an awaitable)."""
        raise NotImplementedError


class _FutureCase(SelectCase):
    def __init__(self, future: Future[Any], handler: Handler | None) -> None:
        self.future = future
        self.handler = handler

    def ready(self) -> bool:
        return self.future.ready()

    def fire(self) -> Any:
        return self.handler(self.future) if self.handler else None


class _ReceiveCase(SelectCase):
    def __init__(self, channel: Channel[Any], handler: Handler | None) -> None:
        self.channel = channel
        self.handler = handler

    def ready(self) -> bool:
        return self.channel._can_receive()

    def fire(self) -> Any:
        value, ok = self.channel._take()
        return self.deliver(value, ok)

    def deliver(self, value: Any, ok: bool) -> Any:
        return self.handler(value, ok) if self.handler else None


class _SendCase(SelectCase):
    def __init__(self, channel: Channel[Any], value: Any, handler: Handler | None) -> None:
        self.channel = channel
        self.value = value
        self.handler = handler

    def ready(self) -> bool:
        return self.channel._can_send()

    def fire(self) -> Any:
        if not self.channel.send_nonblocking(self.value):  # pragma: no cover - ready() said it would
            raise RuntimeError("select send case was ready but could not send")
        return self.handler() if self.handler else None


class _DefaultCase(SelectCase):
    def __init__(self, handler: Handler | None) -> None:
        self.handler = handler

    def ready(self) -> bool:
        return True

    def fire(self) -> Any:
        return self.handler() if self.handler else None


def on_future(future: Future[Any], handler: Handler | None = None) -> SelectCase:
    """Ready when ``future`` is resolved; ``handler(future)`` runs."""
    return _FutureCase(future, handler)


def on_receive(channel: Channel[Any], handler: Handler | None = None) -> SelectCase:
    """Ready when ``channel`` has a value or is closed; ``handler(value, ok)`` runs."""
    return _ReceiveCase(channel, handler)


def on_send(channel: Channel[Any], value: Any, handler: Handler | None = None) -> SelectCase:
    """Ready when ``channel`` can take ``value``; ``handler()`` runs after sending."""
    return _SendCase(channel, value, handler)


def on_default(handler: Handler | None = None) -> SelectCase:
    """Always ready: makes ``select`` non-blocking."""
    return _DefaultCase(handler)


async def select(ctx: Any, *cases: SelectCase) -> Any:
    """Wait until one case is ready and run the first ready one, in argument order.

    Returns what the chosen handler returns (awaited, if the handler is async).
    """
    if not cases:
        raise ValueError("select needs at least one case")
    result = _first_ready(cases)
    if result is _PENDING:
        result = await _block_on(cases)
    # Await what an async handler returned, but not a Future a handler returns as its value.
    if inspect.iscoroutine(result):
        result = await result
    return result


def _first_ready(cases: tuple[SelectCase, ...]) -> Any:
    default: SelectCase | None = None
    for case in cases:
        if isinstance(case, _DefaultCase):
            default = default or case
            continue
        if case.ready():
            return case.fire()
    if default is not None:
        return default.fire()
    return _PENDING


async def _block_on(cases: tuple[SelectCase, ...]) -> Any:
    # While blocked, register as a receiver on every receive case, so that a sender (or a
    # select's send case) on an unbuffered channel can hand its value straight to us.
    fired: list[tuple[_ReceiveCase, Any, bool]] = []
    registered: list[tuple[Channel[Any], _Receiver]] = []

    def make_accept(case: _ReceiveCase) -> Callable[[Any, bool], bool]:
        def accept(value: Any, ok: bool) -> bool:
            if fired:
                return False
            fired.append((case, value, ok))
            return True

        return accept

    for case in cases:
        if isinstance(case, _ReceiveCase):
            receiver = _Receiver(make_accept(case), lambda: not fired)
            case.channel._receivers.append(receiver)
            registered.append((case.channel, receiver))
    try:
        await wait_until(lambda: bool(fired) or any(case.ready() for case in cases))
    finally:
        for channel, receiver in registered:
            try:
                channel._receivers.remove(receiver)
            except ValueError:
                pass
    if fired:
        case, value, ok = fired[0]
        return case.deliver(value, ok)
    return _first_ready(cases)


# ---------------------------------------------------------------------------------------------
# Wait groups


class WaitGroup:
    """Go's ``sync.WaitGroup`` for workflow coroutines."""

    def __init__(self) -> None:
        self._count = 0
        self._waiting = False

    def add(self, delta: int = 1) -> None:
        if self._waiting and delta > 0 and self._count == 0:
            raise RuntimeError("WaitGroup misuse: Add called concurrently with Wait")
        self._count += delta
        if self._count < 0:
            raise RuntimeError("negative WaitGroup counter")

    def done(self) -> None:
        self.add(-1)

    async def wait(self, ctx: Any = None) -> None:
        self._waiting = True
        try:
            await wait_until(lambda: self._count == 0)
        finally:
            self._waiting = False

