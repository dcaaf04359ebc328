"""Backend-level conformance cases of safe deploys: blocked workflow tasks
(``Backend.block_workflow_task``) and executions created with a history
(``Backend.create_workflow_instance_from_history``, the storage side of a reset).

A blocked task keeps its history and pending events, is released, and no claim (nor an activity
completion's hand-over) leases it before its retry time, which doubles per attempt; a completion
or the end of the execution clears it. Times come from the backend's clock, so the cases allow
for a little skew and never assert speed.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from ...engine.backend import BlockBackoff, ExecutionSeed, Feature
from ...engine.clock import utcnow
from ...engine.core import InstanceState, WorkflowInstance
from ...engine.errors import ErrorInfo, InstanceAlreadyExists, LeaseLost
from ...engine.history import (
    ActivityCompletedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    TimerFiredAttributes,
    WorkflowExecutionStartedAttributes,
    event_to_dict,
    new_event,
)
from .support import (
    BackendFactory,
    complete,
    new_instance,
    numbered,
    poll_workflow_task,
    signal_event,
    sleep_until,
    start_instance,
    started_event,
    task_started_event,
)

QUICK = 0.1
SKEW = timedelta(seconds=0.5)
ERROR = ErrorInfo(type="NondeterminismError", message="the code changed", permanent=True)
BACKOFF = BlockBackoff(first=timedelta(seconds=1), maximum=timedelta(seconds=3))


def _blocked_task(backend: object) -> tuple[WorkflowInstance, object, Event]:
    """An instance that ran its first task and got a signal, with that signal's task leased."""
    instance = start_instance(backend)  # type: ignore[arg-type]
    signal = signal_event()
    backend.signal_workflow(instance.instance_id, signal)  # type: ignore[attr-defined]
    task = poll_workflow_task(backend)  # type: ignore[arg-type]
    return instance, task, signal


