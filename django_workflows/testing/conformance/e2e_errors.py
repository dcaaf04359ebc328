"""End-to-end conformance cases for errors (port of go-workflows ``UnregisteredWorkflow_Errors``,
``WorkflowArgumentMismatch``, ``UnregisteredActivity_Errors``, ``ActivityArgumentMismatch``,
``Activity/*``, ``NonDeterminism``, ``MaxHistorySize`` and ``Activity/ExtendTask``): error
types across the activity boundary, permanent errors, panics, the pending-futures rule, the
history limit, non-determinism after a code change, and activity leases kept alive by heartbeats.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest

from ... import activity, workflow
from ...engine.converter import PayloadError
from ...engine.errors import InstanceNotFound
from ...engine.history import EventType
from ...engine.registry import ArgumentMismatch
from .support import WAIT, EndToEndFixtures

_ONCE = workflow.ActivityOptions()


class CustomError(Exception):
    pass


def _fail_with_custom_error() -> None:
    raise CustomError("custom error")


def _add(a: int, b: int) -> int:
    return a + b


def _store(value):  # type: ignore[no-untyped-def]  # unannotated: no type check, only the converter
    return value


class ErrorCases(EndToEndFixtures):
    def test_activity_error_keeps_its_type_and_message(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[Any]:
            try:
                await workflow.execute_activity(ctx, _ONCE, _fail_with_custom_error)
            except workflow.WorkflowError as err:
                return [err.type, err.message, err.permanent, "_fail_with_custom_error" in err.stacktrace]
            return []

        h = e2e([wf], [_fail_with_custom_error])
        assert h.result(wf) == ["CustomError", "custom error", False, True]

    def test_uncaught_activity_error_is_the_workflow_error(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> None:
            await workflow.execute_activity(ctx, _ONCE, _fail_with_custom_error)

        h = e2e([wf], [_fail_with_custom_error])
        with pytest.raises(workflow.WorkflowError) as info:
            h.result(wf)
        assert (info.value.type, info.value.message) == ("CustomError", "custom error")
        assert not isinstance(info.value, workflow.PanicError)

    def test_workflow_error_raised_by_the_workflow(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> None:
            raise workflow.PermanentError("out of stock", type="OutOfStock")

        h = e2e([wf])
        with pytest.raises(workflow.WorkflowError) as info:
            h.result(wf)
        assert (info.value.type, info.value.message, info.value.permanent) == ("OutOfStock", "out of stock", True)

    def test_error_cause_chain_crosses_the_boundary(self, e2e: Any) -> None:
        def wrapped() -> None:
            try:
                raise KeyError("inner")
            except KeyError as exc:
                raise RuntimeError("outer") from exc

        async def wf(ctx: workflow.Context) -> list[Any]:
            try:
                await workflow.execute_activity(ctx, _ONCE, wrapped)
            except workflow.WorkflowError as err:
                assert err.cause is not None
                return [err.type, err.message, err.cause.type, err.cause.message]
            return []

        h = e2e([wf], [wrapped])
        assert h.result(wf) == ["RuntimeError", "outer", "KeyError", "'inner'"]

    def test_permanent_error_stops_retries(self, e2e: Any) -> None:
        calls: list[int] = []

        def refuses() -> None:
            calls.append(activity.attempt())
            raise activity.PermanentError("never going to work")

        async def wf(ctx: workflow.Context) -> list[Any]:
            try:
                await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, refuses)
            except workflow.WorkflowError as err:
                return [err.message, err.permanent, workflow.can_retry(err)]
            return []

        h = e2e([wf], [refuses])
        assert h.result(wf) == ["never going to work", True, False]
        assert calls == [0]

    def test_panic_in_workflow(self, e2e: Any) -> None:
        async def exploding_workflow(ctx: workflow.Context) -> None:
            await workflow.sleep(ctx, 0.001)
            raise ValueError("boom")

        h = e2e([exploding_workflow])
        with pytest.raises(workflow.PanicError) as info:
            h.result(exploding_workflow)
        # The exception's own type, with the panic flag beside it (not "PanicError").
        assert (info.value.type, info.value.message, info.value.panic) == ("ValueError", "boom", True)
        assert "exploding_workflow" in info.value.stacktrace
        assert "ValueError: boom" in info.value.stacktrace

    def test_panic_in_coroutine(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> None:
            async def broken(ctx: workflow.Context) -> None:
                await workflow.sleep(ctx, 0.001)
                dict[str, int]()["missing"]

            await workflow.go(ctx, broken)

        h = e2e([wf])
        with pytest.raises(workflow.PanicError, match=r"^in workflow coroutine broken: 'missing'$") as info:
            h.result(wf)
        assert info.value.type == "KeyError"

    def test_pending_futures_rule(self, e2e: Any) -> None:
        def noop() -> None:
            return None

        async def wf(ctx: workflow.Context) -> None:
            workflow.schedule_timer(ctx, 5)
            workflow.schedule_timer(ctx, 2, name="reminder")
            workflow.execute_activity(ctx, _ONCE, noop)

        h = e2e([wf], [noop])
        instance = h.run(wf)
        with pytest.raises(workflow.WorkflowError) as info:
            h.wait_result(instance)
        assert info.value.message == (
            "workflow completed, but there are still pending futures: [1-timer:5s 2-timer-reminder:2s 3-activity:noop]"
        )
        # What the workflow scheduled in its last task was dropped, not started.
        types = h.types(instance)
        assert EventType.ACTIVITY_SCHEDULED not in types and EventType.TIMER_SCHEDULED not in types

    def test_max_history_size(self, e2e: Any) -> None:
        def noop() -> None:
            return None

        async def wf(ctx: workflow.Context) -> None:
            for _ in range(50):
                await workflow.execute_activity(ctx, _ONCE, noop)

        h = e2e([wf], [noop], backend={"max_history_size": 12})
        instance = h.run(wf)
        with pytest.raises(workflow.WorkflowError, match="workflow history size exceeded 12 events"):
            h.wait_result(instance)
        assert len(h.history(instance)) <= 14

    def test_a_history_near_its_limit_is_warned_of_once(self, e2e: Any, caplog: pytest.LogCaptureFixture) -> None:
        def noop() -> None:
            return None

        async def wf(ctx: workflow.Context) -> None:
            for _ in range(14):  # 3 events each: past 80 % of 50, short of the limit
                await workflow.execute_activity(ctx, _ONCE, noop)

        h = e2e([wf], [noop], backend={"max_history_size": 50})
        with caplog.at_level(logging.WARNING, logger="django_workflows.worker"):
            instance = h.run(wf)
            h.wait_result(instance)
        warnings = [r.getMessage() for r in caplog.records if "of max_history_size" in r.getMessage()]
        assert len(warnings) == 1, warnings  # the task that crossed 80 %, not every one after it
        assert f"instance {instance}" in warnings[0] and "over 80 % of max_history_size (50)" in warnings[0]
        assert "continue as new" in warnings[0]
        assert 40 <= len(h.history(instance)) < 50, len(h.history(instance))

    def test_unknown_workflow(self, e2e: Any) -> None:
        # With the "fail" policy (go-workflows' behaviour); by default the instance waits for a
        # worker that has the workflow (e2e_deploys).
        h = e2e(worker={"workflow_failure_policy": "fail"})
        with pytest.raises(workflow.WorkflowError, match="^workflow missing-workflow not found$"):
            h.result("missing-workflow", "hello")

    def test_unknown_activity(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> int:
            return await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, "missing-activity")

        h = e2e([wf])
        instance = h.run(wf)
        with pytest.raises(workflow.WorkflowError, match="activity not found: missing-activity"):
            h.wait_result(instance)
        # "activity not found" is permanent: it is not retried.
        assert h.types(instance).count(EventType.ACTIVITY_SCHEDULED) == 1

    def test_workflow_argument_mismatch(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context, p1: int) -> int:
            return 42

        h = e2e([wf])
        instance_id = f"mismatch-{uuid.uuid4().hex}"
        with pytest.raises(ArgumentMismatch, match="mismatched argument count: expected 1, got 0"):
            h.run(wf, instance_id=instance_id)
        with pytest.raises(InstanceNotFound):
            h.client.get_workflow_instance_state(instance_id)
        with pytest.raises(ArgumentMismatch, match="mismatched argument type: expected int, got str"):
            h.run(wf, "one")
        # By name the client cannot check; the worker fails the workflow with the same message.
        with pytest.raises(workflow.WorkflowError, match="mismatched argument count: expected 1, got 0"):
            h.result("wf")

    def test_activity_argument_mismatch(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[str]:
            messages = []
            for target in (_add, "_add"):
                try:
                    await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, target, 42)
                except workflow.WorkflowError as err:
                    messages.append(err.message)
            return messages

        h = e2e([wf], [_add])
        instance = h.run(wf)
        assert h.wait_result(instance) == ["mismatched argument count: expected 2, got 1"] * 2
        # The check on the function fails at once; by name the worker fails the one attempt.
        assert h.types(instance).count(EventType.ACTIVITY_SCHEDULED) == 1

    def test_values_that_cannot_be_stored(self, e2e: Any) -> None:
        def returns_object() -> Any:
            return object()

        async def wf(ctx: workflow.Context, value: Any) -> list[str]:
            out = []
            for future in (
                workflow.execute_activity(ctx, _ONCE, returns_object),
                workflow.execute_activity(ctx, _ONCE, _store, {1, 2}),
            ):
                try:
                    await future
                except workflow.WorkflowError as err:
                    out.append(err.type)
            return out

        h = e2e([wf], [returns_object, _store])
        with pytest.raises(PayloadError, match="not JSON serializable"):
            h.run(wf, object())
        assert h.result(wf, 1) == ["PayloadError", "PayloadError"]

    def test_nondeterminism_after_a_code_change(self, e2e: Any) -> None:
        def step_a() -> str:
            return "a"

        def step_b() -> str:
            return "b"

        async def version_1(ctx: workflow.Context) -> str:
            first = await workflow.execute_activity(ctx, _ONCE, step_a)
            await workflow.new_signal_channel(ctx, "continue").receive(ctx)
            return first

        async def version_2(ctx: workflow.Context) -> str:
            # A deploy changed the first step; the history of running instances says step_a.
            first = await workflow.execute_activity(ctx, _ONCE, step_b)
            await workflow.new_signal_channel(ctx, "continue").receive(ctx)
            return first

        h = e2e([(version_1, "order")], [step_a, step_b])
        instance = h.run("order")
        h.wait_for_event(instance, EventType.ACTIVITY_COMPLETED)
        # Wait until the task that recorded the result is committed, then deploy version 2,
        # with the "fail" policy (go-workflows' behaviour; by default it blocks: e2e_deploys).
        h.wait_for_event(instance, EventType.WORKFLOW_TASK_STARTED, count=2)
        h.stop_worker(h.worker)
        before = h.history(instance)
        h.add_worker([(version_2, "order")], [step_a, step_b], workflow_failure_policy="fail")
        h.client.signal_workflow(instance.instance_id, "continue", None)

        with pytest.raises(workflow.NondeterminismError) as info:
            h.wait_result(instance)
        message = info.value.message
        assert instance.instance_id in message
        assert "ActivityScheduled" in message and "step_a" in message and "step_b" in message
        after = h.history(instance)
        # The recorded history is never rewritten: the failure is appended after it.
        assert [(e.id, e.sequence_id, e.type) for e in after[: len(before)]] == [
            (e.id, e.sequence_id, e.type) for e in before
        ]
        assert after[-1].type is EventType.WORKFLOW_EXECUTION_FINISHED
        assert EventType.SIGNAL_RECEIVED in [e.type for e in after[len(before):]]

    def test_activity_lease_is_extended_while_it_runs(self, e2e: Any) -> None:
        runs: list[int] = []

        def slow() -> str:
            runs.append(1)
            # Longer than the activity lock timeout: only the worker's heartbeats keep the lease.
            # (A lock of 2 s leaves heartbeats every 0.67 s a margin that survives a loaded CI.)
            time.sleep(3)
            return "done"

        async def wf(ctx: workflow.Context) -> str:
            return await workflow.execute_activity(ctx, _ONCE, slow)

        h = e2e([wf], [slow], backend={"activity_lock_timeout": 2})
        assert h.result(wf) == "done"
        assert runs == [1]

    def test_workflow_lease_is_extended_while_a_task_runs(self, e2e: Any) -> None:
        runs: list[bool] = []

        async def wf(ctx: workflow.Context) -> str:
            runs.append(workflow.replaying(ctx))
            if not workflow.replaying(ctx):
                time.sleep(3)  # a long workflow task, longer than its lock timeout
            return "done"

        h = e2e([wf], backend={"workflow_lock_timeout": 2})
        assert h.client.get_workflow_result(h.run(wf), WAIT) == "done"
        assert runs == [False]
