"""What the ORM backend leaves in its tables: payloads stored once and never orphaned, no inbox
rows for ended executions, outcomes for the admin, removal of every row of an execution, stats,
rejected completions, abandoned activities, and sub-workflow starts on a database without
``INSERT ... RETURNING`` (MySQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Q

from django_workflows.backends.orm import OrmBackend
from django_workflows.engine.backend import ExecutionResult, WorkflowTask, WorkflowTaskCompletion
from django_workflows.engine.clock import utcnow
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import (
    ActivityAbandoned,
    CompletionRejected,
    InstanceNotFinished,
    WorkflowError,
)
from django_workflows.engine.history import (
    Event,
    EventType,
    SubWorkflowScheduledAttributes,
    TimerCanceledAttributes,
    TimerFiredAttributes,
    TimerScheduledAttributes,
    WorkflowEvent,
    WorkflowExecutionFinishedAttributes,
    new_event,
)
from django_workflows.models import ActivityTask as ActivityRow
from django_workflows.models import HistoryEvent, Outcome, Payload, PendingEvent
from django_workflows.models import WorkflowInstance as InstanceRow
from django_workflows.testing.conformance.support import (
    complete,
    new_instance,
    numbered,
    poll_workflow_task,
    signal_event,
    started_event,
    task_started_event,
    wait_until,
)

from . import test_orm_support
from .test_orm_support import (
    BackendMaker,
    activity_event,
    continue_as_new,
    row,
    schedule_activities,
    started_task,
)

pytestmark = pytest.mark.django_db(transaction=True)
orm = test_orm_support.orm  # the fixture


def assert_tables_consistent() -> None:
    """Every payload is used by a row, and no ended execution keeps an inbox."""
    used = Q(pk__in=HistoryEvent.objects.values("payload_id")) | Q(pk__in=PendingEvent.objects.values("payload_id"))
    used |= Q(pk__in=ActivityRow.objects.values("payload_id"))
    assert list(Payload.objects.exclude(used).values_list("pk", flat=True)) == []
    assert not PendingEvent.objects.exclude(instance__state=InstanceState.ACTIVE.value).exists()


def _timer(schedule_event_id: int, seconds: float) -> tuple[Event, Event]:
    at = utcnow() + timedelta(seconds=seconds)
    scheduled = new_event(TimerScheduledAttributes(at=at), utcnow(), schedule_event_id=schedule_event_id)
    fired = new_event(
        TimerFiredAttributes(scheduled_at=utcnow(), at=at), utcnow(), schedule_event_id=schedule_event_id, visible_at=at
    )
    return scheduled, fired


def _finish(backend: OrmBackend, task: WorkflowTask, error: WorkflowError | None = None) -> None:
    finished = new_event(
        WorkflowExecutionFinishedAttributes(result=None if error else "1", error=error.to_info() if error else None),
        utcnow(),
    )
    events = numbered([task_started_event(), *task.new_events, finished], task.last_sequence_id)
    backend.complete_workflow_task(task, WorkflowTaskCompletion(ExecutionResult(state=InstanceState.FINISHED, executed=events)))


def test_each_event_payload_is_stored_once(orm: BackendMaker) -> None:
    backend = orm()
    instance = schedule_activities(backend, 2)
    execution = row(instance)
    scheduled = HistoryEvent.objects.filter(instance=execution, event_type="ActivityScheduled")
    assert sorted(scheduled.values_list("payload_id", flat=True)) == sorted(
        ActivityRow.objects.filter(instance=execution).values_list("payload_id", flat=True)
    )
    # The start event moved from the inbox to the history without copying its payload.
    assert Payload.objects.filter(instance=execution).count() == HistoryEvent.objects.filter(instance=execution).count()
    assert_tables_consistent()


def _signaled_while_a_timer_waits(backend: OrmBackend) -> WorkflowTask:
    """The second task of an instance whose first task scheduled a timer an hour ahead."""
    task = started_task(backend)
    scheduled, fired = _timer(1, 3600)
    complete(backend, task, extra=[scheduled], timer_events=[fired])
    assert PendingEvent.objects.filter(event_id=fired.id).exists()
    backend.signal_workflow(task.instance.instance_id, signal_event())
    return poll_workflow_task(backend)


def test_canceled_timer_deletes_its_future_event_and_payload(orm: BackendMaker) -> None:
    backend = orm()
    task = _signaled_while_a_timer_waits(backend)
    canceled = new_event(TimerCanceledAttributes(), utcnow(), schedule_event_id=1)
    complete(backend, task, extra=[canceled])
    assert not PendingEvent.objects.exists()
    assert_tables_consistent()


def test_ended_execution_keeps_no_inbox(orm: BackendMaker) -> None:
    backend = orm()
    task = _signaled_while_a_timer_waits(backend)
    complete(backend, task, finish=True)
    assert not PendingEvent.objects.exists()
    assert_tables_consistent()


def test_outcomes_for_the_admin(orm: BackendMaker) -> None:
    backend = orm()
    completed, failed, canceled, terminated = (started_task(backend) for _ in range(4))
    _finish(backend, completed)
    _finish(backend, failed, WorkflowError("boom", type="ValueError"))
    _finish(backend, canceled, WorkflowError("context canceled", type="Canceled"))
    backend.terminate_workflow_instance(terminated.instance, "by hand")
    continued = started_task(backend)
    successor = continue_as_new(backend, continued)
    outcomes = {
        task.instance.instance_id: row(task.instance).outcome
        for task in (completed, failed, canceled, terminated, continued)
    }
    assert outcomes == {
        completed.instance.instance_id: Outcome.COMPLETED,
        failed.instance.instance_id: Outcome.FAILED,
        canceled.instance.instance_id: Outcome.CANCELED,
        terminated.instance.instance_id: Outcome.TERMINATED,
        continued.instance.instance_id: Outcome.CONTINUED_AS_NEW,
    }
    assert row(successor).outcome == "" and row(successor).state == InstanceState.ACTIVE.value
    assert all(row(t.instance).completed_at is not None for t in (completed, failed, canceled, terminated, continued))
    assert_tables_consistent()


def test_terminate_rows(orm: BackendMaker) -> None:
    backend = orm()
    instance = schedule_activities(backend, 2)
    backend.signal_workflow(instance.instance_id, signal_event())
    backend.terminate_workflow_instance(instance, "stuck")
    execution = row(instance)
    assert (execution.state, execution.lease_token, execution.active_instance_id) == (2, "", None)
    last = HistoryEvent.objects.filter(instance=execution).order_by("-sequence_id").first()
    assert last is not None and last.event_type == "WorkflowExecutionTerminated"
    assert last.sequence_id == execution.last_sequence_id == HistoryEvent.objects.filter(instance=execution).count()
    assert not ActivityRow.objects.exists()
    assert_tables_consistent()


def test_remove_deletes_every_row_of_the_execution_only(orm: BackendMaker) -> None:
    backend = orm()
    kept = schedule_activities(backend, 1)
    task = started_task(backend)
    with pytest.raises(InstanceNotFinished):
        backend.remove_workflow_instance(task.instance)
    complete(backend, task, extra=[activity_event(1)], activity_events=[activity_event(1)], finish=True)
    removed = row(task.instance).pk
    backend.remove_workflow_instance(task.instance)
    for model in (HistoryEvent, PendingEvent, ActivityRow, Payload):
        assert not model.objects.filter(instance_id=removed).exists(), model
    assert not InstanceRow.objects.filter(pk=removed).exists()
    assert HistoryEvent.objects.filter(instance=row(kept)).exists()
    assert ActivityRow.objects.filter(instance=row(kept)).exists()
    assert_tables_consistent()


def test_remove_finished_instances_in_batches(orm: BackendMaker) -> None:
    backend = orm()
    for _ in range(5):
        complete(backend, started_task(backend), finish=True)
    active = started_task(backend).instance
    cutoff = utcnow() + timedelta(seconds=5)
    assert backend.remove_workflow_instances(finished_before=cutoff, batch_size=2) == 5
    assert list(InstanceRow.objects.values_list("instance_id", flat=True)) == [active.instance_id]
    assert backend.remove_workflow_instances(finished_before=cutoff) == 0
    with pytest.raises(ValueError, match="batch_size"):
        backend.remove_workflow_instances(finished_before=cutoff, batch_size=0)
    assert_tables_consistent()


def test_stats_per_queue(orm: BackendMaker) -> None:
    backend = orm()
    backend.create_workflow_instance(new_instance(), started_event(queue="a"))
    backend.create_workflow_instance(new_instance(), started_event(queue="a"))
    task = started_task(backend, queue="b")
    complete(backend, task, extra=[activity_event(1), activity_event(2, "gpu")], activity_events=[activity_event(1), activity_event(2, "gpu")])
    stats = backend.get_stats()
    assert stats.active_workflow_instances == 3
    assert stats.pending_workflow_tasks == {"a": 2}
    assert stats.pending_activity_tasks == {"b": 1, "gpu": 1}


def test_rejected_completion_releases_the_lease_and_keeps_the_events(orm: BackendMaker) -> None:
    backend = orm(sticky_timeout=30)
    task = started_task(backend)
    backend.signal_workflow(task.instance.instance_id, signal_event())
    with pytest.raises(CompletionRejected):
        complete(backend, task, finish=True)
    execution = row(task.instance)
    assert (execution.state, execution.locked_until, execution.lease_token) == (0, None, "")
    assert execution.sticky_until is None  # any worker may run it again
    assert not HistoryEvent.objects.exists()
    again = poll_workflow_task(orm(worker_name="someone else"))
    assert [e.type for e in again.new_events] == [EventType.WORKFLOW_EXECUTION_STARTED, EventType.SIGNAL_RECEIVED]


def test_activity_at_max_leases_is_failed_and_deleted(orm: BackendMaker) -> None:
    backend = orm(activity_lock_timeout=1, max_activity_leases=2)
    instance = schedule_activities(backend, 1)
    for lease in (1, 2):
        task = wait_until(lambda: backend.get_activity_task(["default"], 0.2), what=f"lease {lease}")
        assert task.lease_count == lease
    wait_until(lambda: not ActivityRow.objects.exists() or backend.get_activity_task(["default"], 0.2), what="abandon")
    assert not ActivityRow.objects.exists()
    (failure,) = PendingEvent.objects.filter(instance=row(instance))
    assert failure.event_type == "ActivityFailed"
    task = poll_workflow_task(backend)
    assert task.new_events[0].attributes.error.type == ActivityAbandoned.default_type  # type: ignore[attr-defined]
    assert_tables_consistent()


@pytest.mark.parametrize("returning", [True, False], ids=["insert-returning", "no-returning"])
def test_sub_workflow_starts(orm: BackendMaker, monkeypatch: pytest.MonkeyPatch, returning: bool) -> None:
    if not returning:
        # MySQL cannot return the ids of a multi-row INSERT: each new execution is its own INSERT.
        monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)
    backend = orm()
    busy = started_task(backend).instance
    task = started_task(backend)
    children = [new_instance(parent=task.instance, parent_event_id=i) for i in (1, 2)]
    duplicate = new_instance(busy.instance_id, parent=task.instance, parent_event_id=3)
    scheduled = [
        new_event(
            SubWorkflowScheduledAttributes(sub_workflow_queue="default", sub_workflow_instance=child, name="child"),
            utcnow(),
            schedule_event_id=child.parent_event_id,
        )
        for child in (*children, duplicate)
    ]
    complete(
        backend,
        task,
        extra=scheduled,
        workflow_events=[WorkflowEvent(child, started_event(name="child")) for child in (*children, duplicate)],
    )
    for child in children:
        child_row = row(child)
        assert (child_row.parent_instance_id, child_row.parent_execution_id) == (
            task.instance.instance_id,
            task.instance.execution_id,
        )
        assert PendingEvent.objects.filter(instance=child_row, event_type="WorkflowExecutionStarted").count() == 1
    assert InstanceRow.objects.filter(instance_id=busy.instance_id).count() == 1
    (failure,) = PendingEvent.objects.filter(instance=row(task.instance))
    assert (failure.event_type, failure.schedule_event_id) == ("SubWorkflowFailed", 3)
    assert_tables_consistent()


def test_remove_continued_as_new_instances(orm: BackendMaker) -> None:
    backend = orm(remove_continued_as_new_instances=True)
    task = started_task(backend)
    schedule_activity = activity_event(1)
    complete(backend, task, extra=[schedule_activity], activity_events=[schedule_activity])
    backend.signal_workflow(task.instance.instance_id, signal_event())
    successor = continue_as_new(backend, poll_workflow_task(backend))
    assert list(InstanceRow.objects.values_list("execution_id", flat=True)) == [successor.execution_id]
    assert not ActivityRow.objects.exists() and not HistoryEvent.objects.exists()
    assert PendingEvent.objects.get().event_type == "WorkflowExecutionStarted"
    assert_tables_consistent()


def test_models_for_the_admin() -> None:
    meta = InstanceRow._meta
    assert {codename for codename, _ in meta.permissions} == {
        "cancel_workflowinstance",
        "terminate_workflowinstance",
        "signal_workflowinstance",
        "remove_workflowinstance",
        "restart_workflowinstance",
        "reset_workflowinstance",
        "view_payloads",  # not an action: decoded payloads in the admin
    }
    assert str(meta.verbose_name) == "workflow instance"
    assert str(InstanceRow(workflow_name="order", instance_id="o-1", execution_id="e1")) == "order o-1 (e1)"
    assert dict(meta.get_field("state").choices) == {0: "Active", 1: "ContinuedAsNew", 2: "Finished"}
    assert str(HistoryEvent(event_type="TimerFired", event_id="e")) == "TimerFired e"
