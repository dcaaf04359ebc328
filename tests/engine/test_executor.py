"""The executor (engine.executor) driven directly with a hand-made history: replay,
non-determinism detection, start errors, limits and the commands a task produces."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.engine.core import InstanceState, WorkflowInstance
from django_workflows.engine.errors import ErrorInfo, NondeterminismError, PanicError, WorkflowError
from django_workflows.engine.executor import StaleExecutor
from django_workflows.engine.history import (
    ActivityCompletedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    SignalReceivedAttributes,
    SubWorkflowScheduledAttributes,
    TimerFiredAttributes,
    WorkflowExecutionCanceledAttributes,
    WorkflowExecutionContinuedAsNewAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    event_to_dict,
    new_event,
)
from django_workflows.engine.registry import Registry

from .drive import T0, Driver, run, started, workflow_state

ONCE = workflow.ActivityOptions()


def types(events: list[Event]) -> list[EventType]:
    return [e.type for e in events]


def completed(event: Event, result: str = "null") -> Event:
    """The ActivityCompleted event for the ActivityScheduled ``event``."""
    return new_event(ActivityCompletedAttributes(result=result), T0, schedule_event_id=event.schedule_event_id)


def fired(event: Event) -> Event:
    attributes = event.attributes
    return new_event(
        TimerFiredAttributes(scheduled_at=T0, at=attributes.at, name=attributes.name),  # type: ignore[attr-defined]
        T0,
        schedule_event_id=event.schedule_event_id,
    )


def signal(name: str, value: str) -> Event:
    return new_event(SignalReceivedAttributes(name=name, arg=value), T0)


def finished_attributes(result: Any) -> WorkflowExecutionFinishedAttributes:
    (event,) = [e for e in result.executed if e.type is EventType.WORKFLOW_EXECUTION_FINISHED]
    assert isinstance(event.attributes, WorkflowExecutionFinishedAttributes)
    return event.attributes


def final_error(result: Any) -> str:
    error = finished_attributes(result).error
    assert error is not None, "the workflow did not fail"
    return error.message


# -- simple runs -------------------------------------------------------------------------------


def test_simple_workflow() -> None:
    async def greet(ctx: workflow.Context, name: str) -> str:
        return f"hello {name}"

    driver = Driver([greet])
    result = driver.task(started("greet", '"ann"'))
    assert result.state is InstanceState.FINISHED and result.workflow_name == "greet"
    assert types(result.executed) == [
        EventType.WORKFLOW_TASK_STARTED,
        EventType.WORKFLOW_EXECUTION_STARTED,
        EventType.WORKFLOW_EXECUTION_FINISHED,
    ]
    assert [e.sequence_id for e in result.executed] == [1, 2, 3]
    assert finished_attributes(result).result == '"hello ann"'


def test_activity_round_trip() -> None:
    def charge(amount: int) -> int:
        return amount

    async def pay(ctx: workflow.Context) -> int:
        return await workflow.execute_activity(ctx, workflow.ActivityOptions(queue="payments"), charge, 12) + 1

    driver = Driver([pay])
    first = driver.task(started("pay"))
    assert first.state is InstanceState.ACTIVE
    (scheduled,) = first.activity_events
    assert isinstance(scheduled.attributes, ActivityScheduledAttributes)
    assert (scheduled.attributes.name, scheduled.attributes.inputs, scheduled.attributes.queue) == ("charge", ["12"], "payments")
    assert scheduled.schedule_event_id == 1 and scheduled.id in [e.id for e in first.executed]
    second = driver.task(completed(scheduled, "12"))
    assert second.state is InstanceState.FINISHED
    assert finished_attributes(second).result == "13"
    assert [e.sequence_id for e in driver.store.events] == list(range(1, len(driver.store.events) + 1))


# -- replay ------------------------------------------------------------------------------------


def _two_step_workflow(log: list[Any]) -> Any:
    def step(n: int) -> int:
        return n

    async def two_steps(ctx: workflow.Context) -> int:
        log.append(("start", workflow.replaying(ctx)))
        a = await workflow.execute_activity(ctx, ONCE, step, 1)
        log.append(("after a", workflow.replaying(ctx)))
        b = await workflow.execute_activity(ctx, ONCE, step, 2)
        return a + b

    return two_steps


def test_fresh_executor_replays_history_then_continues() -> None:
    log: list[Any] = []
    driver = Driver([_two_step_workflow(log)])
    first = driver.task(started("two_steps"))
    second = driver.task(completed(first.activity_events[0], "1"))
    assert log == [("start", False), ("after a", False)]

    log.clear()
    fresh = driver.new_executor()
    third = driver.task(completed(second.activity_events[0], "2"), executor=fresh)
    # The fresh executor replayed the first two tasks, then executed the new event.
    assert log == [("start", True), ("after a", True)]
    assert third.state is InstanceState.FINISHED and finished_attributes(third).result == "3"
    assert third.executed[0].sequence_id == len(driver.store.events) - len(third.executed) + 1


def test_cached_executor_does_not_replay() -> None:
    log: list[Any] = []
    driver = Driver([_two_step_workflow(log)])
    first = driver.task(started("two_steps"))
    reads = driver.store.reads
    driver.task(completed(first.activity_events[0], "1"))
    assert driver.store.reads == reads  # nothing fetched: the executor was up to date
    assert log == [("start", False), ("after a", False)]


def test_history_length_is_the_same_for_cached_and_fresh_executors() -> None:
    lengths: list[int] = []

    def step() -> None:
        return None

    async def wf(ctx: workflow.Context) -> None:
        await workflow.execute_activity(ctx, ONCE, step)
        lengths.append(workflow.instance_execution_details(ctx).history_length)
        await workflow.execute_activity(ctx, ONCE, step)

    driver = Driver([wf])
    first = driver.task(started("wf"))
    second = driver.task(completed(first.activity_events[0]))
    cached = lengths[-1]
    driver.new_executor().execute_task(last_sequence_id=len(driver.store.events), new_events=[completed(second.activity_events[0])])
    assert lengths[-1] == cached == 5


def test_stale_task_is_refused() -> None:
    log: list[Any] = []
    driver = Driver([_two_step_workflow(log)])
    driver.task(started("two_steps"))
    with pytest.raises(StaleExecutor):
        driver.executor.execute_task(last_sequence_id=0, new_events=[])


def test_side_effect_is_not_run_again_on_replay() -> None:
    calls: list[int] = []

    async def wf(ctx: workflow.Context) -> int:
        value = await workflow.side_effect(ctx, lambda: calls.append(1) or 41)
        await workflow.sleep(ctx, 1)
        return value + 1

    driver = Driver([wf])
    first = driver.task(started("wf"))
    timer = next(e for e in first.executed if e.type is EventType.TIMER_SCHEDULED)
    result = driver.task(fired(timer), executor=driver.new_executor())
    assert finished_attributes(result).result == "42"
    assert calls == [1]


def test_consecutive_signals_are_delivered_together() -> None:
    async def drain(ctx: workflow.Context) -> list[Any]:
        channel = workflow.new_signal_channel(ctx, "item")
        seen = [await channel.receive(ctx)]
        while True:
            value, ok = channel.receive_nonblocking()
            if not ok:
                return seen
            seen.append(value)

    driver = Driver([drain])
    driver.task(started("drain"))
    result = driver.task(signal("item", "1"), signal("item", "2"), signal("item", "3"))
    assert finished_attributes(result).result == "[1,2,3]"


def test_signals_before_the_channel_exists_keep_arrival_order() -> None:
    async def late_channel(ctx: workflow.Context) -> list[Any]:
        await workflow.sleep(ctx, 1)
        channel = workflow.new_signal_channel(ctx, "item")
        return [await channel.receive(ctx) for _ in range(3)]

    driver = Driver([late_channel])
    first = driver.task(started("late_channel"))
    timer = next(e for e in first.executed if e.type is EventType.TIMER_SCHEDULED)
    driver.task(signal("item", '"a"'), signal("item", '"b"'))
    result = driver.task(signal("item", '"c"'), fired(timer))
    assert finished_attributes(result).result == '["a","b","c"]'


# -- non-determinism ---------------------------------------------------------------------------


def _history_of_version_1(version_1: Any) -> Driver:
    driver = Driver([(version_1, "order")])
    first = driver.task(started("order"))
    driver.task(completed(first.activity_events[0], '"a"'))
    return driver


def _replay_with(driver: Driver, version_2: Any) -> Any:
    registry = Registry()
    registry.register_workflow(version_2, "order")
    before = [event_to_dict(e) for e in driver.store.events]
    result = driver.task(signal("go", "null"), executor=driver.new_executor(registry))
    # History already recorded is never rewritten: only new events were produced.
    assert [event_to_dict(e) for e in driver.store.events[: len(before)]] == before
    assert [e.sequence_id for e in result.executed] == list(range(len(before) + 1, len(before) + 1 + len(result.executed)))
    return result


def step_a() -> str:
    return "a"


def step_b() -> str:
    return "b"


async def version_1(ctx: workflow.Context) -> str:
    first = await workflow.execute_activity(ctx, ONCE, step_a)
    await workflow.new_signal_channel(ctx, "go").receive(ctx)
    return first


def test_nondeterminism_different_activity() -> None:
    async def version_2(ctx: workflow.Context) -> str:
        first = await workflow.execute_activity(ctx, ONCE, step_b)
        await workflow.new_signal_channel(ctx, "go").receive(ctx)
        return first

    driver = _history_of_version_1(version_1)
    result = _replay_with(driver, version_2)
    assert result.state is InstanceState.FINISHED
    assert isinstance(result.error, NondeterminismError)
    message = final_error(result)
    assert "workflow instance wf-1 (execution exec-1)" in message
    assert "ActivityScheduled at history sequence 3 with schedule event id 1" in message
    assert "expected the workflow code to produce ActivityScheduled(step_a)" in message
    assert "but it produced ActivityScheduled(step_b)" in message
    assert finished_attributes(result).error.type == "NondeterminismError"  # type: ignore[union-attr]
    # The new events are recorded, then the failure: nothing delivered is lost.
    assert types(result.executed) == [
        EventType.WORKFLOW_TASK_STARTED,
        EventType.SIGNAL_RECEIVED,
        EventType.WORKFLOW_EXECUTION_FINISHED,
    ]


def test_nondeterminism_timer_instead_of_activity() -> None:
    async def version_2(ctx: workflow.Context) -> str:
        await workflow.sleep(ctx, 5)
        return "slept"

    result = _replay_with(_history_of_version_1(version_1), version_2)
    message = final_error(result)
    assert "expected the workflow code to produce ActivityScheduled(step_a)" in message
    assert "but it produced TimerScheduled(Sleep)" in message


def test_nondeterminism_activity_removed() -> None:
    async def version_2(ctx: workflow.Context) -> str:
        await workflow.new_signal_channel(ctx, "go").receive(ctx)
        return "no activity any more"

    message = final_error(_replay_with(_history_of_version_1(version_1), version_2))
    assert "but it produced nothing" in message


def test_nondeterministic_workflow_sends_no_new_commands() -> None:
    def step_c() -> str:
        return "c"

    async def version_2(ctx: workflow.Context) -> str:
        await workflow.execute_activity(ctx, ONCE, step_b)
        await workflow.execute_activity(ctx, ONCE, step_c)
        return ""

    result = _replay_with(_history_of_version_1(version_1), version_2)
    assert result.activity_events == [] and result.timer_events == [] and result.workflow_events == []


# -- start errors and limits -------------------------------------------------------------------


async def needs_an_int(ctx: workflow.Context, value: int) -> int:
    return value


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ((), "mismatched argument count: expected 1, got 0"),
        (('"x"',), "mismatched argument type: expected int, got str"),
        (("1", "2"), "mismatched argument count: expected 1, got 2"),
        (("{not json",), "payload is not valid JSON"),
    ],
)
def test_argument_mismatch_on_start(inputs: tuple[str, ...], message: str) -> None:
    result = Driver([needs_an_int]).task(started("needs_an_int", *inputs))
    assert result.state is InstanceState.FINISHED
    assert message in final_error(result)
    assert finished_attributes(result).error.permanent  # type: ignore[union-attr]


def test_unknown_workflow() -> None:
    result = Driver([]).task(started("nope"))
    assert result.state is InstanceState.FINISHED
    assert final_error(result) == "workflow nope not found"
    assert finished_attributes(result).error.type == "WorkflowNotFound"  # type: ignore[union-attr]


def test_max_history_size() -> None:
    def step() -> None:
        return None

    async def loop(ctx: workflow.Context) -> None:
        while True:
            await workflow.execute_activity(ctx, ONCE, step)

    driver = Driver([loop], max_history_size=8)
    result = driver.task(started("loop"))
    while result.state is InstanceState.ACTIVE:
        result = driver.task(completed(result.activity_events[0]))
    assert final_error(result) == "workflow history size exceeded 8 events"
    # The task that crossed the limit scheduled nothing.
    assert result.activity_events == []
    assert len(driver.store.events) <= 8 + 1


def test_pending_futures_rule() -> None:
    def step() -> None:
        return None

    async def forgetful(ctx: workflow.Context) -> None:
        workflow.schedule_timer(ctx, 2)
        workflow.schedule_timer(ctx, timedelta(minutes=1), name="reminder")
        workflow.execute_activity(ctx, ONCE, step)

    result = Driver([forgetful]).task(started("forgetful"))
    assert final_error(result) == (
        "workflow completed, but there are still pending futures: [1-timer:2s 2-timer-reminder:60s 3-activity:step]"
    )
    assert result.activity_events == [] and result.timer_events == []


def test_panic_is_a_panic_error_with_traceback() -> None:
    async def exploding(ctx: workflow.Context) -> None:
        raise ZeroDivisionError("boom")

    result = Driver([exploding]).task(started("exploding"))
    assert isinstance(result.error, PanicError)
    error = finished_attributes(result).error
    # The exception's own type is stored, with the panic flag beside it.
    assert error is not None and (error.type, error.message, error.panic) == ("ZeroDivisionError", "boom", True)
    assert error.to_dict()["panic"] is True
    assert "exploding" in error.stacktrace and "ZeroDivisionError: boom" in error.stacktrace
    rebuilt = WorkflowError.from_info(ErrorInfo.from_dict(error.to_dict()))
    assert isinstance(rebuilt, PanicError) and (rebuilt.type, rebuilt.panic) == ("ZeroDivisionError", True)


def test_panics_stored_by_earlier_versions_come_back_as_panic_errors() -> None:
    # Before the panic flag, a panic was stored as type "PanicError", its type in the message.
    info = ErrorInfo.from_dict({"type": "PanicError", "message": "panic in workflow: KeyError('x')"})
    assert info.panic
    error = WorkflowError.from_info(info)
    assert isinstance(error, PanicError) and error.type == "PanicError" and "KeyError" in error.message
    assert WorkflowError.from_info(ErrorInfo.from_dict({"type": "KeyError", "message": "'x'"})).panic is False


def test_workflow_error_is_the_result_not_a_panic() -> None:
    async def refuses(ctx: workflow.Context) -> None:
        raise workflow.WorkflowError("no stock", type="OutOfStock")

    result = Driver([refuses]).task(started("refuses"))
    error = finished_attributes(result).error
    assert error is not None and (error.type, error.message) == ("OutOfStock", "no stock")
    assert not isinstance(result.error, PanicError) and isinstance(result.error, WorkflowError)


def test_cancellation_event_cancels_the_root_context() -> None:
    async def wait(ctx: workflow.Context) -> str:
        try:
            await workflow.sleep(ctx, 60)
        except workflow.Canceled:
            return "canceled"
        return "slept"

    driver = Driver([wait])
    driver.task(started("wait"))
    result = driver.task(new_event(WorkflowExecutionCanceledAttributes(), T0))
    assert finished_attributes(result).result == '"canceled"'
    assert types(result.executed)[-2:] == [EventType.TIMER_CANCELED, EventType.WORKFLOW_EXECUTION_FINISHED]


# -- other commands ----------------------------------------------------------------------------


def test_continue_as_new() -> None:
    async def counter(ctx: workflow.Context, n: int) -> int:
        raise workflow.ContinueAsNew(n + 1, result=n)

    parent = WorkflowInstance("parent", "p")
    instance = WorkflowInstance("wf-1", "exec-1", parent=parent, parent_event_id=7)
    result = Driver([counter], instance=instance).task(started("counter", "1", metadata={"k": "v"}))
    assert result.state is InstanceState.CONTINUED_AS_NEW
    last = result.executed[-1]
    assert isinstance(last.attributes, WorkflowExecutionContinuedAsNewAttributes)
    assert last.attributes.result == "1"
    (start,) = result.workflow_events
    assert start.instance.instance_id == "wf-1" and start.instance.execution_id == last.attributes.continued_execution_id
    # The new execution keeps the parent link, so the parent only sees the final result.
    assert start.instance.parent == parent and start.instance.parent_event_id == 7
    assert isinstance(start.event.attributes, WorkflowExecutionStartedAttributes)
    assert (start.event.attributes.name, start.event.attributes.inputs) == ("counter", ["2"])
    assert start.event.attributes.metadata == {"k": "v"}


def test_sub_workflow_ids_are_deterministic() -> None:
    async def child(ctx: workflow.Context) -> None:
        return None

    async def parent(ctx: workflow.Context) -> None:
        await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), child)

    ids = []
    for _ in range(2):
        result = Driver([parent, child]).task(started("parent"))
        (scheduled,) = [e for e in result.executed if e.type is EventType.SUB_WORKFLOW_SCHEDULED]
        assert isinstance(scheduled.attributes, SubWorkflowScheduledAttributes)
        (start,) = result.workflow_events
        assert start.instance == scheduled.attributes.sub_workflow_instance
        assert start.instance.parent == WorkflowInstance("wf-1", "exec-1") and start.instance.parent_event_id == 1
        ids.append(start.instance.instance_id)
    assert ids[0] == ids[1]
    uuid.UUID(ids[0])  # a uuid (version 5: derived, not random)
    assert uuid.UUID(ids[0]).version == 5


def test_timer_canceled_before_commit_produces_no_events() -> None:
    async def wf(ctx: workflow.Context) -> str:
        tctx, cancel = workflow.with_cancel(ctx)
        timer = workflow.schedule_timer(tctx, 60)
        cancel()
        try:
            await timer
        except workflow.Canceled:
            return "canceled"
        return "fired"

    result = Driver([wf]).task(started("wf"))
    assert finished_attributes(result).result == '"canceled"'
    assert result.timer_events == []
    assert EventType.TIMER_SCHEDULED not in types(result.executed)


def test_timer_produces_a_future_fired_event() -> None:
    async def wf(ctx: workflow.Context) -> None:
        await workflow.schedule_timer(ctx, 30, name="wake")

    result = Driver([wf]).task(started("wf"))
    (future_event,) = result.timer_events
    assert future_event.type is EventType.TIMER_FIRED
    assert future_event.visible_at == T0 + timedelta(seconds=30)
    assert future_event.schedule_event_id == 1


def test_retries_stop_when_the_retry_timeout_would_pass() -> None:
    def flaky() -> None:
        raise RuntimeError("down")

    async def wf(ctx: workflow.Context) -> None:
        retry = workflow.RetryOptions(max_attempts=10, first_retry_interval=10, retry_timeout=15)
        await workflow.execute_activity(ctx, workflow.ActivityOptions(retry_options=retry), flaky)

    failed = new_event(
        ActivityFailedAttributes(error=WorkflowError("down", type="RuntimeError").to_info()), T0
    )
    driver = Driver([wf])
    result = driver.task(started("wf"))
    attempts = 1
    while result.state is InstanceState.ACTIVE:
        if result.activity_events:
            result = driver.task(dataclasses.replace(failed, schedule_event_id=result.activity_events[0].schedule_event_id))
        else:
            (timer,) = result.timer_events
            assert timer.attributes.name == "Retry-Backoff"  # type: ignore[attr-defined]
            driver.clock.current = timer.visible_at  # type: ignore[assignment]
            result = driver.task(fired(next(e for e in result.executed if e.type is EventType.TIMER_SCHEDULED)))
            attempts += 1
    # Attempt 1 failed at 0 s and waited 10 s; attempt 2 failed at 10 s, and another 10 s wait
    # would end after the 15 s retry timeout.
    assert attempts == 2
    assert final_error(result) == "down"


def test_go_and_err_group_misuse() -> None:
    ctx = workflow_state().root

    def not_async(ctx: workflow.Context) -> None:
        return None

    with pytest.raises(TypeError, match="needs an async function"):
        workflow.go(ctx, not_async)  # type: ignore[arg-type]
    _, group = workflow.with_err_group(ctx)

    async def wait_for_group() -> None:
        await group.wait(ctx)

    run(wait_for_group())
    with pytest.raises(RuntimeError, match="ErrGroup misuse: Go called after Wait"):
        group.go(lambda ctx: None)  # type: ignore[arg-type,return-value]


def test_result_that_cannot_be_stored_fails_the_workflow() -> None:
    async def returns_a_set(ctx: workflow.Context) -> Any:
        return {1, 2}

    result = Driver([returns_a_set]).task(started("returns_a_set"))
    assert result.state is InstanceState.FINISHED
    message = final_error(result)
    assert message.startswith("converting workflow result: value of type set is not JSON serializable")


def test_foreign_awaitable_in_a_workflow_is_a_panic() -> None:
    import asyncio

    async def uses_asyncio(ctx: workflow.Context) -> None:
        await asyncio.sleep(0)

    result = Driver([uses_asyncio]).task(started("uses_asyncio"))
    message = final_error(result)
    assert finished_attributes(result).error.type == "ForeignAwaitable"  # type: ignore[union-attr]
    assert message.startswith("workflow code awaited None, which is not a workflow future")
    assert "asyncio" in message
