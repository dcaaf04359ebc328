"""End-to-end conformance cases for sub-workflows (port of go-workflows' ``SubWorkflow/*``
cases in ``backend/test/e2e.go``): options and the inherited queue, results and errors,
duplicate and reused instance ids, cancellation before and after the child starts, cancellation
propagating from parent to children, retries, and termination of a child.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ... import workflow
from ...engine.core import InstanceState
from ...engine.errors import InstanceNotFound
from ...engine.history import EventType, SubWorkflowScheduledAttributes
from .support import EndToEndFixtures, wait_until


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class SubWorkflowCases(EndToEndFixtures):
    def test_sub_workflow_result(self, e2e: Any) -> None:
        async def child(ctx: workflow.Context, i: int) -> int:
            return i * 2

        async def parent(ctx: workflow.Context) -> int:
            return await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), child, 21)

        h = e2e([parent, child])
        assert h.result(parent) == 42

    def test_sub_workflow_identity_and_inherited_queue(self, e2e: Any) -> None:
        async def child(ctx: workflow.Context) -> list[Any]:
            me = workflow.workflow_instance(ctx)
            assert me.parent is not None
            return [me.instance_id, me.parent.instance_id, me.parent_event_id]

        async def parent(ctx: workflow.Context) -> list[Any]:
            return await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), child)

        h = e2e([parent, child], worker={"workflow_queues": ["default", "custom"]})
        instance = h.run(parent, queue="custom")
        child_id, parent_id, parent_event_id = h.wait_result(instance)
        assert parent_id == instance.instance_id
        scheduled = [e for e in h.history(instance) if e.type is EventType.SUB_WORKFLOW_SCHEDULED]
        assert len(scheduled) == 1
        attributes = scheduled[0].attributes
        assert isinstance(attributes, SubWorkflowScheduledAttributes)
        # The id recorded in history (and used on replay) is the id the child runs under.
        assert attributes.sub_workflow_instance.instance_id == child_id
        assert scheduled[0].schedule_event_id == parent_event_id
        child_instance = h.backend.get_latest_execution(child_id)
        assert h.backend.get_workflow_instance_info(child_instance).queue == "custom"

    def test_sub_workflow_options_instance_id_and_queue(self, e2e: Any) -> None:
        child_id = _unique("child")

        async def child(ctx: workflow.Context) -> str:
            return workflow.workflow_instance(ctx).instance_id

        async def parent(ctx: workflow.Context) -> str:
            options = workflow.SubWorkflowOptions(instance_id=child_id, queue="children")
            return await workflow.create_sub_workflow_instance(ctx, options, child)

        h = e2e([parent, child], worker={"workflow_queues": ["default", "children"]})
        assert h.result(parent) == child_id
        info = h.backend.get_workflow_instance_info(h.backend.get_latest_execution(child_id))
        assert (info.queue, info.workflow_name, info.state) == ("children", "child", InstanceState.FINISHED)

    def test_sub_workflow_error_reaches_parent(self, e2e: Any) -> None:
        async def failing_child(ctx: workflow.Context) -> None:
            raise workflow.WorkflowError("child failed", type="ChildError")

        async def panicking_child(ctx: workflow.Context) -> None:
            raise KeyError("oops")

        async def parent(ctx: workflow.Context) -> list[Any]:
            out = []
            for child in (failing_child, panicking_child):
                try:
                    await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), child)
                except workflow.WorkflowError as err:
                    out.append([err.type, err.message.splitlines()[0], isinstance(err, workflow.PanicError)])
            return out

        h = e2e([parent, failing_child, panicking_child])
        assert h.result(parent) == [
            ["ChildError", "child failed", False],
            ["KeyError", "'oops'", True],
        ]

    def test_duplicate_active_instance_id_fails_the_parent_future(self, e2e: Any) -> None:
        child_id = _unique("child")

        async def child(ctx: workflow.Context, i: int) -> int:
            await workflow.new_signal_channel(ctx, "signal").receive(ctx)
            return i * 2

        async def parent(ctx: workflow.Context) -> Any:
            first = workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(instance_id=child_id), child, 1)
            try:
                return await workflow.create_sub_workflow_instance(
                    ctx, workflow.SubWorkflowOptions(instance_id=child_id), child, 2
                )
            finally:
                # Unblock the first child so that nothing stays pending.
                cleanup = workflow.new_disconnected_context(ctx)
                await workflow.signal_workflow(cleanup, child_id, "signal", 1)
                await first

        h = e2e([parent, child])
        with pytest.raises(workflow.WorkflowError, match="already exists"):
            h.result(parent)

    def test_reuse_of_a_finished_instance_id(self, e2e: Any) -> None:
        child_id = _unique("child")

        async def child(ctx: workflow.Context, i: int) -> int:
            return i * 2

        async def parent(ctx: workflow.Context) -> int:
            options = workflow.SubWorkflowOptions(instance_id=child_id)
            await workflow.create_sub_workflow_instance(ctx, options, child, 1)
            return await workflow.create_sub_workflow_instance(ctx, options, child, 2)

        h = e2e([parent, child])
        assert h.result(parent) == 4

    def test_cancel_before_the_child_starts(self, e2e: Any) -> None:
        child_id = _unique("child")
        runs: list[int] = []

        async def child(ctx: workflow.Context, i: int) -> int:
            runs.append(i)
            return i * 2

        async def parent(ctx: workflow.Context) -> Any:
            sctx, cancel = workflow.with_cancel(ctx)
            future = workflow.create_sub_workflow_instance(sctx, workflow.SubWorkflowOptions(instance_id=child_id), child, 1)
            cancel()
            await workflow.sleep(ctx, 0.001)
            try:
                return await future
            except workflow.Canceled:
                return "canceled"

        h = e2e([parent, child])
        instance = h.run(parent)
        assert h.wait_result(instance) == "canceled"
        assert runs == []
        assert EventType.SUB_WORKFLOW_SCHEDULED not in h.types(instance)
        with pytest.raises(InstanceNotFound):
            h.backend.get_latest_execution(child_id)

    def test_cancel_after_the_child_started(self, e2e: Any) -> None:
        async def child(ctx: workflow.Context) -> str:
            try:
                await workflow.sleep(ctx, 30)
            except workflow.Canceled:
                return "child saw the cancellation"
            return "child slept"

        async def parent(ctx: workflow.Context) -> str:
            sctx, cancel = workflow.with_cancel(ctx)
            future = workflow.create_sub_workflow_instance(sctx, workflow.SubWorkflowOptions(), child)
            await workflow.sleep(ctx, 0.001)  # the child is committed now
            cancel()
            # The parent's future waits for whatever the child returns.
            return await future

        h = e2e([parent, child])
        instance = h.run(parent)
        assert h.wait_result(instance) == "child saw the cancellation"
        history = h.history(instance)
        types = [e.type for e in history]
        assert types.count(EventType.SUB_WORKFLOW_CANCELLATION_REQUESTED) == 1
        assert EventType.SUB_WORKFLOW_COMPLETED in types

    def test_cancellation_propagates_to_children(self, e2e: Any) -> None:
        canceled: set[str] = set()

        async def child(ctx: workflow.Context, i: int) -> int:
            try:
                await workflow.sleep(ctx, 30)
            except workflow.Canceled:
                pass
            if ctx.err() is not None:
                canceled.add(workflow.workflow_instance(ctx).instance_id)
            return i * 2

        async def parent(ctx: workflow.Context) -> int:
            futures = [workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), child, i) for i in (1, 2)]
            total = 0
            for future in futures:
                total += await future
            if ctx.err() is not None:
                canceled.add(workflow.workflow_instance(ctx).instance_id)
            return total

        h = e2e([parent, child])
        instance = h.run(parent)
        h.wait_for_event(instance, EventType.SUB_WORKFLOW_SCHEDULED, count=2)
        h.client.cancel_workflow_instance(instance)
        assert h.wait_result(instance) == 6
        assert len(canceled) == 3
        assert instance.instance_id in canceled

    def test_sub_workflow_retries(self, e2e: Any) -> None:
        attempts: list[str] = []

        async def child(ctx: workflow.Context) -> str:
            attempts.append(workflow.workflow_instance(ctx).instance_id)
            if len(attempts) < 3:
                raise workflow.WorkflowError(f"attempt {len(attempts)} failed", type="Flaky")
            return "third time lucky"

        async def parent(ctx: workflow.Context) -> str:
            options = workflow.SubWorkflowOptions(retry_options=workflow.RetryOptions(max_attempts=3))
            return await workflow.create_sub_workflow_instance(ctx, options, child)

        h = e2e([parent, child])
        instance = h.run(parent)
        assert h.wait_result(instance) == "third time lucky"
        # Each attempt is a child instance of its own.
        assert len(set(attempts)) == 3
        assert h.types(instance).count(EventType.SUB_WORKFLOW_FAILED) == 2

    def test_sub_workflows_are_not_retried_by_default(self, e2e: Any) -> None:
        attempts: list[int] = []

        async def child(ctx: workflow.Context) -> None:
            attempts.append(1)
            raise workflow.WorkflowError("nope", type="Flaky")

        async def parent(ctx: workflow.Context) -> None:
            await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), child)

        h = e2e([parent, child])
        with pytest.raises(workflow.WorkflowError, match="nope"):
            h.result(parent)
        assert attempts == [1]

    def test_continue_as_new_in_a_sub_workflow_is_transparent(self, e2e: Any) -> None:
        async def child(ctx: workflow.Context, run: int) -> int:
            run += 1
            if run < 3:
                raise workflow.ContinueAsNew(run)
            return run

        async def parent(ctx: workflow.Context) -> int:
            return await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), child, 0)

        h = e2e([parent, child])
        instance = h.run(parent)
        assert h.wait_result(instance) == 3
        assert h.types(instance).count(EventType.SUB_WORKFLOW_COMPLETED) == 1

    def test_terminated_child_fails_the_parent_future(self, e2e: Any) -> None:
        child_id = _unique("child")

        async def child(ctx: workflow.Context) -> None:
            await workflow.new_signal_channel(ctx, "never").receive(ctx)

        async def parent(ctx: workflow.Context) -> list[str]:
            try:
                await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(instance_id=child_id), child)
            except workflow.WorkflowError as err:
                return [err.type, err.message]
            return ["", ""]

        h = e2e([parent, child])
        instance = h.run(parent)

        def child_running() -> bool:
            try:
                return EventType.WORKFLOW_EXECUTION_STARTED in h.types(h.backend.get_latest_execution(child_id))
            except InstanceNotFound:
                return False

        wait_until(child_running, what="the child to start")
        h.client.terminate_workflow_instance(child_id, "operator says stop")
        error_type, message = h.wait_result(instance)
        assert error_type == "Terminated"
        assert "operator says stop" in message
        child_history = h.types(h.backend.get_latest_execution(child_id))
        assert child_history[-1] is EventType.WORKFLOW_EXECUTION_TERMINATED
