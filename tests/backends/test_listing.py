"""``Backend.list_workflow_instances`` on every backend (memory, ORM, Redis): filters, order,
pages and cursors; and ``get_pending_events``."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from django_workflows.engine.backend import ExecutionResult, InstanceInfo, WorkflowTaskCompletion
from django_workflows.engine.clock import system_clock
from django_workflows.engine.core import InstanceState, WorkflowInstance, new_execution_id
from django_workflows.engine.errors import InstanceNotFound
from django_workflows.engine.history import (
    EventType,
    SignalReceivedAttributes,
    TimerFiredAttributes,
    WorkflowExecutionStartedAttributes,
    new_event,
)
from django_workflows.engine.listing import MAX_LIST_LIMIT, InstanceFilter


def _create(backend: Any, instance_id: str, name: str = "wf", queue: str = "default", parent: Any = None) -> WorkflowInstance:
    instance = WorkflowInstance(instance_id, new_execution_id(), parent=parent, parent_event_id=3 if parent else 0)
    event = new_event(WorkflowExecutionStartedAttributes(name=name, queue=queue), system_clock.now())
    backend.create_workflow_instance(instance, event)
    # Creation times are the store's clock; a pause keeps them apart on stores with ms resolution.
    time.sleep(0.005)
    return instance


def _ids(infos: list[InstanceInfo]) -> list[str]:
    return [info.instance.instance_id for info in infos]


def _all_pages(backend: Any, limit: int, filter: InstanceFilter | None = None) -> list[list[str]]:
    pages, cursor = [], None
    for _ in range(50):  # a cursor that does not advance must fail the test, not hang it
        page = backend.list_workflow_instances(filter, limit=limit, cursor=cursor)
        pages.append(_ids(page.instances))
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
    raise AssertionError(f"the cursor does not advance: {pages[-3:]}")


def test_pages_newest_first(backend_factory: Callable[..., Any]) -> None:
    backend = backend_factory()
    for n in range(7):
        _create(backend, f"page-{n}")
    assert _all_pages(backend, 3) == [["page-6", "page-5", "page-4"], ["page-3", "page-2", "page-1"], ["page-0"]]
    assert _all_pages(backend, 7) == [[f"page-{n}" for n in range(6, -1, -1)]]
    first = backend.list_workflow_instances(limit=2).instances[0]
    assert first.workflow_name == "wf" and first.queue == "default" and first.state is InstanceState.ACTIVE
    assert first.created_at.tzinfo is not None and first.completed_at is None


def test_a_page_is_stable_while_instances_arrive(backend_factory: Callable[..., Any]) -> None:
    backend = backend_factory()
    for n in range(4):
        _create(backend, f"stable-{n}")
    page = backend.list_workflow_instances(limit=2)
    assert _ids(page.instances) == ["stable-3", "stable-2"]
    _create(backend, "stable-new")  # newer than everything: it belongs before page 1, not in page 2
    second = backend.list_workflow_instances(limit=2, cursor=page.next_cursor)
    assert _ids(second.instances) == ["stable-1", "stable-0"]
    assert second.next_cursor is None


def test_filters(backend_factory: Callable[..., Any]) -> None:
    backend = backend_factory()
    parent = _create(backend, "order-1", name="order")
    _create(backend, "order-2", name="order", queue="priority")
    child = _create(backend, "order-1-ship", name="ship", parent=parent)
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    time.sleep(0.01)
    late = _create(backend, "refund-1", name="refund")
    backend.terminate_workflow_instance(late, "test")

    def ids(**fields: Any) -> list[str]:
        return _ids(backend.list_workflow_instances(InstanceFilter(**fields), limit=100).instances)

    assert ids(workflow_name="order") == ["order-2", "order-1"]
    assert ids(queue="priority") == ["order-2"]
    assert ids(instance_id_prefix="order-1") == ["order-1-ship", "order-1"]
    assert ids(instance_id_prefix="nothing") == []
    assert ids(parent=parent) == ["order-1-ship"]
    assert ids(state=InstanceState.FINISHED) == ["refund-1"]
    assert ids(state=InstanceState.ACTIVE, workflow_name="ship") == ["order-1-ship"]
    assert ids(created_after=since) == ["refund-1"]
    finished = backend.list_workflow_instances(InstanceFilter(state=InstanceState.FINISHED)).instances[0]
    assert finished.completed_at is not None
    (listed_child,) = backend.list_workflow_instances(InstanceFilter(parent=parent)).instances
    assert listed_child.instance == child and listed_child.instance.parent == parent
    # A filtered listing pages too.
    assert _all_pages(backend, 1, InstanceFilter(instance_id_prefix="order")) == [["order-1-ship"], ["order-2"], ["order-1"]]


def test_bad_limits_and_cursors(backend_factory: Callable[..., Any]) -> None:
    backend = backend_factory()
    for limit in (0, MAX_LIST_LIMIT + 1):
        with pytest.raises(ValueError, match=f"limit must be between 1 and {MAX_LIST_LIMIT}"):
            backend.list_workflow_instances(limit=limit)
    with pytest.raises(ValueError, match="invalid listing cursor 'garbage'"):
        backend.list_workflow_instances(cursor="garbage")


def test_pending_events(backend_factory: Callable[..., Any]) -> None:
    backend = backend_factory()
    instance = _create(backend, "inbox-1")
    backend.signal_workflow("inbox-1", new_event(SignalReceivedAttributes(name="approve", arg="true"), system_clock.now()))
    pending = backend.get_pending_events(instance)
    assert [e.type for e in pending] == [EventType.WORKFLOW_EXECUTION_STARTED, EventType.SIGNAL_RECEIVED]
    assert pending[1].attributes == SignalReceivedAttributes(name="approve", arg="true")
    # A timer: a future event of the execution, with its visible_at, after the visible ones.
    task = backend.get_workflow_task(["default"], 5)
    assert task is not None
    now = system_clock.now()
    at = now + timedelta(hours=1)
    fired = new_event(TimerFiredAttributes(scheduled_at=now, at=at, name="later"), now, schedule_event_id=1, visible_at=at)
    executed = [e.with_sequence_id(n) for n, e in enumerate(task.new_events, 1)]
    backend.complete_workflow_task(
        task, WorkflowTaskCompletion(ExecutionResult(state=InstanceState.ACTIVE, executed=executed, timer_events=[fired]))
    )
    (timer,) = backend.get_pending_events(instance)
    assert timer.type is EventType.TIMER_FIRED and timer.visible_at is not None
    assert abs((timer.visible_at - at).total_seconds()) < 0.01
    with pytest.raises(InstanceNotFound):
        backend.get_pending_events(WorkflowInstance("inbox-1", "no-such-execution"))
