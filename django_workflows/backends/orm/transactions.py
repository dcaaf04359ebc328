"""Database plumbing of the ORM backend: the database clock and transactions that retry.

go-workflows' SQL backends compute lease times with the worker's ``time.Now()``; here every lease,
visibility and stickiness comparison uses the database's clock (``DbNow``), so workers with skewed
clocks cannot steal or overstay leases (reference/reliability.md F11). ``Transactions.run`` runs a
unit of work in one transaction and retries it, bounded and with jitter, when the database refused
it for a lock conflict: SQLite "database is locked", MySQL/MariaDB deadlocks (1213) and lock wait
timeouts (1205), PostgreSQL deadlocks and serialization failures. Such a transaction did not
commit, so running it again is safe. After a lost connection, the broken connection is closed
(the next query reconnects) and, for operations that are safe to repeat, retried once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.db.models import DateTimeField, Expression, QuerySet

from .sqlite_writers import sqlite_writers

logger = logging.getLogger("django_workflows.backends.orm")

T = TypeVar("T")

SUPPORTED_VENDORS = frozenset({"sqlite", "mysql", "postgresql"})

#: Lock conflicts are retried for this many seconds (each attempt may also wait in the database,
#: up to SQLite's busy timeout or MySQL's innodb_lock_wait_timeout), sleeping a jittered, growing
#: delay in between.
DEFAULT_LOCK_RETRY_TIMEOUT = 30.0
_BACKOFF_BASE = 0.01
_BACKOFF_CAP = 0.2

# MySQL/MariaDB error codes: deadlock found, lock wait timeout exceeded.
_MYSQL_LOCK_ERRORS = frozenset({1213, 1205})
# PostgreSQL SQLSTATEs: deadlock_detected, serialization_failure, lock_not_available.
_POSTGRES_LOCK_STATES = frozenset({"40P01", "40001", "55P03"})
# SQLite primary result codes: SQLITE_BUSY, SQLITE_LOCKED (extended codes keep them in the low byte).
_SQLITE_LOCK_CODES = frozenset({5, 6})


class DbNow(Expression):
    """The database's current time plus ``offset``, as an SQL expression.

    PostgreSQL ``CLOCK_TIMESTAMP()``, MySQL/MariaDB ``UTC_TIMESTAMP(6)`` (Django keeps naive UTC
    there, whatever the session time zone), SQLite ``STRFTIME(..., 'now')``, which SQLite computes
    from the OS clock in C: no Python time source is involved on any database.

    ``stable``: the time the statement started, which an index range scan can use (PostgreSQL's
    ``CLOCK_TIMESTAMP()`` is volatile, so a condition on it cannot drive an index;
    ``STATEMENT_TIMESTAMP()`` can). MySQL and SQLite fix their clock per statement already.
    """

    output_field = DateTimeField()

    def __init__(self, offset: timedelta = timedelta(0), *, stable: bool = False) -> None:
        super().__init__(output_field=DateTimeField())
        self.offset = offset
        self.stable = stable

    def __repr__(self) -> str:
        return f"DbNow({self.offset!r}, stable={self.stable!r})"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        seconds = self.offset.total_seconds()
        vendor = connection.vendor
        if vendor == "postgresql":
            clock = "STATEMENT_TIMESTAMP()" if self.stable else "CLOCK_TIMESTAMP()"
            if not seconds:
                return clock, []
            return f"({clock} + MAKE_INTERVAL(secs => %s))", [seconds]
        if vendor == "mysql":
            if not seconds:
                return "UTC_TIMESTAMP(6)", []
            return "(UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND)", [round(seconds * 1_000_000)]
        if vendor == "sqlite":
            # The same text form Django stores datetimes in, so comparisons stay textual.
            return "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'now', %s)", [f"{seconds:+.6f} seconds"]
        raise DatabaseError(f"the workflow ORM backend does not support the {vendor!r} database")


def raw_delete(queryset: QuerySet[Any]) -> int:
    """``DELETE ... WHERE ...`` in one statement and return the row count.

    ``QuerySet.delete()`` falls back to fetching the rows first when anyone connected a
    ``pre_delete``/``post_delete`` receiver; the backend's rows have no signals to honour.
    """
    return int(queryset._raw_delete(queryset.db))


def first(queryset: QuerySet[Any]) -> Any:
    """The first row of ``queryset`` or None, in the queryset's own order (``QuerySet.first()``
    would add an ORDER BY the primary key or the model's default ordering)."""
    return next(iter(queryset[:1]), None)


