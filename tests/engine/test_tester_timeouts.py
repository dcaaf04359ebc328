"""``WorkflowTester`` with activity timeouts, heartbeats and cancellation, execution timeouts and
delayed starts: all in workflow time (time skips to the timeouts of mocks that hang)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from django_workflows import activity, workflow
from django_workflows.engine.history import EventType
from django_workflows.testing import WorkflowTester

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def export(table: str) -> int:
    raise AssertionError("mocked, or replaced by a real body in the test")


def new_tester(wf: Any, **kwargs: Any) -> WorkflowTester:
    tester = WorkflowTester(wf, initial_time=START, **kwargs)
    tester.register_activity(export)
    return tester


def test_a_mock_that_hangs_times_out_when_time_skips_and_the_retry_answers() -> None:
    options = workflow.ActivityOptions(start_to_close_timeout=HOUR, retry_options=workflow.RetryOptions(max_attempts=2))

    async def wf(ctx: workflow.Context) -> int:
        return await workflow.execute_activity(ctx, options, export, "orders")

    tester = new_tester(wf)
    tester.on_activity(export).hangs().once()
    tester.on_activity(export).returns(7).once()
    tester.execute()
    assert tester.workflow_result() == 7
    assert tester.now() >= START + HOUR  # an hour of workflow time, no hour of wall time
    tester.assert_expectations()


def test_the_workflow_sees_activity_timeout_error_with_its_type() -> None:
    async def wf(ctx: workflow.Context) -> list[str]:
        out = []
        for kind, options in (
            ("heartbeat", workflow.ActivityOptions(heartbeat_timeout=60)),
            ("schedule_to_close", workflow.ActivityOptions(schedule_to_close_timeout=HOUR)),
            ("schedule_to_start", workflow.ActivityOptions(schedule_to_start_timeout=30)),
        ):
            try:
                await workflow.execute_activity(ctx, options, export, kind)
            except workflow.ActivityTimeoutError as err:
                out.append(f"{kind}: {err.timeout_type.value}")
        return out

    tester = new_tester(wf)
    tester.on_activity(export, "heartbeat").hangs()
    tester.on_activity(export, "schedule_to_close").hangs()
    tester.on_activity(export, "schedule_to_start").times_out("schedule_to_start")
    tester.execute()
    assert tester.workflow_result() == [
        "heartbeat: heartbeat",
        "schedule_to_close: schedule_to_close",
        "schedule_to_start: schedule_to_start",
    ]
    assert tester.now() == START + timedelta(seconds=60) + HOUR + timedelta(seconds=30)


def test_times_out_needs_that_timeout_on_the_activity() -> None:
    async def wf(ctx: workflow.Context) -> None:
        await workflow.execute_activity(ctx, workflow.ActivityOptions(), export, "x")

    tester = new_tester(wf)
    tester.on_activity(export).times_out("start_to_close")
    with pytest.raises(ValueError, match="its ActivityOptions set none"):
        tester.execute()
    with pytest.raises(TypeError, match="for mocked activities"):
        tester.on_sub_workflow(wf).hangs()


def test_real_activity_heartbeat_timeout_and_details_for_the_retry() -> None:
    gate = threading.Event()

    def real_export(table: str) -> int:
        done = activity.info().heartbeat_details or 0
        if activity.attempt() == 0:
            for row in range(done, 3):
                activity.heartbeat(row + 1)
            gate.wait(30)  # stops heartbeating
            return -1
        return done

    options = workflow.ActivityOptions(heartbeat_timeout=0.5, retry_options=workflow.RetryOptions(max_attempts=2))

    async def wf(ctx: workflow.Context) -> int:
        return await workflow.execute_activity(ctx, options, "export", "orders")

    tester = WorkflowTester(wf, initial_time=START)
    tester.register_activity(real_export, "export")
    try:
        tester.execute()
    finally:
        gate.set()
    assert tester.workflow_result() == 3


def test_cancellation_reaches_a_real_activity_at_its_heartbeat_and_a_hung_mock_at_once() -> None:
    seen: list[str] = []

    def worker_loop(table: str) -> str:
        for _ in range(1000):
            try:
                activity.heartbeat()
            except activity.ActivityCanceled:
                seen.append(f"canceled, is_canceled={activity.is_canceled()}")
                return "stopped"
            time.sleep(0.01)
        return "never told"

    async def wf(ctx: workflow.Context) -> list[str]:
        child, cancel = workflow.with_cancel(ctx)
        real = workflow.execute_activity(child, workflow.ActivityOptions(), "worker_loop", "a")
        mocked = workflow.execute_activity(child, workflow.ActivityOptions(), export, "b")
        await workflow.sleep(ctx, 0.1)
        cancel()
        out = [await real]
        try:
            await mocked
        except workflow.Canceled:
            out.append("mock canceled")
        return out

    tester = new_tester(wf)
    tester.register_activity(worker_loop)
    tester.on_activity(export).hangs()
    tester.execute()
    assert tester.workflow_result() == ["stopped", "mock canceled"]
    assert seen == ["canceled, is_canceled=True"]


def test_execution_timeout_of_the_workflow_under_test() -> None:
    async def wf(ctx: workflow.Context) -> str:
        await workflow.sleep(ctx, timedelta(days=3))
        return "woke"

    tester = new_tester(wf, execution_timeout=timedelta(days=1))
    tester.execute()
    with pytest.raises(workflow.WorkflowTimedOut):
        tester.workflow_result()
    assert tester.now() == START + timedelta(days=1)


def test_sub_workflow_execution_timeout_and_start_delay() -> None:
    async def child(ctx: workflow.Context) -> str:
        await workflow.sleep(ctx, timedelta(days=3))
        return "woke"

    async def quick(ctx: workflow.Context) -> str:
        return workflow.now(ctx).isoformat()

    async def parent(ctx: workflow.Context) -> list[Any]:
        started = await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(start_delay=HOUR), quick)
        try:
            await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(execution_timeout=HOUR), child)
        except workflow.WorkflowError as err:
            return [started, err.type]
        return [started]

    tester = new_tester(parent)
    tester.register_workflow(child)
    tester.register_workflow(quick)
    tester.execute()
    assert tester.workflow_result() == [(START + HOUR).isoformat(), "WorkflowTimedOut"]


def test_delayed_start_and_cancel_before_it() -> None:
    ran: list[int] = []

    async def wf(ctx: workflow.Context) -> str:
        ran.append(1)
        return workflow.now(ctx).isoformat()

    tester = new_tester(wf, start_delay=HOUR)
    tester.execute()
    assert tester.workflow_result() == (START + HOUR).isoformat()

    ran.clear()
    tester = new_tester(wf, start_delay=HOUR)
    tester.cancel_workflow(after=timedelta(minutes=5))
    tester.execute()
    with pytest.raises(workflow.Canceled):
        tester.workflow_result()
    assert ran == []


def test_try_and_abandon_resolve_at_once() -> None:
    async def wf(ctx: workflow.Context) -> list[str]:
        out = []
        for cancellation in ("try", "abandon"):
            child, cancel = workflow.with_cancel(ctx)
            future = workflow.execute_activity(child, workflow.ActivityOptions(cancellation=cancellation), export, cancellation)
            await workflow.sleep(ctx, 1)
            cancel()
            try:
                await future
            except workflow.Canceled:
                out.append(f"{cancellation}: canceled at {workflow.now(ctx) - START}")
        return out

    tester = new_tester(wf)
    tester.on_activity(export).hangs()
    tester.execute()
    assert tester.workflow_result() == ["try: canceled at 0:00:01", "abandon: canceled at 0:00:02"]
    assert [e.type for e in history_of(tester)].count(EventType.ACTIVITY_CANCELLATION_REQUESTED) == 1


def history_of(tester: WorkflowTester) -> list[Any]:
    return tester._executions[(tester.instance.instance_id, tester.instance.execution_id)].history