class DeployBackendCases:
    # -- blocking ------------------------------------------------------------------------------

    def test_block_keeps_history_and_events_until_the_retry_time(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance, task, signal = _blocked_task(backend)
        history = [event_to_dict(e) for e in backend.get_workflow_instance_history(instance)]
        before = utcnow()
        blocked = backend.block_workflow_task(task, ERROR, BACKOFF)  # type: ignore[arg-type]
        assert (blocked.error, blocked.attempts) == (ERROR, 1)
        assert before - SKEW <= blocked.since <= utcnow() + SKEW
        assert timedelta(seconds=1) - SKEW <= blocked.retry_at - blocked.since <= timedelta(seconds=1) + SKEW
        info = backend.get_workflow_instance_info(instance)
        assert info.blocked == blocked and info.is_blocked and info.state is InstanceState.ACTIVE
        # Released (the old lease is gone), but no claim takes it before its time...
        with pytest.raises(LeaseLost):
            backend.extend_workflow_task(task)  # type: ignore[arg-type]
        assert backend.get_workflow_task(["default"], QUICK) is None
        # ...and new events do not wake it either.
        backend.signal_workflow(instance.instance_id, signal_event("another"))
        assert backend.get_workflow_task(["default"], QUICK) is None
        sleep_until(blocked.retry_at + SKEW)
        again = poll_workflow_task(backend)
        assert again.instance == instance and again.last_sequence_id == task.last_sequence_id  # type: ignore[attr-defined]
        assert [e.id for e in again.new_events][:1] == [signal.id] and len(again.new_events) == 2
        assert [event_to_dict(e) for e in backend.get_workflow_instance_history(instance)] == history
        # The second failure keeps "since", counts, and waits twice as long.
        second = backend.block_workflow_task(again, ERROR, BACKOFF)
        assert (second.since, second.attempts) == (blocked.since, 2)
        assert second.retry_at - utcnow() > timedelta(seconds=1)
        assert backend.get_workflow_task(["default"], QUICK) is None

    def test_completion_clears_the_block(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance, task, _ = _blocked_task(backend)
        blocked = backend.block_workflow_task(task, ERROR, BlockBackoff(first=timedelta(seconds=0.5)))  # type: ignore[arg-type]
        sleep_until(blocked.retry_at + SKEW)
        complete(backend, poll_workflow_task(backend))
        assert backend.get_workflow_instance_info(instance).blocked is None
        # The count starts afresh after a success.
        backend.signal_workflow(instance.instance_id, signal_event())
        assert backend.block_workflow_task(poll_workflow_task(backend), ERROR, BACKOFF).attempts == 1

    def test_block_needs_the_lease(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance, task, _ = _blocked_task(backend)
        backend.abandon_workflow_task(task)  # type: ignore[arg-type]
        with pytest.raises(LeaseLost):
            backend.block_workflow_task(task, ERROR, BACKOFF)  # type: ignore[arg-type]
        assert backend.get_workflow_instance_info(instance).blocked is None

    def test_terminate_ends_a_blocked_instance(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance, task, _ = _blocked_task(backend)
        backend.block_workflow_task(task, ERROR, BACKOFF)  # type: ignore[arg-type]
        backend.terminate_workflow_instance(instance, "cannot fix it")
        info = backend.get_workflow_instance_info(instance)
        assert info.state is InstanceState.FINISHED and not info.is_blocked and info.blocked is None

    def test_activity_completion_does_not_hand_over_a_blocked_task(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        if not backend.feature_supported(Feature.LEASE_ON_COMPLETION):
            pytest.skip("this backend does not lease tasks on completion (optional feature)")
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        task = poll_workflow_task(backend)
        scheduled = new_event(ActivityScheduledAttributes(name="charge"), utcnow(), schedule_event_id=1)
        complete(backend, task, extra=[scheduled], activity_events=[scheduled])
        activity = backend.get_activity_task(["default"], 5)
        assert activity is not None
        backend.signal_workflow(instance.instance_id, signal_event())
        backend.block_workflow_task(poll_workflow_task(backend), ERROR, BACKOFF)
        result = new_event(ActivityCompletedAttributes(result="1"), utcnow(), schedule_event_id=1)
        assert backend.complete_activity_task(activity, result, workflow_queues=["default"]) is None
        assert backend.get_workflow_task(["default"], QUICK) is None

    # -- executions created with a history -----------------------------------------------------

    def test_create_workflow_instance_from_history(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        started = WorkflowExecutionStartedAttributes(name="order", queue="default", inputs=['"o-1"'], metadata={"t": "1"})
        scheduled = new_event(ActivityScheduledAttributes(name="charge", inputs=["12"]), utcnow(), schedule_event_id=1)
        history = numbered([task_started_event(), new_event(started, utcnow()), scheduled], 0)
        # Open work of the history: the activity again (a fresh event id), a timer, a signal.
        activity = new_event(ActivityScheduledAttributes(name="charge", inputs=["12"]), utcnow(), schedule_event_id=1)
        due = utcnow() + timedelta(seconds=1)
        timer = new_event(TimerFiredAttributes(scheduled_at=utcnow(), at=due), utcnow(), schedule_event_id=2, visible_at=due)
        signal = signal_event()
        seed = ExecutionSeed(
            instance=instance,
            started=started,
            history=history,
            pending_events=[signal],
            activity_events=[activity],
            timer_events=[timer],
        )
        backend.create_workflow_instance_from_history(seed)
        assert [event_to_dict(e) for e in backend.get_workflow_instance_history(instance)] == [
            event_to_dict(e) for e in history
        ]
        info = backend.get_workflow_instance_info(instance)
        assert (info.workflow_name, info.queue, info.state, info.metadata) == ("order", "default", InstanceState.ACTIVE, {"t": "1"})
        assert backend.get_latest_execution(instance.instance_id) == instance
        task = poll_workflow_task(backend)
        assert task.instance == instance and task.last_sequence_id == 3
        assert [e.id for e in task.new_events] == [signal.id]
        leased = backend.get_activity_task(["default"], 5)
        assert leased is not None and leased.instance == instance and leased.event.id == activity.id
        assert leased.event.schedule_event_id == 1
        complete(backend, task)
        sleep_until(due + SKEW)
        fired = poll_workflow_task(backend)
        assert [(e.type, e.schedule_event_id) for e in fired.new_events] == [(EventType.TIMER_FIRED, 2)]
        # One active execution per instance id, for seeded executions too.
        with pytest.raises(InstanceAlreadyExists):
            backend.create_workflow_instance_from_history(
                ExecutionSeed(instance=WorkflowInstance(instance.instance_id, "other"), started=started, history=history)
            )

    def test_seed_without_history_starts_afresh(self, backend_factory: BackendFactory) -> None:
        backend = backend_factory()
        instance = new_instance()
        start = started_event(name="order")
        assert isinstance(start.attributes, WorkflowExecutionStartedAttributes)
        backend.create_workflow_instance_from_history(
            ExecutionSeed(instance=instance, started=start.attributes, history=[], pending_events=[start])
        )
        task = poll_workflow_task(backend)
        assert task.instance == instance and task.last_sequence_id == 0 and [e.id for e in task.new_events] == [start.id]
