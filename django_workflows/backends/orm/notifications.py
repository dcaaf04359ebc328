"""Wake-ups across processes on PostgreSQL: ``LISTEN``/``NOTIFY`` (issue 21).

``wakeup.Waker`` wakes the pollers of this process when this process commits work. Work
committed by another process (a web server starting a workflow, a worker on another machine
completing an activity) is found by polling; on PostgreSQL it also sends a notification with the
transaction that created it (``pg_notify`` is transactional: it is delivered at commit, never for
a rolled-back transaction), and one listener thread per process and database alias wakes the
local pollers when one arrives. Polling stays as the fallback: a listener that lost its
connection reconnects with a capped backoff, and a missed notification costs at most one poll
interval.

A notification needs a session of its own on the server, so it cannot work through PgBouncer in
transaction mode: there, pass ``notifications=False`` to ``OrmBackend`` (docs/backends.md).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.db import connections

from ...engine.errors import one_line
from .wakeup import Kind, Waker

logger = logging.getLogger("django_workflows.backends.orm")

#: The channel of each kind of work.
CHANNELS: dict[Kind, str] = {"workflow": "django_workflows_workflow", "activity": "django_workflows_activity"}
_KINDS = {channel: kind for kind, channel in CHANNELS.items()}

#: How long the listener waits for notifications before it checks that it should still run.
_LISTEN_TIMEOUT = 1.0
_RECONNECT_BACKOFF_CAP = 30.0


class Notifier:
    """Sends notifications inside the writer's transaction; one per ``OrmStore``."""

    def __init__(self, using: str) -> None:
        self.using = using
        self._local = threading.local()

    def notify_in_transaction(self, kind: Kind, execute: Any) -> None:
        """Queue a notification of ``kind`` with the current transaction (``execute`` runs the
        ``pg_notify`` statement); once per kind and transaction."""
        connection = connections[self.using]
        if connection.in_atomic_block:
            # The list of commit hooks is a new object in every transaction (Django replaces it
            # at commit and rollback), so it tells transactions apart without a query.
            hooks = connection.run_on_commit
            sent: tuple[list[Any], set[Kind]] | None = getattr(self._local, "sent", None)
            if sent is None or sent[0] is not hooks:
                sent = self._local.sent = (hooks, set())
            if kind in sent[1]:
                return
            sent[1].add(kind)
        execute(CHANNELS[kind])


class Listener:
    """The thread that ``LISTEN``s for one database alias and wakes this process's pollers, while
    some store in this process polls (``acquire``/``release``)."""

    def __init__(self, using: str, waker: Waker) -> None:
        self.using = using
        self.waker = waker
        self._users: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set while the listener is connected and listening (tests wait for it).
        self.listening = threading.Event()

    def acquire(self, user: object) -> None:
        """``user`` polls: listen (a no-op if it already did)."""
        with _listeners_lock:
            self._users.add(id(user))
            if self._thread is None or not self._thread.is_alive():
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name=f"workflows-listen-{self.using}", daemon=True
                )
                self._thread.start()

    def release(self, user: object) -> None:
        """``user`` stopped polling; the last one stops the thread and closes its connection."""
        with _listeners_lock:
            self._users.discard(id(user))
            if self._users or self._thread is None:
                return
            thread, self._thread = self._thread, None
            self._stop.set()
        thread.join(_LISTEN_TIMEOUT * 2)

    def _run(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                self._listen(stop)
            except Exception as exc:  # a lost connection, a restarting server: poll meanwhile, retry
                self.listening.clear()
                failures += 1
                delay = min(_RECONNECT_BACKOFF_CAP, 0.5 * 2 ** min(failures, 6))
                # One line per backoff step; the traceback at DEBUG (in an outage, the pollers
                # report the same error).
                logger.warning(
                    "listening for notifications on %r failed (%s); polling until it reconnects in %.1f s",
                    self.using,
                    one_line(exc),
                    delay,
                )
                logger.debug("the notification listener's failure", exc_info=True)
                stop.wait(delay)
            else:
                failures = 0

    def _listen(self, stop: threading.Event) -> None:
        wrapper = connections[self.using]
        # A connection of its own, never one of Django's pool (``get_new_connection`` would
        # take one): the listener holds it for good, and closes it when it stops or fails,
        # which would leave the pool a connection short each time.
        raw = wrapper.Database.connect(**wrapper.get_connection_params())
        try:
            raw.autocommit = True
            for channel in CHANNELS.values():
                raw.execute(f"LISTEN {channel}")
            self.listening.set()
            # Work committed while this listener was away is found by the next poll; wake the
            # pollers once so they do not wait for it.
            for kind in CHANNELS:
                self.waker.notify(kind)
            while not stop.is_set():
                for notification in raw.notifies(timeout=_LISTEN_TIMEOUT):
                    notified = _KINDS.get(notification.channel)
                    if notified is not None:
                        self.waker.notify(notified)
        finally:
            self.listening.clear()
            raw.close()


_listeners: dict[tuple[int, str], Listener] = {}
_listeners_lock = threading.RLock()


def listener_for(using: str, waker: Waker) -> Listener:
    """The listener of ``using`` in this process (a forked child has its own: threads do not
    survive ``fork``)."""
    key = (os.getpid(), using)
    with _listeners_lock:
        listener = _listeners.get(key)
        if listener is None:
            listener = _listeners[key] = Listener(using, waker)
        return listener
