"""End-to-end conformance cases for the life of an instance: cancellation (client cancel,
``with_cancel``, ``new_disconnected_context``, running activities that finish anyway),
``ContinueAsNew``, queues, termination and removal (port of go-workflows
``backend/test/e2e.go``, ``e2e_continueasnew.go``, ``e2e_queues.go`` and ``e2e_removal.go``).
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest

from ... import workflow
from ...engine.backend import Feature
from ...engine.clock import utcnow
from ...engine.core import InstanceState
from ...engine.errors import InstanceFinished, InstanceNotFinished, InstanceNotFound, NotSupported, WorkflowTerminated
from ...engine.history import EventType
from .support import WAIT, EndToEndFixtures, wait_until

_ONCE = workflow.ActivityOptions()


def _echo(value: Any) -> Any:
    return value


class CancellationCases(EndToEndFixtures):
    def test_client_cancel_fails_the_workflow_with_canceled(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> None:
            await workflow.sleep(ctx, 30)

        h = e2e([wf])
        instance = h.run(wf)
        h.wait_for_event(instance, EventType.TIMER_SCHEDULED)
        h.client.cancel_workflow_instance(instance)
        with pytest.raises(workflow.Canceled, match="context canceled"):
            h.wait_result(instance)

    def test_cancel_unknown_or_finished_instance(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> None:
            return None

        h = e2e([wf])
        with pytest.raises(InstanceNotFound):
            h.client.cancel_workflow_instance(f"missing-{uuid.uuid4().hex}")
        instance = h.run(wf)
        h.wait_result(instance)
        with pytest.raises(InstanceFinished):
            h.client.cancel_workflow_instance(instance)

    def test_with_cancel(self, e2e: Any) -> None:
        async def child(ctx: workflow.Context) -> None:
            return None

        async def wf(ctx: workflow.Context) -> list[Any]:
            cctx, cancel = workflow.with_cancel(ctx)
            grandchild_ctx, _ = workflow.with_cancel(cctx)
            cancel()
            outcomes = []
            for future in (
                workflow.execute_activity(grandchild_ctx, _ONCE, _echo, 1),
                workflow.schedule_timer(cctx, 30),
                workflow.create_sub_workflow_instance(cctx, workflow.SubWorkflowOptions(), child),
                workflow.execute_activity(cctx, workflow.DEFAULT_ACTIVITY_OPTIONS, _echo, 1),
            ):
                try:
                    await future
                    outcomes.append("ran")
                except workflow.Canceled:
                    outcomes.append("canceled")
            _, ok = await cctx.done().receive_with_ok(ctx)
            # The parent context is untouched.
            parent_value = await workflow.execute_activity(ctx, _ONCE, _echo, "parent")
            return [outcomes, str(cctx.err()), ok, ctx.err() is None, parent_value]

        h = e2e([wf, child], [_echo])
        instance = h.run(wf)
        assert h.wait_result(instance) == [["canceled"] * 4, "context canceled", False, True, "parent"]
        types = h.types(instance)
        assert types.count(EventType.ACTIVITY_SCHEDULED) == 1  # only the parent's
        assert EventType.TIMER_SCHEDULED not in types
        assert EventType.SUB_WORKFLOW_SCHEDULED not in types

    def test_disconnected_context_for_cleanup(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[Any]:
            try:
                await workflow.sleep(ctx, 30)
            except workflow.Canceled:
                pass
            try:
                await workflow.execute_activity(ctx, _ONCE, _echo, "too late")
                after_cancel = "ran"
            except workflow.Canceled:
                after_cancel = "canceled"
            cleanup = workflow.new_disconnected_context(ctx)
            cleaned = await workflow.execute_activity(cleanup, _ONCE, _echo, "cleaned up")
            await workflow.sleep(cleanup, 0.001)
            return [after_cancel, cleaned]

        h = e2e([wf], [_echo])
        instance = h.run(wf)
        h.wait_for_event(instance, EventType.TIMER_SCHEDULED)
        h.client.cancel_workflow_instance(instance)
        assert h.wait_result(instance) == ["canceled", "cleaned up"]

    def test_running_activity_finishes_and_delivers_its_result(self, e2e: Any) -> None:
        started = threading.Event()
        release = threading.Event()

        def slow() -> str:
            started.set()
            assert release.wait(WAIT), "the test never released the activity"
            return "finished anyway"

        async def wf(ctx: workflow.Context) -> list[Any]:
            future = workflow.execute_activity(ctx, _ONCE, slow)
            try:
                await workflow.sleep(ctx, 30)
            except workflow.Canceled:
                pass
            return [await future, ctx.err() is not None]

        h = e2e([wf], [slow])
        instance = h.run(wf)
        assert started.wait(WAIT)
        h.client.cancel_workflow_instance(instance)
        h.wait_for_event(instance, EventType.WORKFLOW_EXECUTION_CANCELED)
        release.set()
        assert h.wait_result(instance) == ["finished anyway", True]


class ContinueAsNewCases(EndToEndFixtures):
    def test_continue_as_new_restarts_the_instance(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context, run: int) -> int:
            run += 1
            if run < 3:
                raise workflow.ContinueAsNew(run, result=run)
            return run

        h = e2e([wf])
        first = h.run(wf, 0)
        # The old handle returns the old execution's result.
        assert h.wait_result(first) == 1
        assert h.backend.get_workflow_instance_state(first) is InstanceState.CONTINUED_AS_NEW

        def final() -> Any:
            latest = h.backend.get_latest_execution(first.instance_id)
            return latest if h.backend.get_workflow_instance_state(latest) is InstanceState.FINISHED else None

        latest = wait_until(final, what="the last execution to finish")
        assert latest.execution_id != first.execution_id
        assert h.wait_result(latest) == 3
        history = h.history(latest)
        assert [e.type for e in history[:2]] == [EventType.WORKFLOW_TASK_STARTED, EventType.WORKFLOW_EXECUTION_STARTED]
        assert history[1].attributes.inputs == ["2"]
        assert h.types(first)[-1] is EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW

    def test_continue_as_new_result_defaults_to_none(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context, run: int) -> int:
            if run == 0:
                raise workflow.ContinueAsNew(1)
            return run

        h = e2e([wf])
        assert h.result(wf, 0) is None

    def test_signals_are_not_lost_across_continue_as_new(self, e2e: Any) -> None:
        # A signal that arrives while an execution finishes makes that completion be rejected,
        # so a workflow that drains its channel before continuing as new sees every signal.
        total = 6

        async def wf(ctx: workflow.Context, seen: list[Any]) -> list[Any]:
            channel = workflow.new_signal_channel(ctx, "item")
            seen = seen + [await channel.receive(ctx)]
            while True:
                value, ok = channel.receive_nonblocking()
                if not ok:
                    break
                seen.append(value)
            if len(seen) < total:
                raise workflow.ContinueAsNew(seen)
            return seen

        h = e2e([wf])
        first = h.run(wf, [])
        for n in range(total):
            h.client.signal_workflow(first.instance_id, "item", n)

        def final() -> Any:
            latest = h.backend.get_latest_execution(first.instance_id)
            return latest if h.backend.get_workflow_instance_state(latest) is InstanceState.FINISHED else None

        assert h.wait_result(wait_until(final, what="the last execution to finish")) == list(range(total))

    def test_remove_continued_as_new_instances(self, e2e: Any) -> None:
        executions: list[Any] = []

        async def wf(ctx: workflow.Context, run: int) -> int:
            executions.append(workflow.workflow_instance(ctx))
            if run < 2:
                raise workflow.ContinueAsNew(run + 1)
            return 42

        h = e2e([wf], backend={"remove_continued_as_new_instances": True})
        first = h.run(wf, 0)

        def final() -> Any:
            try:
                latest = h.backend.get_latest_execution(first.instance_id)
                return latest if h.backend.get_workflow_instance_state(latest) is InstanceState.FINISHED else None
            except InstanceNotFound:
                return None

        latest = wait_until(final, what="the last execution to finish")
        assert h.wait_result(latest) == 42
        for old in {(e.instance_id, e.execution_id): e for e in executions}.values():
            if old.execution_id != latest.execution_id:
                with pytest.raises(InstanceNotFound):
                    h.backend.get_workflow_instance_state(old)


class QueueAndRemovalCases(EndToEndFixtures):
    def test_worker_only_pulls_from_its_queues(self, e2e: Any) -> None:
        ran: list[str] = []

        async def wf(ctx: workflow.Context) -> bool:
            return True

        async def never(ctx: workflow.Context) -> None:
            ran.append("never")

        h = e2e([wf, never])
        other = h.run(never, queue="never")
        assert h.result(wf) is True
        assert h.client.get_workflow_instance_state(other) is InstanceState.ACTIVE
        assert ran == []

    def test_activity_queues(self, e2e: Any) -> None:
        from ... import activity

        def where() -> str:
            return activity.info().queue

        async def wf(ctx: workflow.Context) -> list[str]:
            inherited = await workflow.execute_activity(ctx, _ONCE, where)
            explicit = await workflow.execute_activity(ctx, workflow.ActivityOptions(queue="special"), where)
            return [inherited, explicit]

        h = e2e([wf], [where], worker={"workflow_queues": ["custom"], "activity_queues": ["custom"]})
        # A second worker is the only one that polls the "special" activity queue.
        h.add_worker(activities=[where], run_workflows=False, activity_queues=["special"])
        assert h.result(wf, queue="custom") == ["custom", "special"]

    def test_terminate_a_workflow(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> None:
            await workflow.sleep(ctx, 30)

        h = e2e([wf])
        instance = h.run(wf)
        h.wait_for_event(instance, EventType.TIMER_SCHEDULED)
        h.client.terminate_workflow_instance(instance, "stuck")
        with pytest.raises(WorkflowTerminated, match="stuck"):
            h.wait_result(instance)
        assert h.types(instance)[-1] is EventType.WORKFLOW_EXECUTION_TERMINATED

    def test_remove_workflow_instance(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context, msg: str) -> str:
            if msg == "wait":
                await workflow.new_signal_channel(ctx, "go").receive(ctx)
            return msg + " world"

        h = e2e([wf])
        waiting = h.run(wf, "wait")
        with pytest.raises(InstanceNotFinished):
            h.client.remove_workflow_instance(waiting)
        instance = h.run(wf, "hello")
        assert h.wait_result(instance) == "hello world"
        h.client.remove_workflow_instance(instance)
        with pytest.raises(InstanceNotFound):
            h.client.get_workflow_result(instance, 1)
        h.client.signal_workflow(waiting.instance_id, "go", None)
        assert h.wait_result(waiting) == "wait world"

    def test_remove_workflow_instances_finished_before(self, e2e: Any) -> None:
        wf = _wait_for_go_or_return
        h = e2e([wf])
        done = [h.run(wf, f"done-{n}") for n in range(3)]
        for instance in done:
            h.wait_result(instance)
        waiting = h.run(wf, "wait")
        cutoff = utcnow() + timedelta(seconds=1)
        if not h.backend.feature_supported(Feature.REMOVE_INSTANCES):
            with pytest.raises(NotSupported):
                h.client.remove_workflow_instances(finished_before=cutoff)
            return
        assert h.client.remove_workflow_instances(finished_before=utcnow() - timedelta(days=1)) == 0
        removed = h.client.remove_workflow_instances(finished_before=cutoff, batch_size=2)
        assert removed == 3, f"removed {removed} finished instances, expected the 3 of this test"
        for instance in done:
            with pytest.raises(InstanceNotFound):
                h.client.get_workflow_instance_state(instance)
        assert h.client.get_workflow_instance_state(waiting) is InstanceState.ACTIVE

    def test_auto_expiration_removes_instances_once_they_are_old_enough(self, e2e: Any) -> None:
        wf = _wait_for_go_or_return
        h = e2e([wf])
        done = h.run(wf, "done")
        h.wait_result(done)
        waiting = h.run(wf, "wait")
        if not h.backend.feature_supported(Feature.REMOVE_INSTANCES):
            with pytest.raises(NotSupported):
                h.client.start_auto_expiration(1)
            return
        with pytest.raises(ValueError, match="must be positive"):
            h.client.start_auto_expiration(0)
        # A long delay first; starting again updates the running system workflow instead.
        expiration = h.client.start_auto_expiration(timedelta(days=1))
        assert expiration is not None and expiration.instance_id == "expiration"
        assert h.client.start_auto_expiration(0.5) is None
        wait_until(lambda: _gone(h.client, done), what="the finished instance to expire")
        assert h.client.get_workflow_instance_state(waiting) is InstanceState.ACTIVE
        assert h.client.get_workflow_instance_state(expiration) is InstanceState.ACTIVE
        h.client.signal_workflow(waiting.instance_id, "go", None)
        assert h.wait_result(waiting) == "wait"


async def _wait_for_go_or_return(ctx: workflow.Context, msg: str) -> str:
    """Returns ``msg`` at once, or for ``"wait"`` after the signal ``go``."""
    if msg == "wait":
        await workflow.new_signal_channel(ctx, "go").receive(ctx)
    return msg


def _gone(client: Any, instance: Any) -> bool:
    try:
        client.get_workflow_instance_state(instance)
    except InstanceNotFound:
        return True
    return False
