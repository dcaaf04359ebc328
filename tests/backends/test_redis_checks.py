"""The Redis backend's system checks, against the real server at REDIS_URL.

They read ``CONFIG GET``; these cases change the server's configuration with ``CONFIG SET`` and
restore it. Parallel tox environments share the server, so a lock key in Redis serializes the
cases that change it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from django.conf import settings
from django_redis import get_redis_connection

from django_workflows.backends.redis import RedisBackend
from django_workflows.backends.redis.checks import persistence_messages

pytestmark = pytest.mark.redis

_LOCK = "django_workflows:tests:server-config-lock"


@contextmanager
def server_config(**settings: str) -> Iterator[None]:
    """Apply ``CONFIG SET`` values (names with ``_`` for ``-``) and restore the old ones."""
    connection = get_redis_connection("workflows")
    token = uuid.uuid4().hex
    deadline = time.monotonic() + 60
    while not connection.set(_LOCK, token, nx=True, px=30_000):
        assert time.monotonic() < deadline, "another test run kept the Redis config lock for 60 s"
        time.sleep(0.05)
    names = {name.replace("_", "-"): value for name, value in settings.items()}
    saved = {name: connection.config_get(name)[name] for name in names}
    try:
        for name, value in names.items():
            connection.config_set(name, value)
        yield
    finally:
        for name, value in saved.items():
            connection.config_set(name, value)
        if connection.get(_LOCK) == token.encode():
            connection.delete(_LOCK)


def _ids(backend: RedisBackend) -> list[str]:
    return [message.id for message in backend.check()]


@pytest.fixture
def backend() -> RedisBackend:
    return RedisBackend(connection="workflows", key_prefix=f"wf-check-test-{uuid.uuid4().hex[:8]}:")


def test_warns_without_append_only_file(backend: RedisBackend) -> None:
    # The CI server runs with --appendonly no: this is the warning it gets.
    with server_config(appendonly="no", maxmemory_policy="noeviction"):
        messages = backend.check()
    assert [m.id for m in messages] == ["django_workflows.W020"]
    assert "appendonly" in messages[0].msg and "'workflows'" in messages[0].msg


def test_warns_when_keys_may_be_evicted(backend: RedisBackend) -> None:
    with server_config(appendonly="yes", maxmemory_policy="allkeys-lru"):
        messages = backend.check()
    assert [m.id for m in messages] == ["django_workflows.W021"]
    assert "allkeys-lru" in messages[0].msg


def test_silent_on_a_durable_server(backend: RedisBackend) -> None:
    with server_config(appendonly="yes", maxmemory_policy="noeviction"):
        assert _ids(backend) == []


def test_says_so_when_the_server_refuses_config() -> None:
    # Managed Redis services often deny CONFIG; a user without it stands in for one.
    admin = get_redis_connection("workflows")
    user, password = f"wf-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all", "-config"])
    try:
        url = settings.CACHES["workflows"]["LOCATION"]
        client = redis.Redis.from_url(url, username=user, password=password)
        (message,) = persistence_messages(client, "workflows")
        client.close()
    finally:
        admin.acl_deluser(user)
    assert message.id == "django_workflows.I020"
    assert "Could not check" in message.msg and message.hint
