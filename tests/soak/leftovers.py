"""Rows and keys a finished soak must not leave behind: pending events, activity tasks, leases
and queued task entries. No Client or Backend method lists these (a finished instance's
pending events and an activity whose instance is gone are exactly what the API no longer
shows), so this looks at each store's own tables (ORM) or keys (Redis).
"""

from __future__ import annotations

from typing import Any


def leftovers(backend: Any) -> list[str]:
    """One line per kind of thing left behind; empty when the store is clean."""
    from django_workflows.backends.orm import OrmBackend

    if isinstance(backend, OrmBackend):
        return _orm_leftovers()
    return _redis_leftovers(backend)


def _orm_leftovers() -> list[str]:
    from django.db.models import Q

    from django_workflows.models import ActivityTask, PendingEvent, WorkflowInstance

    problems = []
    for label, rows in (
        ("pending events", PendingEvent.objects.all()),
        ("activity tasks", ActivityTask.objects.all()),
        ("instances with a lease", WorkflowInstance.objects.filter(~Q(lease_token="") | Q(locked_until__isnull=False))),
        ("active instances", WorkflowInstance.objects.filter(active_instance_id__isnull=False)),
    ):
        count = rows.count()
        if count:
            problems.append(f"{count} {label} left in the database")
    return problems


#: Redis keys (after the backend's namespace) that must be gone or empty once every instance
#: has finished and every worker has stopped, by pattern (``backends/redis/keys.py``).
_REDIS_EMPTY = (
    "pending:*", "future:*", "future-events", "activity:*", "activities:*", "act-leases:*", "wf-leases:*",
    "wf-queued:*", "wf-sticky-expiry", "instances-active", "active:*",
)


def _redis_leftovers(backend: Any) -> list[str]:
    # The backend's own connection and key namespace: the soak reads its keys as it wrote them.
    client, ns = backend._redis, backend._ns
    problems = []
    for pattern in _REDIS_EMPTY:
        keys = list(client.scan_iter(match=f"{ns}{pattern}", count=1000))
        if keys:
            problems.append(f"{len(keys)} Redis keys {pattern} left, e.g. {keys[0]!r}")
    for kind in ("wf-queue", "act-queue"):
        for key in client.scan_iter(match=f"{ns}{kind}:*", count=1000):
            # A task stream's entries are acknowledged (or deleted) when their task ends.
            pending = client.xpending(key, "workers")["pending"]
            if pending:
                problems.append(f"{pending} unacknowledged entries in Redis stream {key!r}")
    leased = 0
    for key in client.scan_iter(match=f"{ns}instance:*", count=1000):
        if client.hget(key, "token"):
            leased += 1
    if leased:
        problems.append(f"{leased} Redis instances still hold a lease token")
    return problems
