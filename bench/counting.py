"""Client-side counters that worker processes of either engine keep while the bench runs.

Used where the server has no per-database counter we can trust: SQLite (no server at all) and
Redis (``INFO commandstats`` is global and also counts the commands a Lua script runs). A
worker process installs them when ``BENCH_COUNT_FILE`` is set and writes the totals to that
file as JSON when it exits. Pure standard library, so both our workers (Django) and the DBOS
workers (another virtual environment) import it.

What is counted, exactly:

- SQLite, through ``sqlite3.Connection.set_trace_callback`` (every statement the library runs,
  including the ``BEGIN`` that Python's sqlite3 issues by itself):
  ``sqlite_tx``: statements that start a transaction, that is ``BEGIN ...`` plus every statement
  run outside a transaction (autocommit: each is its own transaction);
  ``sqlite_commits``: ``COMMIT`` statements; ``sqlite_write_tx``: commits plus autocommit
  INSERT/UPDATE/DELETE/REPLACE (the transactions that must reach the disk);
  ``sqlite_statements``: every statement except transaction control (BEGIN, COMMIT, ROLLBACK,
  SAVEPOINT, RELEASE); ``sqlite_lock_wait_us``/``sqlite_lock_hold_us``: see
  ``install_sqlite_counter``.
- Redis, by wrapping ``redis.connection.AbstractConnection.send_packed_command``:
  ``redis_round_trips`` = writes of one or more commands to the socket; a pipeline or a script
  call (``EVALSHA``) is one round trip, a blocking ``XREADGROUP`` is one.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from typing import Any

COUNT_FILE_ENV = "BENCH_COUNT_FILE"
#: With ``BENCH_SQL_SHAPES=1`` workers also count statements by shape (for profiling).
SHAPES_ENV = "BENCH_SQL_SHAPES"

_counts: Counter[str] = Counter()
_lock = threading.Lock()
_CONTROL = ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE")
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def bump(key: str, n: int = 1) -> None:
    with _lock:
        _counts[key] += n


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(_counts)


def enabled() -> bool:
    return bool(os.environ.get(COUNT_FILE_ENV))


def install_sqlite_counter(dbapi_connection: Any) -> None:
    """Count the statements and transactions of one ``sqlite3`` connection, and time them.

    The trace callback runs when a statement starts, before SQLite waits for a lock, so the
    first statement after ``BEGIN`` marks the moment the write lock was granted (IMMEDIATE
    transactions take it at BEGIN): ``sqlite_lock_wait_us`` sums BEGIN to that statement,
    ``sqlite_lock_hold_us`` that statement to ``COMMIT``/``ROLLBACK`` (the commit itself
    excluded).
    """
    began: list[float] = []  # [BEGIN time] until the first statement of the transaction
    granted: list[float] = []  # [time the first statement started] until the end

    def trace(sql: str) -> None:
        now = time.perf_counter()
        head = sql.lstrip()[:9].upper()
        try:
            in_transaction = dbapi_connection.in_transaction
        except sqlite3.Error:  # closed, or read from a thread sqlite3 refuses: count as inside
            in_transaction = True
        control = head.startswith(_CONTROL)
        ends = head.startswith(("COMMIT", "END", "ROLLBACK"))
        with _lock:
            if not in_transaction:
                _counts["sqlite_tx"] += 1
                if head.startswith(_WRITES):
                    _counts["sqlite_write_tx"] += 1
            if head.startswith(("COMMIT", "END")):
                _counts["sqlite_commits"] += 1
                _counts["sqlite_write_tx"] += 1
            if not control:
                _counts["sqlite_statements"] += 1
            if head.startswith("BEGIN"):
                began[:] = [now]
                granted.clear()
            elif began and not granted and not ends:
                _counts["sqlite_lock_wait_us"] += int((now - began[0]) * 1e6)
                granted[:] = [now]
            if ends:
                if granted:
                    _counts["sqlite_lock_hold_us"] += int((now - granted[0]) * 1e6)
                began.clear()
                granted.clear()

    dbapi_connection.set_trace_callback(trace)


def shapes_enabled() -> bool:
    return os.environ.get(SHAPES_ENV) == "1"


_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b|%s|\?")
_IN_LISTS = re.compile(r"\((?:\s*\?\s*,)+\s*\?\s*\)")
_TABLE_PREFIX = re.compile(r'"?django_workflows_')


def statement_shape(sql: str) -> str:
    """``sql`` with literals and parameters replaced, IN lists folded, cut to 160 characters."""
    shape = _LITERALS.sub("?", sql)
    shape = _IN_LISTS.sub("(?...)", shape)
    return _TABLE_PREFIX.sub("", " ".join(shape.split()))[:160]


def count_shape(sql: str, seconds: float) -> None:
    """Count one statement of this shape and the time its execution took."""
    shape = statement_shape(sql)
    with _lock:
        _counts["shape: " + shape] += 1
        _counts["shape_us: " + shape] += int(seconds * 1e6)


def install_redis_counter() -> None:
    """Count round trips of every redis-py connection in this process."""
    from redis import connection as redis_connection

    cls = getattr(redis_connection, "AbstractConnection", redis_connection.Connection)
    original = cls.send_packed_command
    if getattr(original, "_bench_counted", False):
        return

    def send_packed_command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        bump("redis_round_trips")
        return original(self, command, *args, **kwargs)

    send_packed_command._bench_counted = True  # type: ignore[attr-defined]
    cls.send_packed_command = send_packed_command


def write_counts() -> None:
    path = os.environ.get(COUNT_FILE_ENV)
    if not path:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"pid": os.getpid(), "counts": snapshot()}, f)
    os.replace(tmp, path)


def write_counts_at_exit() -> None:
    atexit.register(write_counts)


def read_count_files(paths: list[str]) -> dict[str, int]:
    """Sum the counters that worker processes wrote; a missing file is an error (a worker that
    did not exit cleanly would make the numbers too small without saying so)."""
    total: Counter[str] = Counter()
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                total.update(json.load(f)["counts"])
        except FileNotFoundError:
            raise RuntimeError(f"worker counter file {path} is missing: did the worker exit cleanly?") from None
    return dict(total)
