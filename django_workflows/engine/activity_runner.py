"""Running activities (port of go-workflows ``internal/activity``).

The runner finds the registered function by name, decodes its arguments, runs it (an ``async
def`` activity runs on an event loop of its own) and turns the outcome into an
``ActivityCompleted`` or ``ActivityFailed`` event. Inside the function, ``activity.attempt()``,
``activity.info()``, ``activity.logger()``, ``activity.heartbeat()`` and
``activity.is_canceled()`` read the current task from a context variable; each activity runs
in a copy of the context, so values a propagator sets do not leak into the next task.

An activity that raises ``ActivityCanceled`` (``heartbeat()`` does once the attempt should
stop) fails with ``Canceled``. Python cannot interrupt a thread, so plain ``def`` code learns of
a cancellation or a timeout only at its next heartbeat; an ``async def`` activity is canceled
(``asyncio.CancelledError`` at its next ``await``) as soon as the worker learns it.
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

from .converter import Converter, Payload, PayloadError
from .core import WorkflowInstance
from .errors import Canceled, PayloadTooLarge, WorkflowError
from .history import ActivityCompletedAttributes, ActivityFailedAttributes, ActivityScheduledAttributes, Attributes
from .payloads import PayloadLimits
from .propagation import ContextPropagator
from .registry import ActivityNotFound, ArgumentMismatch, Registry, check_arguments


class ActivityCanceled(Exception):
    """Raised by ``activity.heartbeat()`` when the activity should stop: the workflow canceled
    it (or ended). An activity may let it propagate (the attempt fails with ``Canceled``) or
    catch it, clean up and return or raise what the workflow should see."""


class ActivityLeaseLost(ActivityCanceled):
    """Raised by ``activity.heartbeat()`` when the attempt is over for this worker: its lease
    was lost (another worker may run it again) or one of its timeouts passed. Whatever it
    returns now is discarded."""


def _no_heartbeat(details: Any = None) -> None:
    return None


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityInfo:
    """The activity being run, as seen from inside it.

    ``heartbeat_details`` are the details the last attempt before this one (or an earlier lease
    of this one) stored with ``activity.heartbeat(details)``: where to resume. None on a first
    attempt; they do not change while this attempt runs.
    """

    activity_id: str
    name: str
    attempt: int
    queue: str
    instance: WorkflowInstance
    heartbeat_details: Any = None
    heartbeat: Callable[[Any], None] = field(default=_no_heartbeat, repr=False, compare=False)
    is_canceled: Callable[[], bool] = field(default=_never, repr=False, compare=False)
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
        payload_limits: PayloadLimits | None = None,
    ) -> None:
        self._registry = registry
        self._converter = converter
        self._payload_limits = payload_limits
        self._propagators = list(propagators)
        self._logger = logger or logging.getLogger("django_workflows.activity")

    def run(
        self,
        *,
        activity_id: str,
        instance: WorkflowInstance,
        attributes: ActivityScheduledAttributes,
        heartbeat: Callable[[Payload | None], None] = _no_heartbeat,
        is_canceled: Callable[[], bool] = _never,
        heartbeat_details: Payload | None = None,
    ) -> Attributes:
        """Run the activity; return the attributes of its ``ActivityCompleted``/``Failed`` event.

        ``heartbeat`` receives the details of ``activity.heartbeat(details)`` as a payload (None
        for none); ``heartbeat_details`` overrides those the scheduled event carries."""
        context = contextvars.copy_context()
        return context.run(self._run, activity_id, instance, attributes, heartbeat, is_canceled, heartbeat_details)

    def _run(
        self,
        activity_id: str,
        instance: WorkflowInstance,
        attributes: ActivityScheduledAttributes,
        heartbeat: Callable[[Payload | None], None],
        is_canceled: Callable[[], bool],
        heartbeat_details: Payload | None,
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
        details = heartbeat_details if heartbeat_details is not None else attributes.heartbeat_details
        try:
            previous = None if details is None else self._converter.from_payload(details)
        except PayloadError as exc:
            return _failed(WorkflowError(f"converting heartbeat details: {exc}", type="PayloadError", permanent=True))

        converter = self._converter
        where = f"of activity {attributes.name} (instance {instance})"

        def beat(details: Any = None) -> None:
            try:
                payload = None if details is None else converter.to_payload(details)
            except PayloadError as exc:
                raise PayloadError(f"activity.heartbeat() details cannot be stored: {exc}") from None
            heartbeat(None if payload is None else self._checked(payload, "heartbeat details", where))

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
                heartbeat_details=previous,
                heartbeat=beat,
                is_canceled=is_canceled,
                logger=logger,
            )
        )
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = asyncio.run(_supervise(result, is_canceled))
        except ActivityCanceled as exc:
            return _failed(Canceled(str(exc) or "activity canceled"))
        except Exception as exc:
            return _failed(WorkflowError.from_exception(exc))
        try:
            payload = self._converter.to_payload(result)
        except PayloadError as exc:
            return _failed(WorkflowError(f"converting activity result: {exc}", type="PayloadError", permanent=True))
        try:
            # Refused here, not by the store: the attempt fails at once and is not retried.
            return ActivityCompletedAttributes(result=self._checked(payload, "activity result", where))
        except PayloadTooLarge as exc:
            return _failed(exc)

    def _checked(self, payload: Payload, kind: str, where: str) -> Payload:
        return payload if self._payload_limits is None else self._payload_limits.check(payload, kind, where)


#: How often an ``async def`` activity's loop looks whether the activity should stop.
_CANCEL_CHECK_INTERVAL = 0.1


async def _supervise(awaitable: Any, is_canceled: Callable[[], bool]) -> Any:
    """Await the activity, canceling it once ``is_canceled()`` turns true."""
    task = asyncio.ensure_future(awaitable)
    while True:
        done, _ = await asyncio.wait({task}, timeout=_CANCEL_CHECK_INTERVAL)
        if done:
            return task.result()
        if is_canceled():
            task.cancel()
            try:
                return await task  # it may catch the cancellation and answer anyway
            except asyncio.CancelledError:
                raise ActivityCanceled("activity canceled") from None


def _failed(error: WorkflowError) -> ActivityFailedAttributes:
    return ActivityFailedAttributes(error=error.to_info())
