"""The ORM backend's own guarantees, on the database of this run (DB=sqlite|mysql|postgres):
database-enforced uniqueness, fenced leases, lease times from the database clock, and the number
of SQL statements each step costs. Behaviour shared with every backend is in the conformance
suite; ``test_orm_polling``, ``test_orm_storage`` and ``test_orm_processes`` hold the rest."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from django_workflows.backends.handler import InvalidWorkflowBackend
from django_workflows.backends.orm import OrmBackend
from django_workflows.backends.orm import completion as orm_completion
from django_workflows.engine import clock as engine_clock
from django_workflows.engine.backend import ExecutionResult, LeaseRequest, WorkflowTaskCompletion
from django_workflows.engine.clock import utcnow
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import (
    CompletionRejected,
    InstanceAlreadyExists,
    LeaseLost,
)
from django_workflows.engine.history import (
    ActivityCompletedAttributes,
    SubWorkflowCompletedAttributes,
    WorkflowEvent,
    new_event,
)
from django_workflows.models import HistoryEvent, Payload, PendingEvent
from django_workflows.models import WorkflowInstance as InstanceRow
from django_workflows.testing.conformance.support import (
    cancel_event,
    complete,
    new_instance,
    poll_workflow_task,
    signal_event,
    started_event,
    wait_until,
)

from . import test_orm_support
from .test_orm_support import (
    VENDOR,
    BackendMaker,
    activity_event,
    continue_as_new,
    db_now,
    row,
    run_in_threads,
    schedule_activities,
    started_task,
)

pytestmark = pytest.mark.django_db(transaction=True)
orm = test_orm_support.orm  # the fixture


def _result(schedule_event_id: int) -> Any:
    return new_event(ActivityCompletedAttributes(result='"done"'), utcnow(), schedule_event_id=schedule_event_id)


# -- construction --------------------------------------------------------------------------


def test_unknown_database_alias_is_refused() -> None:
    with pytest.raises(InvalidWorkflowBackend, match="'replica' is not in DATABASES"):
        OrmBackend(using="replica")


def test_a_database_storing_local_times_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(connections.settings["default"], "TIME_ZONE", "Europe/Paris")
    if VENDOR == "postgresql":  # timestamptz: comparisons do not depend on the zone
        assert OrmBackend().using == "default"
    else:
        with pytest.raises(InvalidWorkflowBackend, match="TIME_ZONE'] is 'Europe/Paris'"):
            OrmBackend()


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="poll_interval must be positive"):
        OrmBackend(poll_interval=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'lock_timeout'"):
        OrmBackend(lock_timeout=3)


# -- uniqueness enforced by the database ----------------------------------------------------


def test_history_sequence_ids_are_unique_per_execution(orm: BackendMaker) -> None:
    backend = orm()
    task = started_task(backend)
    complete(backend, task)
    execution = row(task.instance)
    payload = Payload.objects.filter(instance=execution).first()
    assert payload is not None
    with pytest.raises(IntegrityError), transaction.atomic():
        HistoryEvent.objects.create(
            instance=execution, payload=payload, sequence_id=1, event_id="x", event_type="TimerFired", timestamp=utcnow()
        )
    # The same sequence id in another execution is fine.
    other = started_task(backend)
    complete(backend, other)
    assert HistoryEvent.objects.filter(sequence_id=1).count() == 2


def test_a_completion_that_repeats_a_sequence_id_commits_nothing(orm: BackendMaker) -> None:
    backend = orm()
    task = started_task(backend)
    first, second = started_event(), started_event()
    with pytest.raises(IntegrityError):
        executed = [first.with_sequence_id(1), second.with_sequence_id(1)]
        backend.complete_workflow_task(
            task, WorkflowTaskCompletion(ExecutionResult(state=InstanceState.ACTIVE, executed=executed))
        )
    assert not HistoryEvent.objects.exists()
    assert PendingEvent.objects.count() == 1  # the task's event is still waiting
    complete(backend, task)  # the lease survived the rolled back attempt
    assert HistoryEvent.objects.count() == 2


def test_fifty_concurrent_starts_of_one_instance_id(orm: BackendMaker) -> None:
    backend = orm()
    instance_id = "popular"

    def start(_: int) -> str:
        backend.create_workflow_instance(new_instance(instance_id), started_event())
        return "created"

    outcomes = run_in_threads(50, start)
    assert outcomes.count("created") == 1, outcomes
    assert sum(isinstance(o, InstanceAlreadyExists) for o in outcomes) == 49, outcomes
    assert InstanceRow.objects.filter(instance_id=instance_id).count() == 1
    assert InstanceRow.objects.get(instance_id=instance_id).active_instance_id == instance_id


def test_the_active_instance_id_column_tracks_the_execution_state(orm: BackendMaker) -> None:
    backend = orm()
    task = started_task(backend)
    assert row(task.instance).active_instance_id == task.instance.instance_id
    complete(backend, task, finish=True)
    assert row(task.instance).active_instance_id is None
    # With the first execution finished, the database lets a new one of the same id in.
    backend.create_workflow_instance(new_instance(task.instance.instance_id), started_event())
    assert InstanceRow.objects.filter(instance_id=task.instance.instance_id).count() == 2


# -- fenced leases -------------------------------------------------------------------------


def test_stale_workflow_lease_is_fenced_off_after_another_poll_took_it(orm: BackendMaker) -> None:
    first, second = orm(workflow_lock_timeout=1, worker_name="first"), orm(workflow_lock_timeout=1, worker_name="second")
    stale = started_task(first)
    assert second.get_workflow_task(["default"], 0) is None  # leased
    fresh = wait_until(lambda: second.get_workflow_task(["default"], 0.2), what="the lease to expire")
    assert fresh.lease_token != stale.lease_token
    with pytest.raises(LeaseLost):
        first.extend_workflow_task(stale)
    with pytest.raises(LeaseLost):
        complete(first, stale)
    first.abandon_workflow_task(stale)  # a no-op: it must not release the new holder's lease
    assert row(fresh.instance).lease_token == fresh.lease_token
    second.extend_workflow_task(fresh)
    complete(second, fresh)
    assert HistoryEvent.objects.count() == 2


def test_expired_workflow_lease_cannot_be_extended_even_if_nobody_took_it(orm: BackendMaker) -> None:
    backend = orm(workflow_lock_timeout=1)
    task = started_task(backend)
    wait_until(lambda: row(task.instance).locked_until <= db_now(), what="the lease to expire")
    with pytest.raises(LeaseLost):
        backend.extend_workflow_task(task)
    with pytest.raises(LeaseLost):
        complete(backend, task)


def test_stale_activity_lease_is_fenced_off(orm: BackendMaker) -> None:
    first = orm(activity_lock_timeout=1, worker_name="first")
    second = orm(activity_lock_timeout=1, worker_name="second")
    instance = schedule_activities(first, 1)
    stale = first.get_activity_task(["default"], 0)
    assert stale is not None and second.get_activity_task(["default"], 0) is None
    fresh = wait_until(lambda: second.get_activity_task(["default"], 0.2), what="the activity lease to expire")
    assert (fresh.id, fresh.lease_count) == (stale.id, 2)
    with pytest.raises(LeaseLost):
        first.extend_activity_task(stale)
    with pytest.raises(LeaseLost):
        first.complete_activity_task(stale, _result(1))
    first.abandon_activity_task(stale)
    second.complete_activity_task(fresh, _result(1))
    delivered = PendingEvent.objects.filter(instance=row(instance), event_type="ActivityCompleted")
    assert delivered.count() == 1


def test_abandon_releases_the_leases_at_once(orm: BackendMaker) -> None:
    first, second = orm(worker_name="first"), orm(worker_name="second")
    task = started_task(first)
    first.abandon_workflow_task(task)
    again = second.get_workflow_task(["default"], 0)
    assert again is not None and again.instance == task.instance
    complete(second, again, extra=[activity_event(1)], activity_events=[activity_event(1)])
    activity = first.get_activity_task(["default"], 0)
    assert activity is not None
    first.abandon_activity_task(activity)
    retaken = second.get_activity_task(["default"], 0)
    assert retaken is not None and retaken.id == activity.id
    # A graceful release does not count as a lease that ended in a crash.
    assert retaken.lease_count == 1


# -- races ----------------------------------------------------------------------------------


@pytest.fixture
def slow_continue_as_new(orm: BackendMaker, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``start(backend, task) -> join``: continue ``task`` as new in another thread, holding the
    completion's locks for a while after the successor row is written; ``join()`` returns the
    successor once that transaction committed."""
    inside = threading.Event()
    resolve = orm_completion.resolve_deliveries

    def slow_resolve(*args: Any, **kwargs: Any) -> Any:
        deliveries = resolve(*args, **kwargs)  # the successor's row is written here
        if deliveries and not inside.is_set():
            inside.set()
            time.sleep(0.5)  # others now queue behind this transaction's locks
        return deliveries

    monkeypatch.setattr(orm_completion, "resolve_deliveries", slow_resolve)

    def start(backend: OrmBackend, task: Any) -> Any:
        successors: list[Any] = []

        def continue_it() -> None:
            try:
                successors.append(continue_as_new(backend, task))
            finally:
                connections.close_all()

        thread = threading.Thread(target=continue_it)
        thread.start()
        assert inside.wait(30)

        def join() -> Any:
            thread.join(30)
            (successor,) = successors
            return successor

        return join

    return start


