"""Completions survive a transient store error (``django_workflows.completions``), on every backend.

The error is injected at the backend boundary: the worker's call of ``complete_activity_task``
or ``complete_workflow_task`` fails once with the error the store's client raises when the
connection drops, either *before* the write (nothing committed: the retry commits) or *after*
it (an ambiguous commit: the store has the completion, the worker never got the reply, and the
retry meets the lease fence). Either way the workflow ends with the right result, every
activity ran once, and the history holds every event once.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.history import EventType
from django_workflows.worker import Worker, WorkerOptions
from django_workflows.workflow import ActivityOptions, RetryOptions

_runs: Counter[str] = Counter()
_runs_lock = threading.Lock()


def count_run(key: str, step: int) -> int:
    with _runs_lock:
        _runs[f"{key}/{step}"] += 1
    return step * 10


async def two_steps(ctx: workflow.Context, key: str) -> int:
    # One attempt per activity: a repeated run would show in the counts, not be retried away.
    options = ActivityOptions(retry_options=RetryOptions(max_attempts=1))
    first = await workflow.execute_activity(ctx, options, count_run, key, 1)
    second = await workflow.execute_activity(ctx, options, count_run, key, 2)
    return first + second


def transient_error(backend: Any) -> Exception:
    """What the backend's client raises when its connection drops mid-call."""
    module = type(backend).__module__
    if module.startswith("django_workflows.backends.orm"):
        from django.db import OperationalError

        return OperationalError(2013, "Lost connection to server during query")
    if module.startswith("django_workflows.backends.redis"):
        from redis.exceptions import ConnectionError as RedisConnectionError

        return RedisConnectionError("Connection closed by server.")
    return ConnectionError("connection reset by peer")


def fail_once(backend: Any, method: str, *, after_commit: bool) -> list[str]:
    """Make the first call of ``backend.<method>`` fail with a transient error, before or after
    the real call; returns a list that records the injection."""
    real = getattr(backend, method)
    injected: list[str] = []
    lock = threading.Lock()

    def flaky(*args: Any, **kwargs: Any) -> Any:
        with lock:
            first = not injected
            if first:
                injected.append(method)
        if not first:
            return real(*args, **kwargs)
        if after_commit:
            real(*args, **kwargs)  # committed; the reply is lost
        raise transient_error(backend)

    setattr(backend, method, flaky)
    return injected


def _run(backend: Any, key: str) -> tuple[int, list[Any]]:
    queue = f"q-{uuid.uuid4().hex[:8]}"
    options = WorkerOptions(workflow_queues=[queue], activity_queues=[queue], run_scheduler=False, worker_heartbeat_interval=0)
    worker = Worker(backend, options)
    worker.register_workflow(two_steps)
    worker.register_activity(count_run)
    with worker:
        client = Client(backend, registry=worker.registry)
        instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), two_steps, key)
        result = client.get_workflow_result(instance, timeout=90)
    return result, backend.get_workflow_instance_history(instance)


def assert_recorded_once(history: list[Any]) -> None:
    ids = [event.id for event in history]
    assert len(ids) == len(set(ids)), "an event was recorded twice"
    assert [event.sequence_id for event in history] == list(range(1, len(history) + 1))
    kinds = Counter(event.type for event in history)
    assert kinds[EventType.ACTIVITY_SCHEDULED] == 2
    assert kinds[EventType.ACTIVITY_COMPLETED] == 2
    assert kinds[EventType.WORKFLOW_EXECUTION_STARTED] == 1
    assert kinds[EventType.WORKFLOW_EXECUTION_FINISHED] == 1


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "ambiguous-commit"])
@pytest.mark.parametrize("method", ["complete_activity_task", "complete_workflow_task"])
def test_a_completion_survives_a_transient_store_error(
    backend_factory: Callable[..., Any], method: str, after_commit: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Short leases: what an ambiguous commit leased to the worker (the activities a workflow
    # task schedules, the workflow task an activity result continues) waits out its lease.
    backend = backend_factory(workflow_lock_timeout=3, activity_lock_timeout=3)
    injected = fail_once(backend, method, after_commit=after_commit)
    key = uuid.uuid4().hex
    with caplog.at_level(logging.INFO, logger="django_workflows"):
        result, history = _run(backend, key)
    assert injected == [method]
    assert result == 30
    assert _runs[f"{key}/1"] == 1 and _runs[f"{key}/2"] == 1, "an activity ran again"
    assert_recorded_once(history)
    messages = [record.getMessage() for record in caplog.records]
    assert any("retrying in" in message for message in messages)
    assert not [m for m in messages if "lost the lease" in m]
    found = [m for m in messages if "had committed already" in m]
    assert len(found) == (1 if after_commit else 0)
