"""Which stored histories ``manage.py replayworkflows`` replays: executions in the database of an
ORM backend, chosen by workflow name, status, start time and count (the Django side of
``testing.Replayer``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .engine.backend import Backend
from .engine.core import InstanceState, WorkflowInstance
from .models import Outcome
from .models import WorkflowInstance as InstanceRow

#: The ``--state`` choices: the admin's statuses, plus "blocked", "finished" (any end) and "all".
STATES = ("running", "blocked", "finished", "completed", "failed", "canceled", "terminated", "continued_as_new", "all")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class SelectionError(ValueError):
    """The executions to replay cannot be selected as asked."""


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO date or date-time (naive ones in the current time zone), or a
    duration before now: ``90s``, ``30m``, ``12h``, ``7d``, ``2w``."""
    now = now or timezone.now()
    value = text.strip()
    match = _DURATION.match(value.lower())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is not None:
            moment = datetime(day.year, day.month, day.day)
    if moment is None:
        raise SelectionError(f"--since {text!r}: expected an ISO date or date-time, or a duration such as 7d or 12h")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def stored_executions(
    backend: Backend,
    *,
    workflows: Sequence[str] = (),
    state: str = "running",
    since: datetime | None = None,
    limit: int = 1000,
) -> list[WorkflowInstance]:
    """Executions of ``backend`` (an ORM backend) to replay, newest first."""
    from .backends.orm import OrmBackend

    if not isinstance(backend, OrmBackend):
        raise SelectionError(
            f"replaying from the database needs an ORM backend, not {type(backend).__name__}; export the "
            "histories to JSON files and pass the files instead"
        )
    if state not in STATES:
        raise SelectionError(f"unknown state {state!r}; one of: {', '.join(STATES)}")
    if limit < 1:
        raise SelectionError(f"--limit must be at least 1, got {limit}")
    rows = InstanceRow.objects.using(backend.using).order_by("-created_at", "-id")
    if workflows:
        rows = rows.filter(workflow_name__in=list(workflows))
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    active = InstanceState.ACTIVE.value
    if state == "running":
        rows = rows.filter(state=active)
    elif state == "blocked":
        rows = rows.filter(state=active, blocked_since__isnull=False)
    elif state == "finished":
        rows = rows.exclude(state=active)
    elif state == "continued_as_new":
        rows = rows.filter(state=InstanceState.CONTINUED_AS_NEW.value)
    elif state != "all":
        rows = rows.filter(state=InstanceState.FINISHED.value, outcome=str(Outcome(state)))
    columns = ("instance_id", "execution_id", "parent_instance_id", "parent_execution_id", "parent_schedule_event_id")
    out = []
    for instance_id, execution_id, parent_id, parent_execution, parent_event in rows.values_list(*columns)[:limit]:
        parent = WorkflowInstance(parent_id, parent_execution) if parent_id else None
        out.append(WorkflowInstance(instance_id, execution_id, parent, parent_event if parent else 0))
    return out
