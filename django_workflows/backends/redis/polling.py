"""Blocking polls of the Redis backend (go-workflows' ``XREADGROUP ... BLOCK`` task dequeue).

A poll script leases a task if one can be had right now: it also moves due timers, hands back
stale sticky tasks and recovers expired leases, and it says how long until the next of those falls
due. In between, the poller blocks in ``XREADGROUP`` on its task streams; what arrives lands in the
consumer's pending entries, where the next run of the script leases it. So a task that is
waiting costs one round trip to claim, and one that arrives while a poller waits costs two.
"""

from __future__ import annotations

import math
import time
from typing import Any

import redis

from . import keys
from .lua import Scripts

# Leave this much of a client socket timeout unused when blocking.
_SOCKET_MARGIN = 0.5


def _longest_block(client: redis.Redis) -> float | None:
    """How long a blocking read may wait before the client's socket timeout cuts it off."""
    kwargs = client.connection_pool.connection_kwargs
    # redis-py 8 keeps the configured value under another name and defaults to 5 s.
    default = getattr(redis.connection, "DEFAULT_SOCKET_TIMEOUT", None)
    timeout = kwargs.get("socket_timeout", kwargs.get("orig_socket_timeout", default))
    return None if not timeout else max(0.05, float(timeout) - _SOCKET_MARGIN)


class Poller:
    def __init__(self, client: redis.Redis, scripts: Scripts) -> None:
        self._client = client
        self._scripts = scripts
        self._max_block = _longest_block(client)

    def poll(self, script: str, args: list[Any], consumer: str, streams: dict[Any, Any], timeout: float) -> list[Any] | None:
        """Run ``script`` until it returns something other than ``none``, for up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self._scripts(script, *args)
            if reply[0] != b"none":
                return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            wake = int(reply[1])
            wait = remaining if wake < 0 else min(remaining, wake / 1000)
            if self._max_block is not None:
                wait = min(wait, self._max_block)
            if not self._block(consumer, streams, wait) and time.monotonic() >= deadline:
                return None  # nothing arrived and nothing fell due: no need to look again

    def _block(self, consumer: str, streams: dict[Any, Any], wait: float) -> bool:
        """Wait up to ``wait`` seconds for a new stream entry; True if one arrived."""
        if not streams:
            time.sleep(wait)
            return False
        try:
            # BLOCK 0 would mean forever.
            block = max(1, math.ceil(wait * 1000))
            return bool(self._client.xreadgroup(keys.GROUP, consumer, streams, count=1, block=block))
        except redis.TimeoutError:
            return False  # the socket timeout was shorter than it looked; just poll again
        except redis.ResponseError:
            # A stream vanished under the read (an expired sticky stream); the next poll
            # creates it again.
            time.sleep(min(wait, 0.05))
            return False
