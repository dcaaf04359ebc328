"""End-to-end conformance cases about what histories hold, field by field, as go-workflows
records them (port of go-workflows ``backend/test/e2e.go`` ``SimpleWorkflow_ExpectedHistory``,
extended to every field of every event), and histories recorded by earlier versions:

- the schedule event ids: commands numbered in code order, a call with retries included (its
  first attempt is scheduled at once, as go-workflows' ``WithRetries`` does);
  ``WorkflowExecutionFinished`` and ``WorkflowExecutionContinuedAsNew`` carry 0;
- an activity scheduled before its context is canceled runs and delivers its result;
- an execution recorded in the older retry order (first attempts numbered once the caller
  blocked) is continued in that order by a worker of this version.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from ... import workflow
from ...engine.clock import utcnow
from ...engine.history import (
    ActivityCompletedAttributes,
    ActivityScheduledAttributes,
    Attributes,
    Event,
    EventType,
    SideEffectResultAttributes,
    TimerCanceledAttributes,
    TimerScheduledAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    WorkflowTaskStartedAttributes,
    new_event,
)
from .support import WAIT, EndToEndFixtures, complete, poll_workflow_task

_ONCE = workflow.ActivityOptions()
_RETRIED = workflow.DEFAULT_ACTIVITY_OPTIONS


def _echo(value: str) -> str:
    return value


def _ran() -> str:
    return "ran"


def _assert_event(
    event: Event,
    sequence_id: int,
    type: EventType,
    schedule_event_id: int,
    attributes: Attributes,
    *,
    timestamp: datetime | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> None:
    """Every field of ``event``: its id (a uuid), type, sequence and schedule event ids,
    attributes, timestamp (exactly ``timestamp``, or within ``window``) and visibility."""
    where = f"event {sequence_id} ({type.value})"
    assert isinstance(event.id, str) and uuid.UUID(event.id), f"{where}: id {event.id!r} is not a uuid"
    assert event.type is type, f"{where}: type {event.type}"
    assert event.sequence_id == sequence_id, f"{where}: sequence id {event.sequence_id}"
    assert event.schedule_event_id == schedule_event_id, f"{where}: schedule event id {event.schedule_event_id}"
    assert event.attributes == attributes, f"{where}: attributes {event.attributes!r}"
    assert event.visible_at is None, f"{where}: visible at {event.visible_at}"
    assert event.timestamp.utcoffset() is not None, f"{where}: naive timestamp {event.timestamp}"
    if timestamp is not None:
        assert event.timestamp == timestamp, f"{where}: timestamp {event.timestamp}, expected {timestamp}"
    if window is not None:
        assert window[0] <= event.timestamp <= window[1], f"{where}: timestamp {event.timestamp} outside {window}"


class HistoryCases(EndToEndFixtures):
    def test_simple_workflow_expected_history_every_field(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context, msg: str) -> str:
            return msg + " world"

        h = e2e([wf])
        before = utcnow()
        instance = h.run(wf, "hello")
        h.client.wait_for_workflow_instance(instance, WAIT)
        window = (before, utcnow())
        events = h.history(instance)
        assert len(events) == 3
        task = events[0].timestamp
        _assert_event(events[0], 1, EventType.WORKFLOW_TASK_STARTED, 0, WorkflowTaskStartedAttributes(), window=window)
        _assert_event(
            events[1],
            2,
            EventType.WORKFLOW_EXECUTION_STARTED,
            0,
            WorkflowExecutionStartedAttributes(name="wf", queue="default", inputs=['"hello"'], metadata={}),
            window=(before, task),  # written by the client, before the task started
        )
        _assert_event(
            events[2],
            3,
            EventType.WORKFLOW_EXECUTION_FINISHED,
            0,
            WorkflowExecutionFinishedAttributes(result='"hello world"'),
            timestamp=task,
        )
        assert len({e.id for e in events}) == len(events)

    def test_activity_with_retries_and_timer_expected_history_every_field(self, e2e: Any) -> None:
        """The activity with retries is called first, so it takes schedule event id 1 and the
        timer 2 (go-workflows' order); the timer is canceled once the activity answered."""

        async def wf(ctx: workflow.Context, msg: str) -> str:
            tctx, cancel = workflow.with_cancel(ctx)
            answer = workflow.execute_activity(ctx, _RETRIED, _echo, msg)
            timer = workflow.schedule_timer(tctx, timedelta(hours=1), name="long")
            value = await answer
            cancel()
            try:
                await timer
            except workflow.Canceled:
                pass
            return value + "!"

        h = e2e([wf], [_echo])
        before = utcnow()
        instance = h.run(wf, "hi")
        assert h.wait_result(instance) == "hi!"
        window = (before, utcnow())
        events = h.history(instance)
        assert len(events) == 8, [e.type.value for e in events]
        first, second = events[0].timestamp, events[4].timestamp
        assert window[0] <= first <= second <= window[1]
        _assert_event(events[0], 1, EventType.WORKFLOW_TASK_STARTED, 0, WorkflowTaskStartedAttributes(), timestamp=first)
        _assert_event(
            events[1],
            2,
            EventType.WORKFLOW_EXECUTION_STARTED,
            0,
            WorkflowExecutionStartedAttributes(name="wf", queue="default", inputs=['"hi"'], metadata={}),
            window=(before, first),
        )
        _assert_event(
            events[2],
            3,
            EventType.ACTIVITY_SCHEDULED,
            1,
            ActivityScheduledAttributes(name="_echo", inputs=['"hi"'], metadata={}, queue="default", attempt=0),
            timestamp=first,
        )
        _assert_event(
            events[3],
            4,
            EventType.TIMER_SCHEDULED,
            2,
            TimerScheduledAttributes(at=first + timedelta(hours=1), name="long"),
            timestamp=first,
        )
        _assert_event(events[4], 5, EventType.WORKFLOW_TASK_STARTED, 0, WorkflowTaskStartedAttributes(), timestamp=second)
        _assert_event(
            events[5],
            6,
            EventType.ACTIVITY_COMPLETED,
            1,
            ActivityCompletedAttributes(result='"hi"'),
            window=(first, second),  # stamped by the activity worker
        )
        _assert_event(events[6], 7, EventType.TIMER_CANCELED, 2, TimerCanceledAttributes(), timestamp=second)
        _assert_event(
            events[7],
            8,
            EventType.WORKFLOW_EXECUTION_FINISHED,
            0,
            WorkflowExecutionFinishedAttributes(result='"hi!"'),
            timestamp=second,
        )
        assert len({e.id for e in events}) == len(events)

    def test_continued_as_new_event_carries_schedule_event_id_zero(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context, run: int) -> int:
            await workflow.execute_activity(ctx, _ONCE, _echo, "step")
            if run == 0:
                raise workflow.ContinueAsNew(1, result=run)
            return run

        h = e2e([wf], [_echo])
        first = h.run(wf, 0)
        assert h.wait_result(first) == 0
        ended = h.history(first)[-1]
        assert (ended.type, ended.schedule_event_id) == (EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW, 0)
        assert [e.schedule_event_id for e in h.history(first) if e.type is EventType.ACTIVITY_SCHEDULED] == [1]

    @pytest.mark.parametrize("options", [_RETRIED, _ONCE], ids=["default_retries", "one_attempt"])
    def test_activity_scheduled_before_its_context_is_canceled_runs(
        self, e2e: Any, options: workflow.ActivityOptions
    ) -> None:
        """go-workflows: once scheduled, an activity is not canceled; with or without retries,
        the call schedules it at once, so canceling its context right after changes nothing."""

        async def wf(ctx: workflow.Context) -> str:
            tctx, cancel = workflow.with_cancel(ctx)
            future = workflow.execute_activity(tctx, options, _ran)
            cancel()
            return await future

        h = e2e([wf], [_ran])
        instance = h.run(wf)
        assert h.wait_result(instance) == "ran"
        scheduled = [e for e in h.history(instance) if e.type is EventType.ACTIVITY_SCHEDULED]
        assert [(e.schedule_event_id, e.attributes.attempt) for e in scheduled] == [(1, 0)]

    def test_sub_workflow_with_retries_takes_its_id_in_code_order(self, e2e: Any) -> None:
        async def child(ctx: workflow.Context, n: int) -> int:
            return n + 1

        async def wf(ctx: workflow.Context) -> int:
            tctx, cancel = workflow.with_cancel(ctx)
            options = workflow.SubWorkflowOptions(retry_options=workflow.RetryOptions(max_attempts=3))
            sub = workflow.create_sub_workflow_instance(ctx, options, child, 1)
            timer = workflow.schedule_timer(tctx, timedelta(hours=1))
            act = workflow.execute_activity(ctx, _RETRIED, _echo, "x")
            value = await sub + len(await act)
            cancel()
            del timer
            return value

        h = e2e([wf, child], [_echo])
        instance = h.run(wf)
        assert h.wait_result(instance) == 3
        history = h.history(instance)
        kinds = {EventType.SUB_WORKFLOW_SCHEDULED, EventType.TIMER_SCHEDULED, EventType.ACTIVITY_SCHEDULED}
        assert [(e.type, e.schedule_event_id) for e in history if e.type in kinds] == [
            (EventType.SUB_WORKFLOW_SCHEDULED, 1),
            (EventType.TIMER_SCHEDULED, 2),
            (EventType.ACTIVITY_SCHEDULED, 3),
        ]
        (scheduled,) = [e for e in history if e.type is EventType.SUB_WORKFLOW_SCHEDULED]
        child_instance = scheduled.attributes.sub_workflow_instance
        assert child_instance.parent_event_id == 1
        results = [e for e in history if e.type is EventType.SUB_WORKFLOW_COMPLETED]
        assert [e.schedule_event_id for e in results] == [1]

    def test_execution_recorded_in_the_old_retry_order_continues_in_it(self, e2e: Any) -> None:
        """The first task is written by hand as versions before go-workflows' order recorded it
        (the side effect 1, the activity with retries 2: its first attempt was numbered only
        once the workflow blocked); a worker of this version picks the execution up, replays it
        in that order and numbers what comes next the same way (the side effect before the
        activity again), so the history never mixes the two orders."""

        async def wf(ctx: workflow.Context) -> str:
            a = workflow.execute_activity(ctx, _RETRIED, _echo, "a")
            stamp = workflow.side_effect(ctx, lambda: "5")
            first = await a + await stamp
            b = workflow.execute_activity(ctx, _RETRIED, _echo, "b")
            mark = await workflow.side_effect(ctx, lambda: "6")
            return first + await b + mark

        h = e2e(start=False)
        instance = h.run(wf)
        task = poll_workflow_task(h.backend)
        now = utcnow()
        scheduled = new_event(
            ActivityScheduledAttributes(name="_echo", inputs=['"a"'], metadata={}, queue="default", attempt=0),
            now,
            schedule_event_id=2,
        )
        complete(
            h.backend,
            task,
            extra=[new_event(SideEffectResultAttributes(result='"5"'), now, schedule_event_id=1), scheduled],
            activity_events=[scheduled],
        )
        h.add_worker([wf], [_echo])
        assert h.wait_result(instance) == "a5b6"
        history = h.history(instance)
        commands = {EventType.SIDE_EFFECT_RESULT, EventType.ACTIVITY_SCHEDULED, EventType.WORKFLOW_EXECUTION_FINISHED}
        assert [(e.type, e.schedule_event_id) for e in history if e.type in commands] == [
            (EventType.SIDE_EFFECT_RESULT, 1),
            (EventType.ACTIVITY_SCHEDULED, 2),
            (EventType.SIDE_EFFECT_RESULT, 3),
            (EventType.ACTIVITY_SCHEDULED, 4),
            (EventType.WORKFLOW_EXECUTION_FINISHED, 0),
        ]
        assert [e.sequence_id for e in history] == list(range(1, len(history) + 1))
