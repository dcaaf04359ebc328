"""The order of workflow-task claims (issue 21): the ready work of executions that already run
comes before the starts of new instances, however much older the starts are, and starts still
get a floor share of the claims while running work keeps coming."""

from __future__ import annotations

from typing import Any

from django_workflows.backends.orm.workflow_tasks import START_SHARE
from django_workflows.engine.core import WorkflowInstance
from django_workflows.engine.history import WorkflowEvent
from django_workflows.models import PendingEvent
from django_workflows.testing.conformance.support import (
    complete,
    new_instance,
    poll_workflow_task,
    signal_event,
    started_event,
)

from . import test_orm_support
from .test_orm_support import BackendMaker, continue_as_new, row, started_task

orm = test_orm_support.orm  # the fixture


def _running_behind_a_backlog(backend: Any, starts: int) -> tuple[WorkflowInstance, list[WorkflowInstance]]:
    """An execution that runs, with an event ready that is younger than every start of a
    backlog of ``starts`` new instances; returns (it, the backlog)."""
    task = started_task(backend)
    backlog = [new_instance() for _ in range(starts)]
    backend.create_workflow_instances([(instance, started_event()) for instance in backlog])
    complete(backend, task)
    backend.signal_workflow(task.instance.instance_id, signal_event())
    return task.instance, backlog


def test_running_work_is_claimed_before_older_starts(orm: BackendMaker) -> None:
    backend = orm()
    running, backlog = _running_behind_a_backlog(backend, 5)
    assert poll_workflow_task(backend).instance == running
    # With no running work ready, the starts, oldest first.
    assert [poll_workflow_task(backend).instance for _ in backlog] == backlog


def test_a_batch_claim_takes_running_work_first(orm: BackendMaker) -> None:
    backend = orm()
    started = [started_task(backend) for _ in range(3)]
    backend.create_workflow_instances([(new_instance(), started_event()) for _ in range(6)])
    for task in started:
        complete(backend, task)
        backend.signal_workflow(task.instance.instance_id, signal_event())
    # Three running, then (a floor share owed by now: none yet) starts fill the batch.
    tasks = backend.get_workflow_tasks(["default"], 1.0, 4)
    assert {t.instance for t in tasks[:3]} == {t.instance for t in started}
    assert len(tasks) == 4 and tasks[3].instance not in {t.instance for t in started}


def test_starts_get_a_floor_share_while_running_work_keeps_coming(orm: BackendMaker) -> None:
    backend = orm()
    running, _ = _running_behind_a_backlog(backend, 4)
    kinds = []
    for _ in range(3 * START_SHARE):
        claimed = poll_workflow_task(backend)
        if claimed.instance == running:
            kinds.append("running")
            complete(backend, claimed)
            backend.signal_workflow(running.instance_id, signal_event())  # running work is ready again
        else:
            kinds.append("start")  # left leased: it does not come back
    assert kinds == (["running"] * (START_SHARE - 1) + ["start"]) * 3


def test_only_starts_from_outside_a_workflow_count_as_new_instances(orm: BackendMaker) -> None:
    backend = orm()
    root = new_instance()
    backend.create_workflow_instance(root, started_event())
    assert list(PendingEvent.objects.filter(instance=row(root)).values_list("new_instance", flat=True)) == [True]
    task = poll_workflow_task(backend)
    # A sub-workflow's start is part of its parent's work, and so is a continued execution.
    child = new_instance(parent=root, parent_event_id=1)
    complete(backend, task, workflow_events=[WorkflowEvent(child, started_event())])
    assert list(PendingEvent.objects.filter(instance=row(child)).values_list("new_instance", flat=True)) == [False]
    successor = continue_as_new(backend, poll_workflow_task(backend))
    assert list(PendingEvent.objects.filter(instance=row(successor)).values_list("new_instance", flat=True)) == [False]
    # A signal to a running execution, too.
    backend.signal_workflow(successor.instance_id, signal_event())
    assert sorted(PendingEvent.objects.filter(instance=row(successor)).values_list("new_instance", flat=True)) == [False, False]
