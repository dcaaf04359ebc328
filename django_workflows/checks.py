"""System checks for django_workflows.

Ids: ``django_workflows.E001`` a ``WORKFLOWS`` alias cannot be loaded; ``E002`` ``USE_TZ`` is
off; ``W001`` an ORM backend on SQLite without IMMEDIATE transactions; ``W002`` an ORM backend on
SQLite without WAL (needs ``check --database``); ``W020``/``W021`` come from the Redis backend
(no persistence, evicting memory policy). Each backend adds its own through ``backend.check()``,
the way ``django.tasks`` delegates checks to its backends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import connections


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
        if error is not None:
            messages.append(error)
            continue
        messages.extend(_sqlite_settings(alias, backend))
        check = getattr(backend, "check", None)
        if check is not None:
            messages.extend(check())
    return messages


def _sqlite_alias(backend: Any) -> str | None:
    using = getattr(backend, "using", None)
    if using is None or using not in connections.settings:
        return None
    return using if connections.settings[using]["ENGINE"] == "django.db.backends.sqlite3" else None


def _sqlite_settings(alias: str, backend: Any) -> list[checks.CheckMessage]:
    using = _sqlite_alias(backend)
    if using is None:
        return []
    options = connections.settings[using].get("OPTIONS", {})
    if str(options.get("transaction_mode", "")).upper() != "IMMEDIATE":
        return [
            checks.Warning(
                f"The workflow backend {alias!r} uses SQLite database {using!r} without IMMEDIATE transactions.",
                hint=(
                    f'Add "transaction_mode": "IMMEDIATE" to DATABASES[{using!r}]["OPTIONS"], so that concurrent '
                    "workers wait for the write lock instead of failing on it."
                ),
                id="django_workflows.W001",
            )
        ]
    return []


@checks.register(checks.Tags.database)
def check_sqlite_wal(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if databases is None:  # database checks run only when asked for (check --database, migrate)
        return []
    messages: list[checks.CheckMessage] = []
    for alias, backend, error in _backends():
        using = None if error is not None else _sqlite_alias(backend)
        if using is None or using not in databases:
            continue
        with connections[using].cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            mode = str(cursor.fetchone()[0]).lower()
        if mode != "wal":
            messages.append(
                checks.Warning(
                    f"The workflow backend {alias!r} uses SQLite database {using!r} in journal mode {mode!r}.",
                    hint=(
                        'Add "init_command": "PRAGMA journal_mode=WAL;" to its OPTIONS: in WAL mode readers do not '
                        "block the writer, which workers and web requests need."
                    ),
                    id="django_workflows.W002",
                )
            )
    return messages
