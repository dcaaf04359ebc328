"""End-to-end conformance cases for activity timeouts, heartbeats and cancellation, and for
execution timeouts and delayed starts (Temporal's semantics; go-workflows has none of them).

Activities that hang wait on an event the case sets when it ends, so that no thread outlives
it. Timeouts are about a second; the cases wait for outcomes, never for a speed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from ... import activity, workflow
from ...engine.clock import utcnow
from ...engine.history import EventType
from .support import WAIT, EndToEndFixtures, record_calls, wait_until

#: Two attempts, the second at once.
_TWICE = workflow.RetryOptions(max_attempts=2)
SKEW = timedelta(seconds=0.2)


def _failures(history: list[Any]) -> list[Any]:
    return [e.attributes.error for e in history if e.type is EventType.ACTIVITY_FAILED]


class _Gate:
    """What a hung activity waits for; opened when the case ends."""

    def __init__(self) -> None:
        self.opened = threading.Event()

    def wait(self) -> None:
        self.opened.wait(WAIT)


class _Fixtures(EndToEndFixtures):
    @pytest.fixture
    def gate(self) -> Iterator[_Gate]:
        opened = _Gate()
        yield opened
        opened.opened.set()


def _beat_until_canceled(seen: list[str], started: threading.Event | None = None) -> str:
    """The body of an activity that works (heartbeating) until it is told to stop."""
    deadline = time.monotonic() + WAIT
    beats = 0
    while time.monotonic() < deadline:
        try:
            activity.heartbeat(beats)
        except activity.ActivityCanceled as exc:
            seen.append(type(exc).__name__)
            seen.append(f"is_canceled={activity.is_canceled()}")
            return f"stopped after {beats} heartbeats"
        if started is not None:
            started.set()
        beats += 1
        time.sleep(0.02)
    return "never told to stop"


class ActivityTimeoutCases(_Fixtures):
    def test_hung_attempt_times_out_its_retry_runs_and_its_late_result_is_discarded(
        self, e2e: Any, gate: _Gate, caplog: pytest.LogCaptureFixture
    ) -> None:
        late: list[str] = []

        def export() -> str:
            if activity.attempt() == 0:
                gate.wait()  # hangs without heartbeats: only the store can end it
                late.append("returned")
                return "late"
            return "retried"

        options = workflow.ActivityOptions(start_to_close_timeout=1.0, retry_options=_TWICE)

        async def wf(ctx: workflow.Context) -> str:
            return await workflow.execute_activity(ctx, options, export)

        # One activity slot: the retry can only run if the hung attempt gave its slot back.
        h = e2e([wf], [export], worker={"max_parallel_activity_tasks": 1})
        completions = record_calls(h.backend, "complete_activity_task")
        instance = h.run(wf)
        assert h.wait_result(instance) == "retried"
        history = h.history(instance)
        (failure,) = _failures(history)
        assert (failure.type, failure.timeout_type, failure.permanent) == ("ActivityTimeout", "start_to_close", False)
        wait_until(lambda: h.worker.in_flight == 0, what="the hung attempt to stop counting as in flight")
        # Its result, when it finally comes, is discarded and changes nothing. (The worker knows
        # the attempt is over; a worker that does not is refused by the backend: see the
        # backend-level case test_start_to_close_timeout_fails_the_attempt_and_fences_its_holder.)
        caplog.set_level("WARNING", logger="django_workflows.worker")
        gate.opened.set()
        wait_until(lambda: late and "discarding its result" in caplog.text, what="the late result to be discarded")
        assert h.history(instance) == history
        assert completions == ["ok"]  # the retry's

    def test_timeout_reaches_the_workflow_as_activity_timeout_error(self, e2e: Any, gate: _Gate) -> None:
        def export() -> None:
            gate.wait()

        async def wf(ctx: workflow.Context) -> list[Any]:
            options = workflow.ActivityOptions(start_to_close_timeout=timedelta(milliseconds=500))
            try:
                await workflow.execute_activity(ctx, options, export)
            except workflow.ActivityTimeoutError as err:
                return [isinstance(err, workflow.WorkflowError), err.type, err.timeout_type == workflow.TimeoutType.START_TO_CLOSE]
            return []

        h = e2e([wf], [export])
        assert h.result(wf) == [True, "ActivityTimeout", True]

    def test_heartbeat_timeout_hands_the_last_details_to_the_retry(self, e2e: Any, gate: _Gate) -> None:
        def export() -> Any:
            done = activity.info().heartbeat_details or 0
            if activity.attempt() == 0:
                for row in range(done, 3):
                    activity.heartbeat(row + 1)  # "exported" rows 1..3
                gate.wait()  # stops heartbeating
            return done

        options = workflow.ActivityOptions(heartbeat_timeout=1.0, retry_options=_TWICE)

        async def wf(ctx: workflow.Context) -> Any:
            return await workflow.execute_activity(ctx, options, export)

        h = e2e([wf], [export])
        instance = h.run(wf)
        assert h.wait_result(instance) == 3
        (failure,) = _failures(h.history(instance))
        assert failure.timeout_type == "heartbeat"

    def test_heartbeats_are_throttled_and_the_last_details_win(self, e2e: Any) -> None:
        def export() -> Any:
            if activity.attempt() == 0:
                for row in range(2000):
                    activity.heartbeat(row)
                raise RuntimeError("failed after 2000 heartbeats")
            return activity.info().heartbeat_details

        async def wf(ctx: workflow.Context) -> Any:
            return await workflow.execute_activity(ctx, workflow.ActivityOptions(retry_options=_TWICE), export)

        h = e2e([wf], [export])
        writes = record_calls(h.backend, "heartbeat_activity_task")
        assert h.result(wf) == 1999
        assert 1 <= len(writes) < 100, f"{len(writes)} heartbeat writes for 2000 heartbeats"

    def test_schedule_to_close_bounds_all_attempts(self, e2e: Any, gate: _Gate) -> None:
        def flaky() -> None:
            if activity.attempt() < 2:
                raise ValueError("not yet")
            gate.wait()  # the third attempt hangs until the time for all of them is spent

        options = workflow.ActivityOptions(
            schedule_to_close_timeout=3.0,
            retry_options=workflow.RetryOptions(max_attempts=50, first_retry_interval=0.05),
        )

        async def wf(ctx: workflow.Context) -> None:
            await workflow.execute_activity(ctx, options, flaky)

        h = e2e([wf], [flaky])
        instance = h.run(wf)
        with pytest.raises(workflow.ActivityTimeoutError) as info:
            h.wait_result(instance)
        assert (info.value.timeout_type, info.value.permanent) == (workflow.TimeoutType.SCHEDULE_TO_CLOSE, True)
        assert h.types(instance).count(EventType.ACTIVITY_SCHEDULED) == 3

    def test_schedule_to_start_fails_an_activity_no_worker_takes(self, e2e: Any) -> None:
        def export() -> None:
            raise AssertionError("no worker polls this queue")

        async def wf(ctx: workflow.Context) -> str:
            options = workflow.ActivityOptions(queue="nobody-polls-this", schedule_to_start_timeout=1.0)
            try:
                await workflow.execute_activity(ctx, options, export)
            except workflow.ActivityTimeoutError as err:
                return err.timeout_type.value
            return "ran"

        h = e2e([wf], [export])
        assert h.result(wf) == "schedule_to_start"

    def test_async_activity_is_interrupted_when_its_attempt_times_out(self, e2e: Any) -> None:
        interrupted = threading.Event()

        async def export() -> None:
            try:
                await asyncio.sleep(WAIT)
            except asyncio.CancelledError:
                interrupted.set()
                raise

        async def wf(ctx: workflow.Context) -> str:
            try:
                await workflow.execute_activity(ctx, workflow.ActivityOptions(start_to_close_timeout=1.0), export)
            except workflow.ActivityTimeoutError as err:
                return err.timeout_type.value
            return "finished"

        h = e2e([wf], [export])
        assert h.result(wf) == "start_to_close"
        wait_until(interrupted.is_set, what="the async activity to be canceled")


class ActivityCancellationCases(_Fixtures):
    def test_canceling_the_context_stops_a_running_activity_and_waits_for_it(self, e2e: Any) -> None:
        seen: list[str] = []
        started = threading.Event()

        def export() -> str:
            return _beat_until_canceled(seen, started)

        async def wf(ctx: workflow.Context) -> str:
            child, cancel = workflow.with_cancel(ctx)
            future = workflow.execute_activity(child, workflow.ActivityOptions(), export)
            await workflow.new_signal_channel(ctx, "cancel").receive(ctx)
            cancel()
            return await future  # the default (wait): the activity's own outcome

        h = e2e([wf], [export])
        instance = h.run(wf)
        assert started.wait(WAIT)
        h.client.signal_workflow(instance.instance_id, "cancel")
        assert h.wait_result(instance).startswith("stopped after")
        assert seen == ["ActivityCanceled", "is_canceled=True"]
        assert EventType.ACTIVITY_CANCELLATION_REQUESTED in h.types(instance)

    def test_try_cancel_resolves_at_once_and_still_tells_the_activity(self, e2e: Any) -> None:
        seen: list[str] = []
        started = threading.Event()

        def export() -> str:
            return _beat_until_canceled(seen, started)

        async def wf(ctx: workflow.Context) -> str:
            child, cancel = workflow.with_cancel(ctx)
            future = workflow.execute_activity(child, workflow.ActivityOptions(cancellation="try"), export)
            await workflow.new_signal_channel(ctx, "cancel").receive(ctx)
            cancel()
            try:
                await future
            except workflow.Canceled:
                pass
            # Still running: the workflow waits for the activity to hear of it before it ends.
            await workflow.new_signal_channel(ctx, "done").receive(ctx)
            return "canceled at once"

        h = e2e([wf], [export])
        instance = h.run(wf)
        assert started.wait(WAIT)
        h.client.signal_workflow(instance.instance_id, "cancel")
        wait_until(lambda: seen, what="the activity to learn of its cancellation")
        h.client.signal_workflow(instance.instance_id, "done")
        assert h.wait_result(instance) == "canceled at once"
        assert seen == ["ActivityCanceled", "is_canceled=True"]

    def test_abandon_does_not_tell_the_activity(self, e2e: Any) -> None:
        seen: list[bool] = []
        started, finished = threading.Event(), threading.Event()

        def export() -> str:
            started.set()
            for row in range(40):
                activity.heartbeat(row)
                seen.append(activity.is_canceled())
                time.sleep(0.05)
            finished.set()
            return "ran to the end"

        async def wf(ctx: workflow.Context) -> str:
            child, cancel = workflow.with_cancel(ctx)
            future = workflow.execute_activity(child, workflow.ActivityOptions(cancellation="abandon"), export)
            await workflow.new_signal_channel(ctx, "cancel").receive(ctx)
            cancel()
            try:
                await future
            except workflow.Canceled:
                pass
            await workflow.new_signal_channel(ctx, "done").receive(ctx)
            return "abandoned"

        h = e2e([wf], [export])
        instance = h.run(wf)
        assert started.wait(WAIT)
        h.client.signal_workflow(instance.instance_id, "cancel")
        assert finished.wait(WAIT)
        h.client.signal_workflow(instance.instance_id, "done")
        assert h.wait_result(instance) == "abandoned"
        assert seen and not any(seen)
        assert EventType.ACTIVITY_CANCELLATION_REQUESTED not in h.types(instance)

    def test_canceling_the_instance_reaches_its_running_activity(self, e2e: Any) -> None:
        seen: list[str] = []
        started = threading.Event()

        def export() -> str:
            return _beat_until_canceled(seen, started)

        async def wf(ctx: workflow.Context) -> str:
            return await workflow.execute_activity(ctx, workflow.ActivityOptions(), export)

        h = e2e([wf], [export])
        instance = h.run(wf)
        assert started.wait(WAIT)
        h.client.cancel_workflow_instance(instance)
        assert h.wait_result(instance).startswith("stopped after")
        assert seen[0] == "ActivityCanceled"

    def test_terminating_the_instance_reaches_its_running_activity(self, e2e: Any) -> None:
        seen: list[str] = []
        started = threading.Event()

        def export() -> str:
            return _beat_until_canceled(seen, started)

        async def wf(ctx: workflow.Context) -> str:
            return await workflow.execute_activity(ctx, workflow.ActivityOptions(), export)

        h = e2e([wf], [export])
        instance = h.run(wf)
        assert started.wait(WAIT)
        h.client.terminate_workflow_instance(instance, "enough")
        wait_until(lambda: seen, what="the activity to learn that its workflow ended")
        # Terminated: its task is gone, so the attempt is over for its worker.
        assert seen == ["ActivityLeaseLost", "is_canceled=True"]

    def test_activity_canceled_while_queued_never_runs(self, e2e: Any) -> None:
        ran: list[str] = []

        def export(which: str) -> str:
            ran.append(which)
            return which

        async def wf(ctx: workflow.Context) -> list[str]:
            out = []
            # Canceled in the task that schedules it: it runs all the same and its result is
            # delivered (go-workflows' behaviour, issue 13). Canceled while it waits in a queue
            # nobody polls: it never runs and the future raises Canceled.
            child, cancel = workflow.with_cancel(ctx)
            at_once = workflow.execute_activity(child, workflow.ActivityOptions(), export, "at-once")
            cancel()
            child, cancel = workflow.with_cancel(ctx)
            queued = workflow.execute_activity(child, workflow.ActivityOptions(queue="nobody-polls-this"), export, "queued")
            await workflow.sleep(ctx, 0.2)
            cancel()
            for future in (at_once, queued):
                try:
                    out.append(await future)
                except workflow.Canceled:
                    out.append("canceled")
            return out

        h = e2e([wf], [export])
        assert h.result(wf) == ["at-once", "canceled"]
        assert ran == ["at-once"]


class WorkflowTimeoutCases(_Fixtures):
    def test_execution_timeout_ends_a_workflow_that_runs_too_long(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> str:
            await workflow.sleep(ctx, 120)
            return "woke"

        h = e2e([wf])
        instance = h.run(wf, execution_timeout=1.0)
        with pytest.raises(workflow.WorkflowTimedOut):
            h.wait_result(instance)
        assert h.types(instance)[-1] is EventType.WORKFLOW_EXECUTION_TIMED_OUT

    def test_sub_workflow_execution_timeout_is_the_childs_error(self, e2e: Any) -> None:
        async def child(ctx: workflow.Context) -> str:
            await workflow.sleep(ctx, 120)
            return "woke"

        async def parent(ctx: workflow.Context) -> list[Any]:
            options = workflow.SubWorkflowOptions(execution_timeout=1.0)
            try:
                await workflow.create_sub_workflow_instance(ctx, options, child)
            except workflow.WorkflowError as err:
                return [err.type, isinstance(err, workflow.WorkflowTimedOut)]
            return []

        h = e2e([parent, child])
        assert h.result(parent) == ["WorkflowTimedOut", True]

    def test_delayed_start_is_scheduled_for_later(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> str:
            return workflow.now(ctx).isoformat()

        h = e2e([wf])
        created = utcnow()
        instance = h.run(wf, start_delay=1.0)
        scheduled_for = h.client.get_workflow_instance_info(instance).scheduled_for
        assert scheduled_for is not None and scheduled_for >= created + timedelta(seconds=1) - SKEW
        started = datetime.fromisoformat(h.wait_result(instance))
        assert started >= created + timedelta(seconds=1) - SKEW

    def test_canceling_a_delayed_start_ends_it_without_running(self, e2e: Any) -> None:
        ran: list[int] = []

        async def wf(ctx: workflow.Context) -> None:
            ran.append(1)

        h = e2e([wf])
        instance = h.run(wf, start_delay=120)
        h.client.cancel_workflow_instance(instance)
        with pytest.raises(workflow.Canceled):
            h.wait_result(instance)
        assert ran == []

    def test_sub_workflow_start_delay(self, e2e: Any) -> None:
        async def child(ctx: workflow.Context) -> str:
            return workflow.now(ctx).isoformat()

        async def parent(ctx: workflow.Context) -> list[str]:
            before = workflow.now(ctx).isoformat()
            options = workflow.SubWorkflowOptions(start_delay=1.0)
            return [before, await workflow.create_sub_workflow_instance(ctx, options, child)]

        h = e2e([parent, child])
        before, started = map(datetime.fromisoformat, h.result(parent))
        assert started >= before + timedelta(seconds=1) - SKEW
