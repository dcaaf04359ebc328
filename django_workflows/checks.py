"""System checks for django_workflows.

Ids: ``django_workflows.E001`` a ``WORKFLOWS`` alias cannot be loaded; ``E002`` ``USE_TZ`` is
off; ``W001`` an ORM backend on SQLite without IMMEDIATE transactions; ``W002`` an ORM backend on
SQLite without WAL and ``W003`` a MySQL/MariaDB ``max_allowed_packet`` too small for the
backend's ``max_payload_size`` (both need ``check --database``); ``W020``/``W021`` come from the Redis backend
(no persistence, evicting memory policy). Each backend adds its own through ``backend.check()``
(``backends/orm/checks.py``, ``backends/redis/checks.py``), the way ``django.tasks`` delegates
checks to its backends: with ``alias`` (its ``WORKFLOWS`` alias), and ``databases`` in database
checks only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.compatibility)
def check_use_tz(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not settings.USE_TZ:
        return [
            checks.Error(
                "django_workflows needs USE_TZ = True.",
                hint="Workflow timers, leases and history timestamps are aware UTC datetimes.",
                id="django_workflows.E002",
            )
        ]
    return []


def _backends() -> Iterable[tuple[str, Any, checks.CheckMessage | None]]:
    from .backends.handler import InvalidWorkflowBackend, workflow_backends

    try:
        aliases = list(workflow_backends)
    except InvalidWorkflowBackend as exc:
        yield "", None, checks.Error(str(exc), id="django_workflows.E001")
        return
    for alias in aliases:
        try:
            yield alias, workflow_backends[alias], None
        except InvalidWorkflowBackend as exc:
            yield alias, None, checks.Error(
                str(exc), hint="Check BACKEND and OPTIONS in the WORKFLOWS setting.", id="django_workflows.E001"
            )


@checks.register(checks.Tags.compatibility)
def check_backends(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    for alias, backend, error in _backends():
        messages.extend([error] if error is not None else backend.check(alias=alias))
    return messages


@checks.register(checks.Tags.database)
def check_backend_databases(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """The backends' checks that read their database (``check --database``, ``migrate``)."""
    if databases is None:  # database checks run only when asked for
        return []
    messages: list[checks.CheckMessage] = []
    for alias, backend, error in _backends():
        if error is None:
            messages.extend(backend.check(alias=alias, databases=databases))
    return messages
