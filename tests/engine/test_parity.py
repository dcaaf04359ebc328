"""Histories as go-workflows records them (issue 13), driven through the executor and the tester:

- ``WorkflowExecutionFinished`` and ``WorkflowExecutionContinuedAsNew`` carry schedule event id
  0, and a replay does not look at that id (earlier histories carry another one);
- ``with_retries`` schedules the first attempt at once: it is scheduled even when its context
  is canceled right after, and it takes its schedule event id in code order;
- an activity registered from an object can be named by its function on the class.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.engine.core import InstanceState
from django_workflows.engine.history import (
    ActivityCompletedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    SubWorkflowCompletedAttributes,
    WorkflowExecutionFinishedAttributes,
    new_event,
)
from django_workflows.testing import WorkflowTester

from .drive import T0, Driver, started

ONCE = workflow.ActivityOptions()
RETRIED = workflow.DEFAULT_ACTIVITY_OPTIONS
START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def seids(events: list[Event], *types: EventType) -> list[tuple[EventType, int]]:
    return [(e.type, e.schedule_event_id) for e in events if not types or e.type in types]


def completed(event: Event, result: str) -> Event:
    return new_event(ActivityCompletedAttributes(result=result), T0, schedule_event_id=event.schedule_event_id)


def ran() -> str:
    return "ran"


# -- WorkflowExecutionFinished carries schedule event id 0 --------------------------------------


def test_finished_and_continued_as_new_carry_schedule_event_id_zero() -> None:
    async def step(ctx: workflow.Context, n: int) -> int:
        value = await workflow.execute_activity(ctx, ONCE, ran)
        if n == 0:
            raise workflow.ContinueAsNew(1)
        return len(value)

    driver = Driver([step])
    first = driver.task(started("step", "0"))
    second = driver.task(completed(first.activity_events[0], '"ran"'))
    assert second.state is InstanceState.CONTINUED_AS_NEW
    assert seids(driver.store.events) == [
        (EventType.WORKFLOW_TASK_STARTED, 0),
        (EventType.WORKFLOW_EXECUTION_STARTED, 0),
        (EventType.ACTIVITY_SCHEDULED, 1),
        (EventType.WORKFLOW_TASK_STARTED, 0),
        (EventType.ACTIVITY_COMPLETED, 1),
        (EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW, 0),
    ]

    (start,) = second.workflow_events
    driver = Driver([step], instance=start.instance)
    first = driver.task(start.event)
    second = driver.task(completed(first.activity_events[0], '"ran"'))
    assert second.state is InstanceState.FINISHED
    assert seids(driver.store.events)[-1] == (EventType.WORKFLOW_EXECUTION_FINISHED, 0)


def test_sub_workflow_result_still_names_the_parents_schedule_event() -> None:
    async def child(ctx: workflow.Context) -> int:
        return 3

    parent = workflow.WorkflowInstance("parent", "p")
    instance = workflow.WorkflowInstance("child", "c", parent=parent, parent_event_id=4)
    result = Driver([child], instance=instance).task(started("child"))
    assert seids(result.executed)[-1] == (EventType.WORKFLOW_EXECUTION_FINISHED, 0)
    (answer,) = result.workflow_events
    assert answer.instance == parent
    assert isinstance(answer.event.attributes, SubWorkflowCompletedAttributes)
    assert answer.event.schedule_event_id == 4


@pytest.mark.parametrize(
    "recorded_id",
    [0, 3, 1, 99],
    ids=["go-workflows", "earlier-versions", "another-commands-id", "unknown-id"],
)
def test_replaying_a_finished_history_does_not_depend_on_the_finished_events_id(recorded_id: int) -> None:
    """Earlier versions recorded the id of the command that ended the execution (3 here)."""

    async def wf(ctx: workflow.Context) -> int:
        first = await workflow.execute_activity(ctx, ONCE, ran)
        second = await workflow.execute_activity(ctx, ONCE, ran)
        return len(first + second)

    driver = Driver([wf])
    first = driver.task(started("wf"))
    second = driver.task(completed(first.activity_events[0], '"ran"'))
    driver.task(completed(second.activity_events[0], '"ran"'))
    finished = driver.store.events[-1]
    assert (finished.type, finished.schedule_event_id) == (EventType.WORKFLOW_EXECUTION_FINISHED, 0)
    driver.store.events[-1] = dataclasses.replace(finished, schedule_event_id=recorded_id)

    replay = driver.new_executor().execute_task(last_sequence_id=len(driver.store.events), new_events=[])
    # Nothing but the task's start: no second Finished event, no error.
    assert [e.type for e in replay.executed] == [EventType.WORKFLOW_TASK_STARTED]
    assert replay.state is InstanceState.FINISHED and replay.error is None


# -- with_retries: the first attempt at once ------------------------------------------------------


def _canceled_at_once(options: workflow.ActivityOptions) -> Any:
    async def wf(ctx: workflow.Context) -> str:
        tctx, cancel = workflow.with_cancel(ctx)
        future = workflow.execute_activity(tctx, options, ran)
        cancel()
        return await future

    return wf


@pytest.mark.parametrize("options", [RETRIED, ONCE], ids=["default-retries", "one-attempt"])
def test_activity_scheduled_before_its_context_is_canceled_runs(options: workflow.ActivityOptions) -> None:
    driver = Driver([(_canceled_at_once(options), "wf")])
    first = driver.task(started("wf"))
    (scheduled,) = first.activity_events
    assert scheduled.schedule_event_id == 1
    assert isinstance(scheduled.attributes, ActivityScheduledAttributes) and scheduled.attributes.attempt == 0
    second = driver.task(completed(scheduled, '"ran"'))
    (finished,) = [e for e in second.executed if e.type is EventType.WORKFLOW_EXECUTION_FINISHED]
    assert finished.attributes == WorkflowExecutionFinishedAttributes(result='"ran"')


def test_retries_after_cancellation_stop_with_canceled() -> None:
    """The first attempt runs; a retry on a canceled context is not scheduled (go-workflows)."""

    async def wf(ctx: workflow.Context) -> str:
        tctx, cancel = workflow.with_cancel(ctx)
        future = workflow.execute_activity(tctx, RETRIED, ran)
        cancel()
        try:
            return await future
        except workflow.Canceled:
            return "canceled"

    driver = Driver([wf])
    first = driver.task(started("wf"))
    failed = new_event(
        ActivityFailedAttributes(error=workflow.WorkflowError("boom").to_info()),
        T0,
        schedule_event_id=first.activity_events[0].schedule_event_id,
    )
    second = driver.task(failed)
    assert second.activity_events == []
    assert driver.store.events[-1].attributes == WorkflowExecutionFinishedAttributes(result='"canceled"')


def test_context_canceled_before_the_call_schedules_nothing() -> None:
    async def wf(ctx: workflow.Context) -> str:
        tctx, cancel = workflow.with_cancel(ctx)
        cancel()
        try:
            return await workflow.execute_activity(tctx, RETRIED, ran)
        except workflow.Canceled:
            return "canceled"

    result = Driver([wf]).task(started("wf"))
    assert result.activity_events == []
    assert result.executed[-1].attributes == WorkflowExecutionFinishedAttributes(result='"canceled"')


def test_schedule_event_ids_follow_code_order() -> None:
    """go-workflows' order: a call with retries takes its id when it is made."""

    async def child(ctx: workflow.Context) -> int:
        return 1

    async def wf(ctx: workflow.Context) -> None:
        tctx, cancel = workflow.with_cancel(ctx)
        act = workflow.execute_activity(ctx, RETRIED, ran)
        timer = workflow.schedule_timer(tctx, timedelta(hours=1))
        sub = workflow.create_sub_workflow_instance(
            ctx, workflow.SubWorkflowOptions(retry_options=workflow.RetryOptions(max_attempts=3)), child
        )
        stamp = await workflow.side_effect(ctx, lambda: 1)
        await act
        await sub
        cancel()
        del timer, stamp

    result = Driver([wf, child]).task(started("wf"))
    assert seids(result.executed)[2:] == [
        (EventType.ACTIVITY_SCHEDULED, 1),
        (EventType.TIMER_SCHEDULED, 2),
        (EventType.SUB_WORKFLOW_SCHEDULED, 3),
        (EventType.SIDE_EFFECT_RESULT, 4),
    ]
    (child_start,) = result.workflow_events
    assert child_start.instance.parent_event_id == 3