def is_lock_conflict(exc: BaseException) -> bool:
    """Did the database refuse the transaction because of another one (so it did not commit)?"""
    cause = exc.__cause__
    if isinstance(cause, sqlite3.OperationalError):
        code = getattr(cause, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _SQLITE_LOCK_CODES
        message = str(cause).lower()
        return message.startswith(("database is locked", "database table is locked"))
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _POSTGRES_LOCK_STATES
    code = exc.args[0] if exc.args else None
    return isinstance(code, int) and code in _MYSQL_LOCK_ERRORS


def backoff(attempt: int) -> float:
    """Seconds to sleep before retry number ``attempt`` (1, 2, ...): exponential, capped, jittered."""
    return min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


def uses_pool(using: str) -> bool:
    """Does database ``using`` take its connections from Django's connection pool
    (``DATABASES[using]["OPTIONS"]["pool"]``, PostgreSQL on Django 5.1 and later)?"""
    return connections[using].vendor == "postgresql" and bool(connections.settings[using].get("OPTIONS", {}).get("pool"))


def _no_queue(connection: Any) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


class Transactions:
    """Runs units of work on one database alias, each in its own transaction, with retries."""

    def __init__(self, using: str, lock_retry_timeout: float = DEFAULT_LOCK_RETRY_TIMEOUT) -> None:
        self.using = using
        self.lock_retry_timeout = lock_retry_timeout
        self._lock = threading.Lock()
        #: Transactions retried after a lock conflict, a lost connection or an integrity race
        #: (a metric: reliability.md §3 asks for the "database is locked" retry count).
        self.retries = 0
        # The connection each thread used, to close those of threads that ended (see close_orphans).
        self._threads: dict[int, tuple[weakref.ref[threading.Thread], Any]] = {}
        #: This thread's connection while ``run`` runs (``pinned.connection``), else unset.
        self.pinned = threading.local()
        # SQLite has one write lock per database; its writers queue in front of it (sqlite_writers).
        # Reentrant: on_commit hooks may start work.
        writers = sqlite_writers(using) if connections[using].vendor == "sqlite" else None
        self._write_queue: Callable[[Any], Any] = writers.hold if writers else _no_queue
        #: Does the alias use Django's connection pool (PostgreSQL, ``OPTIONS["pool"]``)?
        self.pooled = uses_pool(using)

    def release_pooled(self) -> None:
        """Give this thread's connection back to Django's connection pool (a no-op without one,
        or inside a transaction): for threads that wait between short pieces of work (pollers),
        so that the pool serves the work that runs, not every thread that might."""
        if not self.pooled:
            return
        connection = self.connection
        if connection.connection is not None and not connection.in_atomic_block:
            connection.close()

    @property
    def connection(self) -> Any:
        return connections[self.using]

    def run(
        self,
        fn: Callable[[], T],
        *,
        atomic: bool = True,
        reconnect: bool = False,
        integrity_attempts: int = 1,
    ) -> T:
        """Run ``fn`` in a transaction (or, with ``atomic=False``, as the single statement it is).

        ``reconnect``: after a lost connection, retry once; only for work whose repetition is
        harmless even if the first attempt did commit (claims, fenced updates, reads).
        ``integrity_attempts``: attempts when an ``IntegrityError`` may come from a race that a
        fresh attempt resolves (a concurrent start of the same instance id).

        Inside a transaction the caller opened, nothing is retried: only the caller can repeat
        its whole transaction.
        """
        connection = self.connection
        self._track(connection)
        # Statements run inside fn() reach this connection through ``pinned`` rather than
        # through ``connections[alias]`` (an asgiref Local lookup) each time.
        outer = getattr(self.pinned, "connection", None)
        self.pinned.connection = connection
        try:
            return self._run(connection, fn, atomic=atomic, reconnect=reconnect, integrity_attempts=integrity_attempts)
        finally:
            self.pinned.connection = outer

    def _run(self, connection: Any, fn: Callable[[], T], *, atomic: bool, reconnect: bool, integrity_attempts: int) -> T:
        if connection.in_atomic_block:
            with transaction.atomic(using=self.using):
                return fn()
        give_up_at = time.monotonic() + self.lock_retry_timeout
        attempt = 0
        reconnected = False
        integrity_failures = 0
        while True:
            attempt += 1
            try:
                if not atomic:
                    return fn()
                with self._write_queue(connection), transaction.atomic(using=self.using):
                    return fn()
            except IntegrityError:
                integrity_failures += 1
                if integrity_failures >= integrity_attempts:
                    raise
            except (OperationalError, InterfaceError) as exc:
                was_open = connection.connection is not None
                if is_lock_conflict(exc):
                    if time.monotonic() >= give_up_at:
                        raise
                elif not self._drop_broken_connection() or not reconnect or reconnected:
                    raise
                else:
                    reconnected = True
                    # A connection that worked and broke is news; a connect that failed is the
                    # database being down, which the worker logs once per backoff step.
                    log = logger.warning if was_open else logger.debug
                    log("database connection %r was lost; retrying once", self.using)
            with self._lock:
                self.retries += 1
            time.sleep(backoff(attempt))

    def _track(self, connection: Any) -> None:
        ident = threading.get_ident()
        known = self._threads.get(ident)
        if known is not None and known[0]() is threading.current_thread() and known[1] is connection:
            return
        # First: an entry under this ident may be an ended thread's (idents are reused) whose
        # connection is still open; overwriting it would leak that connection.
        self.close_orphans()
        with self._lock:
            self._threads[ident] = (weakref.ref(threading.current_thread()), connection)

    def close_orphans(self) -> None:
        """Close the connections of threads that ended (pollers and task threads of a stopped
        worker). Django keeps one connection per thread and never closes it when the thread ends;
        PostgreSQL, for one, then refuses to drop the database they are still attached to."""
        with self._lock:
            finished = [
                (ident, connection)
                for ident, (thread, connection) in self._threads.items()
                if thread() is None or not thread().is_alive()  # type: ignore[union-attr]
            ]
            for ident, _ in finished:
                del self._threads[ident]
        for _, connection in finished:
            if connection.connection is None:
                continue
            connection.inc_thread_sharing()
            try:
                connection.close()
            except Exception:
                logger.debug("closing the connection of an ended thread failed", exc_info=True)
            finally:
                connection.dec_thread_sharing()

    def _drop_broken_connection(self) -> bool:
        """Close the connection if it no longer works, so the next query opens a new one.

        Without this a poller thread, which never passes through Django's request cycle, would
        fail forever on a connection the server closed ("MySQL server has gone away").
        """
        connection = self.connection
        if connection.connection is None or connection.in_atomic_block:
            return connection.connection is None
        try:
            usable = connection.is_usable()
        except Exception:  # noqa: BLE001 - any failure of the probe means the same
            usable = False
        if usable:
            return False
        connection.close()
        return True
