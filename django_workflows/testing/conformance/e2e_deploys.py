"""End-to-end conformance cases of safe deploys, through real workers: an incompatible deploy
blocks running instances (history untouched) and a ``patched()`` deploy lets them finish on the
old branch while new ones take the new branch; ``deprecate_patch``; bug-class errors and
unregistered workflows block until code that works is deployed; the ``fail`` policy; deadlock
detection beside healthy workflows; restart and reset.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from ... import workflow
from ...engine.core import InstanceState
from ...engine.errors import InstanceNotFinished
from ...engine.history import EventType, PatchMarkerAttributes, event_to_dict
from ...engine.reset import ResetError
from .support import EndToEndFixtures, Harness, wait_until

_ONCE = workflow.ActivityOptions(retry_options=workflow.RetryOptions(max_attempts=1))
#: Blocked tasks come back quickly in these cases.
FAST = {"blocked_retry_first_interval": 0.2, "blocked_retry_max_interval": 0.5}


class _Calls:
    """Activities of an order flow that count their runs (thread-safe)."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self._lock = threading.Lock()

    def _record(self, name: str, order: str) -> str:
        with self._lock:
            self.runs.append(f"{name}:{order}")
        return name

    def reserve(self, order: str) -> str:
        return self._record("reserve", order)

    def check_fraud(self, order: str) -> str:
        return self._record("check_fraud", order)

    def ship(self, order: str) -> str:
        return self._record("ship", order)

    def count(self, entry: str) -> int:
        with self._lock:
            return self.runs.count(entry)


def _blocked(h: Harness, instance: Any, attempts: int = 1) -> Any:
    """Wait until ``instance`` is blocked after at least ``attempts`` failed attempts."""

    def check() -> Any:
        info = h.client.get_workflow_instance_info(instance)
        return info if info.blocked is not None and info.blocked.attempts >= attempts else None

    return wait_until(check, what=f"{instance} blocked after {attempts} attempt(s)")


def _history(h: Harness, instance: Any) -> list[dict[str, Any]]:
    return [event_to_dict(e) for e in h.history(instance)]


