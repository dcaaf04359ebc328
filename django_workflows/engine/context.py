"""Workflow contexts: cancellation and values (port of go-workflows ``workflow/context.go`` and
``internal/sync/context.go``, which clone Go's ``context`` package for workflows).

Every workflow API call takes a context. Canceling a context cancels everything scheduled with
it and with its descendants: pending timers and sub-workflows are canceled, scheduled activities
are asked to stop as their ``ActivityOptions.cancellation`` says (``engine.activities``), and new
activities, timers and sub-workflows fail at once with ``Canceled``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import Canceled
from .futures import Channel

if TYPE_CHECKING:
    from .state import WorkflowState


class _CancelNode:
    """The cancellation state shared by a cancelable context and the contexts derived from it."""

    __slots__ = ("parent", "children", "error", "_done", "callbacks")

    def __init__(self, parent: _CancelNode | None) -> None:
        self.parent = parent
        self.children: list[_CancelNode] = []
        self.error: Canceled | None = None
        self._done: Channel[None] | None = None
        self.callbacks: list[Callable[[], None]] = []
        if parent is not None:
            if parent.error is not None:
                self.error = parent.error
            else:
                parent.children.append(self)

    def done(self) -> Channel[None]:
        if self._done is None:
            self._done = Channel()
            if self.error is not None:
                self._done.close()
        return self._done

    def cancel(self, error: Canceled | None = None) -> None:
        if self.error is not None:
            return  # canceling twice is harmless
        self.error = error or Canceled()
        if self._done is not None:
            self._done.close()
        children, self.children = self.children, []
        for child in children:
            child.cancel(self.error)
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()
        if self.parent is not None:
            try:
                self.parent.children.remove(self)
            except ValueError:
                pass


class Context:
    """The context every workflow function receives as its first argument.

    ``done()`` is a channel that is closed when the context is canceled; ``err()`` is ``None``
    or the ``Canceled`` error. Derive contexts with ``workflow.with_cancel``,
    ``workflow.with_value`` and ``workflow.new_disconnected_context``.
    """

    __slots__ = ("_state", "_values_parent", "_cancel", "_key", "_value")

    def __init__(
        self,
        state: WorkflowState,
        *,
        values_parent: Context | None = None,
        cancel: _CancelNode | None = None,
        key: Any = None,
        value: Any = None,
    ) -> None:
        self._state = state
        self._values_parent = values_parent
        self._cancel = cancel
        self._key = key
        self._value = value

    def done(self) -> Channel[None]:
        if self._cancel is None:
            return self._state.never_done
        return self._cancel.done()

    def err(self) -> Canceled | None:
        return None if self._cancel is None else self._cancel.error

    def value(self, key: Any, default: Any = None) -> Any:
        ctx: Context | None = self
        while ctx is not None:
            if ctx._key is not None and ctx._key == key:
                return ctx._value
            ctx = ctx._values_parent
        return default

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when this context is canceled; returns a function that unregisters it."""
        node = self._cancel
        if node is None:
            return _noop
        if node.error is not None:
            callback()
            return _noop
        node.callbacks.append(callback)

        def remove() -> None:
            try:
                node.callbacks.remove(callback)
            except ValueError:
                pass

        return remove

    def __repr__(self) -> str:
        return f"<workflow.Context {self._state.instance.instance_id}{' canceled' if self.err() else ''}>"


def _noop() -> None:
    return None


def root_context(state: WorkflowState) -> tuple[Context, _CancelNode]:
    node = _CancelNode(None)
    return Context(state, cancel=node), node


def with_cancel(ctx: Context) -> tuple[Context, Callable[[], None]]:
    """A child context and the function that cancels it (and its descendants)."""
    node = _CancelNode(ctx._cancel)
    return Context(ctx._state, values_parent=ctx, cancel=node), node.cancel


def with_value(ctx: Context, key: Any, value: Any) -> Context:
    if key is None:
        raise ValueError("context key must not be None")
    return Context(ctx._state, values_parent=ctx, cancel=ctx._cancel, key=key, value=value)


def new_disconnected_context(ctx: Context) -> Context:
    """A context that keeps ``ctx``'s values but not its cancellation: for cleanup after a cancel."""
    return Context(ctx._state, values_parent=ctx, cancel=_CancelNode(None))