def test_signal_racing_continue_as_new_reaches_the_next_execution(orm: BackendMaker, slow_continue_as_new: Any) -> None:
    """The signal's locking SELECT finds the old execution, waits for the completion that
    continues it as new, and must then find the successor (go-workflows issue #493)."""
    backend = orm()
    task = started_task(backend)
    join = slow_continue_as_new(backend, task)
    signaled = backend.signal_workflow(task.instance.instance_id, signal_event())
    successor = join()
    assert signaled == successor
    assert PendingEvent.objects.filter(instance=row(successor), event_type="SignalReceived").count() == 1
    assert not PendingEvent.objects.filter(instance=row(task.instance)).exists()


def test_sub_workflow_cancellation_racing_its_continue_as_new(orm: BackendMaker, slow_continue_as_new: Any) -> None:
    backend = orm()
    parent = started_task(backend)
    child_task = started_task(backend, new_instance(parent=parent.instance, parent_event_id=1))
    join = slow_continue_as_new(backend, child_task)
    cancel = WorkflowEvent(child_task.instance, cancel_event())
    complete(backend, parent, workflow_events=[cancel])
    successor = join()
    assert PendingEvent.objects.filter(instance=row(successor), event_type="WorkflowExecutionCanceled").count() == 1


def _complete_into_each_other(backend: OrmBackend) -> None:
    parent = started_task(backend)
    child = started_task(backend, new_instance(parent=parent.instance, parent_event_id=1))
    result = new_event(SubWorkflowCompletedAttributes(result="1"), utcnow(), schedule_event_id=1)

    def finish_child() -> None:
        complete(backend, child, workflow_events=[WorkflowEvent(parent.instance, result)], finish=True)

    def cancel_child() -> None:
        complete(backend, parent, workflow_events=[WorkflowEvent(child.instance, cancel_event())])

    outcomes = run_in_threads(2, lambda i: (finish_child, cancel_child)[i]())
    assert outcomes[1] is None, outcomes
    if outcomes[0] is None:  # the child finished first: the parent has its result
        assert row(child.instance).state == InstanceState.FINISHED.value
        assert PendingEvent.objects.filter(instance=row(parent.instance), event_type="SubWorkflowCompleted").exists()
    else:  # the cancellation came first: the child must run again to see it
        assert isinstance(outcomes[0], CompletionRejected), outcomes
        assert PendingEvent.objects.filter(instance=row(child.instance), event_type="WorkflowExecutionCanceled").exists()