class DeployCases(EndToEndFixtures):
    # -- versioning ----------------------------------------------------------------------------

    def test_incompatible_deploy_blocks_and_a_patch_finishes_old_and_new(self, e2e: Any) -> None:
        calls = _Calls()

        async def v1(ctx: workflow.Context, order: str) -> list[str]:
            await workflow.execute_activity(ctx, _ONCE, "reserve", order)
            await workflow.new_signal_channel(ctx, "approve").receive(ctx)
            return [await workflow.execute_activity(ctx, _ONCE, "ship", order)]

        async def v2(ctx: workflow.Context, order: str) -> list[str]:
            # A fraud check added in the middle, without a patch: running instances have passed
            # the point where v2 schedules it.
            await workflow.execute_activity(ctx, _ONCE, "reserve", order)
            await workflow.execute_activity(ctx, _ONCE, "check_fraud", order)
            await workflow.new_signal_channel(ctx, "approve").receive(ctx)
            return [await workflow.execute_activity(ctx, _ONCE, "ship", order)]

        async def v3(ctx: workflow.Context, order: str) -> list[str]:
            await workflow.execute_activity(ctx, _ONCE, "reserve", order)
            done = []
            if workflow.patched(ctx, "fraud-check"):
                done.append(await workflow.execute_activity(ctx, _ONCE, "check_fraud", order))
            await workflow.new_signal_channel(ctx, "approve").receive(ctx)
            done.append(await workflow.execute_activity(ctx, _ONCE, "ship", order))
            return done

        h = e2e([(v1, "order")], [calls], worker=FAST)
        old = h.run("order", "o-1")
        h.wait_for_event(old, EventType.ACTIVITY_COMPLETED)
        h.wait_for_event(old, EventType.WORKFLOW_TASK_STARTED, count=2)
        h.stop_worker(h.worker)
        recorded = _history(h, old)

        v2_worker = h.add_worker([(v2, "order")], [calls], **FAST)
        h.client.signal_workflow(old.instance_id, "approve", True)
        info = _blocked(h, old, attempts=2)
        assert info.state is InstanceState.ACTIVE and info.is_blocked
        assert info.blocked.error.type == "NondeterminismError"
        assert "check_fraud" in info.blocked.error.message and old.instance_id in info.blocked.error.message
        assert info.blocked.since < info.blocked.retry_at
        assert _history(h, old) == recorded  # nothing was written: no failure, no signal moved
        assert calls.count("check_fraud:o-1") == 0
        h.stop_worker(v2_worker)

        h.add_worker([(v3, "order")], [calls], **FAST)
        # The same instance finishes on the old branch: its history never passed the patch.
        assert h.wait_result(old) == ["ship"]
        assert EventType.PATCH_MARKER not in h.types(old)
        assert h.client.get_workflow_instance_info(old).blocked is None
        assert _history(h, old)[: len(recorded)] == recorded
        # A new instance takes the new branch, recorded with a marker before the new activity.
        new = h.run("order", "o-2")
        h.wait_for_event(new, EventType.ACTIVITY_COMPLETED, count=2)
        h.client.signal_workflow(new.instance_id, "approve", True)
        assert h.wait_result(new) == ["check_fraud", "ship"]
        types = h.types(new)
        assert types.index(EventType.PATCH_MARKER) < [
            i for i, e in enumerate(h.history(new)) if e.type is EventType.ACTIVITY_SCHEDULED
        ][1]
        (marker,) = [e for e in h.history(new) if e.type is EventType.PATCH_MARKER]
        assert marker.attributes == PatchMarkerAttributes(patch_id="fraud-check") and marker.schedule_event_id == 0
        assert calls.count("check_fraud:o-1") == 0 and calls.count("check_fraud:o-2") == 1

    def test_deprecate_patch_keeps_marked_and_new_histories_replaying(self, e2e: Any) -> None:
        calls = _Calls()

        async def patched(ctx: workflow.Context, order: str) -> str:
            if workflow.patched(ctx, "fraud-check"):
                await workflow.execute_activity(ctx, _ONCE, "check_fraud", order)
            await workflow.new_signal_channel(ctx, "approve").receive(ctx)
            return await workflow.execute_activity(ctx, _ONCE, "ship", order)

        async def deprecated(ctx: workflow.Context, order: str) -> str:
            workflow.deprecate_patch(ctx, "fraud-check")  # the old branch is deleted
            await workflow.execute_activity(ctx, _ONCE, "check_fraud", order)
            await workflow.new_signal_channel(ctx, "approve").receive(ctx)
            return await workflow.execute_activity(ctx, _ONCE, "ship", order)

        async def cleaned_up(ctx: workflow.Context, order: str) -> str:
            await workflow.execute_activity(ctx, _ONCE, "check_fraud", order)
            await workflow.new_signal_channel(ctx, "approve").receive(ctx)
            return await workflow.execute_activity(ctx, _ONCE, "ship", order)

        h = e2e([(patched, "order")], [calls], worker=FAST)
        marked = h.run("order", "a")
        h.wait_for_event(marked, EventType.ACTIVITY_COMPLETED)
        h.wait_for_event(marked, EventType.WORKFLOW_TASK_STARTED, count=2)
        h.stop_worker(h.worker)

        deprecating = h.add_worker([(deprecated, "order")], [calls], **FAST)
        h.client.signal_workflow(marked.instance_id, "approve", None)
        assert h.wait_result(marked) == "ship"
        newer = h.run("order", "b")
        h.wait_for_event(newer, EventType.ACTIVITY_COMPLETED)
        h.wait_for_event(newer, EventType.WORKFLOW_TASK_STARTED, count=2)
        (marker,) = [e for e in h.history(newer) if e.type is EventType.PATCH_MARKER]
        assert marker.attributes == PatchMarkerAttributes(patch_id="fraud-check", deprecated=True)
        h.stop_worker(deprecating)

        # With the deprecate_patch call deleted too, a history with its marker still replays.
        h.add_worker([(cleaned_up, "order")], [calls], **FAST)
        h.client.signal_workflow(newer.instance_id, "approve", None)
        assert h.wait_result(newer) == "ship"
        assert calls.count("check_fraud:a") == 1 and calls.count("check_fraud:b") == 1

    # -- blocked, not failed ---------------------------------------------------------------------

    def test_bug_in_workflow_code_blocks_until_fixed_code_is_deployed(self, e2e: Any) -> None:
        calls = _Calls()

        async def buggy(ctx: workflow.Context, order: str) -> str:
            await workflow.execute_activity(ctx, _ONCE, "reserve", order)
            approval = await workflow.new_signal_channel(ctx, "approve").receive(ctx)
            return str(approval.by)  # a dict has no attribute "by": a bug, not bad data

        async def fixed(ctx: workflow.Context, order: str) -> str:
            await workflow.execute_activity(ctx, _ONCE, "reserve", order)
            approval = await workflow.new_signal_channel(ctx, "approve").receive(ctx)
            return str(approval["by"])

        h = e2e([(buggy, "order")], [calls], worker=FAST)
        instance = h.run("order", "o-1")
        h.wait_for_event(instance, EventType.ACTIVITY_COMPLETED)
        h.client.signal_workflow(instance.instance_id, "approve", {"by": "ann"})
        info = _blocked(h, instance, attempts=2)
        error = info.blocked.error
        assert (error.type, error.panic) == ("AttributeError", True) and "'by'" in error.message
        assert "buggy" in error.stacktrace
        assert EventType.WORKFLOW_EXECUTION_FINISHED not in h.types(instance)
        h.stop_worker(h.worker)
        h.add_worker([(fixed, "order")], [calls], **FAST)
        assert h.wait_result(instance) == "ann"  # no operator action: the next attempt works
        assert h.client.get_workflow_instance_info(instance).blocked is None
        assert calls.count("reserve:o-1") == 1

    def test_errors_raised_on_purpose_still_fail_the_workflow(self, e2e: Any) -> None:
        async def refuses(ctx: workflow.Context) -> None:
            raise workflow.PermanentError("out of stock", type="OutOfStock")

        async def bad_data(ctx: workflow.Context) -> int:
            return int("not a number")  # ValueError: the data is wrong, not the code

        h = e2e([refuses, bad_data], worker=FAST)
        with pytest.raises(workflow.WorkflowError) as info:
            h.result(refuses)
        assert info.value.type == "OutOfStock"
        with pytest.raises(workflow.PanicError, match="invalid literal") as panic:
            h.result(bad_data)
        assert panic.value.type == "ValueError"

    def test_fail_policy_per_workflow(self, e2e: Any) -> None:
        async def strict(ctx: workflow.Context) -> None:
            workflow.no_such_function(ctx)  # type: ignore[attr-defined]

        async def lenient(ctx: workflow.Context) -> None:
            workflow.no_such_function(ctx)  # type: ignore[attr-defined]

        h = e2e([strict, lenient], worker={**FAST, "workflow_failure_policies": {"strict": "fail"}})
        with pytest.raises(workflow.PanicError, match="no_such_function") as panic:
            h.result(strict)
        assert panic.value.type == "AttributeError"
        blocked = _blocked(h, h.run(lenient))
        assert "no_such_function" in blocked.blocked.error.message

    def test_fail_policy_for_every_workflow(self, e2e: Any) -> None:
        async def old(ctx: workflow.Context) -> str:
            await workflow.sleep(ctx, 0.001)
            await workflow.new_signal_channel(ctx, "go").receive(ctx)
            return "old"

        async def changed(ctx: workflow.Context) -> str:
            await workflow.execute_activity(ctx, _ONCE, "noop")
            await workflow.new_signal_channel(ctx, "go").receive(ctx)
            return "changed"

        def noop() -> None:
            return None

        h = e2e([(old, "wf")], [noop])
        instance = h.run("wf")
        h.wait_for_event(instance, EventType.TIMER_FIRED)
        h.wait_for_event(instance, EventType.WORKFLOW_TASK_STARTED, count=2)
        h.stop_worker(h.worker)
        h.add_worker([(changed, "wf")], [noop], workflow_failure_policy="fail")
        h.client.signal_workflow(instance.instance_id, "go", None)
        with pytest.raises(workflow.NondeterminismError, match="TimerScheduled"):
            h.wait_result(instance)

    def test_unregistered_workflow_waits_for_a_worker_that_has_it(self, e2e: Any) -> None:
        async def rolled_out(ctx: workflow.Context, n: int) -> int:
            return n + 1

        # A rolling deploy: the instance is started by new code, an old worker takes it first.
        h = e2e(worker=FAST)
        instance = h.run("rolled_out", 41)
        info = _blocked(h, instance)
        assert info.blocked.error.type == "WorkflowNotFound"
        assert "rolled_out" in info.blocked.error.message
        h.add_worker([rolled_out], **FAST)
        assert h.wait_result(instance) == 42

    # -- deadlock detection ----------------------------------------------------------------------

    def test_deadlocked_workflows_beside_healthy_ones(self, e2e: Any) -> None:
        async def sleeper(ctx: workflow.Context) -> None:
            time.sleep(15)  # blocks the thread; cannot be interrupted before it returns

        async def spinner(ctx: workflow.Context) -> None:
            end = time.monotonic() + 30
            while time.monotonic() < end:  # a CPU loop: interrupted once detected
                pass

        def step(n: int) -> int:
            return n * 2

        async def healthy(ctx: workflow.Context, n: int) -> int:
            return await workflow.execute_activity(ctx, _ONCE, step, n)

        options = {
            "workflow_deadlock_timeout": 1,
            "max_parallel_workflow_tasks": 2,
            # Every retry of a stuck workflow hangs again: retry rarely here.
            "blocked_retry_first_interval": 60,
            "blocked_retry_max_interval": 60,
        }
        h = e2e([sleeper, spinner, healthy], [step], worker=options)
        stuck = [h.run(sleeper), h.run(spinner)]
        results = [h.run(healthy, n) for n in range(6)]
        # Two stuck tasks and two slots: the healthy ones run once the stuck ones are given up.
        assert [h.wait_result(instance) for instance in results] == [n * 2 for n in range(6)]
        for instance, name, where in zip(stuck, ("sleeper", "spinner"), ("time.sleep(15)", "while time.monotonic()"), strict=True):
            error = _blocked(h, instance).blocked.error
            assert error.type == "DeadlockDetected"
            assert f"workflow {name}" in error.message and instance.instance_id in error.message
            assert where in error.message + error.stacktrace and name in error.stacktrace
        wait_until(lambda: h.worker.in_flight == 0, what="no task in flight: the stuck code holds no slot")
        started = time.monotonic()
        h.worker.stop()
        assert h.worker.wait_for_completion(20), "the worker did not stop within 20 s"
        assert time.monotonic() - started < 20

    # -- restart and reset -----------------------------------------------------------------------

    def test_restart_a_finished_instance(self, e2e: Any) -> None:
        calls = _Calls()

        async def order(ctx: workflow.Context, order_id: str) -> str:
            await workflow.execute_activity(ctx, _ONCE, "reserve", order_id)
            return await workflow.new_signal_channel(ctx, "note").receive(ctx)

        h = e2e([order], [calls])
        first = h.run(order, "o-1")
        h.client.signal_workflow(first.instance_id, "note", "first")
        assert h.wait_result(first) == "first"
        restarted = h.client.restart_workflow_instance(first)
        assert restarted.instance_id == first.instance_id and restarted.execution_id != first.execution_id
        h.wait_for_event(restarted, EventType.ACTIVITY_COMPLETED)
        assert calls.count("reserve:o-1") == 2  # the same input, run again
        with pytest.raises(InstanceNotFinished, match="still running"):
            h.client.restart_workflow_instance(first)
        # Forced: the running execution is terminated first.
        third = h.client.restart_workflow_instance(first.instance_id, terminate_running=True, reason="test")
        assert h.client.get_workflow_instance_state(restarted) is InstanceState.FINISHED
        h.client.signal_workflow(first.instance_id, "note", "third")
        assert h.wait_result(third) == "third"
        assert h.client.backend.get_latest_execution(first.instance_id) == third

    def test_reset_after_a_bug_fix_reruns_only_the_work_after_the_point(self, e2e: Any) -> None:
        calls = _Calls()

        async def buggy(ctx: workflow.Context, order: str) -> list[str]:
            done = [await workflow.execute_activity(ctx, _ONCE, "reserve", order)]
            done.append(await workflow.execute_activity(ctx, _ONCE, "check_fraud", order))
            raise workflow.WorkflowError("wrong total computed")  # the bug, recorded as a failure

        async def fixed(ctx: workflow.Context, order: str) -> list[str]:
            done = [await workflow.execute_activity(ctx, _ONCE, "reserve", order)]
            done.append(await workflow.execute_activity(ctx, _ONCE, "check_fraud", order))
            done.append(await workflow.execute_activity(ctx, _ONCE, "ship", order))
            return done

        h = e2e([(buggy, "order")], [calls])
        failed = h.run("order", "o-1")
        with pytest.raises(workflow.WorkflowError, match="wrong total"):
            h.wait_result(failed)
        history = h.history(failed)
        tasks = [e.sequence_id for e in history if e.type is EventType.WORKFLOW_TASK_STARTED]
        # Back to the task that received the fraud check's result (and failed): reserve's
        # result is kept, the fraud check runs again, then the fixed code goes on.
        point = tasks[2]
        with pytest.raises(ResetError, match="not the start of a workflow task"):
            h.client.reset_workflow_instance(failed, point + 1)
        h.stop_worker(h.worker)
        h.add_worker([(fixed, "order")], [calls])
        reset = h.client.reset_workflow_instance(failed, point)
        assert reset.instance_id == failed.instance_id and reset.execution_id != failed.execution_id
        assert h.wait_result(reset) == ["reserve", "check_fraud", "ship"]
        assert (calls.count("reserve:o-1"), calls.count("check_fraud:o-1"), calls.count("ship:o-1")) == (1, 2, 1)
        kept = [event_to_dict(e) for e in history if e.sequence_id < point]
        assert [event_to_dict(e) for e in h.history(reset)][: len(kept)] == kept
        # The failed execution stays as it was.
        assert h.client.get_workflow_instance_state(failed) is InstanceState.FINISHED
        with pytest.raises(workflow.WorkflowError, match="wrong total"):
            h.wait_result(failed)

    def test_reset_delivers_the_signals_after_the_point_again(self, e2e: Any) -> None:
        async def collect(ctx: workflow.Context) -> list[str]:
            channel = workflow.new_signal_channel(ctx, "item")
            items = [await channel.receive(ctx), await channel.receive(ctx)]
            if "crash" in items:
                raise workflow.WorkflowError("cannot handle crash")
            return items

        async def collect_fixed(ctx: workflow.Context) -> list[str]:
            channel = workflow.new_signal_channel(ctx, "item")
            return [await channel.receive(ctx), await channel.receive(ctx)]

        h = e2e([(collect, "collect")])
        instance = h.run("collect")
        h.wait_for_event(instance, EventType.WORKFLOW_TASK_STARTED)
        h.client.signal_workflow(instance.instance_id, "item", "a")
        h.wait_for_event(instance, EventType.SIGNAL_RECEIVED)
        h.client.signal_workflow(instance.instance_id, "item", "crash")
        with pytest.raises(workflow.WorkflowError):
            h.wait_result(instance)
        first_signal = next(e for e in h.history(instance) if e.type is EventType.SIGNAL_RECEIVED)
        point = max(
            e.sequence_id
            for e in h.history(instance)
            if e.type is EventType.WORKFLOW_TASK_STARTED and e.sequence_id < first_signal.sequence_id
        )
        h.client.restart_workflow_instance(instance)  # now an execution of the id runs
        with pytest.raises(InstanceNotFinished):
            h.client.reset_workflow_instance(instance, point)
        h.client.terminate_workflow_instance(instance.instance_id)
        h.stop_worker(h.worker)
        h.add_worker([(collect_fixed, "collect")])
        reset = h.client.reset_workflow_instance(instance, point)
        assert h.wait_result(reset) == ["a", "crash"]
