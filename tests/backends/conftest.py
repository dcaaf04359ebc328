"""The ``backend_factory`` fixture: the conformance suite runs once per backend.

Params: ``memory`` (MemoryBackend), ``orm`` (OrmBackend on the default database; the param
is marked ``django_db(transaction=True)`` so that worker threads see committed rows) and ``redis`` (RedisBackend on the
django-redis alias ``workflows``, keys under a prefix unique to the test).

A backend whose module is not in the tree yet is skipped with "backend not built yet": the
ORM and Redis backends are being written in parallel with this suite, and their params start
running as soon as their modules exist (see ``_BACKENDS``). An import error *inside* an existing
module is not skipped; it fails the test.

The contract (see ``django_workflows.testing.conformance``): the first call in a test creates
fresh, empty storage; later calls in the same test return new backend objects with their own
options on that same storage, the way a second worker process sees it.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# param -> module that must exist for the param to run.
_BACKENDS = {
    "memory": "django_workflows.backends.memory",
    "orm": "django_workflows.backends.orm",
    "redis": "django_workflows.backends.redis",
}


def _require_module(name: str) -> Any:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"backend not built yet: {name} does not exist")
    return importlib.import_module(name)


def _memory_factory(request: pytest.FixtureRequest) -> Callable[..., Any]:
    module = _require_module(_BACKENDS["memory"])
    first: list[Any] = []

    def factory(**options: Any) -> Any:
        backend = module.MemoryBackend(**options)
        if not first:
            first.append(backend)
            return backend
        # A second handle on the same in-memory storage: a shallow copy shares the lock and the
        # dicts that hold instances, history and activities, and keeps its own options.
        view = copy.copy(first[0])
        view._options = backend.options
        return view

    return factory


def _orm_factory(request: pytest.FixtureRequest) -> Callable[..., Any]:
    # The orm param carries django_db(transaction=True): worker threads use connections of
    # their own, so the test's writes must be committed, and the tables are emptied afterwards.
    module = _require_module(_BACKENDS["orm"])

    def factory(**options: Any) -> Any:
        return module.OrmBackend(using="default", **options)

    return factory


def _redis_factory(request: pytest.FixtureRequest) -> Callable[..., Any]:
    module = _require_module(_BACKENDS["redis"])
    prefix = f"wf-test-{uuid.uuid4().hex[:12]}"

    def factory(**options: Any) -> Any:
        return module.RedisBackend(connection="workflows", key_prefix=prefix, **options)

    def cleanup() -> None:
        from django_redis import get_redis_connection

        connection = get_redis_connection("workflows")
        keys = list(connection.scan_iter(match=f"{prefix}*", count=1000))
        # Keys of one instance share a hash tag; delete them one by one so that a cluster
        # setup would not reject a multi-key DEL across slots.
        for key in keys:
            connection.delete(key)

    request.addfinalizer(cleanup)
    return factory


_FACTORIES = {"memory": _memory_factory, "orm": _orm_factory, "redis": _redis_factory}


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("orm", marks=pytest.mark.django_db(transaction=True)),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def backend_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    make = _FACTORIES[request.param](request)
    created: list[Any] = []

    def factory(**options: Any) -> Any:
        backend = make(**options)
        created.append(backend)
        return backend

    yield factory
    for backend in created:
        backend.close()
