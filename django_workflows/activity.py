"""The API available inside activities.

Activities are plain functions (``def`` or ``async def``) with side effects; the Django ORM may
be used in them. They are retried by default, so make them idempotent. Inside one, these
functions describe the running activity:

    from django_workflows import activity

    def charge(order_id: str) -> int:
        activity.logger().info("charging %s, attempt %d", order_id, activity.attempt())
        ...
"""

from __future__ import annotations

import logging
from typing import Any

from .engine.activity_runner import ActivityCanceled, ActivityInfo, ActivityLeaseLost, current_activity
from .engine.errors import PermanentError, WorkflowError


def info() -> ActivityInfo:
    """The activity being run: ids, name, attempt, queue, workflow instance, and the
    ``heartbeat_details`` an earlier attempt left."""
    return current_activity()


def attempt() -> int:
    """The attempt number, counting from 0."""
    return current_activity().attempt


def logger() -> logging.LoggerAdapter:
    """A logger tagged with the activity and its workflow instance."""
    return current_activity().logger


def heartbeat(details: Any = None) -> None:
    """Tell the backend the activity is alive, and store ``details`` (JSON-convertible, e.g.
    how far a long export got) with the attempt: a retry finds them in
    ``activity.info().heartbeat_details``. ``details=None`` keeps the details stored so far.

    An activity with a ``heartbeat_timeout`` must call it at least that often, or its attempt
    fails. Calls are throttled: the backend is written at most once a second (or a third of the
    heartbeat timeout, if shorter), the latest details with it, so a tight loop may call this
    freely.

    Raises ``ActivityCanceled`` when the activity should stop because the workflow canceled it,
    and ``ActivityLeaseLost`` (an ``ActivityCanceled``) when the attempt is over for this worker:
    its lease was lost or one of its timeouts passed, so its result would be discarded.
    """
    current_activity().heartbeat(details)


def is_canceled() -> bool:
    """Whether the activity should stop: the workflow canceled it (learned at a heartbeat), or
    the attempt is over for this worker (lost lease, timeout)."""
    return current_activity().is_canceled()


__all__ = [
    "ActivityCanceled",
    "ActivityInfo",
    "ActivityLeaseLost",
    "PermanentError",
    "WorkflowError",
    "attempt",
    "heartbeat",
    "info",
    "is_canceled",
    "logger",
]