def test_concurrent_completions_of_a_fan_out_all_reach_the_workflow(orm: BackendMaker) -> None:
    """Activity completions of one execution share its lock where the database can (PostgreSQL,
    MariaDB): none may be lost, and the workflow task sees every result."""
    backend = orm()
    instance = schedule_activities(backend, 24)
    tasks = []
    while len(tasks) < 24:
        claimed = backend.get_activity_tasks(["default"], 5, 24)
        assert claimed, f"only {len(tasks)} of 24 activities were handed out"
        tasks.extend(claimed)

    def finish(index: int) -> str:
        backend.complete_activity_task(tasks[index], _result(tasks[index].event.schedule_event_id))
        return "completed"

    outcomes = run_in_threads(len(tasks), finish)
    assert outcomes == ["completed"] * len(tasks), outcomes
    delivered: list[int] = []
    while len(delivered) < len(tasks):
        workflow_task = poll_workflow_task(backend)
        assert workflow_task.instance == instance
        delivered += [event.schedule_event_id for event in workflow_task.new_events]
        complete(backend, workflow_task)
    assert sorted(delivered) == list(range(1, 25))


def test_a_finishing_completion_waits_for_completions_that_share_the_lock(orm: BackendMaker) -> None:
    """A workflow that finishes while activity results arrive either sees them (the completion
    is rejected while unseen events wait) or they find it finished: nothing is half-applied."""
    backend = orm()
    schedule_activities(backend, 12)
    activity_tasks = backend.get_activity_tasks(["default"], 5, 12)
    workflow_task = None

    def act(index: int) -> str:
        nonlocal workflow_task
        if index == len(activity_tasks):
            try:
                complete(backend, workflow_task, finish=True)
            except CompletionRejected:
                return "rejected"
            return "finished"
        backend.complete_activity_task(activity_tasks[index], _result(activity_tasks[index].event.schedule_event_id))
        return "completed"

    # Hold the workflow task first, so the finishing completion runs among the activity completions.
    backend.complete_activity_task(activity_tasks[0], _result(activity_tasks[0].event.schedule_event_id))
    activity_tasks = activity_tasks[1:]
    workflow_task = poll_workflow_task(backend)
    outcomes = run_in_threads(len(activity_tasks) + 1, act)
    pending = PendingEvent.objects.filter(instance__instance_id=workflow_task.instance.instance_id)
    if outcomes[-1] == "finished":
        # No result had arrived when it finished; the later ones find it finished (their
        # activity rows went with it: LeaseLost) and add nothing.
        assert all(o == "completed" or isinstance(o, LeaseLost) for o in outcomes[:-1]), outcomes
        assert row(workflow_task.instance).state == InstanceState.FINISHED
        assert not pending.exists()
    else:
        assert outcomes == ["completed"] * len(activity_tasks) + ["rejected"], outcomes
        assert row(workflow_task.instance).state == InstanceState.ACTIVE
        assert pending.count() == len(activity_tasks) + 1  # a rejected completion consumes nothing


