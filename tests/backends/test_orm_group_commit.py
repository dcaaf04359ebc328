"""Activity completions of the ORM backend share transactions (``GroupCommit``), on the database
of this run: the results of a batch all arrive, a lost lease in a batch fails only its own
caller, and a batch never waits for one execution's lock while it holds another's."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections, transaction

from django_workflows.backends.orm import OrmBackend
from django_workflows.engine.backend import ActivityTask
from django_workflows.engine.clock import utcnow
from django_workflows.engine.errors import LeaseLost
from django_workflows.engine.history import ActivityCompletedAttributes, Event, new_event
from django_workflows.models import ActivityTask as ActivityRow
from django_workflows.models import PendingEvent
from django_workflows.models import WorkflowInstance as InstanceRow
from django_workflows.testing.conformance.support import complete, poll_workflow_task, wait_until

from . import test_orm_support
from .held_batch import HeldFirstBatch
from .test_orm_support import VENDOR, BackendMaker, row, schedule_activities

pytestmark = pytest.mark.django_db(transaction=True)
orm = test_orm_support.orm  # the fixture


def _result(task: ActivityTask) -> Event:
    return new_event(
        ActivityCompletedAttributes(result=f'"{task.activity_id}"'), utcnow(), schedule_event_id=task.event.schedule_event_id
    )


def _claim(backend: OrmBackend, count: int) -> list[ActivityTask]:
    tasks: list[ActivityTask] = []
    while len(tasks) < count:
        claimed = backend.get_activity_tasks(["default"], 5, count - len(tasks))
        assert claimed, f"only {len(tasks)} of {count} activities were handed out"
        tasks += claimed
    return sorted(tasks, key=lambda task: int(task.id))


def _held_first_batch(backend: OrmBackend) -> HeldFirstBatch:
    group = backend.activity_tasks._group
    assert group is not None, "this database should group completions"
    return HeldFirstBatch(group)


def _completing(backend: OrmBackend) -> Callable[[ActivityTask], Any]:
    """Completes a task in a thread of its own, closing that thread's connections after."""

    def complete_one(task: ActivityTask) -> Any:
        try:
            return backend.complete_activity_task(task, _result(task))
        finally:
            connections.close_all()

    return complete_one


def _delivered(backend: OrmBackend, count: int) -> list[int]:
    """Run the workflow's tasks until ``count`` activity results arrived; their schedule ids."""
    delivered: list[int] = []
    while len(delivered) < count:
        task = poll_workflow_task(backend)
        delivered += [event.schedule_event_id for event in task.new_events]
        complete(backend, task)
    return sorted(delivered)


def test_completions_that_arrive_together_share_one_transaction(orm: BackendMaker) -> None:
    backend = orm()
    schedule_activities(backend, 8)
    tasks = _claim(backend, 8)
    held = _held_first_batch(backend)
    outcomes = held.complete_together(_completing(backend), tasks[0], tasks[1:])
    assert outcomes == {task.id: None for task in tasks}, outcomes
    assert (held.group.batches, held.group.items) == (2, 8)
    assert not ActivityRow.objects.exists()
    assert _delivered(backend, 8) == list(range(1, 9))


def test_a_lost_lease_in_a_batch_fails_only_its_own_completion(orm: BackendMaker) -> None:
    backend, thief = orm(), orm(worker_name="thief")
    instance = schedule_activities(backend, 4)
    tasks = _claim(backend, 4)
    # The lease of the third runs out and another worker takes the activity over.
    ActivityRow.objects.filter(pk=int(tasks[2].id)).update(locked_until=utcnow().replace(year=2000))
    (stolen,) = thief.get_activity_tasks(["default"], 5, 1)
    assert stolen.id == tasks[2].id
    held = _held_first_batch(backend)
    outcomes = held.complete_together(_completing(backend), tasks[0], tasks[1:])
    assert isinstance(outcomes[tasks[2].id], LeaseLost), outcomes
    assert [outcomes[task.id] for task in tasks if task is not tasks[2]] == [None, None, None]
    pending = PendingEvent.objects.filter(instance=row(instance), event_type="ActivityCompleted")
    assert sorted(pending.values_list("schedule_event_id", flat=True)) == [1, 2, 4]
    assert list(ActivityRow.objects.values_list("pk", flat=True)) == [int(stolen.id)]


@pytest.mark.skipif(VENDOR == "sqlite", reason="SQLite has no row locks: a batch never waits for one execution")
def test_a_batch_does_not_wait_for_a_second_execution_while_holding_the_first(orm: BackendMaker) -> None:
    backend = orm()
    first = schedule_activities(backend, 2)  # created first: the lower row id, locked first
    second = schedule_activities(backend, 1)
    tasks = _claim(backend, 3)
    lead, of_first, of_second = tasks
    assert (lead.instance, of_first.instance, of_second.instance) == (first, first, second)

    holding, let_go = threading.Event(), threading.Event()

    def hold_second() -> None:
        try:
            with transaction.atomic():
                InstanceRow.objects.select_for_update().get(pk=row(second).pk)
                holding.set()
                assert let_go.wait(60)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_second)
    holder.start()
    assert holding.wait(30)
    held = _held_first_batch(backend)
    finished: dict[str, Any] = {}
    batch = threading.Thread(
        target=lambda: finished.update(held.complete_together(_completing(backend), lead, [of_first, of_second]))
    )
    batch.start()
    # The first execution's result commits while the second execution is still locked...
    first_results = PendingEvent.objects.filter(instance=row(first), event_type="ActivityCompleted")
    wait_until(lambda: first_results.count() == 2, what="the first execution's results to commit")
    assert batch.is_alive()
    assert not PendingEvent.objects.filter(instance=row(second), event_type="ActivityCompleted").exists()
    # ... and the second's follows once its lock is free.
    let_go.set()
    holder.join(30)
    batch.join(60)
    assert not batch.is_alive()
    assert finished == {lead.id: None, of_first.id: None, of_second.id: None}, finished
    assert PendingEvent.objects.filter(instance=row(second), event_type="ActivityCompleted").count() == 1
    assert held.group.batches == 2  # the deferred completion went in the same call, a second transaction


def test_a_completion_inside_the_callers_transaction_goes_alone(orm: BackendMaker) -> None:
    """Another caller's completion must not ride in a transaction that may still roll back."""
    backend = orm()
    instance = schedule_activities(backend, 1)
    (task,) = _claim(backend, 1)
    group = backend.activity_tasks._group
    assert group is not None

    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack), transaction.atomic():
        backend.complete_activity_task(task, _result(task))
        assert PendingEvent.objects.filter(instance=row(instance), event_type="ActivityCompleted").exists()
        raise RolledBack()
    assert group.items == 0
    assert not PendingEvent.objects.filter(instance=row(instance), event_type="ActivityCompleted").exists()
    assert ActivityRow.objects.filter(pk=int(task.id)).exists()