def test_order_through_the_tester() -> None:
    async def child(ctx: workflow.Context) -> int:
        return 2

    async def wf(ctx: workflow.Context) -> str:
        tctx, cancel = workflow.with_cancel(ctx)
        act = workflow.execute_activity(tctx, RETRIED, ran)
        timer = workflow.schedule_timer(ctx, timedelta(hours=1))
        sub = workflow.create_sub_workflow_instance(
            ctx, workflow.SubWorkflowOptions(retry_options=workflow.RetryOptions(max_attempts=2)), child
        )
        cancel()  # the activity was scheduled already: it runs and its result arrives
        value = f"{await act} {await sub}"
        await timer
        return value

    tester = WorkflowTester(wf, initial_time=START)
    tester.register_activity(ran)
    tester.register_workflow(child)
    tester.execute()
    assert tester.workflow_result() == "ran 2"
    history = tester.history()
    assert seids(history, EventType.ACTIVITY_SCHEDULED, EventType.TIMER_SCHEDULED, EventType.SUB_WORKFLOW_SCHEDULED) == [
        (EventType.ACTIVITY_SCHEDULED, 1),
        (EventType.TIMER_SCHEDULED, 2),
        (EventType.SUB_WORKFLOW_SCHEDULED, 3),
    ]
    assert seids(history)[-1] == (EventType.WORKFLOW_EXECUTION_FINISHED, 0)
    assert tester.now() == START + timedelta(hours=1)