def test_parent_and_child_completing_into_each_other(orm: BackendMaker) -> None:
    """Each completion locks its own execution, then the other's: a deadlock the database breaks
    by aborting one transaction, which the backend retries. Neither caller sees it."""
    backend = orm()
    for _ in range(3):
        _complete_into_each_other(backend)


# -- the database clock --------------------------------------------------------------------


@pytest.fixture
def shift_python_clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``shift(delta)``: every Python wall clock the backend could read is moved by ``delta``."""
    real_utcnow = engine_clock.utcnow

    def shift(delta: timedelta) -> None:
        def shifted() -> datetime:
            return real_utcnow() + delta

        monkeypatch.setattr(engine_clock.SystemClock, "now", lambda self: shifted())
        monkeypatch.setattr(engine_clock, "utcnow", shifted)
        monkeypatch.setattr("django.utils.timezone.now", shifted)

    return shift


def test_leases_hold_when_the_python_clock_runs_far_ahead(orm: BackendMaker, shift_python_clock: Any) -> None:
    holder, other = orm(worker_name="holder"), orm(worker_name="other")
    task = started_task(holder)
    lease_end = row(task.instance).locked_until
    assert abs((lease_end - db_now()) - holder.options.workflow_lock) < timedelta(seconds=5)
    shift_python_clock(timedelta(days=1))
    # By a Python clock a day ahead the lease is long over; by the database's it is not.
    assert other.get_workflow_task(["default"], 0) is None
    holder.extend_workflow_task(task)
    assert abs((row(task.instance).locked_until - db_now()) - holder.options.workflow_lock) < timedelta(seconds=5)
    complete(holder, task)


def test_expired_leases_are_taken_over_when_the_python_clock_runs_far_behind(
    orm: BackendMaker, shift_python_clock: Any
) -> None:
    holder, other = orm(workflow_lock_timeout=1, worker_name="holder"), orm(worker_name="other")
    task = started_task(holder)
    shift_python_clock(-timedelta(days=1))
    # By a Python clock a day behind the lease would last another day.
    taken = wait_until(lambda: other.get_workflow_task(["default"], 0.2), what="the lease to expire by the DB clock")
    assert taken.instance == task.instance
    with pytest.raises(LeaseLost):
        holder.extend_workflow_task(task)


# -- round trips ---------------------------------------------------------------------------

#: SQL statements per step, BEGIN and COMMIT included (Django logs them as queries): the figures
#: of docs/backends.md. A claim first looks for work with a lock-free read (one statement, no
#: transaction), so idle polls never take a lock. MariaDB has no FOR UPDATE OF, so an activity
#: claim reads the activity's payload and execution in a second SELECT instead of joining them
#: into the locking one.
def statements() -> dict[str, int]:
    # PostgreSQL: one more statement wherever a transaction creates work another process's
    # pollers may take (pg_notify, delivered with the commit).
    notify = 1 if VENDOR == "postgresql" else 0
    return {
        "workflow claim": 6,
        "workflow completion scheduling 1 activity": 7 + notify,
        "activity claim": 6 if VENDOR == "mysql" and not connection.features.has_select_for_update_of else 5,
        "activity completion": 6 + notify,
        "workflow completion finishing": 9,
        "start": 5 + notify,
        "signal": 5 + notify,
    }


def test_statements_per_step(orm: BackendMaker) -> None:
    backend = orm()
    counts: dict[str, int] = {}

    def measure(step: str, fn: Any) -> Any:
        with CaptureQueriesContext(connection) as queries:
            result = fn()
        counts[step] = len(queries.captured_queries)
        return result

    instance = new_instance()
    measure("start", lambda: backend.create_workflow_instance(instance, started_event()))
    task = measure("workflow claim", lambda: backend.get_workflow_task(["default"], 0))
    activity = activity_event(1)
    measure(
        "workflow completion scheduling 1 activity",
        lambda: complete(backend, task, extra=[activity], activity_events=[activity]),
    )
    activity_task = measure("activity claim", lambda: backend.get_activity_task(["default"], 0))
    measure("activity completion", lambda: backend.complete_activity_task(activity_task, _result(1)))
    measure("signal", lambda: backend.signal_workflow(instance.instance_id, signal_event()))
    task = poll_workflow_task(backend)
    measure("workflow completion finishing", lambda: complete(backend, task, finish=True))
    assert counts == statements()
    # Independent of what is in the tables: a second round costs the same.
    schedule_activities(backend, 1)
    activity_task = measure("activity claim", lambda: backend.get_activity_task(["default"], 0))
    measure("activity completion", lambda: backend.complete_activity_task(activity_task, _result(1)))
    assert counts == statements()


def test_statements_do_not_grow_with_the_number_of_events(orm: BackendMaker) -> None:
    backend = orm()
    task = started_task(backend)
    activities = [activity_event(i) for i in range(1, 51)]
    with CaptureQueriesContext(connection) as queries:
        complete(backend, task, extra=activities, activity_events=activities)
    assert len(queries.captured_queries) == statements()["workflow completion scheduling 1 activity"]



# -- bulk creation -----------------------------------------------------------------------------


def _special_starts(client: Any, prefix: str) -> list[Any]:
    """Starts with every optional column set: a parent, metadata, an execution timeout, a start
    delay, another queue."""
    from django_workflows.client import WorkflowInstanceOptions
    from django_workflows.engine.core import WorkflowInstance

    plain = client.prepare_workflow_instance(WorkflowInstanceOptions(instance_id=f"{prefix}-plain"), "wf", 1)
    timed = client.prepare_workflow_instance(
        WorkflowInstanceOptions(instance_id=f"{prefix}-timed", queue="other", execution_timeout=timedelta(minutes=5),
                                start_delay=timedelta(minutes=1)),
        "wf", "x", metadata={"tenant": "acme", "n": [1, 2]},
    )
    child = client.prepare_workflow_instance(WorkflowInstanceOptions(instance_id=f"{prefix}-child"), "wf")
    parented = WorkflowInstance(child.instance.instance_id, child.instance.execution_id, parent=WorkflowInstance("root", "root-e"), parent_event_id=7)
    return [plain, timed, type(child)(parented, child.event, child.span)]


def _rows_of(prefix: str) -> list[tuple[Any, ...]]:
    """What the rows of ``_special_starts(prefix)`` hold, times as offsets from their creation."""
    found = []
    for execution in InstanceRow.objects.filter(instance_id__startswith=prefix + "-").order_by("instance_id"):
        pending = PendingEvent.objects.get(instance=execution)
        payload = Payload.objects.get(pk=pending.payload_id)
        timeout = None if execution.timeout_at is None else round((execution.timeout_at - execution.created_at).total_seconds())
        ready = round((pending.ready_at - execution.created_at).total_seconds())
        found.append((
            execution.instance_id.removeprefix(prefix), execution.active_instance_id.removeprefix(prefix), execution.parent_instance_id,
            execution.parent_execution_id, execution.parent_schedule_event_id, execution.workflow_name, execution.queue, execution.state, execution.outcome,
            execution.metadata, execution.last_sequence_id, execution.locked_until, execution.lease_token, execution.worker, execution.sticky_until,
            execution.blocked_error, execution.blocked_attempts, execution.completed_at, timeout, pending.event_type, pending.queue,
            pending.visible_at is None, ready, pending.new_instance, payload.instance_id == execution.pk, len(payload.data),
        ))
    return found


def test_bulk_creation_writes_the_same_rows_in_small_and_large_batches(orm: BackendMaker) -> None:
    """A large batch (column arrays on PostgreSQL) and a small one (multi-row VALUES) write the
    same rows, execution timeouts and start delays included."""
    from django_workflows.backends.orm.sql import _ARRAY_ROWS
    from django_workflows.client import Client, WorkflowInstanceOptions

    backend = orm()
    client = Client(backend)
    client.create_workflow_instances(_special_starts(client, "small"))
    filler = [client.prepare_workflow_instance(WorkflowInstanceOptions(instance_id=f"fill-{n}"), "wf") for n in range(_ARRAY_ROWS)]
    client.create_workflow_instances([*filler, *_special_starts(client, "large")])
    small, large = _rows_of("small"), _rows_of("large")
    assert small == large and len(small) == 3
    by_name = {row[0]: row for row in large}
    # (timeout counts from the start, after the delay: 60 s + 300 s)
    assert by_name["-timed"][18] == 360 and by_name["-timed"][22] == 60 and by_name["-plain"][18] is None
    assert by_name["-plain"][23] is True and by_name["-child"][23] is False  # a child's start is its parent's work
    assert by_name["-child"][2:5] == ("root", "root-e", 7)


def test_a_large_bulk_creation_joins_the_callers_transaction(orm: BackendMaker) -> None:
    from django_workflows.client import Client, WorkflowInstanceOptions

    backend = orm()
    client = Client(backend)
    prepared = [client.prepare_workflow_instance(WorkflowInstanceOptions(instance_id=f"tx-{n}"), "wf") for n in range(300)]
    with pytest.raises(RuntimeError), transaction.atomic():
        client.create_workflow_instances(prepared)
        assert InstanceRow.objects.filter(instance_id__startswith="tx-").count() == 300
        raise RuntimeError("the caller's transaction rolls back")
    assert not InstanceRow.objects.exists() and not PendingEvent.objects.exists() and not Payload.objects.exists()
    # A repeated id inside one large batch refuses it too, naming the id.
    twice = [*prepared, client.prepare_workflow_instance(WorkflowInstanceOptions(instance_id="tx-5"), "wf")]
    with pytest.raises(InstanceAlreadyExists, match="tx-5"):
        client.create_workflow_instances(twice)
    assert not InstanceRow.objects.exists()


def test_bulk_creation_is_all_or_none_and_names_the_taken_ids(orm: BackendMaker) -> None:
    from django_workflows.client import Client, WorkflowInstanceOptions

    backend = orm()
    client = Client(backend)
    prepared = [
        client.prepare_workflow_instance(WorkflowInstanceOptions(instance_id=f"bulk-{n}"), "wf", n) for n in range(1200)
    ]
    created = client.create_workflow_instances(prepared)
    assert len(created) == InstanceRow.objects.count() == PendingEvent.objects.count() == 1200
    again = [client.prepare_workflow_instance(WorkflowInstanceOptions(instance_id=i), "wf") for i in ("new-1", "bulk-7")]
    with pytest.raises(InstanceAlreadyExists, match="bulk-7"):
        client.create_workflow_instances(again)
    assert not InstanceRow.objects.filter(instance_id="new-1").exists()
    # They are claimable through the ready index, a batch at a time.
    tasks = backend.get_workflow_tasks(["default"], 0, 8)
    assert len(tasks) == 8 and all(task.new_events for task in tasks)


# -- workflow tasks handed over by workflow-task completions (lease_workflows) -----------------


def test_completion_hands_over_the_sub_workflows_it_starts(orm: BackendMaker) -> None:
    """The ORM backend leases, in the completion's transaction, the first tasks of the
    sub-workflows it starts (up to the slots asked for; not one whose start is delayed). A
    parent that a child reports to is left to the pollers, so that a poll gathers the results
    of several children in one task."""
    backend = orm(sticky_timeout=60)
    parent = started_task(backend)
    children = [new_instance(parent=parent.instance, parent_event_id=n) for n in (1, 2, 3)]
    later = utcnow() + timedelta(hours=1)
    starts = [
        WorkflowEvent(children[0], started_event(name="child")),
        WorkflowEvent(children[1], dataclasses.replace(started_event(name="child"), visible_at=later)),
        WorkflowEvent(children[2], started_event(name="child")),
    ]
    leased: list[Any] = []
    complete(backend, parent, workflow_events=starts, leased=leased, lease_workflows=LeaseRequest(("default",), 3))
    # The delayed child waits for its time; the others run here, without a poll.
    assert sorted(t.instance.instance_id for t in leased) == sorted(c.instance_id for c in (children[0], children[2]))
    assert backend.get_workflow_task(["default"], 0) is None
    by_id = {t.instance.instance_id: t for t in leased}
    results = []
    for n in (1, 3):
        result = new_event(SubWorkflowCompletedAttributes(result=str(n)), utcnow(), schedule_event_id=n)
        handed: list[Any] = []
        complete(
            backend, by_id[children[n - 1].instance_id], finish=True,
            workflow_events=[WorkflowEvent(parent.instance, result)], leased=handed,
            lease_workflows=LeaseRequest(("default",), 1),
        )
        assert handed == []
        results.append(result.id)
    assert [e.id for e in poll_workflow_task(backend).new_events] == results
