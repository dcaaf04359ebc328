"""Running activities (port of go-workflows ``internal/activity``).

The runner finds the registered function by name, decodes its arguments, runs it (an ``async
def`` activity runs on an event loop of its own) and turns the outcome into an
``ActivityCompleted`` or ``ActivityFailed`` event. Inside the function, ``activity.attempt()``,
``activity.info()``, ``activity.logger()`` and ``activity.heartbeat()`` read the current task
from a context variable; each activity runs in a copy of the context, so values a propagator
sets do not leak into the next task.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .converter import Converter, PayloadError
from .core import WorkflowInstance
from .errors import WorkflowError
from .history import ActivityCompletedAttributes, ActivityFailedAttributes, ActivityScheduledAttributes, Attributes
from .propagation import ContextPropagator
from .registry import ActivityNotFound, ArgumentMismatch, Registry, check_arguments


class ActivityLeaseLost(Exception):
    """Raised by ``activity.heartbeat()`` when the worker lost the task's lease: another worker
    may run this activity again, and this attempt's result would be discarded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityInfo:
    """The activity being run, as seen from inside it."""

    activity_id: str
    name: str
    attempt: int
    queue: str
    instance: WorkflowInstance
    heartbeat: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)
    logger: logging.LoggerAdapter = field(repr=False, compare=False)


_current: ContextVar[ActivityInfo | None] = ContextVar("django_workflows_activity", default=None)


def current_activity() -> ActivityInfo:
    info = _current.get()
    if info is None:
        raise RuntimeError("not inside an activity: activity.info() and friends only work while one runs")
    return info


class ActivityRunner:
    def __init__(
        self,
        registry: Registry,
        converter: Converter,
        propagators: Sequence[ContextPropagator] = (),
        logger: logging.Logger | None = None,
    ) -> None:
        self._registry = registry
        self._converter = converter
        self._propagators = list(propagators)
        self._logger = logger or logging.getLogger("django_workflows.activity")

    def run(
        self,
        *,
        activity_id: str,
        instance: WorkflowInstance,
        attributes: ActivityScheduledAttributes,
        heartbeat: Callable[[], None] = lambda: None,
    ) -> Attributes:
        """Run the activity; return the attributes of its ``ActivityCompleted``/``Failed`` event."""
        context = contextvars.copy_context()
        return context.run(self._run, activity_id, instance, attributes, heartbeat)

    def _run(
        self,
        activity_id: str,
        instance: WorkflowInstance,
        attributes: ActivityScheduledAttributes,
        heartbeat: Callable[[], None],
    ) -> Attributes:
        try:
            fn = self._registry.get_activity(attributes.name)
        except ActivityNotFound as exc:
            return _failed(WorkflowError(str(exc), type="ActivityNotFound", permanent=True))
        try:
            args = [self._converter.from_payload(payload) for payload in attributes.inputs]
        except PayloadError as exc:
            return _failed(WorkflowError(f"converting activity inputs: {exc}", type="PayloadError", permanent=True))
        try:
            check_arguments(fn, args, skip_context=False)
        except ArgumentMismatch as exc:
            return _failed(WorkflowError(str(exc), type="ArgumentMismatch", permanent=True))
        try:
            for propagator in self._propagators:
                propagator.extract(attributes.metadata)
        except Exception as exc:  # a broken propagator fails the attempt, not the worker
            return _failed(WorkflowError.from_exception(exc, permanent=True))

        logger = logging.LoggerAdapter(
            self._logger,
            {
                "workflow_instance_id": instance.instance_id,
                "activity_id": activity_id,
                "activity_name": attributes.name,
                "attempt": attributes.attempt,
            },
        )
        _current.set(
            ActivityInfo(
                activity_id=activity_id,
                name=attributes.name,
                attempt=attributes.attempt,
                queue=attributes.queue,
                instance=instance,
                heartbeat=heartbeat,
                logger=logger,
            )
        )
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
        except Exception as exc:
            return _failed(WorkflowError.from_exception(exc))
        try:
            return ActivityCompletedAttributes(result=self._converter.to_payload(result))
        except PayloadError as exc:
            return _failed(WorkflowError(f"converting activity result: {exc}", type="PayloadError", permanent=True))


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _failed(error: WorkflowError) -> ActivityFailedAttributes:
    return ActivityFailedAttributes(error=error.to_info())
