"""The project-wide registry that ``@register_workflow`` and ``@register_activity`` fill.

Apps put their workflows and activities in a ``workflows`` module; ``AppConfig.ready()``
imports those modules, so by the time a worker or a view runs, everything is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from .engine.registry import Registry

F = TypeVar("F", bound=Callable[..., Any])

#: Every workflow and activity registered with the decorators below.
registry = Registry()


@overload
def register_workflow(fn: F, *, name: str | None = None) -> F: ...


@overload
def register_workflow(fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...


def register_workflow(fn: Any = None, *, name: str | None = None) -> Any:
    """Register an ``async def`` workflow; usable as ``@register_workflow`` or ``@register_workflow(name=...)``."""
    if fn is None:
        return lambda f: registry.register_workflow(f, name)
    return registry.register_workflow(fn, name)


@overload
def register_activity(fn: F, *, name: str | None = None) -> F: ...


@overload
def register_activity(fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...


def register_activity(fn: Any = None, *, name: str | None = None) -> Any:
    """Register an activity function (or every public method of an object)."""
    if fn is None:
        return lambda f: registry.register_activity(f, name)
    return registry.register_activity(fn, name)
