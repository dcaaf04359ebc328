"""Backend-level conformance cases: the ``Backend`` protocol driven by hand, without a worker
(port of go-workflows ``backend/test/backendtest.go``), plus the guarantees our backends add
(``engine.backend``): lease tokens, abandon, rejected completions, future events, stickiness,
queues, stats, removal, bounded activity leases and termination.

Each case builds events and completes tasks the way a worker would, and checks only what the
protocol promises, so every backend must pass it unchanged.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest

from ...engine.backend import Feature, LeaseRequest, Stats, WorkflowTask
from ...engine.clock import utcnow
from ...engine.core import InstanceState, WorkflowInstance
from ...engine.errors import (
    CompletionRejected,
    InstanceAlreadyExists,
    InstanceFinished,
    InstanceNotFinished,
    InstanceNotFound,
    LeaseLost,
    NotSupported,
)
from ...engine.history import (
    ActivityCompletedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    EventType,
    SubWorkflowCompletedAttributes,
    SubWorkflowFailedAttributes,
    SubWorkflowScheduledAttributes,
    TimerCanceledAttributes,
    TimerFiredAttributes,
    TimerScheduledAttributes,
    WorkflowEvent,
    WorkflowExecutionContinuedAsNewAttributes,
    event_to_dict,
    new_event,
)
from .backend_timeouts import TimeoutCases
from .support import (
    BackendFactory,
    cancel_event,
    complete,
    new_instance,
    poll_workflow_task,
    signal_event,
    sleep_until,
    start_instance,
    started_event,
)

#: Short poll used where nothing must be returned; long enough for a backend to look.
QUICK = 0.1
#: Backends may compare times with the database's or Redis' clock, not this process's one.
CLOCK_SKEW = timedelta(seconds=0.1)


def _activity_event(schedule_event_id: int = 1, name: str = "charge", queue: str = "", attempt: int = 0) -> Any:
    attributes = ActivityScheduledAttributes(
        name=name, inputs=['"order-1"', "12"], metadata={"trace": "t-1"}, queue=queue, attempt=attempt
    )
    return new_event(attributes, utcnow(), schedule_event_id=schedule_event_id)


def _schedule_activity(backend: Any, queue: str = "") -> tuple[WorkflowInstance, Any]:
    """An instance whose first task scheduled one activity; returns it and the activity event."""
    instance = new_instance()
    backend.create_workflow_instance(instance, started_event())
    task = poll_workflow_task(backend)
    activity = _activity_event(queue=queue)
    complete(backend, task, extra=[activity], activity_events=[activity])
    return instance, activity


class BackendConformance(TimeoutCases):
    # -- polling -----------------------------------------------------------------------------

    def test_get_workflow_task_returns_none_when_timeout(self, backend_factory: BackendFactory) -> None:
        assert backend_factory().get_workflow_task(["default"], QUICK) is None

    def test_get_activity_task_returns_none_when_timeout(self, backend_factory: BackendFactory) -> None:
        assert backend_factory().get_activity_task(["default"], QUICK) is None

    # -- creating instances ------------------------------------------------------------------

    def test_create_workflow_instance_returns_task(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        event = started_event(name="order", inputs=['"o-1"'], metadata={"tenant": "acme"})
        backend.create_workflow_instance(instance, event)
        task = poll_workflow_task(backend)
        assert task.instance == instance
        assert (task.queue, task.workflow_name, task.state) == ("default", "order", InstanceState.ACTIVE)
        assert task.metadata == {"tenant": "acme"}
        assert task.last_sequence_id == 0
        assert [e.id for e in task.new_events] == [event.id]
        assert event_to_dict(task.new_events[0]) == event_to_dict(event)
        assert task.lease_token

    def test_create_workflow_instance_same_instance_id_errors(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        with pytest.raises(InstanceAlreadyExists):
            backend.create_workflow_instance(instance, started_event())
        # Another execution of the same instance id while the first is active: also refused.
        with pytest.raises(InstanceAlreadyExists):
            backend.create_workflow_instance(new_instance(instance.instance_id), started_event())

    def test_concurrent_duplicate_starts_exactly_one_wins(self, backend_factory: BackendFactory) -> None:
        backends = [backend_factory() for _ in range(4)]
        instance_id = f"race-{uuid.uuid4().hex}"
        barrier = threading.Barrier(len(backends) * 2)
        outcomes: list[str] = []
        lock = threading.Lock()

        def start(backend: Any) -> None:
            barrier.wait()
            try:
                backend.create_workflow_instance(new_instance(instance_id), started_event())
                outcome = "created"
            except InstanceAlreadyExists:
                outcome = "exists"
            except Exception as exc:  # reported below, with the others
                outcome = f"error: {exc!r}"
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=start, args=(b,)) for b in backends for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(outcomes) == ["created"] + ["exists"] * (len(threads) - 1), outcomes

    def test_reuse_instance_id_after_it_finished(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        complete(backend, poll_workflow_task(backend), finish=True)
        again = new_instance(instance.instance_id)
        backend.create_workflow_instance(again, started_event())
        assert backend.get_latest_execution(instance.instance_id) == again
        assert backend.get_workflow_instance_state(instance) is InstanceState.FINISHED
        assert backend.get_workflow_instance_state(again) is InstanceState.ACTIVE

    def test_invalid_instance_id_is_refused(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        for bad in ("", "a:b", "a{b}", "x" * 129, "tab\there"):
            with pytest.raises(ValueError):
                backend.create_workflow_instance(new_instance(bad) if bad else WorkflowInstance("", "e"), started_event())

    # -- workflow task leases ----------------------------------------------------------------

    def test_get_workflow_task_locks_task(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        backend.create_workflow_instance(new_instance(), started_event())
        assert poll_workflow_task(backend) is not None
        assert backend.get_workflow_task(["default"], QUICK) is None

    def test_workflow_tasks_claimed_in_a_batch(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instances = [new_instance() for _ in range(3)]
        for instance in instances:
            backend.create_workflow_instance(instance, started_event())
        claimed = _claim_in_batches(backend.get_workflow_tasks, 3)
        assert sorted(t.instance.instance_id for t in claimed) == sorted(i.instance_id for i in instances)
        assert backend.get_workflow_tasks(["default"], QUICK, 3) == []
        for task in claimed:
            assert [e.type for e in task.new_events] == [EventType.WORKFLOW_EXECUTION_STARTED]
            complete(backend, task)
            with pytest.raises(LeaseLost):
                complete(backend, task)

    def test_complete_workflow_task_returns_error_if_not_locked(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        task = poll_workflow_task(backend)
        forged = dataclasses.replace(task, lease_token=uuid.uuid4().hex)
        with pytest.raises(LeaseLost):
            complete(backend, forged)
        with pytest.raises(LeaseLost):
            backend.extend_workflow_task(forged)
        complete(backend, task)  # the real holder still can
        with pytest.raises(LeaseLost):
            complete(backend, task)  # but only once
        assert len(backend.get_workflow_instance_history(instance)) == 2

    def test_stale_lease_is_fenced_off(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory(workflow_lock_timeout=1)
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        stale = poll_workflow_task(backend)
        backend.extend_workflow_task(stale)  # fine while the lease holds
        # The stale worker stalls; its lease expires and another poll takes the task over.
        fresh = poll_workflow_task(backend, timeout=30)
        assert fresh.instance == instance and fresh.lease_token != stale.lease_token
        with pytest.raises(LeaseLost):
            backend.extend_workflow_task(stale)
        with pytest.raises(LeaseLost):
            complete(backend, stale)
        complete(backend, fresh)
        history = backend.get_workflow_instance_history(instance)
        assert [e.sequence_id for e in history] == [1, 2]

    def test_expired_lease_cannot_complete(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory(workflow_lock_timeout=1)
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        task = poll_workflow_task(backend)
        sleep_until(utcnow() + timedelta(seconds=1.2))
        # Nobody took the task over, but the lease is gone all the same.
        with pytest.raises(LeaseLost):
            complete(backend, task)
        assert backend.get_workflow_instance_history(instance) == []

    def test_extend_keeps_the_task(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory(workflow_lock_timeout=1)
        backend.create_workflow_instance(new_instance(), started_event())
        task = poll_workflow_task(backend)
        deadline = utcnow() + timedelta(seconds=1.8)
        while utcnow() < deadline:
            backend.extend_workflow_task(task)
            assert backend.get_workflow_task(["default"], 0.3) is None
        complete(backend, task)

    def test_abandon_workflow_task(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        event = started_event()
        backend.create_workflow_instance(instance, event)
        task = poll_workflow_task(backend)
        backend.abandon_workflow_task(task)
        again = poll_workflow_task(backend, timeout=5)
        assert again.instance == instance
        assert [e.id for e in again.new_events] == [event.id]
        with pytest.raises(LeaseLost):
            complete(backend, task)
        complete(backend, again)

    # -- history -----------------------------------------------------------------------------

    def test_complete_workflow_task_adds_new_events_to_history(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event(name="wf", inputs=['"ünïcode ✓"', '{"a":[1,2]}']))
        task = poll_workflow_task(backend)
        activity = _activity_event()
        timer = new_event(TimerScheduledAttributes(at=utcnow() + timedelta(hours=1), name="later"), utcnow(), schedule_event_id=2)
        executed = complete(backend, task, extra=[activity, timer], activity_events=[activity])
        history = backend.get_workflow_instance_history(instance)
        assert [event_to_dict(e) for e in history] == [event_to_dict(e) for e in executed]
        assert [e.sequence_id for e in history] == [1, 2, 3, 4]

    def test_history_order_and_last_sequence_id(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = start_instance(backend)
        for n in range(3):
            backend.signal_workflow(instance.instance_id, signal_event(arg=str(n)))
            task = poll_workflow_task(backend)
            assert task.last_sequence_id == 2 + 2 * n
            complete(backend, task)
        history = backend.get_workflow_instance_history(instance)
        assert [e.sequence_id for e in history] == list(range(1, 9))
        signals = [e.attributes.arg for e in history if e.type is EventType.SIGNAL_RECEIVED]  # type: ignore[attr-defined]
        assert signals == ["0", "1", "2"]
        tail = backend.get_workflow_instance_history(instance, 5)
        assert [e.sequence_id for e in tail] == [6, 7, 8]
        assert backend.get_workflow_instance_history(instance, 8) == []

    def test_complete_sets_state_and_completed_at_when_finished(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        before = utcnow() - timedelta(seconds=1)
        backend.create_workflow_instance(instance, started_event(name="wf", queue="default", metadata={"k": "v"}))
        info = backend.get_workflow_instance_info(instance)
        assert (info.instance, info.workflow_name, info.queue, info.state) == (instance, "wf", "default", InstanceState.ACTIVE)
        assert info.metadata == {"k": "v"}
        assert info.completed_at is None and info.created_at >= before
        complete(backend, poll_workflow_task(backend), finish=True)
        info = backend.get_workflow_instance_info(instance)
        assert info.state is InstanceState.FINISHED
        assert info.completed_at is not None and info.completed_at >= info.created_at
        assert backend.get_workflow_instance_state(instance) is InstanceState.FINISHED
        # A finished instance hands out no more tasks.
        assert backend.get_workflow_task(["default"], QUICK) is None

    def test_unknown_instance(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        unknown = new_instance()
        with pytest.raises(InstanceNotFound):
            backend.get_workflow_instance_state(unknown)
        with pytest.raises(InstanceNotFound):
            backend.get_workflow_instance_info(unknown)
        with pytest.raises(InstanceNotFound):
            backend.get_latest_execution(unknown.instance_id)

    # -- signals and cancellation ------------------------------------------------------------

    def test_signal_workflow_error_when_instance_does_not_exist(self, backend_factory: BackendFactory) -> None:
        with pytest.raises(InstanceNotFound):
            backend_factory().signal_workflow(f"missing-{uuid.uuid4().hex}", signal_event())

    def test_cancel_workflow_error_when_instance_does_not_exist(self, backend_factory: BackendFactory) -> None:
        with pytest.raises(InstanceNotFound):
            backend_factory().cancel_workflow_instance(new_instance(), cancel_event())

    def test_signal_and_cancel_of_an_ended_execution(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        complete(backend, poll_workflow_task(backend), finish=True)
        with pytest.raises(InstanceFinished):
            backend.signal_workflow(instance.instance_id, signal_event())
        with pytest.raises(InstanceFinished):
            backend.cancel_workflow_instance(instance, cancel_event())
        # InstanceFinished is an InstanceNotFound, as go-workflows reports it.
        assert issubclass(InstanceFinished, InstanceNotFound)

    def test_signal_returns_the_active_execution(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = start_instance(backend)
        event = signal_event(name="approve", arg='{"by":"ann"}')
        assert backend.signal_workflow(instance.instance_id, event) == instance
        task = poll_workflow_task(backend)
        assert [event_to_dict(e) for e in task.new_events] == [event_to_dict(event)]

    def test_cancel_workflow_adds_cancel_event_to_pending_events(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = start_instance(backend)
        backend.cancel_workflow_instance(instance, cancel_event())
        task = poll_workflow_task(backend)
        assert task.new_events[-1].type is EventType.WORKFLOW_EXECUTION_CANCELED

    def test_completion_rejected_while_unseen_events_wait(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = start_instance(backend)
        backend.signal_workflow(instance.instance_id, signal_event(arg='"first"'))
        task = poll_workflow_task(backend)
        late = signal_event(arg='"late"')
        backend.signal_workflow(instance.instance_id, late)
        with pytest.raises(CompletionRejected):
            complete(backend, task, finish=True)
        # Nothing was committed and the lease is released: the next task has both signals.
        assert backend.get_workflow_instance_state(instance) is InstanceState.ACTIVE
        assert len(backend.get_workflow_instance_history(instance)) == 2
        retry = poll_workflow_task(backend, timeout=5)
        assert [e.attributes.arg for e in retry.new_events] == ['"first"', '"late"']  # type: ignore[attr-defined]
        complete(backend, retry, finish=True)
        assert backend.get_workflow_instance_state(instance) is InstanceState.FINISHED

    def test_unseen_events_stay_pending_after_an_active_completion(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = start_instance(backend)
        backend.signal_workflow(instance.instance_id, signal_event(arg='"first"'))
        task = poll_workflow_task(backend)
        backend.signal_workflow(instance.instance_id, signal_event(arg='"second"'))
        complete(backend, task)
        nxt = poll_workflow_task(backend)
        assert [e.attributes.arg for e in nxt.new_events] == ['"second"']  # type: ignore[attr-defined]

    # -- timers ------------------------------------------------------------------------------

    def test_future_events_are_visible_only_at_their_time(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance, fired = _schedule_timer(backend, 0.8)
        at = fired.visible_at
        early = backend.get_workflow_task(["default"], QUICK)
        if early is not None:  # only if this machine was slow enough for the timer to be due
            assert utcnow() >= at - CLOCK_SKEW
        timer_task = early or poll_workflow_task(backend, timeout=30)
        assert utcnow() >= at - CLOCK_SKEW
        assert [e.id for e in timer_task.new_events] == [fired.id]
        assert timer_task.new_events[0].schedule_event_id == 1

    def test_canceled_timer_removes_its_future_event(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance, fired = _schedule_timer(backend, 0.5)
        at = fired.visible_at
        backend.signal_workflow(instance.instance_id, signal_event())
        task = poll_workflow_task(backend)
        complete(backend, task, extra=[new_event(TimerCanceledAttributes(), utcnow(), schedule_event_id=1)])
        sleep_until(at + timedelta(seconds=0.1))
        assert backend.get_workflow_task(["default"], 0.3) is None

    def test_finished_execution_drops_its_future_events(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        task = poll_workflow_task(backend)
        now = utcnow()
        at = now + timedelta(seconds=0.3)
        fired = new_event(TimerFiredAttributes(scheduled_at=now, at=at), now, schedule_event_id=1, visible_at=at)
        complete(backend, task, timer_events=[fired], finish=True)
        sleep_until(at + timedelta(seconds=0.1))
        assert backend.get_workflow_task(["default"], 0.3) is None
        assert backend.get_stats().pending_workflow_tasks.get("default", 0) == 0

    # -- stickiness and queues ---------------------------------------------------------------

    def test_sticky_instance_is_skipped_by_other_workers(self, backend_factory: BackendFactory) -> None:
        sticky = 2.0
        mine = backend_factory(worker_name="worker-1", sticky_timeout=sticky)
        other = backend_factory(worker_name="worker-2", sticky_timeout=sticky)
        instance = new_instance()
        mine.create_workflow_instance(instance, started_event())
        task = poll_workflow_task(mine)
        # Stickiness starts when the completion commits, which is after this moment.
        sticky_from = utcnow()
        complete(mine, task)
        mine.signal_workflow(instance.instance_id, signal_event())
        polled = other.get_workflow_task(["default"], QUICK)
        if polled is not None:  # only on a machine slow enough for the stickiness to expire
            assert utcnow() >= sticky_from + timedelta(seconds=sticky) - CLOCK_SKEW
        else:
            # The worker the instance sticks to gets it at once.
            task = poll_workflow_task(mine, timeout=5)
            sticky_from = utcnow()
            complete(mine, task)
            mine.signal_workflow(instance.instance_id, signal_event())
            # Any other worker gets it once the stickiness has run out.
            polled = poll_workflow_task(other, timeout=30)
            assert utcnow() >= sticky_from + timedelta(seconds=sticky) - CLOCK_SKEW
        assert polled.instance == instance
        complete(other, polled)

    def test_abandon_releases_stickiness(self, backend_factory: BackendFactory) -> None:
        mine = backend_factory(worker_name="worker-1", sticky_timeout=30)
        other = backend_factory(worker_name="worker-2", sticky_timeout=30)
        instance = start_instance(mine)
        mine.signal_workflow(instance.instance_id, signal_event())
        task = poll_workflow_task(mine)
        # A worker that gives a task back (shutting down) does not keep it sticky.
        mine.abandon_workflow_task(task)
        assert poll_workflow_task(other, timeout=5).instance == instance

    def test_create_workflow_instances_in_bulk(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instances = [new_instance(f"bulk-{n}-{uuid.uuid4().hex}") for n in range(30)]
        backend.create_workflow_instances([(instance, started_event()) for instance in instances])
        polled: set[Any] = set()
        while len(polled) < len(instances):
            tasks = backend.get_workflow_tasks(["default"], 5, 8)
            assert tasks, f"only {len(polled)} of {len(instances)} bulk-created instances were claimable"
            for task in tasks:
                assert [e.type for e in task.new_events] == [EventType.WORKFLOW_EXECUTION_STARTED]
                polled.add(task.instance)
                complete(backend, task)
        assert polled == set(instances)
        # A taken id refuses the batch: InstanceAlreadyExists (all-or-none where the backend
        # writes the batch in one transaction).
        fresh = new_instance(f"bulk-fresh-{uuid.uuid4().hex}")
        with pytest.raises(InstanceAlreadyExists):
            backend.create_workflow_instances([(fresh, started_event()), (new_instance(instances[0].instance_id), started_event())])

    def test_released_stickiness_lets_other_workers_take_the_instance(self, backend_factory: BackendFactory) -> None:
        mine = backend_factory(worker_name="worker-1", sticky_timeout=600)
        other = backend_factory(worker_name="worker-2", sticky_timeout=600)
        waiting, queued = start_instance(mine), start_instance(mine)
        mine.signal_workflow(queued.instance_id, signal_event())  # a task queued while sticky
        assert other.get_workflow_task(["default"], QUICK) is None
        # A worker that stops gracefully hands its sticky instances back.
        assert mine.release_sticky_instances() >= 1
        assert poll_workflow_task(other, timeout=5).instance == queued
        mine.signal_workflow(waiting.instance_id, signal_event())  # an event after the release
        assert poll_workflow_task(other, timeout=5).instance == waiting

    def test_workers_see_only_their_queues(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        backend.prepare_workflow_queues(["default", "reports"])
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event(queue="reports"))
        assert backend.get_workflow_task(["default"], QUICK) is None
        task = poll_workflow_task(backend, ["default", "reports"])
        assert (task.instance, task.queue) == (instance, "reports")

    def test_activity_queues(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        backend.prepare_activity_queues(["default", "gpu"])
        backend.create_workflow_instance(new_instance(), started_event())
        task = poll_workflow_task(backend)
        inherited = _activity_event(1, name="inherit")
        special = _activity_event(2, name="special", queue="gpu")
        complete(backend, task, extra=[inherited, special], activity_events=[inherited, special])
        got = backend.get_activity_task(["gpu"], 5)
        assert got is not None and (got.queue, got.event.id) == ("gpu", special.id)
        assert backend.get_activity_task(["gpu"], QUICK) is None
        # An activity without a queue runs on its workflow's queue.
        got = backend.get_activity_task(["default"], 5)
        assert got is not None and (got.queue, got.event.id) == ("default", inherited.id)

    # -- activity tasks ----------------------------------------------------------------------

    def test_activity_task_lease_and_complete(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance, scheduled = _schedule_activity(backend)
        task = backend.get_activity_task(["default"], 5)
        assert task is not None
        assert task.instance == instance
        assert task.activity_id == scheduled.id
        assert event_to_dict(task.event) == event_to_dict(scheduled)
        assert task.lease_count == 1 and task.lease_token
        assert backend.get_activity_task(["default"], QUICK) is None  # leased
        backend.extend_activity_task(task)
        result = new_event(ActivityCompletedAttributes(result="42"), utcnow(), schedule_event_id=scheduled.schedule_event_id)
        backend.complete_activity_task(task, result)
        with pytest.raises(LeaseLost):
            backend.complete_activity_task(task, result)  # only once
        workflow_task = poll_workflow_task(backend)
        assert [event_to_dict(e) for e in workflow_task.new_events] == [event_to_dict(result)]
        assert backend.get_activity_task(["default"], QUICK) is None

    def test_a_committed_completion_is_found_by_its_event(self, backend_factory: BackendFactory) -> None:
        # What a worker asks after a completion whose reply it lost met the fence on its retry.
        backend = backend_factory()
        instance, scheduled = _schedule_activity(backend)
        task = backend.get_activity_task(["default"], 5)
        assert task is not None
        result = new_event(ActivityCompletedAttributes(result="42"), utcnow(), schedule_event_id=scheduled.schedule_event_id)
        assert not backend.has_event(instance, result.id)
        backend.complete_activity_task(task, result)
        with pytest.raises(LeaseLost):
            backend.complete_activity_task(task, result)  # a repeat cannot record it twice
        assert backend.has_event(instance, result.id)  # pending
        workflow_task = poll_workflow_task(backend)
        executed = complete(backend, workflow_task)
        with pytest.raises(LeaseLost):
            complete(backend, workflow_task)
        assert backend.has_event(instance, result.id)  # in the history now
        assert backend.has_event(instance, executed[0].id, workflow_task.last_sequence_id)
        assert not backend.has_event(instance, executed[0].id, executed[-1].sequence_id)
        assert not backend.has_event(instance, uuid.uuid4().hex)
        with pytest.raises(InstanceNotFound):
            backend.has_event(new_instance(), result.id)

    def test_activity_tasks_claimed_in_a_batch(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        backend.create_workflow_instance(instance := new_instance(), started_event())
        task = poll_workflow_task(backend)
        scheduled = [_activity_event(n, name=f"step-{n}") for n in (1, 2, 3)]
        complete(backend, task, extra=scheduled, activity_events=scheduled)
        claimed = _claim_in_batches(backend.get_activity_tasks, 3)
        assert sorted(t.activity_id for t in claimed) == sorted(e.id for e in scheduled)
        assert backend.get_activity_tasks(["default"], QUICK, 3) == []
        # Each task of a batch is its own lease: completing one leaves the others theirs.
        for claimed_task in claimed:
            assert claimed_task.instance == instance and claimed_task.lease_count == 1
            result = new_event(
                ActivityCompletedAttributes(result="1"), utcnow(), schedule_event_id=claimed_task.event.schedule_event_id
            )
            backend.complete_activity_task(claimed_task, result)
            with pytest.raises(LeaseLost):
                backend.complete_activity_task(claimed_task, result)
        workflow_task = poll_workflow_task(backend)
        assert sorted(e.schedule_event_id for e in workflow_task.new_events) == [1, 2, 3]
    # -- leases handed out by completions (Feature.LEASE_ON_COMPLETION) ------------------------

    def test_completion_leases_the_activities_it_schedules(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        if not backend.feature_supported(Feature.LEASE_ON_COMPLETION):
            pytest.skip("this backend does not lease tasks on completion (optional feature)")
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        task = poll_workflow_task(backend)
        activities = [_activity_event(1), _activity_event(2), _activity_event(3, queue="other")]
        leased: list[Any] = []
        complete(
            backend, task, extra=activities, activity_events=activities, leased=leased,
            lease=LeaseRequest(("default",), 1),
        )
        # One at most, and only from the queues asked for.
        assert [t.activity_id for t in leased] == [activities[0].id]
        [mine] = leased
        assert mine.instance == instance and mine.lease_count == 1 and mine.lease_token
        assert event_to_dict(mine.event) == event_to_dict(activities[0])
        # The leased one is not handed out again; the others are there for pollers.
        other = backend.get_activity_task(["default"], 5)
        assert other is not None and other.activity_id == activities[1].id
        assert backend.get_activity_task(["default"], QUICK) is None
        third = backend.get_activity_task(["other"], 5)
        assert third is not None and third.activity_id == activities[2].id
        # It is a real, fenced lease.
        backend.extend_activity_task(mine)
        result = new_event(ActivityCompletedAttributes(result="1"), utcnow(), schedule_event_id=1)
        backend.complete_activity_task(mine, result)
        with pytest.raises(LeaseLost):
            backend.complete_activity_task(mine, result)

    def test_activity_completion_leases_the_workflow_task(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        if not backend.feature_supported(Feature.LEASE_ON_COMPLETION):
            pytest.skip("this backend does not lease tasks on completion (optional feature)")
        instance, scheduled = _schedule_activity(backend)
        activity = backend.get_activity_task(["default"], 5)
        assert activity is not None
        result = new_event(ActivityCompletedAttributes(result="7"), utcnow(), schedule_event_id=scheduled.schedule_event_id)
        task = backend.complete_activity_task(activity, result, workflow_queues=["default"])
        assert task is not None and task.instance == instance
        assert [event_to_dict(e) for e in task.new_events] == [event_to_dict(result)]
        # Leased: no poller gets it, and it completes like any workflow task.
        assert backend.get_workflow_task(["default"], QUICK) is None
        complete(backend, task, finish=True)
        assert backend.get_workflow_instance_state(instance) is InstanceState.FINISHED

    def test_activity_completion_leaves_a_task_it_may_not_take(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory(sticky_timeout=60)
        if not backend.feature_supported(Feature.LEASE_ON_COMPLETION):
            pytest.skip("this backend does not lease tasks on completion (optional feature)")
        instance, scheduled = _schedule_activity(backend)  # sticky to `backend`'s worker
        other_worker = backend_factory(sticky_timeout=60, worker_name="other-worker")
        activity = other_worker.get_activity_task(["default"], 5)
        assert activity is not None
        result = new_event(ActivityCompletedAttributes(result="7"), utcnow(), schedule_event_id=scheduled.schedule_event_id)
        # Another worker's sticky instance, then a queue this worker does not poll: no lease.
        assert other_worker.complete_activity_task(activity, result, workflow_queues=["default"]) is None
        task = poll_workflow_task(backend)
        assert task.instance == instance and [e.id for e in task.new_events] == [result.id]
        complete(backend, task, extra=[_activity_event(2)], activity_events=[_activity_event(2)])
        second = backend.get_activity_task(["default"], 5)
        assert second is not None
        result2 = new_event(ActivityCompletedAttributes(result="8"), utcnow(), schedule_event_id=2)
        assert backend.complete_activity_task(second, result2, workflow_queues=["elsewhere"]) is None
        assert poll_workflow_task(backend).instance == instance

    def test_stale_activity_lease_is_fenced_off(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory(activity_lock_timeout=1)
        instance, scheduled = _schedule_activity(backend)
        stale = backend.get_activity_task(["default"], 5)
        assert stale is not None
        fresh = backend.get_activity_task(["default"], 30)  # after the stale lease expired
        assert fresh is not None and fresh.id == stale.id
        assert fresh.lease_token != stale.lease_token and fresh.lease_count == 2
        late = new_event(ActivityCompletedAttributes(result='"stale"'), utcnow(), schedule_event_id=1)
        with pytest.raises(LeaseLost):
            backend.extend_activity_task(stale)
        with pytest.raises(LeaseLost):
            backend.complete_activity_task(stale, late)
        result = new_event(ActivityCompletedAttributes(result='"fresh"'), utcnow(), schedule_event_id=1)
        backend.complete_activity_task(fresh, result)
        task = poll_workflow_task(backend)
        assert [e.attributes.result for e in task.new_events] == ['"fresh"']  # type: ignore[attr-defined]

    def test_abandon_activity_task(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        _, scheduled = _schedule_activity(backend)
        task = backend.get_activity_task(["default"], 5)
        assert task is not None
        backend.abandon_activity_task(task)
        again = backend.get_activity_task(["default"], 5)
        assert again is not None and again.event.id == scheduled.id
        # A graceful release does not count as a crashed lease.
        assert again.lease_count == task.lease_count
        with pytest.raises(LeaseLost):
            backend.complete_activity_task(task, new_event(ActivityCompletedAttributes(), utcnow(), schedule_event_id=1))

    def test_max_activity_leases_fails_the_activity(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory(activity_lock_timeout=1, max_activity_leases=2)
        instance, scheduled = _schedule_activity(backend)
        first = backend.get_activity_task(["default"], 5)
        assert first is not None and first.lease_count == 1
        # Its worker "dies": the lease expires, and the task is leased a second time.
        second = backend.get_activity_task(["default"], 30)
        assert second is not None and second.lease_count == 2
        # The second worker dies as well: the activity is not leased again but fails.
        sleep_until(utcnow() + timedelta(seconds=1.1))
        assert backend.get_activity_task(["default"], 1.5) is None
        task = poll_workflow_task(backend, timeout=30)
        (failure,) = task.new_events
        assert failure.type is EventType.ACTIVITY_FAILED
        assert failure.schedule_event_id == scheduled.schedule_event_id
        assert isinstance(failure.attributes, ActivityFailedAttributes)
        assert failure.attributes.error.type == "ActivityAbandoned"
        assert failure.attributes.error.permanent
        assert "charge" in failure.attributes.error.message

    # -- other instances ---------------------------------------------------------------------

    def test_complete_workflow_task_sends_instance_events(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        parent = new_instance()
        child = new_instance(parent=parent, parent_event_id=1)
        start_instance(backend, child)
        backend.create_workflow_instance(parent, started_event())
        task = poll_workflow_task(backend)
        assert task.instance == parent
        complete(backend, task, workflow_events=[WorkflowEvent(child, cancel_event())])
        task = poll_workflow_task(backend)
        assert task.instance == child
        assert task.new_events[-1].type is EventType.WORKFLOW_EXECUTION_CANCELED

    def test_sub_workflow_start_and_result(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        parent = new_instance()
        backend.create_workflow_instance(parent, started_event(name="parent"))
        task = poll_workflow_task(backend)
        child = new_instance(parent=parent, parent_event_id=1)
        scheduled = new_event(
            SubWorkflowScheduledAttributes(sub_workflow_queue="default", sub_workflow_instance=child, name="child"),
            utcnow(),
            schedule_event_id=1,
        )
        complete(backend, task, extra=[scheduled], workflow_events=[WorkflowEvent(child, started_event(name="child"))])
        child_task = poll_workflow_task(backend)
        assert child_task.instance == child and child_task.workflow_name == "child"
        assert child_task.instance.parent == parent and child_task.instance.parent_event_id == 1
        result = new_event(SubWorkflowCompletedAttributes(result="7"), utcnow(), schedule_event_id=1)
        complete(backend, child_task, finish=True, workflow_events=[WorkflowEvent(parent, result)])
        parent_task = poll_workflow_task(backend)
        assert parent_task.instance == parent
        assert [event_to_dict(e) for e in parent_task.new_events] == [event_to_dict(result)]

    def test_completion_leases_the_sub_workflows_it_starts(self, backend_factory: BackendFactory) -> None:
        """``lease_workflows``: a completion may hand the completing worker the first tasks of
        the sub-workflows it starts, up to the number and from the queues asked for. Whatever
        it hands out is a real, fenced lease that no poller gets; a backend may hand out none."""
        backend = backend_factory()
        if not backend.feature_supported(Feature.LEASE_ON_COMPLETION):
            pytest.skip("this backend does not lease tasks on completion (optional feature)")
        parent = new_instance()
        backend.create_workflow_instance(parent, started_event(name="parent"))
        task = poll_workflow_task(backend)
        queues = ("default", "default", "other")
        children = [new_instance(parent=parent, parent_event_id=n) for n in (1, 2, 3)]
        scheduled = [
            new_event(
                SubWorkflowScheduledAttributes(sub_workflow_queue=queue, sub_workflow_instance=child, name="child"),
                utcnow(),
                schedule_event_id=n,
            )
            for n, (child, queue) in enumerate(zip(children, queues, strict=True), start=1)
        ]
        starts = [WorkflowEvent(c, started_event(name="child", queue=q)) for c, q in zip(children, queues, strict=True)]
        leased: list[Any] = []
        complete(
            backend, task, extra=scheduled, workflow_events=starts, leased=leased,
            lease_workflows=LeaseRequest(("default",), 1),
        )
        # At most one, from the queues asked for; the others are there for pollers.
        assert len(leased) <= 1
        polled = [poll_workflow_task(backend, ["default"]) for _ in range(2 - len(leased))]
        assert backend.get_workflow_task(["default"], QUICK) is None
        assert poll_workflow_task(backend, ["other"]).instance == children[2]
        child_tasks = {t.instance.instance_id: t for t in [*leased, *polled]}
        assert sorted(child_tasks) == sorted(c.instance_id for c in children[:2])
        for mine in leased:
            assert isinstance(mine, WorkflowTask) and mine.workflow_name == "child" and mine.lease_token
            assert mine.instance.parent == parent and mine.instance.parent_event_id in (1, 2)
            assert [e.type for e in mine.new_events] == [EventType.WORKFLOW_EXECUTION_STARTED]
            backend.extend_workflow_task(mine)
        # Each runs and reports to the parent as a polled one would; a second completion of
        # the same task is fenced off.
        first = child_tasks[children[0].instance_id]
        result = new_event(SubWorkflowCompletedAttributes(result="7"), utcnow(), schedule_event_id=1)
        complete(backend, first, finish=True, workflow_events=[WorkflowEvent(parent, result)])
        with pytest.raises(LeaseLost):
            complete(backend, first, finish=True, workflow_events=[WorkflowEvent(parent, result)])
        parent_task = poll_workflow_task(backend)
        assert parent_task.instance == parent
        assert [event_to_dict(e) for e in parent_task.new_events] == [event_to_dict(result)]

    def test_duplicate_active_sub_workflow_fails_the_parent(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        existing = start_instance(backend)
        parent = new_instance()
        backend.create_workflow_instance(parent, started_event(name="parent"))
        task = poll_workflow_task(backend)
        child = new_instance(existing.instance_id, parent=parent, parent_event_id=1)
        complete(backend, task, workflow_events=[WorkflowEvent(child, started_event(name="child"))])
        parent_task = poll_workflow_task(backend)
        assert parent_task.instance == parent
        (failure,) = parent_task.new_events
        assert failure.type is EventType.SUB_WORKFLOW_FAILED and failure.schedule_event_id == 1
        assert isinstance(failure.attributes, SubWorkflowFailedAttributes)
        assert "already exists" in failure.attributes.error.message
        assert backend.get_latest_execution(existing.instance_id) == existing

    def test_continue_as_new(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        first, second = _continue_as_new(backend)
        assert backend.get_workflow_instance_state(first) is InstanceState.CONTINUED_AS_NEW
        assert backend.get_latest_execution(first.instance_id) == second
        # Signals follow the instance id to its active execution.
        assert backend.signal_workflow(first.instance_id, signal_event()) == second
        task = poll_workflow_task(backend)
        assert task.instance == second
        assert [e.type for e in task.new_events] == [EventType.WORKFLOW_EXECUTION_STARTED, EventType.SIGNAL_RECEIVED]

    def test_remove_continued_as_new_instances_option(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory(remove_continued_as_new_instances=True)
        first, second = _continue_as_new(backend)
        with pytest.raises(InstanceNotFound):
            backend.get_workflow_instance_state(first)
        assert backend.get_latest_execution(first.instance_id) == second

    # -- termination -------------------------------------------------------------------------

    def test_terminate_workflow_instance(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        parent = new_instance()
        child = new_instance(parent=parent, parent_event_id=3)
        backend.create_workflow_instance(parent, started_event(name="parent"))
        complete(backend, poll_workflow_task(backend))
        backend.create_workflow_instance(child, started_event(name="child"))
        task = poll_workflow_task(backend)
        activity = _activity_event()
        complete(backend, task, extra=[activity], activity_events=[activity])
        backend.signal_workflow(child.instance_id, signal_event())

        backend.terminate_workflow_instance(child, "stuck for days")
        assert backend.get_workflow_instance_state(child) is InstanceState.FINISHED
        assert backend.get_workflow_instance_history(child)[-1].type is EventType.WORKFLOW_EXECUTION_TERMINATED
        assert backend.get_workflow_instance_info(child).completed_at is not None
        # Its pending work is dropped...
        assert backend.get_activity_task(["default"], QUICK) is None
        # ...and the parent learns that its child failed.
        parent_task = poll_workflow_task(backend)
        assert parent_task.instance == parent
        (failure,) = parent_task.new_events
        assert failure.type is EventType.SUB_WORKFLOW_FAILED and failure.schedule_event_id == 3
        assert isinstance(failure.attributes, SubWorkflowFailedAttributes)
        assert failure.attributes.error.type == "Terminated"
        assert "stuck for days" in failure.attributes.error.message
        with pytest.raises(InstanceFinished):
            backend.terminate_workflow_instance(child, "again")
        with pytest.raises(InstanceNotFound):
            backend.terminate_workflow_instance(new_instance(), "unknown")

    def test_terminate_a_leased_instance_fences_its_worker(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        task = poll_workflow_task(backend)
        backend.terminate_workflow_instance(instance, "")
        with pytest.raises((LeaseLost, CompletionRejected)):
            complete(backend, task, finish=True)
        assert backend.get_workflow_instance_history(instance)[-1].type is EventType.WORKFLOW_EXECUTION_TERMINATED

    # -- removal and stats -------------------------------------------------------------------

    def test_remove_workflow_instance(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        active = new_instance()
        backend.create_workflow_instance(active, started_event())
        with pytest.raises(InstanceNotFinished):
            backend.remove_workflow_instance(active)
        complete(backend, poll_workflow_task(backend), finish=True)
        backend.remove_workflow_instance(active)
        with pytest.raises(InstanceNotFound):
            backend.get_workflow_instance_state(active)
        with pytest.raises(InstanceNotFound):
            backend.remove_workflow_instance(active)
        with pytest.raises(InstanceNotFound):
            backend.remove_workflow_instance(new_instance())

    def test_remove_workflow_instances(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        finished = []
        for _ in range(3):
            instance = new_instance()
            backend.create_workflow_instance(instance, started_event())
            complete(backend, poll_workflow_task(backend), finish=True)
            finished.append(instance)
        active = new_instance()
        backend.create_workflow_instance(active, started_event())
        if not backend.feature_supported(Feature.REMOVE_INSTANCES):
            with pytest.raises(NotSupported):
                backend.remove_workflow_instances(finished_before=utcnow())
            return
        assert backend.remove_workflow_instances(finished_before=utcnow() - timedelta(days=1)) == 0
        assert backend.remove_workflow_instances(finished_before=utcnow() + timedelta(seconds=1), batch_size=2) == 3
        for instance in finished:
            with pytest.raises(InstanceNotFound):
                backend.get_workflow_instance_state(instance)
        assert backend.get_workflow_instance_state(active) is InstanceState.ACTIVE

    def test_stats(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        assert _counts(backend.get_stats()) == (0, {}, {})
        first = new_instance()
        backend.create_workflow_instance(first, started_event())
        backend.create_workflow_instance(new_instance(), started_event(queue="reports"))
        assert _counts(backend.get_stats()) == (2, {"default": 1, "reports": 1}, {})
        task = poll_workflow_task(backend)
        activity = _activity_event()
        complete(backend, task, extra=[activity], activity_events=[activity])
        stats = backend.get_stats()
        assert _counts(stats)[0] == 2
        assert _counts(stats)[2] == {"default": 1}
        leased = backend.get_activity_task(["default"], 5)
        assert leased is not None
        result = new_event(ActivityCompletedAttributes(result="1"), utcnow(), schedule_event_id=1)
        backend.complete_activity_task(leased, result)
        complete(backend, poll_workflow_task(backend, ["default", "reports"]), finish=True)
        complete(backend, poll_workflow_task(backend, ["default", "reports"]), finish=True)
        assert _counts(backend.get_stats()) == (0, {}, {})


def _claim_in_batches(claim: Any, total: int) -> list[Any]:
    """Claim ``total`` tasks with ``claim(queues, timeout, max_tasks)``: a first batch of at most
    two, then the rest. A backend may hand out fewer than asked for (one at a time is allowed),
    never more; the callers check that no task comes twice."""
    first = claim(["default"], 5, 2)
    assert 1 <= len(first) <= 2
    claimed = list(first)
    while len(claimed) < total:
        more = claim(["default"], 5, total)
        assert more, f"only {len(claimed)} of {total} tasks were handed out"
        claimed.extend(more)
    return claimed


def _schedule_timer(backend: Any, delay: float) -> tuple[WorkflowInstance, Any]:
    """An instance whose first task scheduled a timer; returns it and the future TimerFired."""
    instance = new_instance()
    backend.create_workflow_instance(instance, started_event())
    task = poll_workflow_task(backend)
    now = utcnow()
    at = now + timedelta(seconds=delay)
    scheduled = new_event(TimerScheduledAttributes(at=at), now, schedule_event_id=1)
    fired = new_event(TimerFiredAttributes(scheduled_at=now, at=at), now, schedule_event_id=1, visible_at=at)
    complete(backend, task, extra=[scheduled], timer_events=[fired])
    return instance, fired


def _continue_as_new(backend: Any) -> tuple[WorkflowInstance, WorkflowInstance]:
    """Start an instance whose first task continues it as new; return both executions."""
    first = new_instance()
    backend.create_workflow_instance(first, started_event(name="loop"))
    task = poll_workflow_task(backend)
    second = new_instance(first.instance_id)
    continued = new_event(
        WorkflowExecutionContinuedAsNewAttributes(result="1", continued_execution_id=second.execution_id), utcnow()
    )
    complete(
        backend,
        task,
        state=InstanceState.CONTINUED_AS_NEW,
        extra=[continued],
        workflow_events=[WorkflowEvent(second, started_event(name="loop", inputs=["1"]))],
    )
    return first, second


def _counts(stats: Stats) -> tuple[int, dict[str, int], dict[str, int]]:
    # Queues with nothing pending may be reported with 0 or left out.
    return (
        stats.active_workflow_instances,
        {q: n for q, n in stats.pending_workflow_tasks.items() if n},
        {q: n for q, n in stats.pending_activity_tasks.items() if n},
    )
