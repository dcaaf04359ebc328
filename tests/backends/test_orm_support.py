"""Helpers of the ORM backend tests (``test_orm*.py``); no tests here.

The tests drive ``OrmBackend`` by hand, the way a worker does, with the conformance suite's event
builders, and look at the rows the backend wrote.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection, connections
from django.db.models.sql import Query
from django.utils.dateparse import parse_datetime

from django_workflows.backends.orm import OrmBackend
from django_workflows.backends.orm.transactions import DbNow
from django_workflows.engine.backend import ExecutionResult, WorkflowTask, WorkflowTaskCompletion
from django_workflows.engine.clock import utcnow
from django_workflows.engine.core import InstanceState, WorkflowInstance
from django_workflows.engine.history import (
    ActivityScheduledAttributes,
    Event,
    WorkflowEvent,
    WorkflowExecutionContinuedAsNewAttributes,
    new_event,
)
from django_workflows.models import WorkflowInstance as InstanceRow
from django_workflows.testing.conformance.support import (
    complete,
    new_instance,
    numbered,
    poll_workflow_task,
    started_event,
    task_started_event,
)

VENDOR = connection.vendor

#: Backends made by ``orm`` are closed at teardown (closing connections of ended threads).
BackendMaker = Callable[..., OrmBackend]


@pytest.fixture
def orm(transactional_db: Any) -> Iterator[BackendMaker]:
    """``orm(**options)``: a new ``OrmBackend`` on the test database (no stickiness by default)."""
    made: list[OrmBackend] = []

    def make(**options: Any) -> OrmBackend:
        options.setdefault("sticky_timeout", 0)
        backend = OrmBackend(using="default", **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def run_in_threads(count: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` in ``count`` threads released together; return results or raised exceptions.

    Each thread closes its database connection when done, so the test database can be dropped.
    """
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        try:
            barrier.wait()
            return fn(index)
        except Exception as exc:  # noqa: BLE001 - returned to the test, which asserts on it
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def activity_event(schedule_event_id: int, queue: str = "") -> Event:
    return new_event(
        ActivityScheduledAttributes(name="charge", inputs=['"x"'], queue=queue), utcnow(), schedule_event_id=schedule_event_id
    )


def started_task(backend: OrmBackend, instance: WorkflowInstance | None = None, **started: Any) -> WorkflowTask:
    """Create an instance and lease its first workflow task."""
    instance = instance or new_instance()
    backend.create_workflow_instance(instance, started_event(**started))
    return poll_workflow_task(backend, (started.get("queue", "default"),))


def schedule_activities(backend: OrmBackend, count: int, queue: str = "") -> WorkflowInstance:
    """An instance whose first task scheduled ``count`` activities."""
    task = started_task(backend)
    events = [activity_event(i + 1, queue) for i in range(count)]
    complete(backend, task, extra=events, activity_events=events)
    return task.instance


def row(instance: WorkflowInstance) -> InstanceRow:
    return InstanceRow.objects.get(instance_id=instance.instance_id, execution_id=instance.execution_id)


def db_now() -> datetime:
    """The database's clock, read with the backend's own expression."""
    compiler = Query(InstanceRow).get_compiler(using="default")
    sql, params = DbNow().as_sql(compiler, connection)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}", params)
        value = cursor.fetchone()[0]
    if isinstance(value, str):  # SQLite
        value = parse_datetime(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def continue_as_new(backend: OrmBackend, task: WorkflowTask) -> WorkflowInstance:
    """Complete ``task`` with a continue-as-new; return the next execution."""
    successor = new_instance(task.instance.instance_id)
    continued = new_event(WorkflowExecutionContinuedAsNewAttributes(continued_execution_id=successor.execution_id), utcnow())
    result = ExecutionResult(
        state=InstanceState.CONTINUED_AS_NEW,
        executed=numbered([task_started_event(), *task.new_events, continued], task.last_sequence_id),
        workflow_events=[WorkflowEvent(successor, started_event())],
    )
    backend.complete_workflow_task(task, WorkflowTaskCompletion(result))
    return successor
