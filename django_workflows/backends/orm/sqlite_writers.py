"""A queue for SQLite writers in front of SQLite's own write lock.

SQLite lets one connection write at a time, and a connection that finds the write lock taken
sleeps in SQLite's busy handler (1, 2, 5, 10 ... 100 ms) before it looks again, however soon the
lock was released. Under load the lock then sits idle while writers sleep. ``SqliteWriters``
queues writers instead, so the lock passes from one to the next at once:

- the threads of one process queue on a reentrant lock (shared by every backend of the process
  that writes to the same database alias);
- the processes queue on an advisory ``flock`` of the database file, which the kernel hands to
  the next waiting process as soon as the holder releases it (and releases by itself if the
  holder dies).

The queue is only an optimisation: SQLite's own locking still guards the data, so a writer that
bypasses the queue (a migration, a transaction the application opened) is merely not queued.
The ``flock`` is independent of the POSIX record locks SQLite takes on the same file. The file
descriptor it needs stays open for the life of the process, on purpose: closing any descriptor
of a file drops every POSIX lock the process holds on it, SQLite's included.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger("django_workflows.backends.orm")

_registry: dict[str, SqliteWriters] = {}
_registry_lock = threading.Lock()


class SqliteWriters:
    """A reentrant writer lock for one SQLite database alias: per thread, then per process."""

    def __init__(self) -> None:
        self._reset()
        _all.add(self)

    def _reset(self) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        # Descriptors by database file, opened at the first write (the file may not exist
        # before) and never closed (see the module docstring). Usually one; a test run that
        # switches the alias to a test database adds a second.
        self._descriptors: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, connection: Any) -> Iterator[None]:
        """Queue for the write lock of ``connection``'s database file, then hold it."""
        with self._threads:
            fd = self._descriptor(connection.settings_dict["NAME"]) if self._depth == 0 else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _descriptor(self, name: object) -> int | None:
        path = _file_path(name)
        if path is None:
            return None
        fd = self._descriptors.get(path)
        if fd is None:
            try:
                fd = self._descriptors[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                # Not created yet (the connection creates it): queue threads only, look again next time.
                logger.debug("not queueing SQLite writers across processes (%s): %s", path, exc)
        return fd


def _after_fork_in_child() -> None:
    # A forked child (a preforking server) shares its parent's open file descriptions, and with
    # them the flock: it needs descriptors of its own, and a thread lock no other thread holds.
    # The inherited descriptors are left open (closing them would drop POSIX locks).
    for writers in list(_all):
        writers._reset()


_all: weakref.WeakSet[SqliteWriters] = weakref.WeakSet()
os.register_at_fork(after_in_child=_after_fork_in_child)


def sqlite_writers(alias: str) -> SqliteWriters:
    """The writer queue of SQLite database ``alias``, one per process."""
    with _registry_lock:
        writers = _registry.get(alias)
        if writers is None:
            writers = _registry[alias] = SqliteWriters()
        return writers


def _file_path(name: object) -> str | None:
    """The database file of a SQLite ``NAME``, or None for an in-memory database or a URI."""
    text = os.fspath(name) if isinstance(name, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text or text == ":memory:" or text.startswith("file:"):
        return None
    return os.path.abspath(text)
