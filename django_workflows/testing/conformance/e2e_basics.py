"""End-to-end conformance cases: workflows, activities, retries, side effects and what a
workflow knows about itself (port of go-workflows ``backend/test/e2e.go`` and
``e2e_activity.go``, plus the executor cache and context propagation).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from ... import activity, workflow
from ...engine.core import Metadata
from ...engine.history import ActivityScheduledAttributes, EventType, TimerScheduledAttributes
from .support import WAIT, EndToEndFixtures

_tenant: ContextVar[str | None] = ContextVar("conformance_tenant", default=None)
_TENANT_KEY = "conformance-tenant"


class TenantPropagator:
    """A context propagator carrying a tenant name from the client into the workflow (as a
    context value) and from the workflow into activities (as a context variable)."""

    def inject(self, metadata: Metadata) -> None:
        tenant = _tenant.get()
        if tenant is not None:
            metadata["tenant"] = tenant

    def extract(self, metadata: Metadata) -> None:
        _tenant.set(metadata.get("tenant"))

    def inject_from_workflow(self, ctx: workflow.Context, metadata: Metadata) -> None:
        tenant = ctx.value(_TENANT_KEY)
        if tenant is not None:
            metadata["tenant"] = tenant

    def extract_to_workflow(self, ctx: workflow.Context, metadata: Metadata) -> workflow.Context:
        if "tenant" in metadata:
            return workflow.with_value(ctx, _TENANT_KEY, metadata["tenant"])
        return ctx


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class BasicCases(EndToEndFixtures):
    def test_simple_workflow(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context, msg: str) -> str:
            return msg + " world"

        h = e2e([wf])
        assert h.result(wf, "hello") == "hello world"

    def test_simple_workflow_expected_history(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context, msg: str) -> str:
            return msg + " world"

        h = e2e([wf])
        instance = h.run(wf, "hello")
        h.client.wait_for_workflow_instance(instance, WAIT)
        events = h.history(instance)
        assert [e.type for e in events] == [
            EventType.WORKFLOW_TASK_STARTED,
            EventType.WORKFLOW_EXECUTION_STARTED,
            EventType.WORKFLOW_EXECUTION_FINISHED,
        ]
        assert [e.sequence_id for e in events] == [1, 2, 3]
        assert events[1].schedule_event_id == 0
        assert events[2].attributes.result == '"hello world"'

    def test_activities_sequential_and_fan_out(self, e2e: Any) -> None:
        def add(a: int, b: int) -> int:
            return a + b

        async def wf(ctx: workflow.Context, n: int) -> int:
            base = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, add, 1, 2)
            pending = [workflow.execute_activity(ctx, workflow.ActivityOptions(), add, i, base) for i in range(n)]
            total = 0
            # go-workflows' Workflow_LotsOfActivities: select over whatever is still pending.
            while pending:
                done = await workflow.select(ctx, *[workflow.on_future(f, lambda f: f) for f in pending])
                pending.remove(done)
                total += done.result()
            return total

        h = e2e([wf], [add])
        assert h.result(wf, 20) == sum(range(20)) + 20 * 3

    def test_activity_retries_receive_attempt(self, e2e: Any) -> None:
        attempts: list[int] = []

        class CustomError(Exception):
            pass

        def flaky() -> int:
            attempts.append(activity.attempt())
            if activity.attempt() < 2:
                raise CustomError("custom error")
            return activity.attempt()

        async def wf(ctx: workflow.Context) -> int:
            options = workflow.ActivityOptions(retry_options=workflow.RetryOptions(max_attempts=4))
            return await workflow.execute_activity(ctx, options, flaky)

        h = e2e([wf], [flaky])
        instance = h.run(wf)
        assert h.wait_result(instance) == 2
        assert attempts == [0, 1, 2]
        scheduled = [e.attributes for e in h.history(instance) if e.type is EventType.ACTIVITY_SCHEDULED]
        assert [a.attempt for a in scheduled] == [0, 1, 2]
        # A zero backoff retries without a timer.
        assert EventType.TIMER_SCHEDULED not in h.types(instance)

    def test_activity_retry_backoff_is_a_durable_timer(self, e2e: Any) -> None:
        calls: list[int] = []

        def flaky() -> str:
            calls.append(activity.attempt())
            if len(calls) < 3:
                raise RuntimeError("not yet")
            return "ok"

        async def wf(ctx: workflow.Context) -> str:
            retry = workflow.RetryOptions(max_attempts=3, first_retry_interval=0.05, backoff_coefficient=2)
            return await workflow.execute_activity(ctx, workflow.ActivityOptions(retry_options=retry), flaky)

        h = e2e([wf], [flaky])
        instance = h.run(wf)
        assert h.wait_result(instance) == "ok"
        timers = [e.attributes for e in h.history(instance) if e.type is EventType.TIMER_SCHEDULED]
        assert [t.name for t in timers] == ["Retry-Backoff", "Retry-Backoff"]
        assert calls == [0, 1, 2]

    def test_activity_retries_exhausted_return_last_error(self, e2e: Any) -> None:
        calls: list[int] = []

        def always_fails() -> None:
            calls.append(activity.attempt())
            raise ValueError(f"attempt {activity.attempt()} failed")

        async def wf(ctx: workflow.Context) -> None:
            await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, always_fails)

        h = e2e([wf], [always_fails])
        try:
            h.result(wf)
        except workflow.WorkflowError as err:
            assert err.type == "ValueError"
            assert err.message == "attempt 2 failed"
        else:
            raise AssertionError("the workflow should have failed")
        assert calls == [0, 1, 2]  # DEFAULT_ACTIVITY_OPTIONS: three attempts

    def test_async_activity(self, e2e: Any) -> None:
        async def twice(value: int) -> int:
            return value * 2

        async def wf(ctx: workflow.Context) -> int:
            return await workflow.execute_activity(ctx, workflow.ActivityOptions(), twice, 21)

        h = e2e([wf], [twice])
        assert h.result(wf) == 42

    def test_activity_methods_of_an_object(self, e2e: Any) -> None:
        class Shop:
            def __init__(self) -> None:
                self.stock = {"apple": 3}

            def reserve(self, item: str) -> int:
                self.stock[item] -= 1
                return self.stock[item]

        shop = Shop()

        async def wf(ctx: workflow.Context) -> list[int]:
            first = await workflow.execute_activity(ctx, workflow.ActivityOptions(), shop.reserve, "apple")
            second = await workflow.execute_activity(ctx, workflow.ActivityOptions(), "reserve", "apple")
            return [first, second]

        h = e2e([wf], [shop])
        assert h.result(wf) == [2, 1]

    def test_activities_registered_from_an_object_named_by_their_function(self, e2e: Any) -> None:
        """go-workflows' struct registration: every public method is an activity named by the
        method; the workflow names one by its function on the class (``Payments.charge``),
        which stands for the registered bound method, ``self`` not counted in the argument check."""

        class Payments:
            def __init__(self, fee: int) -> None:
                self.fee = fee

            def charge(self, amount: int) -> int:
                return amount + self.fee

            def describe(self, amount: int, currency: str = "EUR") -> str:
                return f"{amount} {currency}"

        async def wf(ctx: workflow.Context, amount: int) -> list[Any]:
            charged = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, Payments.charge, amount)
            described = await workflow.execute_activity(ctx, workflow.ActivityOptions(), Payments.describe, charged)
            wrong = "scheduled"
            try:
                await workflow.execute_activity(ctx, workflow.ActivityOptions(), Payments.charge, 1, 2)
            except workflow.WorkflowError as err:
                wrong = str(err)
            return [charged, described, wrong]

        h = e2e([wf], [Payments(fee=3)])
        instance = h.run(wf, 10)
        assert h.wait_result(instance) == [13, "13 EUR", "mismatched argument count: expected 1, got 2"]
        names = [e.attributes.name for e in h.history(instance) if e.type is EventType.ACTIVITY_SCHEDULED]
        assert names == ["charge", "describe"]  # the wrong call was refused before it was scheduled

    def test_workflow_registered_under_another_name(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> str:
            return "renamed"

        h = e2e([(wf, "my-workflow")])
        instance = h.run("my-workflow")
        assert h.wait_result(instance) == "renamed"
        assert h.backend.get_workflow_instance_info(instance).workflow_name == "my-workflow"

    def test_side_effect_runs_once(self, e2e: Any) -> None:
        calls: list[int] = []

        def next_value() -> int:
            calls.append(1)
            return len(calls) + 2

        async def wf(ctx: workflow.Context) -> int:
            r1 = await workflow.side_effect(ctx, next_value)
            # End the task, so that without the cache the next one replays the first side effect.
            await workflow.sleep(ctx, 0.001)
            r2 = await workflow.side_effect(ctx, next_value)
            return r1 + r2

        h = e2e([wf])
        assert h.result(wf) == 7
        assert len(calls) == 2

    def test_now_is_deterministic_workflow_time(self, e2e: Any) -> None:
        seen: list[str] = []

        async def wf(ctx: workflow.Context) -> list[str]:
            before = workflow.now(ctx)
            seen.append(before.isoformat())
            await workflow.sleep(ctx, 0.1)
            after = workflow.now(ctx)
            return [before.isoformat(), after.isoformat()]

        h = e2e([wf])
        before, after = (datetime.fromisoformat(v) for v in h.result(wf))
        assert before.tzinfo is not None
        assert (after - before).total_seconds() >= 0.1
        # Every replay of the first task saw the same time.
        assert set(seen) == {before.isoformat()}

    def test_replaying_and_the_executor_cache(self, e2e: Any) -> None:
        prologue: list[bool] = []

        async def wf(ctx: workflow.Context) -> None:
            prologue.append(workflow.replaying(ctx))
            await workflow.sleep(ctx, 0.001)
            await workflow.sleep(ctx, 0.001)

        h = e2e([wf])
        h.result(wf)
        if h.cache:
            # Sticky execution: the cached executor continued, nothing was replayed.
            assert prologue == [False]
        else:
            # Each of the two later tasks replayed the start of the history.
            assert prologue == [False, True, True]

    def test_two_workers_take_turns_on_one_instance(self, e2e: Any) -> None:
        # Without stickiness either worker may take any task, so a cached executor is often
        # behind the history and must catch up from it instead of starting over or diverging.
        def double(n: int) -> int:
            return n * 2

        async def wf(ctx: workflow.Context) -> list[int]:
            channel = workflow.new_signal_channel(ctx, "n")
            out = []
            for _ in range(6):
                n = await channel.receive(ctx)
                out.append(await workflow.execute_activity(ctx, workflow.ActivityOptions(), double, n))
            return out

        h = e2e([wf], [double], backend={"sticky_timeout": 0, "worker_name": "worker-a"})
        h.add_worker([wf], [double], backend=h.other_backend(sticky_timeout=0, worker_name="worker-b"))
        instance = h.run(wf)
        for n in range(6):
            h.client.signal_workflow(instance.instance_id, "n", n)
            h.wait_for_event(instance, EventType.ACTIVITY_COMPLETED, count=n + 1)
        assert h.wait_result(instance) == [0, 2, 4, 6, 8, 10]

    def test_workflow_instance_and_execution_details(self, e2e: Any) -> None:
        def noop() -> None:
            return None

        async def wf(ctx: workflow.Context) -> list[Any]:
            lengths = [workflow.instance_execution_details(ctx).history_length]
            await workflow.execute_activity(ctx, workflow.ActivityOptions(), noop)
            lengths.append(workflow.instance_execution_details(ctx).history_length)
            await workflow.execute_activity(ctx, workflow.ActivityOptions(), noop)
            lengths.append(workflow.instance_execution_details(ctx).history_length)
            instance = workflow.workflow_instance(ctx)
            return [instance.instance_id, instance.execution_id, instance.parent is None, lengths]

        h = e2e([wf], [noop])
        instance = h.run(wf)
        instance_id, execution_id, no_parent, lengths = h.wait_result(instance)
        assert (instance_id, execution_id, no_parent) == (instance.instance_id, instance.execution_id, True)
        # go-workflows' workflow-info sample: the same with and without the cache.
        assert lengths == [2, 5, 8]

    def test_logger_is_silent_while_replaying(self, e2e: Any) -> None:
        records = _Records()
        base = logging.getLogger("django_workflows.workflow")
        base.addHandler(records)
        try:

            async def wf(ctx: workflow.Context) -> None:
                workflow.logger(ctx).warning("step %d", 1)
                await workflow.sleep(ctx, 0.001)
                workflow.logger(ctx).warning("step %d", 2)
                await workflow.sleep(ctx, 0.001)
                workflow.logger(ctx).warning("step %d", 3)

            h = e2e([wf])
            instance = h.run(wf)
            h.wait_result(instance)
        finally:
            base.removeHandler(records)
        mine = [m for m in records.messages if instance.instance_id in m]
        assert [m.rsplit(" ", 2)[-2:] for m in mine] == [["step", "1"], ["step", "2"], ["step", "3"]]

    def test_context_propagation(self, e2e: Any) -> None:
        def tenant_of_activity() -> str | None:
            return _tenant.get()

        async def child(ctx: workflow.Context) -> str | None:
            return ctx.value(_TENANT_KEY)

        async def wf(ctx: workflow.Context) -> list[Any]:
            original = ctx.value(_TENANT_KEY)
            ctx = workflow.with_value(ctx, _TENANT_KEY, original + "-eu")
            from_activity = await workflow.execute_activity(ctx, workflow.ActivityOptions(), tenant_of_activity)
            from_child = await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), child)
            return [original, from_activity, from_child]

        h = e2e([wf, child], [tenant_of_activity], backend={"context_propagators": [TenantPropagator()]})
        token = _tenant.set("acme")
        try:
            instance = h.run(wf)
        finally:
            _tenant.reset(token)
        assert h.wait_result(instance) == ["acme", "acme-eu", "acme-eu"]
        assert h.backend.get_workflow_instance_info(instance).metadata.get("tenant") == "acme"
        scheduled = next(e for e in h.history(instance) if e.type is EventType.ACTIVITY_SCHEDULED)
        assert isinstance(scheduled.attributes, ActivityScheduledAttributes)
        assert scheduled.attributes.metadata == {"tenant": "acme-eu"}

    def test_named_and_sleep_timers_are_recorded(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> None:
            await workflow.schedule_timer(ctx, 0.01, name="reminder")
            await workflow.sleep(ctx, 0.01)

        h = e2e([wf])
        instance = h.run(wf)
        h.wait_result(instance)
        timers = [e.attributes for e in h.history(instance) if e.type is EventType.TIMER_SCHEDULED]
        assert all(isinstance(t, TimerScheduledAttributes) for t in timers)
        assert [t.name for t in timers] == ["reminder", "Sleep"]
        fired = [e.attributes.name for e in h.history(instance) if e.type is EventType.TIMER_FIRED]
        assert fired == ["reminder", "Sleep"]
