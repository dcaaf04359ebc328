"""Loads the Redis backend's Lua scripts (``scripts/*.lua``) and runs them.

Each script is ``lib.lua`` followed by the script's own file, registered once per client and run
with ``EVALSHA`` (redis-py falls back to loading it on the first ``NOSCRIPT``). Every value goes
in through ARGV; the sources are static files and never have data formatted into them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import redis

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
        self._scripts = {name: client.register_script(source(name)) for name in NAMES}

    def __call__(self, name: str, *args: Any) -> Any:
        return self._scripts[name](keys=[], args=[self._ns, *args])
