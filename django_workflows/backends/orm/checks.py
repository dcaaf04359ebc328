"""System checks of the ORM backend (``OrmBackend.check``): SQLite settings that workers need.

``django_workflows.W001``: SQLite without IMMEDIATE transactions (concurrent workers would fail
on the write lock instead of waiting for it). ``W002``: SQLite not in WAL mode (readers would
block the writer); it needs a connection, so it runs only in database checks
(``check --database``, ``migrate``), when Django passes ``databases``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.core import checks
from django.db import connections


def check_orm_backend(using: str, *, alias: str, databases: Collection[str] | None = None) -> list[Any]:
    """The messages for the workflow backend ``alias`` on database ``using``: the settings
    checks, or with ``databases`` (database checks) those that read the database."""
    if connections.settings[using]["ENGINE"] != "django.db.backends.sqlite3":
        return []
    if databases is None:
        return _transaction_mode(using, alias)
    return _journal_mode(using, alias) if using in databases else []


def _transaction_mode(using: str, alias: str) -> list[checks.CheckMessage]:
    options = connections.settings[using].get("OPTIONS", {})
    if str(options.get("transaction_mode", "")).upper() == "IMMEDIATE":
        return []
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


def _journal_mode(using: str, alias: str) -> list[checks.CheckMessage]:
    with connections[using].cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        mode = str(cursor.fetchone()[0]).lower()
    if mode == "wal":
        return []
    return [
        checks.Warning(
            f"The workflow backend {alias!r} uses SQLite database {using!r} in journal mode {mode!r}.",
            hint=(
                'Add "init_command": "PRAGMA journal_mode=WAL;" to its OPTIONS: in WAL mode readers do not '
                "block the writer, which workers and web requests need."
            ),
            id="django_workflows.W002",
        )
    ]
