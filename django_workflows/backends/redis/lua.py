"""Loads the Redis backend's Lua scripts (``scripts/*.lua``) and runs them.

Each script is ``lib.lua`` followed by the script's own file, run with ``EVALSHA`` (loaded with
``SCRIPT LOAD`` on the first ``NOSCRIPT``: a new server, a restart). Every value goes in through
ARGV; the sources are static files and never have data formatted into them.

Script calls are most of a worker's round trips, so they skip the layers of redis-py's
``Script`` and ``execute_command`` (argument checks, observability hooks) and its pool's
checkout and return (locks, counters): the connections they use
stay with them in a free list, taken from the client's pool as needed. What they keep of
redis-py: the check at checkout that the server has not closed the connection, the connection's
retry policy (a connection error disconnects, reconnects and sends again, as ``execute_command``
does) and the pool's connection settings. A call that fails with anything but an error reply
drops its connection, so none is reused with unread data.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError, ResponseError

NAMES = (
    "create",
    "cancel",
    "signal",
    "terminate",
    "remove",
    "remove_finished",
    "latest",
    "prepare",
    "stats",
    "extend",
    "workflow_poll",
    "workflow_abandon",
    "workflow_block",
    "seed",
    "workflow_complete",
    "workflow_release_sticky",
    "activity_poll",
    "activity_abandon",
    "activity_complete",
    "schedule_claim",
    "activity_heartbeat",
    "activity_expired",
    "activity_time_out",
    "workflow_expired",
    "backlog",
    "worker_register",
    "worker_heartbeat",
    "worker_unregister",
    "workers",
)


@cache
def source(name: str) -> str:
    folder = resources.files(__package__).joinpath("scripts")
    return folder.joinpath("lib.lua").read_text("utf-8") + "\n" + folder.joinpath(f"{name}.lua").read_text("utf-8")


class Scripts:
    """The scripts, bound to one client and one key namespace."""

    def __init__(self, client: redis.Redis, ns: str) -> None:
        self._ns = ns
        self._pool = client.connection_pool
        self._sources = {name: source(name) for name in NAMES}
        self._shas = {name: hashlib.sha1(text.encode("utf-8")).hexdigest() for name, text in self._sources.items()}
        # Connections checked out of the pool for script calls and free for the next one; list
        # pop and append are atomic, so threads share it without a lock.
        self._idle: list[Any] = []
        self._pid = os.getpid()

    def __call__(self, name: str, *args: Any) -> Any:
        command = ("EVALSHA", self._shas[name], 0, self._ns, *args)
        try:
            return self._send(command)
        except NoScriptError:
            self._send(("SCRIPT", "LOAD", self._sources[name]))
            return self._send(command)

    def _send(self, command: tuple[Any, ...]) -> Any:
        if self._pid != os.getpid():  # a forked child: its parent's connections are not its own
            self._idle, self._pid = [], os.getpid()
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._pool.get_connection()
        else:
            # As the pool checks at every checkout: a connection with something to read has
            # been closed by the server (a restart, CLIENT KILL, its idle timeout) or holds
            # a stray reply; a new one is opened when the command is sent.
            try:
                if connection.can_read():
                    connection.disconnect()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                connection.disconnect()

        def round_trip() -> Any:
            connection.send_command(*command)
            return connection.read_response()

        try:
            reply = connection.retry.call_with_retry(round_trip, lambda error: connection.disconnect())
        except ResponseError:
            self._idle.append(connection)  # an error reply was read whole
            raise
        except BaseException:
            connection.disconnect()
            self._pool.release(connection)
            raise
        if connection.should_reconnect():  # the server announced maintenance (redis-py's rule)
            connection.disconnect()
        self._idle.append(connection)
        return reply

    def close(self) -> None:
        """Give the connections back to the pool."""
        idle, self._idle = self._idle, []
        for connection in idle:
            self._pool.release(connection)
