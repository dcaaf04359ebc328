"""An in-process worker on the configured ORM backend for the Django-layer tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django_workflows.backends import default_backend
from django_workflows.client import Client
from django_workflows.engine.registry import Registry
from django_workflows.worker import Worker, WorkerOptions


@contextmanager
def running_worker(
    workflows: Iterable[Callable[..., Any]],
    activities: Iterable[Callable[..., Any]],
    options: WorkerOptions | None = None,
    before_stop: Callable[[], None] | None = None,
) -> Iterator[Client]:
    """Run a worker with these workflows and activities (one poller of each kind unless
    ``options`` say otherwise); yield a client of its registry. ``before_stop`` runs first when
    the block ends (e.g. to release activities that wait on a gate)."""
    backend = default_backend()
    registry = Registry()
    worker = Worker(backend, options or WorkerOptions(workflow_pollers=1, activity_pollers=1), registry=registry)
    for fn in workflows:
        worker.register_workflow(fn)
    for fn in activities:
        worker.register_activity(fn)
    worker.start()
    try:
        yield Client(backend, registry=registry)
    finally:
        if before_stop is not None:
            before_stop()
        worker.stop()
        assert worker.wait_for_completion(timeout=60), "the worker did not stop in time"
        # The worker's threads are gone: close the database connections they leave behind, so
        # that PostgreSQL can drop the test database and SQLite can change its journal mode.
        backend.close()
