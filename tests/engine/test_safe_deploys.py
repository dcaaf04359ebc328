"""Safe deploys in the engine, driven without a backend: ``patched``/``deprecate_patch`` with
Temporal's semantics, strict replay (unrecorded commands, code that ends early), which failures
are the task's, the backoff, the reset planner and the deadlock watch of ``engine.deadlock``."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.engine.backend import BlockBackoff
from django_workflows.engine.core import InstanceState, WorkflowInstance
from django_workflows.engine.coroutines import Scheduler
from django_workflows.engine.deadlock import CodeThreads, WorkflowCodeHung
from django_workflows.engine.errors import DeadlockDetected, NondeterminismError, PanicError, WorkflowError
from django_workflows.engine.executor import failed_task_result
from django_workflows.engine.history import (
    ActivityScheduledAttributes,
    Event,
    EventType,
    PatchMarkerAttributes,
    SubWorkflowCompletedAttributes,
    SubWorkflowFailedAttributes,
    TimerFiredAttributes,
    WorkflowExecutionStartedAttributes,
    new_event,
)
from django_workflows.engine.reset import ResetError, plan_reset

from .drive import T0, Driver, started
from .test_executor import completed, fired, signal, types

ONCE = workflow.ActivityOptions()


def step(name: str) -> str:
    return name


def _markers(events: list[Event]) -> list[PatchMarkerAttributes]:
    return [e.attributes for e in events if isinstance(e.attributes, PatchMarkerAttributes)]


def _activities(events: list[Event]) -> list[tuple[int, str]]:
    return [
        (e.schedule_event_id, e.attributes.name) for e in events if isinstance(e.attributes, ActivityScheduledAttributes)
    ]


# -- patched -----------------------------------------------------------------------------------


async def old_flow(ctx: workflow.Context) -> str:
    await workflow.execute_activity(ctx, ONCE, "reserve")
    await workflow.new_signal_channel(ctx, "go").receive(ctx)
    return await workflow.execute_activity(ctx, ONCE, "ship")


decisions: list[bool] = []


async def patched_flow(ctx: workflow.Context) -> str:
    await workflow.execute_activity(ctx, ONCE, "reserve")
    decided = workflow.patched(ctx, "fraud")
    decisions.append(decided)
    if decided:
        await workflow.execute_activity(ctx, ONCE, "check_fraud")
    assert workflow.patched(ctx, "fraud") is decided  # fixed for the execution
    await workflow.new_signal_channel(ctx, "go").receive(ctx)
    return await workflow.execute_activity(ctx, ONCE, "ship")


def test_patched_live_records_a_marker_and_returns_true() -> None:
    decisions.clear()
    driver = Driver([(patched_flow, "flow")])
    first = driver.task(started("flow"))
    second = driver.task(completed(first.activity_events[0]))
    assert decisions == [True]
    assert _markers(second.executed) == [PatchMarkerAttributes(patch_id="fraud")]
    marker = next(e for e in second.executed if e.type is EventType.PATCH_MARKER)
    assert marker.schedule_event_id == 0
    # The marker comes before the command of the patched branch, and shifts no schedule id.
    assert types(second.executed).index(EventType.PATCH_MARKER) < types(second.executed).index(EventType.ACTIVITY_SCHEDULED)
    assert _activities(second.executed) == [(2, "check_fraud")]
    # A fresh executor replays it on the new branch, without a second marker.
    decisions.clear()
    third = driver.task(completed(second.activity_events[0]), executor=driver.new_executor())
    assert decisions == [True] and not _markers(third.executed)


def test_replay_of_a_history_from_before_the_patch_takes_the_old_branch() -> None:
    decisions.clear()
    driver = Driver([(old_flow, "flow")])
    first = driver.task(started("flow"))
    driver.task(completed(first.activity_events[0]))  # waits for "go"
    # Deploy: the patched code replays the old history.
    patched = driver.new_executor(_registry_with(patched_flow))
    third = driver.task(signal("go", "null"), executor=patched)
    assert decisions == [False]
    assert not _markers(third.executed) and _activities(third.executed) == [(2, "ship")]


def test_a_marker_in_a_later_task_does_not_count_earlier() -> None:
    # The call is answered from the markers of the task being replayed, not the whole history.
    async def flow(ctx: workflow.Context) -> list[bool]:
        first = workflow.patched(ctx, "a")
        await workflow.sleep(ctx, 1)
        return [first, workflow.patched(ctx, "b")]

    driver = Driver([flow])
    first = driver.task(started("flow"))
    timer = next(e for e in first.executed if e.type is EventType.TIMER_SCHEDULED)
    assert _markers(first.executed) == [PatchMarkerAttributes(patch_id="a")]
    result = driver.task(fired(timer), executor=driver.new_executor())
    assert _markers(result.executed) == [PatchMarkerAttributes(patch_id="b")]
    assert result.state is InstanceState.FINISHED


def test_deprecate_patch_accepts_histories_with_and_without_the_marker() -> None:
    async def deprecated(ctx: workflow.Context) -> str:
        await workflow.execute_activity(ctx, ONCE, "reserve")
        workflow.deprecate_patch(ctx, "fraud")
        await workflow.execute_activity(ctx, ONCE, "check_fraud")
        await workflow.new_signal_channel(ctx, "go").receive(ctx)
        return await workflow.execute_activity(ctx, ONCE, "ship")

    # A history recorded by the patched code (with the marker) replays under deprecate_patch.
    decisions.clear()
    driver = Driver([(patched_flow, "flow")])
    first = driver.task(started("flow"))
    second = driver.task(completed(first.activity_events[0]))
    third = driver.task(completed(second.activity_events[0]), executor=driver.new_executor(_registry_with(deprecated)))
    assert _activities(third.executed) == []  # waiting for "go", nothing new, no mismatch
    assert not any(e.type is EventType.WORKFLOW_EXECUTION_FINISHED for e in third.executed)
    # New executions record a deprecated marker.
    fresh = Driver([(deprecated, "flow")])
    first = fresh.task(started("flow"))
    second = fresh.task(completed(first.activity_events[0]))
    assert _markers(second.executed) == [PatchMarkerAttributes(patch_id="fraud", deprecated=True)]


def test_a_marker_no_code_asks_for_is_ignored() -> None:
    async def cleaned_up(ctx: workflow.Context) -> str:
        await workflow.execute_activity(ctx, ONCE, "reserve")
        await workflow.execute_activity(ctx, ONCE, "check_fraud")
        await workflow.new_signal_channel(ctx, "go").receive(ctx)
        return await workflow.execute_activity(ctx, ONCE, "ship")

    decisions.clear()
    driver = Driver([(patched_flow, "flow")])
    first = driver.task(started("flow"))
    second = driver.task(completed(first.activity_events[0]))
    third = driver.task(completed(second.activity_events[0]))
    result = driver.task(signal("go", "null"), executor=driver.new_executor(_registry_with(cleaned_up)))
    assert _activities(result.executed) == [(3, "ship")] and third.state is InstanceState.ACTIVE


def test_patch_ids_are_checked() -> None:
    async def flow(ctx: workflow.Context) -> bool:
        return workflow.patched(ctx, "")

    result = Driver([flow]).task(started("flow"))
    assert result.error is not None and "patch id" in result.error.message


def _registry_with(fn: Any, name: str = "flow") -> Any:
    from django_workflows.engine.registry import Registry

    registry = Registry()
    registry.register_workflow(fn, name)
    return registry


# -- strict replay and the task's failures ------------------------------------------------------


def test_a_command_the_recorded_task_did_not_produce_is_non_determinism() -> None:
    async def v2(ctx: workflow.Context) -> str:
        await workflow.execute_activity(ctx, ONCE, "reserve")
        await workflow.execute_activity(ctx, ONCE, "check_fraud")  # added at the frontier
        await workflow.new_signal_channel(ctx, "go").receive(ctx)
        return await workflow.execute_activity(ctx, ONCE, "ship")

    driver = Driver([(old_flow, "flow")])
    first = driver.task(started("flow"))
    driver.task(completed(first.activity_events[0]))
    executor = driver.new_executor(_registry_with(v2))
    result = executor.execute_task(last_sequence_id=len(driver.store.events), new_events=[signal("go", "null")])
    failure = executor.task_failure
    assert isinstance(failure, NondeterminismError) and result.state is InstanceState.FINISHED
    assert (failure.sequence_id, failure.event_type) == (5, "ActivityCompleted")
    assert failure.got == "ActivityScheduled(check_fraud)"
    assert "recorded no more commands" in failure.message


def test_code_that_ends_where_the_recorded_run_went_on_is_non_determinism() -> None:
    async def returns_early(ctx: workflow.Context) -> str:
        return "early"

    driver = Driver([(old_flow, "flow")])
    first = driver.task(started("flow"))
    driver.task(completed(first.activity_events[0]))
    executor = driver.new_executor(_registry_with(returns_early))
    executor.execute_task(last_sequence_id=len(driver.store.events), new_events=[])
    failure = executor.task_failure
    assert isinstance(failure, NondeterminismError)
    assert failure.event_type == "ActivityScheduled" and failure.got == "the end of the workflow"


def test_a_panic_during_replay_of_a_task_that_went_on_is_non_determinism() -> None:
    async def crashes(ctx: workflow.Context) -> str:
        raise ValueError("not a bug class, but the recorded run did not raise it")

    driver = Driver([(old_flow, "flow")])
    driver.task(started("flow"))
    executor = driver.new_executor(_registry_with(crashes))
    executor.execute_task(last_sequence_id=len(driver.store.events), new_events=[])
    failure = executor.task_failure
    assert isinstance(failure, NondeterminismError) and "with ValueError: not a bug class" in failure.got


@pytest.mark.parametrize(
    ("body", "blocks"),
    [
        (lambda: undefined_name, True),  # type: ignore[name-defined]  # noqa: F821
        (lambda: None.attribute, True),  # type: ignore[attr-defined]
        (lambda: len(1), True),  # type: ignore[arg-type]
        (lambda: __import__("no_such_module_here"), True),
        (lambda: {}["key"], False),
        (lambda: int("x"), False),
        (lambda: 1 / 0, False),
    ],
    ids=["NameError", "AttributeError", "TypeError", "ImportError", "KeyError", "ValueError", "ZeroDivisionError"],
)
def test_which_errors_of_workflow_code_are_the_tasks(body: Any, blocks: bool) -> None:
    async def flow(ctx: workflow.Context) -> None:
        body()

    driver = Driver([flow])
    result = driver.task(started("flow"))
    assert isinstance(result.error, PanicError)
    assert (driver.executor.task_failure is result.error) is blocks


def test_errors_raised_on_purpose_are_not_the_tasks() -> None:
    async def flow(ctx: workflow.Context) -> None:
        raise workflow.PermanentError("no")

    driver = Driver([flow])
    result = driver.task(started("flow"))
    assert result.error is not None and driver.executor.task_failure is None


def test_an_unknown_workflow_is_the_tasks_failure() -> None:
    driver = Driver([])
    result = driver.task(started("missing"))
    assert driver.executor.task_failure is result.error and "workflow missing not found" in str(result.error)


def test_failed_task_result_records_the_new_events_and_tells_the_parent() -> None:
    parent = WorkflowInstance("parent", "p-exec")
    child = WorkflowInstance("child", "c-exec", parent=parent, parent_event_id=7)
    error = DeadlockDetected("stuck")
    result = failed_task_result(
        instance=child, workflow_name="wf", last_sequence_id=4, new_events=[signal("go", "1")], error=error
    )
    assert result.state is InstanceState.FINISHED and result.error is error
    assert [(e.sequence_id, e.type) for e in result.executed] == [
        (5, EventType.WORKFLOW_TASK_STARTED),
        (6, EventType.SIGNAL_RECEIVED),
        (7, EventType.WORKFLOW_EXECUTION_FINISHED),
    ]
    (to_parent,) = result.workflow_events
    assert to_parent.instance == parent and to_parent.event.schedule_event_id == 7
    assert isinstance(to_parent.event.attributes, SubWorkflowFailedAttributes)
    assert to_parent.event.attributes.error.type == "DeadlockDetected"


def test_block_backoff_doubles_up_to_its_maximum() -> None:
    backoff = BlockBackoff()
    assert [backoff.delay(n).total_seconds() for n in (1, 2, 3, 9, 10, 1000)] == [1, 2, 4, 256, 300, 300]
    with pytest.raises(ValueError):
        backoff.delay(0)


# -- the reset planner -------------------------------------------------------------------------


def _order_history() -> tuple[Driver, list[Event]]:
    async def flow(ctx: workflow.Context) -> str:
        await workflow.execute_activity(ctx, ONCE, "reserve")
        timer = workflow.schedule_timer(ctx, timedelta(hours=1))
        child = workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), "child")
        await workflow.execute_activity(ctx, ONCE, "charge")
        await child
        await timer
        return "done"

    driver = Driver([flow])
    first = driver.task(started("flow"))
    second = driver.task(completed(first.activity_events[0]))  # schedules timer, child, charge
    charge = second.activity_events[0]
    scheduled = next(e for e in second.executed if e.type is EventType.SUB_WORKFLOW_SCHEDULED)
    child_done = new_event(SubWorkflowCompletedAttributes(result='"shipped"'), T0, schedule_event_id=scheduled.schedule_event_id)
    driver.task(completed(charge), signal("note", '"x"'))
    driver.task(child_done)
    return driver, list(driver.store.events)


def test_reset_keeps_the_history_before_the_point_and_sets_open_work_going_again() -> None:
    _, history = _order_history()
    tasks = [e.sequence_id for e in history if e.type is EventType.WORKFLOW_TASK_STARTED]
    target = WorkflowInstance("wf-1", uuid.uuid4().hex)
    seed = plan_reset(history, tasks[2], target, T0)
    assert seed.instance == target and seed.started.name == "flow"
    assert seed.history == [e for e in history if e.sequence_id < tasks[2]]
    # charge was scheduled before the point, its result came after: it runs again (new id).
    (charge,) = seed.activity_events
    assert charge.attributes.name == "charge" and charge.id not in {e.id for e in history}  # type: ignore[attr-defined]
    # The timer is due when it was due; the child's result and the signal come again.
    (timer,) = seed.timer_events
    assert isinstance(timer.attributes, TimerFiredAttributes) and timer.visible_at == timer.attributes.at
    assert [e.type for e in seed.pending_events] == [EventType.SIGNAL_RECEIVED, EventType.SUB_WORKFLOW_COMPLETED]


def test_reset_to_the_first_task_starts_afresh() -> None:
    _, history = _order_history()
    seed = plan_reset(history, 1, WorkflowInstance("wf-1", "new"), T0)
    assert seed.history == [] and not seed.activity_events and not seed.timer_events
    assert isinstance(seed.pending_events[0].attributes, WorkflowExecutionStartedAttributes)


def test_reset_refuses_a_point_that_is_not_a_workflow_task() -> None:
    _, history = _order_history()
    tasks = [e.sequence_id for e in history if e.type is EventType.WORKFLOW_TASK_STARTED]
    with pytest.raises(ResetError, match=r"history sequence 2 is a WorkflowExecutionStarted event.*: " + ", ".join(map(str, tasks))):
        plan_reset(history, 2, WorkflowInstance("wf-1", "new"), T0)
    with pytest.raises(ResetError, match="is not in the history"):
        plan_reset(history, 999, WorkflowInstance("wf-1", "new"), T0)
    with pytest.raises(ResetError, match="an int"):
        plan_reset(history, "3", WorkflowInstance("wf-1", "new"), T0)  # type: ignore[arg-type]


def test_reset_refuses_a_sub_workflow_without_a_recorded_result() -> None:
    _, history = _order_history()
    without_result = [e for e in history if e.type is not EventType.SUB_WORKFLOW_COMPLETED]
    tasks = [e.sequence_id for e in without_result if e.type is EventType.WORKFLOW_TASK_STARTED]
    with pytest.raises(ResetError, match="sub-workflow child scheduled at history sequence"):
        plan_reset(without_result, tasks[2], WorkflowInstance("wf-1", "new"), T0)


# -- the deadlock watch ------------------------------------------------------------------------


def _stepping(body: Any) -> tuple[Scheduler, Any]:
    scheduler = Scheduler()

    async def coroutine() -> None:
        body()

    scheduler.spawn("main", coroutine())
    return scheduler, scheduler.run_until_blocked


def test_code_threads_return_results_and_errors_and_are_reused() -> None:
    threads = CodeThreads(5)
    scheduler = Scheduler()
    assert threads.run(lambda: threading.current_thread().name, scheduler).startswith("workflows-code")
    first = threads.run(lambda: threading.current_thread().ident, scheduler)
    assert threads.run(lambda: threading.current_thread().ident, scheduler) == first
    with pytest.raises(WorkflowError, match="boom"):
        threads.run(lambda: (_ for _ in ()).throw(WorkflowError("boom")), scheduler)
    threads.close()


def test_a_sleeping_step_is_detected_and_abandoned() -> None:
    threads = CodeThreads(0.3)
    released = threading.Event()
    abandoned = threading.Event()

    def stuck() -> None:
        released.wait(10)  # blocks in C: the interrupt only lands once it returns

    scheduler, run = _stepping(stuck)
    started_at = time.monotonic()
    with pytest.raises(WorkflowCodeHung) as info:
        threads.run(run, scheduler, on_abandoned=abandoned.set, describe=lambda: "workflow sleepy")
    assert time.monotonic() - started_at < 9
    error = info.value.error
    assert isinstance(error, DeadlockDetected) and error.type == "DeadlockDetected"
    assert "workflow sleepy did not yield back to the engine within 0.3 s (coroutine main)" in error.message
    assert "released.wait(10)" in error.message and "stuck" in error.stacktrace
    assert threads.abandoned == 1
    released.set()
    assert abandoned.wait(5), "the abandoned thread did not run on_abandoned when it returned"
    # The next job gets another thread.
    assert threads.run(lambda: "fine", Scheduler()) == "fine"
    threads.close()


@pytest.mark.skipif(
    sys.version_info[:2] == (3, 13),
    reason="CPython 3.13 does not deliver PyThreadState_SetAsyncExc to a thread that spins in Python code "
    "(python/cpython#139622): the task is still given up and the instance blocked, but the loop keeps its thread",
)
def test_a_cpu_loop_is_interrupted() -> None:
    threads = CodeThreads(0.3)
    ended = threading.Event()
    # The loop would end by itself long after the generous wait below (a loaded machine may take
    # seconds to deliver the interruption), so only an interruption passes the test.
    end = time.monotonic() + 180

    def spin() -> None:
        try:
            while time.monotonic() < end:
                pass
        finally:
            ended.set()

    scheduler, run = _stepping(spin)
    with pytest.raises(WorkflowCodeHung):
        threads.run(run, scheduler)
    assert ended.wait(60), "the loop was not interrupted"
    threads.close()
