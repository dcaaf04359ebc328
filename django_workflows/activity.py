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

from .engine.activity_runner import ActivityInfo, ActivityLeaseLost, current_activity
from .engine.errors import PermanentError, WorkflowError


def info() -> ActivityInfo:
    """The activity being run: ids, name, attempt, queue and workflow instance."""
    return current_activity()


def attempt() -> int:
    """The attempt number, counting from 0."""
    return current_activity().attempt


def logger() -> logging.LoggerAdapter:
    """A logger tagged with the activity and its workflow instance."""
    return current_activity().logger


def heartbeat() -> None:
    """Tell the worker the activity is alive and extend its lease now.

    Long activities need not call it (the worker extends leases on its own), but calling it
    lets an activity notice that its lease was lost: it raises ``ActivityLeaseLost``, and the
    activity should stop, since another worker may run it again.
    """
    current_activity().heartbeat()


__all__ = ["ActivityInfo", "ActivityLeaseLost", "PermanentError", "WorkflowError", "attempt", "heartbeat", "info", "logger"]
