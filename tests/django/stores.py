"""The ``store`` fixture: a test runs once with the ORM backend on the test database (the
caller's database, so writes join the caller's transaction) and once with the Redis backend (a
store outside it, so writes wait for the commit), each as the ``default`` alias of ``WORKFLOWS``.

``store.env`` is what a ``manage.py`` or ``python -c`` subprocess needs to use the same store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import override_settings

from django_workflows.backends import workflow_backends
from django_workflows.registration import registry
from django_workflows.worker import Worker, WorkerOptions


@dataclass
class Store:
    name: str
    #: Extra environment of a subprocess on the same store: ``subprocess_env(store.options, **store.env)``
    #: (``tests.conftest``).
    env: dict[str, str] = field(default_factory=dict)
    #: Options of the subprocess's backend (``WORKFLOWS_OPTIONS``).
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> Any:
        return workflow_backends["default"]

    @property
    def in_transaction(self) -> bool:
        """Are writes made inside the caller's transaction (rather than after its commit)?"""
        return self.name == "orm"


@pytest.fixture(params=[pytest.param("orm"), pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "orm":
        setting = {"default": {"BACKEND": "django_workflows.backends.orm.OrmBackend"}}
        with override_settings(WORKFLOWS=setting):
            yield Store("orm", {"WORKFLOWS_BACKEND": "orm"})
        return
    pytest.importorskip("django_redis", reason="the Redis store needs django-redis ([redis] extra)")
    from django_redis import get_redis_connection

    prefix = f"wf-store-test-{uuid.uuid4().hex[:12]}:"
    options = {"connection": "workflows", "key_prefix": prefix}
    setting = {"default": {"BACKEND": "django_workflows.backends.redis.RedisBackend", "OPTIONS": options}}
    try:
        with override_settings(WORKFLOWS=setting):
            yield Store("redis", {"WORKFLOWS_BACKEND": "redis"}, {"key_prefix": prefix})
    finally:
        connection = get_redis_connection("workflows")
        for key in connection.scan_iter(match=f"{prefix}*", count=1000):
            connection.delete(key)


@pytest.fixture
def worker(store: Store) -> Iterator[Worker]:
    """A worker in this process on the store, with everything the apps registered."""
    running = Worker(store.backend, WorkerOptions(workflow_pollers=1, activity_pollers=1), registry=registry)
    running.start()
    yield running
    running.stop()
    assert running.wait_for_completion(60), "the worker did not stop"

