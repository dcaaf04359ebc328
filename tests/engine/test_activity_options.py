"""The engine's side of activity timeouts and cancellation: options, what each attempt records,
retries within schedule-to-close, cancellation types, and the replay of histories recorded
before these existed (they must keep replaying: a canceled context used to wait for running
activities, which is the default cancellation type)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import ActivityTimeoutError, ErrorInfo, TimeoutType
from django_workflows.engine.history import (
    ActivityCompletedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    SignalReceivedAttributes,
    WorkflowExecutionCanceledAttributes,
    WorkflowExecutionFinishedAttributes,
    new_event,
)

from .drive import T0, Driver, FixedClock, started


def export(table: str) -> int:
    return 0


def completed(scheduled: Event, result: str = "1") -> Event:
    return new_event(ActivityCompletedAttributes(result=result), T0, schedule_event_id=scheduled.schedule_event_id)


def failed(scheduled: Event, error: ErrorInfo, details: str | None = None) -> Event:
    return new_event(
        ActivityFailedAttributes(error=error, heartbeat_details=details), T0, schedule_event_id=scheduled.schedule_event_id
    )


def canceled() -> Event:
    return new_event(WorkflowExecutionCanceledAttributes(), T0)


def result_of(driver: Driver) -> WorkflowExecutionFinishedAttributes:
    attributes = driver.store.events[-1].attributes
    assert isinstance(attributes, WorkflowExecutionFinishedAttributes)
    return attributes


def types(driver: Driver) -> list[EventType]:
    return [e.type for e in driver.store.events]


# -- options ---------------------------------------------------------------------------------


def test_timeouts_take_seconds_or_timedelta_and_none_means_none() -> None:
    options = workflow.ActivityOptions(start_to_close_timeout=30, heartbeat_timeout=timedelta(seconds=5))
    assert options.start_to_close_timeout == timedelta(seconds=30)
    assert options.heartbeat_timeout == timedelta(seconds=5)
    assert options.schedule_to_close_timeout is None and options.schedule_to_start_timeout is None
    assert options.cancellation is workflow.ActivityCancellation.WAIT
    assert workflow.ActivityOptions(cancellation="abandon").cancellation is workflow.ActivityCancellation.ABANDON


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_to_close_timeout": 0}, "start_to_close_timeout must be positive"),
        ({"heartbeat_timeout": -1}, "heartbeat_timeout must be positive"),
        ({"schedule_to_close_timeout": "10"}, "schedule_to_close_timeout must be seconds"),
        ({"cancellation": "later"}, "cancellation must be one of 'wait', 'try', 'abandon'"),
    ],
)
def test_bad_options_name_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        workflow.ActivityOptions(**kwargs)
    with pytest.raises(ValueError, match="SubWorkflowOptions.start_delay must be positive"):
        workflow.SubWorkflowOptions(start_delay=0)


def test_each_attempt_records_its_timeouts() -> None:
    options = workflow.ActivityOptions(
        start_to_close_timeout=30, schedule_to_start_timeout=5, heartbeat_timeout=3, schedule_to_close_timeout=100
    )

    async def wf(ctx: workflow.Context) -> int:
        return await workflow.execute_activity(ctx, options, export, "t")

    driver = Driver([wf])
    (scheduled,) = driver.task(started("wf")).activity_events
    attributes = scheduled.attributes
    assert isinstance(attributes, ActivityScheduledAttributes)
    assert (
        attributes.start_to_close_timeout,
        attributes.schedule_to_start_timeout,
        attributes.heartbeat_timeout,
        attributes.schedule_to_close_timeout,
        attributes.heartbeat_details,
    ) == (30, 5, 3, 100, None)


# -- retries within schedule-to-close, heartbeat details ---------------------------------------


def test_retries_get_what_is_left_of_schedule_to_close_and_the_last_details() -> None:
    options = workflow.ActivityOptions(
        schedule_to_close_timeout=100,
        retry_options=workflow.RetryOptions(max_attempts=5, first_retry_interval=30),
    )

    async def wf(ctx: workflow.Context) -> int:
        return await workflow.execute_activity(ctx, options, export, "t")

    clock = FixedClock()
    driver = Driver([wf], clock=clock)
    (first,) = driver.task(started("wf")).activity_events
    timeout = ActivityTimeoutError(timeout_type=TimeoutType.HEARTBEAT).to_info()
    clock.current = T0 + timedelta(seconds=10)
    (backoff,) = driver.task(failed(first, timeout, details='{"row": 40}')).timer_events
    clock.current = T0 + timedelta(seconds=40)
    (second,) = driver.task(_fire(backoff)).activity_events
    attributes = second.attributes
    assert isinstance(attributes, ActivityScheduledAttributes)
    # 40 s of the 100 s are spent; the details of the failed attempt go to the retry.
    assert (attributes.attempt, attributes.schedule_to_close_timeout, attributes.heartbeat_details) == (1, 60, '{"row": 40}')
    # A failure without details keeps the ones before it.
    clock.current = T0 + timedelta(seconds=50)
    (backoff,) = driver.task(failed(second, timeout)).timer_events
    clock.current = T0 + timedelta(seconds=80)
    (third,) = driver.task(_fire(backoff)).activity_events
    assert third.attributes.heartbeat_details == '{"row": 40}'  # type: ignore[attr-defined]
    # The next backoff would end after the 100 s: no more retries, the last error stands.
    clock.current = T0 + timedelta(seconds=90)
    driver.task(failed(third, timeout))
    assert driver.finished
    error = result_of(driver).error
    assert error is not None and (error.type, error.timeout_type) == ("ActivityTimeout", "heartbeat")


def _fire(timer: Event) -> Event:
    return dataclasses.replace(timer, visible_at=None)


# -- cancellation types ------------------------------------------------------------------------


def _canceling(cancellation: str) -> Any:
    async def wf(ctx: workflow.Context) -> str:
        child, cancel = workflow.with_cancel(ctx)
        future = workflow.execute_activity(child, workflow.ActivityOptions(cancellation=cancellation), export, "t")
        await workflow.new_signal_channel(ctx, "cancel").receive(ctx)
        cancel()
        try:
            return f"result {await future}"
        except workflow.Canceled:
            return "canceled"

    return wf


def _signal() -> Event:
    return new_event(SignalReceivedAttributes(name="cancel", arg="null"), T0)


@pytest.mark.parametrize(
    ("cancellation", "requested", "outcome_before_result"),
    [("wait", True, None), ("try", True, '"canceled"'), ("abandon", False, '"canceled"')],
)
def test_cancellation_types(cancellation: str, requested: bool, outcome_before_result: str | None) -> None:
    driver = Driver([_canceling(cancellation)])
    (scheduled,) = driver.task(started("wf")).activity_events
    result = driver.task(_signal())
    request = [e for e in result.executed if e.type is EventType.ACTIVITY_CANCELLATION_REQUESTED]
    assert bool(request) is requested
    if requested:
        assert request[0].attributes.activity_id == scheduled.id  # type: ignore[attr-defined]
        assert request[0].schedule_event_id == scheduled.schedule_event_id
    if outcome_before_result is not None:
        # try and abandon: the workflow did not wait; a late result changes nothing.
        assert driver.finished and result_of(driver).result == outcome_before_result
    else:
        assert not driver.finished  # wait: the activity's outcome decides
        driver.task(completed(scheduled, "5"))
        assert result_of(driver).result == '"result 5"'
    # A fresh executor replays the same history without complaint.
    replay = Driver([_canceling(cancellation)])
    replay.store.events = list(driver.store.events)
    replay.executor.execute_task(last_sequence_id=len(replay.store.events), new_events=[])


def test_activity_canceled_in_the_task_that_schedules_it() -> None:
    async def wf(ctx: workflow.Context) -> list[str]:
        out = []
        for cancellation in ("wait", "try"):
            child, cancel = workflow.with_cancel(ctx)
            future = workflow.execute_activity(child, workflow.ActivityOptions(cancellation=cancellation), export, "t")
            cancel()
            try:
                await future
            except workflow.Canceled:
                out.append(cancellation)
        return out

    driver = Driver([wf])
    result = driver.task(started("wf"))
    # wait: scheduled and run all the same, as go-workflows does (issue 13): no cancellation
    # request goes out, the future waits for the outcome; try: never scheduled.
    assert [e.type for e in result.executed][-1] is EventType.ACTIVITY_SCHEDULED
    assert EventType.ACTIVITY_CANCELLATION_REQUESTED not in [e.type for e in result.executed]
    (scheduled,) = result.activity_events
    driver.task(completed(scheduled, '"t"'))
    assert result_of(driver).result == '["try"]'


# -- histories recorded before cancellation types ----------------------------------------------


async def waits(ctx: workflow.Context) -> str:
    value = await workflow.execute_activity(ctx, workflow.ActivityOptions(), export, "t")
    return f"got {value}"


def _old_history() -> list[Event]:
    """As an earlier version recorded it: canceled while its activity ran, the workflow waited
    for the activity and returned its result; no ActivityCancellationRequested anywhere."""
    old = Driver([waits])
    (scheduled,) = old.task(started("waits")).activity_events
    old.task(canceled())
    # What that version did next: nothing, until the result came.
    events = [e for e in old.store.events if e.type is not EventType.ACTIVITY_CANCELLATION_REQUESTED]
    numbered = [e.with_sequence_id(i) for i, e in enumerate(events, start=1)]
    old.store.events = numbered
    old.executor = old.new_executor()
    old.task(completed(scheduled, "7"))
    return [e for e in old.store.events if e.type is not EventType.ACTIVITY_CANCELLATION_REQUESTED]


def test_history_recorded_before_cancellation_requests_replays() -> None:
    history = [e.with_sequence_id(i) for i, e in enumerate(_old_history(), start=1)]
    assert EventType.ACTIVITY_CANCELLATION_REQUESTED not in [e.type for e in history]
    assert history[-1].type is EventType.WORKFLOW_EXECUTION_FINISHED
    driver = Driver([waits])
    driver.store.events = history
    result = driver.executor.execute_task(last_sequence_id=len(history), new_events=[])
    # Replayed to its end without non-determinism, to the same result; nothing is asked of the
    # activity that finished long ago.
    assert result.state is InstanceState.FINISHED and result.error is None
    assert EventType.ACTIVITY_CANCELLATION_REQUESTED not in [e.type for e in result.executed]
    # The recorded end stands; the replay does not record a second one (issue 13's fix).
    assert EventType.WORKFLOW_EXECUTION_FINISHED not in [e.type for e in result.executed]
    finished = history[-1].attributes
    assert isinstance(finished, WorkflowExecutionFinishedAttributes) and finished.result == '"got 7"'


def test_history_canceled_while_an_activity_ran_continues_with_a_request() -> None:
    # Recorded before: the cancellation, then nothing (the activity still runs). A new version
    # replays it and asks the running activity to stop in its next task; the workflow still
    # waits for the activity's outcome, as it did.
    old = Driver([waits])
    (scheduled,) = old.task(started("waits")).activity_events
    old.task(canceled())
    history = [e for e in old.store.events if e.type is not EventType.ACTIVITY_CANCELLATION_REQUESTED]
    driver = Driver([waits])
    driver.store.events = [e.with_sequence_id(i) for i, e in enumerate(history, start=1)]
    result = driver.task(_signal())
    assert EventType.ACTIVITY_CANCELLATION_REQUESTED in [e.type for e in result.executed]
    driver.task(completed(scheduled, "7"))
    assert result_of(driver).result == '"got 7"'
