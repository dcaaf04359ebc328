"""Polling on the ORM backend: timers, stickiness, queues, and the in-process wake-ups that let a
poller return as soon as this process commits work for it (instead of at the next
``poll_interval``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections

from django_workflows.engine.clock import utcnow
from django_workflows.engine.history import (
    EventType,
    TimerFiredAttributes,
    TimerScheduledAttributes,
    new_event,
)
from django_workflows.testing.conformance.support import (
    complete,
    new_instance,
    poll_workflow_task,
    signal_event,
    started_event,
    wait_until,
)

from . import test_orm_support
from .test_orm_support import BackendMaker, activity_event, started_task

pytestmark = pytest.mark.django_db(transaction=True)
orm = test_orm_support.orm  # the fixture

#: A poll interval no test waits for: only a wake-up can end a poll early.
NEVER = 3600.0


def _in_thread(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Start ``fn`` in a thread; the returned callable joins it and returns its result."""
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(fn())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()

    def join() -> Any:
        thread.join(60)
        assert not thread.is_alive() and results, "the poller did not return"
        return results[0]

    return join


def test_timer_becomes_visible_at_its_time_and_wakes_the_poller(orm: BackendMaker) -> None:
    backend = orm(poll_interval=NEVER)
    task = started_task(backend)
    at = utcnow() + timedelta(seconds=1)
    scheduled = new_event(TimerScheduledAttributes(at=at), utcnow(), schedule_event_id=1)
    fired = new_event(TimerFiredAttributes(scheduled_at=utcnow(), at=at), utcnow(), schedule_event_id=1, visible_at=at)
    complete(backend, task, extra=[scheduled], timer_events=[fired])
    assert backend.get_workflow_task(["default"], 0) is None
    # Without the wake-up for the timer this poll would sleep through its whole timeout.
    timer_task = backend.get_workflow_task(["default"], 20)
    assert timer_task is not None
    assert [e.id for e in timer_task.new_events] == [fired.id]
    assert utcnow() >= at - timedelta(seconds=0.1)  # not before its time (same host: clocks agree)


def test_start_wakes_a_waiting_workflow_poller_of_another_backend_object(orm: BackendMaker) -> None:
    worker, client = orm(poll_interval=NEVER), orm()
    join = _in_thread(lambda: worker.get_workflow_task(["default"], 20))
    instance = new_instance()
    client.create_workflow_instance(instance, started_event())
    task = join()
    assert task is not None and task.instance == instance


def test_signal_wakes_a_waiting_workflow_poller(orm: BackendMaker) -> None:
    worker, client = orm(poll_interval=NEVER), orm()
    task = started_task(worker)
    complete(worker, task)
    join = _in_thread(lambda: worker.get_workflow_task(["default"], 20))
    client.signal_workflow(task.instance.instance_id, signal_event())
    woken = join()
    assert woken is not None and [e.type for e in woken.new_events] == [EventType.SIGNAL_RECEIVED]


def test_scheduled_activity_wakes_a_waiting_activity_poller(orm: BackendMaker) -> None:
    backend = orm(poll_interval=NEVER)
    task = started_task(backend)
    join = _in_thread(lambda: backend.get_activity_task(["default"], 20))
    complete(backend, task, extra=[activity_event(1)], activity_events=[activity_event(1)])
    activity = join()
    assert activity is not None and activity.instance == task.instance


def test_poll_interval_finds_work_committed_by_others(orm: BackendMaker) -> None:
    # Another process's commit wakes nobody here: the poller finds it at its next look.
    backend = orm(poll_interval=0.05)
    join = _in_thread(lambda: backend.get_workflow_task(["default"], 20))
    instance = new_instance()
    other_process = orm()
    other_process.store.waker = type(backend.store.waker)()  # its own wake-ups, as in another process
    other_process.create_workflow_instance(instance, started_event())
    task = join()
    assert task is not None and task.instance == instance


def test_sticky_instance_stays_with_its_worker_until_sticky_timeout(orm: BackendMaker) -> None:
    mine, other = orm(worker_name="mine", sticky_timeout=1.5), orm(worker_name="other")
    task = started_task(mine)
    complete(mine, task)
    mine.signal_workflow(task.instance.instance_id, signal_event())
    assert other.get_workflow_task(["default"], 0) is None
    again = mine.get_workflow_task(["default"], 0)
    assert again is not None
    complete(mine, again)
    mine.signal_workflow(task.instance.instance_id, signal_event())
    assert other.get_workflow_task(["default"], 0) is None
    taken = wait_until(lambda: other.get_workflow_task(["default"], 0.1), what="stickiness to expire")
    assert taken.instance == task.instance


def test_queues_filter_workflow_and_activity_tasks(orm: BackendMaker) -> None:
    backend = orm()
    instance = new_instance()
    backend.create_workflow_instance(instance, started_event(queue="billing"))
    assert backend.get_workflow_task(["default", "shipping"], 0) is None
    task = poll_workflow_task(backend, ["billing"])
    complete(
        backend,
        task,
        extra=[activity_event(1), activity_event(2, queue="gpu")],
        activity_events=[activity_event(1), activity_event(2, queue="gpu")],
    )
    first = backend.get_activity_task(["gpu"], 0)
    assert first is not None and first.event.schedule_event_id == 2
    assert backend.get_activity_task(["gpu", "default"], 0) is None  # the activity queue is the task's
    second = backend.get_activity_task(["billing"], 0)
    assert second is not None and second.event.schedule_event_id == 1


def test_task_scope_closes_connections_that_outlived_their_age(orm: BackendMaker) -> None:
    """Before every task: a connection that aged out (or broke) during one task is closed
    before the next task on the same thread uses it."""
    backend = orm()

    def inside_a_worker_thread() -> bool:
        connection = connections["default"]
        connection.ensure_connection()
        connection.close_at = 0  # as if CONN_MAX_AGE had passed
        with backend.task_scope():
            closed_before_the_task = connection.connection is None
            connection.ensure_connection()
            connection.close_at = 0  # this task's connection ages out in turn
        with backend.task_scope():
            closed_before_the_next_task = connection.connection is None
        return closed_before_the_task and closed_before_the_next_task

    assert _in_thread(inside_a_worker_thread)() is True


def test_task_scope_gives_the_connection_back_after_the_task(orm: BackendMaker) -> None:
    """After every task too: a thread that waits for its next task holds no connection past
    CONN_MAX_AGE (0 by default: none), so idle task threads neither hold server connections
    nor empty Django's connection pool."""
    backend = orm()

    def inside_a_worker_thread() -> tuple[bool, bool]:
        connection = connections["default"]
        with backend.task_scope():
            connection.ensure_connection()
            connection.close_at = 0  # CONN_MAX_AGE = 0
            open_during_the_task = connection.connection is not None
        return open_during_the_task, connection.connection is None

    assert _in_thread(inside_a_worker_thread)() == (True, True)
