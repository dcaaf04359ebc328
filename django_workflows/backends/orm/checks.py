"""System checks of the ORM backend (``OrmBackend.check``): database settings that workers need.

``django_workflows.W001``: SQLite without IMMEDIATE transactions (concurrent workers would fail
on the write lock instead of waiting for it). ``W002``: SQLite not in WAL mode (readers would
block the writer). ``W003``: MySQL/MariaDB whose ``max_allowed_packet`` could refuse a payload
the backend's ``max_payload_size`` allows (the write would fail in the commit, where no
``PayloadTooLarge`` names it). ``W004``/``W005``: PostgreSQL reached through a connection pooler
(PgBouncer) with notifications (``LISTEN`` needs a session of its own) or prepared statements
(a server connection serves many clients in transaction mode) on. W002-W005 need a connection,
so they run only in database checks (``check --database``, ``migrate``), when Django passes
``databases``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.core import checks
from django.db import connections

from .sql import BYTES_PER_INSERT

#: How much larger than its payload a statement that writes it can be: the payload is a JSON
#: string inside the event's JSON (each quote and backslash escaped once), and the driver
#: escapes it again in the statement; 4x is the worst case (a payload of quotes).
PACKET_GROWTH = 4


def check_orm_backend(
    using: str,
    *,
    alias: str,
    databases: Collection[str] | None = None,
    max_payload_size: int = 0,
    notifications: bool = False,
    prepared_statements: bool = False,
) -> list[Any]:
    """The messages for the workflow backend ``alias`` on database ``using``: the settings
    checks, or with ``databases`` (database checks) those that read the database."""
    vendor = connections[using].vendor
    if vendor == "postgresql":
        if databases is None or using not in databases or not (notifications or prepared_statements):
            return []
        return _pooler(using, alias, notifications=notifications, prepared_statements=prepared_statements)
    if vendor == "mysql":
        if databases is None or using not in databases:
            return []
        return _packet_limit(using, alias, max_payload_size)
    if vendor != "sqlite":
        return []
    if databases is None:
        return _transaction_mode(using, alias)
    return _journal_mode(using, alias) if using in databases else []


def packet_needed(max_payload_size: int) -> int:
    """The ``max_allowed_packet`` a statement writing payloads up to ``max_payload_size`` may
    need: the largest payload beside a full batch of others, escaped in the worst case."""
    return PACKET_GROWTH * (max_payload_size + BYTES_PER_INSERT)


def _packet_limit(using: str, alias: str, max_payload_size: int) -> list[checks.CheckMessage]:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT @@SESSION.max_allowed_packet")
        packet = int(cursor.fetchone()[0])
    needed = packet_needed(max_payload_size)
    if needed < packet:
        return []
    return [
        checks.Warning(
            f"The workflow backend {alias!r} allows payloads of {max_payload_size:,} bytes (max_payload_size), but "
            f"MySQL/MariaDB database {using!r} accepts statements of at most {packet:,} bytes (max_allowed_packet).",
            hint=(
                f"Lower max_payload_size in WORKFLOWS[{alias!r}][\"OPTIONS\"], or raise max_allowed_packet on the "
                f"server to more than {needed:,} bytes (a payload can take up to {PACKET_GROWTH} times its size in the "
                "statement that writes it, once escaped); otherwise a large payload fails its commit with a "
                "database error instead of PayloadTooLarge."
            ),
            id="django_workflows.W003",
        )
    ]


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


def behind_pooler(using: str) -> bool:
    """Does PostgreSQL database ``using`` answer through a connection pooler such as PgBouncer?
    A pooler hands the client a process id of its own making (for cancel requests), which is
    not the id of the server process that runs the client's queries; a direct connection, or
    one from Django's pool, has the same id both ways."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        server_pid = int(cursor.fetchone()[0])
    raw = connection.connection
    info = getattr(raw, "info", None)  # psycopg 3; psycopg2 has get_backend_pid()
    client_pid = info.backend_pid if info is not None else raw.get_backend_pid()
    return int(client_pid) != server_pid


def _pooler(using: str, alias: str, *, notifications: bool, prepared_statements: bool) -> list[checks.CheckMessage]:
    if not behind_pooler(using):
        return []
    where = f"The workflow backend {alias!r} reaches PostgreSQL database {using!r} through a connection pooler (PgBouncer?)"
    options = f'WORKFLOWS[{alias!r}]["OPTIONS"]'
    messages: list[checks.CheckMessage] = []
    if notifications:
        messages.append(
            checks.Warning(
                f"{where} with notifications on.",
                hint=(
                    f'In transaction mode LISTEN cannot work, and workers find the work of other processes only '
                    f'at their poll_interval (2 s with notifications). Add "notifications": False to {options}; '
                    "if the pooler runs in session mode, silence django_workflows.W004."
                ),
                id="django_workflows.W004",
            )
        )
    if prepared_statements:
        messages.append(
            checks.Warning(
                f"{where} with prepared statements on.",
                hint=(
                    "In transaction mode each transaction may run on another server connection, where the "
                    "client's prepared statements are missing or another client's carry the same names "
                    f'(PgBouncer before 1.21, or without max_prepared_statements). Add "prepared_statements": False '
                    f"to {options}; if the pooler runs in session mode, or is PgBouncer 1.21 or later with "
                    "max_prepared_statements set, silence django_workflows.W005."
                ),
                id="django_workflows.W005",
            )
        )
    return messages
