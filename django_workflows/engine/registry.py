"""The registry of workflows and activities (port of go-workflows ``registry/``).

Names are how history refers to code: a workflow or activity is stored by name and found again
by name when a worker runs it. The name defaults to the function's ``__name__``; ``name=``
overrides it. Anywhere a function is accepted its registered name may be given instead; then no
argument checks are possible.

An object's public methods register as activities named by method name (go-workflows' struct
registration). Workflow code may then name one by its function on the class,
``MyActivities.charge``: it stands for the registered bound method, whose signature (without
``self``) the arguments are checked against.
"""

from __future__ import annotations

import inspect
import threading
import typing
import weakref
from collections.abc import Callable, Iterator
from typing import Any


class RegistrationError(ValueError):
    """A workflow or activity cannot be registered."""


class ArgumentMismatch(TypeError):
    """Arguments do not fit the signature of the workflow or activity they are for."""


class WorkflowNotFound(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"workflow {name} not found")
        self.name = name


class ActivityNotFound(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"activity not found: {name}")
        self.name = name


def default_name(fn: Any) -> str:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name or name == "<lambda>":
        raise RegistrationError(f"cannot infer a name for {fn!r}; pass name=")
    return name


class Registry:
    """Maps names to workflow and activity callables, and callables back to their names."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workflows: dict[str, Callable[..., Any]] = {}
        self._activities: dict[str, Callable[..., Any]] = {}
        self._workflow_names: dict[Any, str] = {}
        self._activity_names: dict[Any, str] = {}
        #: The function behind a registered bound method -> that method.
        self._bound_activities: dict[Any, Callable[..., Any]] = {}
        # schedule id -> (workflow name, declaration): ``register_workflow(schedule=...)``
        self._schedules: dict[str, tuple[str, Any]] = {}

    # -- registration ------------------------------------------------------------------------

    def register_workflow(self, fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        if not callable(fn):
            raise RegistrationError("workflow is not a function")
        if not inspect.iscoroutinefunction(fn):
            raise RegistrationError(f"workflow {default_name(fn)} must be an async function (async def)")
        params = _positional_parameters(fn)
        if not params and not _has_var_positional(fn):
            raise RegistrationError(f"workflow {default_name(fn)} does not accept context parameter")
        name = name or default_name(fn)
        with self._lock:
            existing = self._workflows.get(name)
            if existing is not None and existing is not fn:
                raise RegistrationError(f'workflow with name "{name}" already registered')
            self._workflows[name] = fn
            self._workflow_names[fn] = name
        return fn

    def register_activity(self, fn_or_object: Any, name: str | None = None) -> Any:
        """Register a function, or every public method of an object (named by method name)."""
        if not callable(fn_or_object) or inspect.isclass(fn_or_object):
            if inspect.isclass(fn_or_object):
                raise RegistrationError("register an instance, not a class, to register its methods")
            if name is not None:
                raise RegistrationError("name= cannot be used when registering an object's methods")
            methods = [
                (attr, member)
                for attr, member in inspect.getmembers(fn_or_object, inspect.ismethod)
                if not attr.startswith("_")
            ]
            if not methods:
                raise RegistrationError(f"{fn_or_object!r} has no public methods to register as activities")
            for attr, member in methods:
                self._add_activity(attr, member)
            return fn_or_object
        self._add_activity(name or default_name(fn_or_object), fn_or_object)
        return fn_or_object

    def _add_activity(self, name: str, fn: Callable[..., Any]) -> None:
        with self._lock:
            existing = self._activities.get(name)
            if existing is not None and existing != fn:
                raise RegistrationError(f'activity with name "{name}" already registered')
            self._activities[name] = fn
            self._activity_names[fn] = name
            if inspect.ismethod(fn):
                self._bound_activities.setdefault(fn.__func__, fn)

    def update(self, other: Registry) -> None:
        """Add everything registered in ``other``."""
        for name, fn in other.workflows():
            self.register_workflow(fn, name)
        for name, fn in other.activities():
            self._add_activity(name, fn)
        for workflow_name, declaration in other.schedules():
            self.register_schedule(workflow_name, declaration)

    # -- schedules declared in code (``django_workflows.schedules.declarations``) --------------

    def register_schedule(self, workflow_name: str, declaration: Any) -> None:
        """Declare a schedule of ``workflow_name``; workers write it to their backend at start.
        ``declaration`` is a ``schedules.Schedule`` (kept opaque here: the engine does not
        depend on the schedules layer)."""
        schedule_id = declaration.schedule_id or workflow_name
        with self._lock:
            existing = self._schedules.get(schedule_id)
            if existing is not None and existing != (workflow_name, declaration):
                raise RegistrationError(f'schedule with id "{schedule_id}" already declared')
            self._schedules[schedule_id] = (workflow_name, declaration)

    def schedules(self) -> list[tuple[str, Any]]:
        """The declared schedules as ``(workflow name, declaration)``, by schedule id."""
        with self._lock:
            return [self._schedules[key] for key in sorted(self._schedules)]

    # -- lookup ------------------------------------------------------------------------------

    def get_workflow(self, name: str) -> Callable[..., Any]:
        try:
            return self._workflows[name]
        except KeyError:
            raise WorkflowNotFound(name) from None

    def get_activity(self, name: str) -> Callable[..., Any]:
        try:
            return self._activities[name]
        except KeyError:
            raise ActivityNotFound(name) from None

    def workflows(self) -> Iterator[tuple[str, Callable[..., Any]]]:
        return iter(list(self._workflows.items()))

    def activities(self) -> Iterator[tuple[str, Callable[..., Any]]]:
        return iter(list(self._activities.items()))

    def workflow_name(self, wf: Callable[..., Any] | str) -> str:
        if isinstance(wf, str):
            return wf
        try:
            return self._workflow_names.get(wf) or default_name(wf)
        except TypeError:  # unhashable callable
            return default_name(wf)

    def activity_name(self, activity: Callable[..., Any] | str) -> str:
        if isinstance(activity, str):
            return activity
        activity = self.resolve_activity(activity)
        try:
            return self._activity_names.get(activity) or default_name(activity)
        except TypeError:
            return default_name(activity)

    def resolve_activity(self, activity: Callable[..., Any]) -> Callable[..., Any]:
        """What runs for ``activity``: the registered bound method when ``activity`` is its
        function on the class (``MyActivities.charge``), else ``activity`` itself."""
        try:
            return self._bound_activities.get(activity, activity)
        except TypeError:  # unhashable callable
            return activity


# ---------------------------------------------------------------------------------------------
# Argument checks (go-workflows internal/args). Messages follow go-workflows.


# Weak: a workflow defined inside a function (tests do that) must not live forever here.
_SIGNATURES: weakref.WeakKeyDictionary[Any, inspect.Signature | None] = weakref.WeakKeyDictionary()


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    # Cached: every scheduled activity and started workflow checks its arguments.
    try:
        return _SIGNATURES[fn]
    except KeyError:
        pass
    except TypeError:  # unhashable callable
        return _compute_signature(fn)
    signature = _SIGNATURES[fn] = _compute_signature(fn)
    return signature


def _compute_signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _positional_parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    sig = _signature(fn)
    if sig is None:
        return []
    return [
        p
        for p in sig.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]


def _has_var_positional(fn: Callable[..., Any]) -> bool:
    sig = _signature(fn)
    return sig is not None and any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values())


_CHECKED_TYPES: dict[Any, tuple[type, ...]] = {
    int: (int,),
    float: (int, float),
    str: (str,),
    bool: (bool,),
    list: (list, tuple),
    dict: (dict,),
}
_TYPE_NAMES = {int: "int", float: "float", str: "str", bool: "bool", list: "list", dict: "dict"}


def check_arguments(fn: Callable[..., Any], args: tuple[Any, ...] | list[Any], *, skip_context: bool) -> None:
    """Raise ``ArgumentMismatch`` when ``args`` cannot be passed to ``fn``.

    ``skip_context`` leaves out the leading context parameter of workflows. Simple annotated
    types (int, float, str, bool, list, dict) are checked too; other annotations are trusted.
    """
    params = _positional_parameters(fn)
    if skip_context:
        params = params[1:]
    var_positional = _has_var_positional(fn)
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    got = len(args)
    if got < required or (got > len(params) and not var_positional):
        expected = str(len(params)) if required == len(params) else f"{required} to {len(params)}"
        if var_positional:
            expected = f"at least {required}"
        raise ArgumentMismatch(f"mismatched argument count: expected {expected}, got {got}")
    hints = _type_hints(fn)
    if not hints:
        return
    for param, value in zip(params, args, strict=False):  # *args beyond the named parameters go unchecked
        expected_type = hints.get(param.name)
        accepted = _CHECKED_TYPES.get(expected_type)
        if accepted is None or expected_type is None or value is None:
            continue
        if expected_type is not bool and isinstance(value, bool):
            ok = False
        else:
            ok = isinstance(value, accepted)
        if not ok:
            raise ArgumentMismatch(
                f"mismatched argument type: expected {_TYPE_NAMES[expected_type]}, got {type(value).__name__}"
            )


_HINTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return _HINTS[fn]
    except (KeyError, TypeError):
        pass
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations are not ours to judge
        hints = {}
    try:
        _HINTS[fn] = hints
    except TypeError:  # unhashable callable
        pass
    return hints
