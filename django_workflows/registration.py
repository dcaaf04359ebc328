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


#: What ``schedule=`` accepts: one declaration or several (see ``schedules.Schedule``).
ScheduleArgument = Any


@overload
def register_workflow(fn: F, *, name: str | None = None, schedule: ScheduleArgument = None) -> F: ...


@overload
def register_workflow(fn: None = None, *, name: str | None = None, schedule: ScheduleArgument = None) -> Callable[[F], F]: ...


def register_workflow(fn: Any = None, *, name: str | None = None, schedule: ScheduleArgument = None) -> Any:
    """Register an ``async def`` workflow; usable as ``@register_workflow`` or ``@register_workflow(name=...)``.

    ``schedule=`` declares schedules of it (docs/schedules.md): a ``Schedule(spec, *args, ...)``,
    a cron string (UTC), a ``ScheduleSpec`` or a ``timedelta`` interval, or a list of them. Workers
    write them to their backend when they start.
    """
    if fn is None:
        return lambda f: register_workflow(f, name=name, schedule=schedule)
    registry.register_workflow(fn, name)
    if schedule is not None:
        _declare_schedules(fn, registry.workflow_name(fn), schedule)
    return fn


def _declare_schedules(fn: Callable[..., Any], workflow_name: str, schedule: ScheduleArgument) -> None:
    from .engine.registry import check_arguments
    from .schedules import Schedule

    declarations = list(schedule) if isinstance(schedule, (list, tuple)) else [schedule]
    for declaration in declarations:
        declaration = Schedule.coerce(declaration)
        check_arguments(fn, declaration.args, skip_context=True)  # wrong arguments fail at import
        registry.register_schedule(workflow_name, declaration)


@overload
def register_activity(fn: F, *, name: str | None = None) -> F: ...


@overload
def register_activity(fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...


def register_activity(fn: Any = None, *, name: str | None = None) -> Any:
    """Register an activity function (or every public method of an object)."""
    if fn is None:
        return lambda f: registry.register_activity(f, name)
    return registry.register_activity(fn, name)
