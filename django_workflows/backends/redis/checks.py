"""System checks of the Redis backend: a server that may drop acknowledged writes.

Work is acknowledged once its script ran, so a Redis server without an append-only file loses
it in a crash, and one with an eviction policy may drop workflow keys under memory pressure.
go-workflows' development setup runs Redis with ``--appendonly yes``; these checks say so.
"""

from __future__ import annotations

from typing import Any

import redis


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _config(client: redis.Redis, name: str) -> str | None:
    reply = client.config_get(name)
    for key, value in reply.items():
        if _text(key) == name:
            return _text(value)
    return None


def persistence_messages(client: redis.Redis, connection: str) -> list[Any]:
    from django.core import checks

    try:
        appendonly = _config(client, "appendonly")
        policy = _config(client, "maxmemory-policy")
    except redis.RedisError as exc:
        return [
            checks.Info(
                f"Could not check the persistence settings of the Redis server of connection {connection!r} "
                f"({exc}).",
                hint="Make sure it runs with appendonly yes and maxmemory-policy noeviction.",
                id="django_workflows.I020",
            )
        ]
    messages: list[Any] = []
    if appendonly == "no":
        messages.append(
            checks.Warning(
                f"The Redis server of connection {connection!r} runs without an append-only file "
                "(appendonly no): workflow state it acknowledged is lost if it crashes or restarts.",
                hint="Set appendonly yes (with appendfsync everysec or always) on that server.",
                id="django_workflows.W020",
            )
        )
    if policy is not None and policy != "noeviction":
        messages.append(
            checks.Warning(
                f"The Redis server of connection {connection!r} may evict keys (maxmemory-policy {policy}): "
                "it can drop workflow history, tasks and leases when it runs out of memory.",
                hint="Set maxmemory-policy noeviction on that server.",
                id="django_workflows.W021",
            )
        )
    return messages