@pytest.mark.parametrize("options", [RETRIED, ONCE], ids=["default-retries", "one-attempt"])
def test_canceled_at_once_through_the_tester(options: workflow.ActivityOptions) -> None:
    tester = WorkflowTester(_canceled_at_once(options), initial_time=START)
    tester.register_activity(ran)
    tester.execute()
    assert tester.workflow_result() == "ran"
    assert [e.type for e in tester.history()].count(EventType.ACTIVITY_COMPLETED) == 1


def test_tester_history_of_a_sub_workflow_and_unknown_instances() -> None:
    async def child(ctx: workflow.Context) -> int:
        return 2

    async def wf(ctx: workflow.Context) -> int:
        return await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(instance_id="kid"), child)

    tester = WorkflowTester(wf, initial_time=START)
    tester.register_workflow(child)
    tester.execute()
    assert [e.type for e in tester.history("kid")][-1] is EventType.WORKFLOW_EXECUTION_FINISHED
    with pytest.raises(Exception, match="no workflow instance 'nobody'"):
        tester.history("nobody")


# -- activities registered from an object ---------------------------------------------------------


class Payments:
    def __init__(self, fee: int) -> None:
        self.fee = fee

    def charge(self, amount: int) -> int:
        return amount + self.fee

    def refund(self, amount: int, reason: str = "") -> int:
        return -amount


async def pay(ctx: workflow.Context, amount: int) -> int:
    charged = await workflow.execute_activity(ctx, RETRIED, Payments.charge, amount)
    refunded = await workflow.execute_activity(ctx, ONCE, Payments.refund, 1)
    return charged + refunded


def test_unbound_method_names_the_registered_bound_method() -> None:
    driver = Driver([pay])
    driver.registry.register_activity(Payments(fee=2))
    assert driver.registry.resolve_activity(Payments.charge) == driver.registry.get_activity("charge")
    assert driver.registry.activity_name(Payments.refund) == "refund"
    first = driver.task(started("pay", "10"))
    (scheduled,) = first.activity_events
    assert isinstance(scheduled.attributes, ActivityScheduledAttributes)
    assert (scheduled.attributes.name, scheduled.attributes.inputs) == ("charge", ["10"])


def test_argument_check_of_an_unbound_method_does_not_count_self() -> None:
    async def wrong(ctx: workflow.Context) -> str:
        try:
            await workflow.execute_activity(ctx, ONCE, Payments.charge, 1, 2)
        except workflow.WorkflowError as err:
            return str(err)
        return "scheduled"

    driver = Driver([wrong])
    driver.registry.register_activity(Payments(fee=0))
    result = driver.task(started("wrong"))
    assert result.activity_events == []
    assert result.executed[-1].attributes == WorkflowExecutionFinishedAttributes(
        result='"mismatched argument count: expected 1, got 2"'
    )


def test_unbound_method_of_an_unregistered_object_says_what_to_register() -> None:
    async def unregistered(ctx: workflow.Context) -> str:
        try:
            await workflow.execute_activity(ctx, ONCE, Payments.charge, 1)
        except workflow.WorkflowError as err:
            return str(err)
        return "scheduled"

    result = Driver([unregistered]).task(started("unregistered"))
    message = result.executed[-1].attributes.result  # type: ignore[attr-defined]
    assert "mismatched argument count: expected 2, got 1" in message
    assert "Payments.charge is a method: register an instance of Payments with register_activity" in message


def test_object_activities_through_the_tester() -> None:
    tester = WorkflowTester(pay, initial_time=START)
    tester.register_activity(Payments(fee=5))
    tester.execute(10)
    assert tester.workflow_result() == 14  # charge ran for real on the registered object: 10 + 5, refund -1

    mocked = WorkflowTester(pay, initial_time=START)
    mocked.register_activity(Payments(fee=5))
    mocked.on_activity(Payments.charge, 10).returns(100).once()
    mocked.execute(10)
    assert mocked.workflow_result() == 99
    mocked.assert_expectations()
