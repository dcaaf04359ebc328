"""Backend-level conformance cases for timeouts, heartbeats and cancellation (``engine.backend``,
the block "activity timeouts, heartbeats and cancellation; execution timeouts").

The backend enforces every timeout on its own clock: once an attempt's deadline passed, its
holder can neither extend, heartbeat nor complete it, no claim hands it out again, and
``time_out_activity_tasks`` records its failure, with the attempt's last heartbeat details.
Cancellation requests in a completed workflow task drop activities nobody runs and flag those
that run. Executions start late (``visible_at`` of their start event), can be canceled before
they start, and end with ``WorkflowExecutionTimedOut`` once ``time_out_workflow_instances``
finds their execution timeout passed.

The cases use timeouts of about a second and wait for them on the wall clock.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from ...engine.backend import Backend, Stats
from ...engine.clock import utcnow
from ...engine.core import InstanceState, WorkflowInstance
from ...engine.errors import LeaseLost
from ...engine.history import (
    ActivityCancellationRequestedAttributes,
    ActivityCompletedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    SignalReceivedAttributes,
    SubWorkflowFailedAttributes,
    WorkflowEvent,
    WorkflowExecutionCanceledAttributes,
    WorkflowExecutionStartedAttributes,
    new_event,
)
from .support import (
    WAIT,
    BackendFactory,
    complete,
    new_instance,
    poll_workflow_task,
    sleep_until,
    started_event,
    wait_until,
)

#: Short poll used where nothing must be returned.
QUICK = 0.1
#: The backend compares times on its clock (the database's, Redis'), not this process's one.
SKEW = timedelta(seconds=0.2)


def _activity(schedule_event_id: int = 1, *, name: str = "export", **attributes: Any) -> Event:
    return new_event(
        ActivityScheduledAttributes(name=name, inputs=["1"], **attributes), utcnow(), schedule_event_id=schedule_event_id
    )


def _schedule(backend: Backend, *activities: Event) -> WorkflowInstance:
    """An instance whose first task scheduled ``activities``."""
    instance = new_instance()
    backend.create_workflow_instance(instance, started_event())
    task = poll_workflow_task(backend)
    complete(backend, task, extra=list(activities), activity_events=list(activities))
    return instance


def _lease(backend: Backend, queue: str = "default") -> Any:
    task = backend.get_activity_task([queue], 5)
    assert task is not None, "no activity task to lease"
    return task


def _time_out(backend: Backend, count: int = 1) -> None:
    """Sweep until ``count`` attempts were failed (the backend's clock decides when)."""
    failed: list[int] = []

    def swept() -> bool:
        failed.append(backend.time_out_activity_tasks())
        return sum(failed) >= count

    wait_until(swept, what=f"{count} activity attempt(s) to time out")
    assert sum(failed) == count


def _failure(backend: Backend, schedule_event_id: int = 1) -> ActivityFailedAttributes:
    task = poll_workflow_task(backend)
    matching = [e for e in task.new_events if e.schedule_event_id == schedule_event_id]
    assert [e.type for e in matching] == [EventType.ACTIVITY_FAILED], task.new_events
    attributes = matching[0].attributes
    assert isinstance(attributes, ActivityFailedAttributes)
    complete(backend, task)
    return attributes


def _result(schedule_event_id: int = 1, value: str = '"done"') -> Event:
    return new_event(ActivityCompletedAttributes(result=value), utcnow(), schedule_event_id=schedule_event_id)


def _no_activity_tasks(backend: Backend) -> bool:
    stats: Stats = backend.get_stats()
    return not any(stats.pending_activity_tasks.values())


class TimeoutCases:
    # -- activity timeouts ---------------------------------------------------------------------

    def test_start_to_close_timeout_fails_the_attempt_and_fences_its_holder(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        _schedule(backend, _activity(start_to_close_timeout=1.0, heartbeat_details='"resume-here"'))
        task = _lease(backend)
        leased_at = utcnow()
        backend.extend_activity_task(task)
        sleep_until(leased_at + timedelta(seconds=1) + SKEW)
        # The attempt is over for its holder, alive or not: no extension, no late result.
        with pytest.raises(LeaseLost):
            backend.extend_activity_task(task)
        with pytest.raises(LeaseLost):
            backend.heartbeat_activity_task(task, '"late"')
        with pytest.raises(LeaseLost):
            backend.complete_activity_task(task, _result())
        assert backend.get_activity_task(["default"], QUICK) is None  # not leased again
        _time_out(backend)
        failure = _failure(backend)
        assert (failure.error.type, failure.error.timeout_type, failure.error.permanent) == (
            "ActivityTimeout",
            "start_to_close",
            False,
        )
        assert "export" in failure.error.message
        # The details it started with go on to the next attempt.
        assert failure.heartbeat_details == '"resume-here"'
        assert backend.time_out_activity_tasks() == 0
        assert _no_activity_tasks(backend)

    def test_schedule_to_start_timeout_fails_an_activity_nobody_took(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        taken, waiting = _activity(1, schedule_to_start_timeout=1.0), _activity(2, schedule_to_start_timeout=1.0, queue="nobody")
        _schedule(backend, taken, waiting)
        task = _lease(backend)
        assert task.activity_id == taken.id
        sleep_until(utcnow() + timedelta(seconds=1) + SKEW)
        assert backend.get_activity_task(["nobody"], QUICK) is None
        backend.extend_activity_task(task)  # once taken, schedule-to-start is over
        _time_out(backend)
        failure = _failure(backend, 2)
        assert (failure.error.timeout_type, failure.error.permanent) == ("schedule_to_start", True)
        backend.complete_activity_task(task, _result())
        assert _no_activity_tasks(backend)

    def test_heartbeat_timeout_counts_from_the_last_heartbeat(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        _schedule(backend, _activity(heartbeat_timeout=1.0))
        task = _lease(backend)
        assert backend.heartbeat_activity_task(task, '{"row": 1}') is False
        # Heartbeats keep the attempt alive past its heartbeat timeout...
        for _ in range(3):
            time.sleep(0.5)
            assert backend.heartbeat_activity_task(task, None) is False  # None keeps the details
        # ... lease extensions do not: they are the worker's, not the activity's.
        deadline = time.monotonic() + WAIT

        def extend() -> bool:
            assert time.monotonic() < deadline, "the heartbeat timeout never fired"
            try:
                backend.extend_activity_task(task)
            except LeaseLost:
                return True
            return False

        wait_until(extend, what="the heartbeat timeout to end the attempt")
        _time_out(backend)
        failure = _failure(backend)
        assert (failure.error.timeout_type, failure.error.permanent) == ("heartbeat", False)
        assert failure.heartbeat_details == '{"row": 1}'

    def test_schedule_to_close_timeout_ends_an_attempt_that_heartbeats(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        _schedule(backend, _activity(schedule_to_close_timeout=1.0))
        task = _lease(backend)

        def beat_until_refused() -> bool:
            try:
                backend.heartbeat_activity_task(task, '"7"')
            except LeaseLost:
                return True
            return False

        wait_until(beat_until_refused, what="the schedule-to-close timeout to end the attempt")
        _time_out(backend)
        failure = _failure(backend)
        assert (failure.error.timeout_type, failure.error.permanent) == ("schedule_to_close", True)
        assert failure.heartbeat_details == '"7"'

    def test_activities_without_timeouts_never_time_out(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory(activity_lock_timeout=1)
        _schedule(backend, _activity())
        task = _lease(backend)
        sleep_until(utcnow() + timedelta(seconds=1) + SKEW)  # only the lease ran out
        assert backend.time_out_activity_tasks() == 0
        again = backend.get_activity_task(["default"], 5)
        assert again is not None and again.id == task.id
        backend.complete_activity_task(again, _result())

    def test_heartbeat_details_outlive_a_lost_lease(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory(activity_lock_timeout=1, max_activity_leases=2)
        _schedule(backend, _activity(heartbeat_details='"from the last attempt"'))
        first = _lease(backend)
        assert first.heartbeat_details is None  # nothing stored by this attempt yet
        backend.heartbeat_activity_task(first, '{"exported": 40}')
        # Its worker dies: the next lease of the same attempt resumes from its details.
        second = backend.get_activity_task(["default"], WAIT)
        assert second is not None and second.lease_count == 2
        assert second.heartbeat_details == '{"exported": 40}'
        # It dies as well; the abandoned attempt's failure keeps them for a retry.
        sleep_until(utcnow() + timedelta(seconds=1) + SKEW)
        assert backend.get_activity_task(["default"], 1.5) is None
        failure = _failure(backend)
        assert failure.error.type == "ActivityAbandoned"
        assert failure.heartbeat_details == '{"exported": 40}'

    # -- cancellation --------------------------------------------------------------------------

    def test_cancellation_requests_flag_running_activities_and_drop_queued_ones(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        running, queued = _activity(1), _activity(2, queue="later")
        instance = _schedule(backend, running, queued)
        task = _lease(backend)
        assert task.activity_id == running.id
        assert backend.heartbeat_activity_task(task) is False
        # The next workflow task cancels both, and schedules a third that it cancels at once.
        backend.signal_workflow(instance.instance_id, new_event(_signal(), utcnow()))
        workflow_task = poll_workflow_task(backend)
        third = _activity(3)
        requests = [
            new_event(ActivityCancellationRequestedAttributes(activity_id=e.id), utcnow(), schedule_event_id=e.schedule_event_id)
            for e in (running, queued, third)
        ]
        complete(backend, workflow_task, extra=[third, *requests], activity_events=[third])
        # The running one learns it at its next heartbeat and may still report its outcome.
        assert backend.heartbeat_activity_task(task) is True
        backend.extend_activity_task(task)
        # The others never run: they answer Canceled.
        assert backend.get_activity_task(["later"], QUICK) is None
        assert backend.get_activity_task(["default"], QUICK) is None
        canceled = poll_workflow_task(backend)
        failures = {e.schedule_event_id: e.attributes for e in canceled.new_events}
        assert set(failures) == {2, 3}
        for attributes in failures.values():
            assert isinstance(attributes, ActivityFailedAttributes) and attributes.error.type == "Canceled"
        complete(backend, canceled)
        backend.complete_activity_task(task, _result(1, '"stopped"'))
        last = poll_workflow_task(backend)
        assert [(e.type, e.schedule_event_id) for e in last.new_events] == [(EventType.ACTIVITY_COMPLETED, 1)]
        assert _no_activity_tasks(backend)

    def test_heartbeat_says_stop_once_the_execution_ended(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = _schedule(backend, _activity())
        task = _lease(backend)
        backend.signal_workflow(instance.instance_id, new_event(_signal(), utcnow()))
        complete(backend, poll_workflow_task(backend), finish=True)
        assert backend.heartbeat_activity_task(task) is True

    # -- delayed starts --------------------------------------------------------------------------

    def test_delayed_start_is_scheduled_then_runs(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        event = started_event()
        start_at = utcnow() + timedelta(seconds=1.5)
        backend.create_workflow_instance(instance, _delayed(event, start_at))
        assert backend.get_workflow_task(["default"], QUICK) is None
        info = backend.get_workflow_instance_info(instance)
        assert info.state is InstanceState.ACTIVE
        # A store may keep the delay on its own clock (Redis: the delay from now, applied at the
        # server's now), so the time it reports is as exact as the time to reach the store.
        assert info.scheduled_for is not None and abs(info.scheduled_for - start_at) < timedelta(milliseconds=500)
        task = poll_workflow_task(backend)
        assert utcnow() >= start_at - SKEW
        assert [e.id for e in task.new_events] == [event.id]
        complete(backend, task)
        assert backend.get_workflow_instance_info(instance).scheduled_for is None

    def test_signals_wait_for_a_delayed_start(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        event = started_event()
        start_at = utcnow() + timedelta(seconds=1.5)
        backend.create_workflow_instance(instance, _delayed(event, start_at))
        signal = new_event(_signal(), utcnow())
        assert backend.signal_workflow(instance.instance_id, signal) == instance
        assert backend.get_workflow_task(["default"], QUICK) is None
        task = poll_workflow_task(backend)
        assert utcnow() >= start_at - SKEW
        assert [e.id for e in task.new_events] == [event.id, signal.id]

    def test_cancel_before_a_delayed_start_ends_it_without_running(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        parent = new_instance()
        backend.create_workflow_instance(parent, started_event())
        task = poll_workflow_task(backend)
        child = new_instance(parent=parent, parent_event_id=1)
        child_start = _delayed(started_event(name="child"), utcnow() + timedelta(minutes=10))
        complete(backend, task, workflow_events=[WorkflowEvent(child, child_start)])
        assert backend.get_workflow_instance_info(child).scheduled_for is not None
        backend.cancel_workflow_instance(child, new_event(_canceled(), utcnow()))
        assert backend.get_workflow_instance_state(child) is InstanceState.FINISHED
        history = backend.get_workflow_instance_history(child)
        assert [e.type for e in history] == [
            EventType.WORKFLOW_EXECUTION_STARTED,
            EventType.WORKFLOW_EXECUTION_CANCELED,
            EventType.WORKFLOW_EXECUTION_FINISHED,
        ]
        assert [e.sequence_id for e in history] == [1, 2, 3]
        assert history[0].id == child_start.id
        assert history[2].attributes.error.type == "Canceled"  # type: ignore[attr-defined]
        # The parent hears of it as of any child that failed.
        parent_task = poll_workflow_task(backend)
        (event,) = parent_task.new_events
        assert isinstance(event.attributes, SubWorkflowFailedAttributes) and event.attributes.error.type == "Canceled"
        assert event.schedule_event_id == 1

    # -- execution timeouts ----------------------------------------------------------------------

    def test_execution_timeout_ends_the_execution_and_tells_the_parent(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        parent = new_instance()
        backend.create_workflow_instance(parent, started_event())
        parent_task = poll_workflow_task(backend)
        child = new_instance(parent=parent, parent_event_id=1)
        complete(backend, parent_task, workflow_events=[WorkflowEvent(child, started_event(name="child", execution_timeout=1.0))])
        started_at = utcnow()
        child_task = poll_workflow_task(backend)
        assert child_task.instance == child
        activity = _activity()
        complete(backend, child_task, extra=[activity], activity_events=[activity])
        assert backend.time_out_workflow_instances() == 0
        sleep_until(started_at + timedelta(seconds=1) + SKEW)
        wait_until(lambda: backend.time_out_workflow_instances() == 1, what="the execution timeout")
        assert backend.get_workflow_instance_state(child) is InstanceState.FINISHED
        last = backend.get_workflow_instance_history(child)[-1]
        assert last.type is EventType.WORKFLOW_EXECUTION_TIMED_OUT
        assert last.attributes.execution_timeout == 1.0  # type: ignore[attr-defined]
        # Its pending work is gone, and the parent receives WorkflowTimedOut.
        assert backend.get_activity_task(["default"], QUICK) is None
        (event,) = poll_workflow_task(backend).new_events
        assert isinstance(event.attributes, SubWorkflowFailedAttributes)
        assert (event.attributes.error.type, event.attributes.error.permanent) == ("WorkflowTimedOut", True)
        assert backend.time_out_workflow_instances() == 0

    def test_execution_timeout_counts_from_the_delayed_start(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        created = utcnow()
        backend.create_workflow_instance(
            instance, _delayed(started_event(execution_timeout=1.0), created + timedelta(seconds=1))
        )
        sleep_until(created + timedelta(seconds=1) + SKEW)
        assert backend.time_out_workflow_instances() == 0  # started, not timed out yet
        sleep_until(created + timedelta(seconds=2) + SKEW)
        wait_until(lambda: backend.time_out_workflow_instances() == 1, what="the execution timeout")
        assert backend.get_workflow_instance_state(instance) is InstanceState.FINISHED


def _signal() -> SignalReceivedAttributes:
    return SignalReceivedAttributes(name="go", arg="1")


def _canceled() -> WorkflowExecutionCanceledAttributes:
    return WorkflowExecutionCanceledAttributes()


def _delayed(event: Event, at: datetime) -> Event:
    """``event`` (a start) made visible at ``at``, as ``start_delay`` makes it."""
    assert isinstance(event.attributes, WorkflowExecutionStartedAttributes)
    return dataclasses.replace(event, visible_at=at)
