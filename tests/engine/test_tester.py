"""Tests of ``django_workflows.testing.WorkflowTester`` (the port of go-workflows' ``tester/``).

No database: the tester runs workflows on its own in-memory loop.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from django_workflows import workflow
from django_workflows.engine.converter import JsonConverter, PayloadError
from django_workflows.engine.errors import InstanceNotFound
from django_workflows.engine.registry import Registry
from django_workflows.testing import WorkflowTester
from django_workflows.testing.tester import WorkflowBlocked
from django_workflows.testing.tester_mocks import UnexpectedCall

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
NO_RETRIES = workflow.ActivityOptions()


def new_tester(wf, **kwargs) -> WorkflowTester:
    return WorkflowTester(wf, initial_time=START, **kwargs)


# -- activities used by the workflows below -----------------------------------------------------

charged: list[str] = []


def charge(order_id: str) -> int:
    charged.append(order_id)
    return 12


def ship(order_id: str) -> str:
    raise AssertionError("ship is always mocked in these tests")


def refund(order_id: str) -> None:
    raise AssertionError("refund is always mocked in these tests")


def explode() -> None:
    raise KeyError("boom")


# -- time ----------------------------------------------------------------------------------------

task_starts: list[bool] = []


async def sleepy(ctx: workflow.Context, days: int) -> list[str]:
    task_starts.append(workflow.replaying(ctx))
    seen = [workflow.now(ctx).isoformat()]
    for _ in range(3):
        await workflow.sleep(ctx, timedelta(days=days))
        seen.append(workflow.now(ctx).isoformat())
    return seen


def test_sleeping_for_days_skips_time_and_replays_every_task() -> None:
    task_starts.clear()
    tester = new_tester(sleepy)

    tester.execute(2)

    assert tester.workflow_finished()
    assert tester.workflow_result() == [(START + timedelta(days=d)).isoformat() for d in (0, 2, 4, 6)]
    assert tester.now() == START + timedelta(days=6)
    # Four workflow tasks (start + three timers), each on a fresh executor that replays the
    # history from the first event: the body starts once per task, replaying from the second on.
    assert task_starts == [False, True, True, True]


def test_initial_time_defaults_to_now_and_must_be_aware() -> None:
    before = datetime.now(UTC)
    assert WorkflowTester(sleepy).now() >= before
    with pytest.raises(ValueError, match="timezone-aware"):
        WorkflowTester(sleepy, initial_time=datetime(2030, 1, 1))


# -- activities ----------------------------------------------------------------------------------


async def order(ctx: workflow.Context, order_id: str) -> str:
    total = await workflow.execute_activity(ctx, NO_RETRIES, charge, order_id)
    tracking = await workflow.execute_activity(ctx, NO_RETRIES, ship, order_id)
    await workflow.execute_activity(ctx, NO_RETRIES, "refund", order_id)
    return f"{total} {tracking}"


def test_mocked_and_real_activities() -> None:
    charged.clear()
    tester = new_tester(order)
    tester.register_activity(charge)
    tester.on_activity(ship, "order-1").returns("tracking-9").once()
    tester.on_activity("refund").returns(None)

    tester.execute("order-1")

    assert tester.workflow_result() == "12 tracking-9"
    assert charged == ["order-1"]  # the real activity ran
    tester.assert_expectations()


def test_unregistered_unmocked_activity_fails_like_on_a_worker() -> None:
    tester = new_tester(order)
    tester.on_activity(ship).returns("t")
    tester.on_activity(refund).returns(None)

    tester.execute("order-1")

    assert tester.workflow_finished()
    with pytest.raises(workflow.WorkflowError, match="activity not found: charge") as info:
        tester.workflow_result()
    assert info.value.type == "ActivityNotFound"


async def catching(ctx: workflow.Context, activity: str) -> str:
    try:
        await workflow.execute_activity(ctx, NO_RETRIES, activity)
    except workflow.WorkflowError as err:
        return f"{err.type}: {err.message}"
    return "no error"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValueError("card declined"), "ValueError: card declined"),
        (workflow.WorkflowError("nope", type="Declined"), "Declined: nope"),
    ],
)
def test_mock_raising_reaches_the_workflow_as_workflow_error(error: Exception, expected: str) -> None:
    tester = new_tester(catching)
    tester.on_activity("refund").raises(error)

    tester.execute("refund")

    assert tester.workflow_result() == expected


def test_real_activity_error_reaches_the_workflow() -> None:
    tester = new_tester(catching)
    tester.register_activity(explode)

    tester.execute("explode")

    assert tester.workflow_result() == "KeyError: 'boom'"


async def retrying(ctx: workflow.Context) -> str:
    options = workflow.ActivityOptions(
        retry_options=workflow.RetryOptions(max_attempts=3, first_retry_interval=timedelta(minutes=1), backoff_coefficient=2)
    )
    return await workflow.execute_activity(ctx, options, ship, "order-1")


def test_retries_wait_their_backoff_in_workflow_time() -> None:
    tester = new_tester(retrying)
    attempts_at: list[datetime] = []

    def flaky(order_id: str) -> str:
        attempts_at.append(tester.now())
        raise ConnectionError("carrier down")

    tester.on_activity(ship, "order-1").calls(flaky).times(2)
    tester.on_activity(ship, "order-1").calls(lambda order_id: f"shipped {order_id} at {tester.now():%H:%M}")

    tester.execute()

    assert tester.workflow_result() == "shipped order-1 at 12:03"
    # First attempt at once, then 1 minute and 2 more minutes of backoff.
    assert attempts_at == [START, START + timedelta(minutes=1)]
    assert tester.now() == START + timedelta(minutes=3)
    tester.assert_expectations()


def test_retries_give_up_after_max_attempts() -> None:
    tester = new_tester(retrying)
    tester.on_activity(ship).raises(ConnectionError("carrier down")).times(3)

    tester.execute()

    with pytest.raises(workflow.WorkflowError, match="carrier down"):
        tester.workflow_result()
    tester.assert_expectations()


def test_unexpected_mock_call_fails_and_lists_expected_calls() -> None:
    tester = new_tester(order)
    tester.register_activity(charge)
    tester.on_activity(ship, "order-2").returns("t").once()
    tester.on_activity(refund, mock.ANY).returns(None)

    with pytest.raises(UnexpectedCall) as info:
        tester.execute("order-1")

    message = str(info.value)
    assert "mocked activity called with unexpected arguments: ship('order-1')" in message
    assert "ship('order-2'): returns 't', expected 1 time, called 0 times" in message


def test_mock_called_more_often_than_declared() -> None:
    tester = new_tester(retrying)
    tester.on_activity(ship).raises(ConnectionError("down")).once()

    with pytest.raises(UnexpectedCall, match="more often than expected"):
        tester.execute()


def test_mock_arguments_match_after_conversion() -> None:
    async def with_tuple(ctx: workflow.Context) -> str:
        return await workflow.execute_activity(ctx, NO_RETRIES, "pack", (1, 2), {"k": (3,)})

    tester = new_tester(with_tuple)
    tester.on_activity("pack", (1, 2), {"k": (3,)}).returns("packed").once()

    tester.execute()

    assert tester.workflow_result() == "packed"
    tester.assert_expectations()


def test_assert_expectations_fails_when_a_once_mock_was_not_called() -> None:
    tester = new_tester(catching)
    tester.on_activity("refund").returns(None)  # no .times(): not checked
    tester.on_activity(ship, "order-1").returns("t").once()

    tester.execute("refund")

    with pytest.raises(AssertionError, match=r"activity ship\('order-1'\): returns 't', expected 1 time, called 0 times"):
        tester.assert_expectations()


def test_mock_results_must_be_storable() -> None:
    tester = new_tester(order)
    with pytest.raises(TypeError, match="mock result for activity ship cannot be stored"):
        tester.on_activity(ship).returns(object())


# -- signals -------------------------------------------------------------------------------------


async def approvals(ctx: workflow.Context, count: int) -> list[list]:
    channel = workflow.new_signal_channel(ctx, "approved")
    received = []
    for _ in range(count):
        value = await channel.receive(ctx)
        received.append([value, workflow.now(ctx).isoformat()])
    return received


def test_signals_arrive_at_their_workflow_time() -> None:
    tester = new_tester(approvals)
    tester.signal_workflow("approved", "first", after=timedelta(days=2))
    tester.signal_workflow("approved", {"second": True}, after=timedelta(days=5))

    tester.execute(2)

    assert tester.workflow_result() == [
        ["first", (START + timedelta(days=2)).isoformat()],
        [{"second": True}, (START + timedelta(days=5)).isoformat()],
    ]


async def late_channel(ctx: workflow.Context) -> list:
    await workflow.sleep(ctx, timedelta(days=1))
    channel = workflow.new_signal_channel(ctx, "go")
    first = await channel.receive(ctx)
    second = await channel.receive(ctx)
    return [first, second, workflow.now(ctx).isoformat()]


def test_signals_sent_before_the_channel_exists_wait_for_it() -> None:
    tester = new_tester(late_channel)
    tester.signal_workflow("go", 1)  # at once
    tester.signal_workflow("go", 2, after=timedelta(hours=1))

    tester.execute()

    assert tester.workflow_result() == [1, 2, (START + timedelta(days=1)).isoformat()]


def test_signal_from_a_scheduled_callback() -> None:
    tester = new_tester(approvals)
    seen: list[datetime] = []

    def later() -> None:
        seen.append(tester.now())
        tester.signal_workflow("approved", "from callback", after=timedelta(minutes=5))

    tester.schedule_callback(timedelta(hours=3), later)

    tester.execute(1)

    assert seen == [START + timedelta(hours=3)]
    assert tester.workflow_result() == [["from callback", (START + timedelta(hours=3, minutes=5)).isoformat()]]


async def timer_or_signal(ctx: workflow.Context) -> str:
    timer_ctx, cancel_timer = workflow.with_cancel(ctx)
    timer = workflow.schedule_timer(timer_ctx, timedelta(hours=1))
    channel = workflow.new_signal_channel(ctx, "wake")
    outcome: list[str] = []
    await workflow.select(
        ctx,
        workflow.on_future(timer, lambda f: outcome.append("timer")),
        workflow.on_receive(channel, lambda value, ok: outcome.append(f"signal {value}")),
    )
    cancel_timer()
    return f"{outcome[0]} at {workflow.now(ctx):%H:%M}"


@pytest.mark.parametrize(
    ("signal_after", "expected", "end"),
    [
        (timedelta(minutes=30), "signal 7 at 12:30", timedelta(minutes=30)),
        (timedelta(hours=2), "timer at 13:00", timedelta(hours=1)),
    ],
)
def test_select_between_a_timer_and_a_signal(signal_after: timedelta, expected: str, end: timedelta) -> None:
    tester = new_tester(timer_or_signal)
    tester.signal_workflow("wake", 7, after=signal_after)

    tester.execute()

    assert tester.workflow_result() == expected
    # A canceled timer is dropped: time never jumped to it.
    assert tester.now() == START + end


# -- cancellation --------------------------------------------------------------------------------


async def cancelable(ctx: workflow.Context) -> str:
    try:
        await workflow.sleep(ctx, timedelta(days=7))
    except workflow.Canceled:
        cleanup = workflow.new_disconnected_context(ctx)
        await workflow.execute_activity(cleanup, NO_RETRIES, refund, "order-1")
        return f"canceled at {workflow.now(ctx):%H:%M}"
    return "slept"


def test_cancel_workflow_in_workflow_time() -> None:
    tester = new_tester(cancelable)
    tester.on_activity(refund, "order-1").returns(None).once()
    tester.cancel_workflow(after=timedelta(hours=1))

    tester.execute()

    assert tester.workflow_result() == "canceled at 13:00"
    assert tester.now() == START + timedelta(hours=1)
    tester.assert_expectations()


def test_a_workflow_that_does_not_handle_cancellation_fails_with_canceled() -> None:
    tester = new_tester(sleepy)
    tester.cancel_workflow(after=timedelta(days=3))

    tester.execute(2)

    with pytest.raises(workflow.Canceled, match="context canceled"):
        tester.workflow_result()


# -- sub-workflows -------------------------------------------------------------------------------


async def child(ctx: workflow.Context, n: int) -> int:
    await workflow.sleep(ctx, timedelta(hours=n))
    return n * await workflow.execute_activity(ctx, NO_RETRIES, charge, f"child-{n}")


async def parent(ctx: workflow.Context, n: int) -> str:
    try:
        value = await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), child, n)
    except workflow.WorkflowError as err:
        return f"child failed: {err.type}: {err.message}"
    return f"child returned {value} at {workflow.now(ctx):%H:%M}"


def test_mocked_sub_workflow() -> None:
    tester = new_tester(parent)
    started: list[str] = []
    tester.listen_sub_workflow(lambda instance, name: started.append(name))
    tester.on_sub_workflow(child, 2).returns(3).once()

    tester.execute(2)

    assert tester.workflow_result() == "child returned 3 at 12:00"
    assert started == ["child"]
    tester.assert_expectations()


def test_mocked_sub_workflow_raising() -> None:
    tester = new_tester(parent)
    tester.on_sub_workflow("child").raises(workflow.PermanentError("no stock", type="OutOfStock"))

    tester.execute(2)

    assert tester.workflow_result() == "child failed: OutOfStock: no stock"


def test_real_sub_workflow() -> None:
    charged.clear()
    tester = new_tester(parent)
    tester.register_workflow(child)
    tester.register_activity(charge)

    tester.execute(2)

    assert tester.workflow_result() == "child returned 24 at 14:00"
    assert charged == ["child-2"]


def test_unregistered_sub_workflow_fails_like_on_a_worker() -> None:
    tester = new_tester(parent)

    tester.execute(2)

    assert tester.workflow_result() == "child failed: WorkflowNotFound: workflow child not found"


async def waiting_child(ctx: workflow.Context) -> str:
    outcome: list[str] = []
    await workflow.select(
        ctx,
        workflow.on_receive(workflow.new_signal_channel(ctx, "poke"), lambda value, ok: outcome.append(f"child got {value}")),
        workflow.on_receive(ctx.done(), lambda value, ok: outcome.append("child canceled")),
    )
    return outcome[0]


async def waiting_parent(ctx: workflow.Context) -> str:
    options = workflow.SubWorkflowOptions(instance_id="the-child")
    return await workflow.create_sub_workflow_instance(ctx, options, waiting_child)


def test_signal_and_cancel_a_sub_workflow_instance() -> None:
    tester = new_tester(waiting_parent)
    tester.register_workflow(waiting_child)
    instances: list[workflow.WorkflowInstance] = []
    tester.listen_sub_workflow(lambda instance, name: instances.append(instance))
    tester.signal_workflow_instance("the-child", "poke", "hello", after=timedelta(hours=1))

    tester.execute()

    assert tester.workflow_result() == "child got hello"
    assert [i.instance_id for i in instances] == ["the-child"]
    assert instances[0].parent == tester.instance

    canceling = new_tester(waiting_parent)
    canceling.register_workflow(waiting_child)
    canceling.cancel_workflow_instance("the-child", after=timedelta(minutes=1))
    canceling.execute()
    assert canceling.workflow_result() == "child canceled"


def test_signaling_an_instance_that_is_not_active_fails_the_test() -> None:
    tester = new_tester(waiting_parent)
    tester.register_workflow(waiting_child)
    tester.signal_workflow_instance("someone-else", "poke", 1, after=timedelta(minutes=1))

    with pytest.raises(InstanceNotFound, match="cannot signal workflow instance 'someone-else'"):
        tester.execute()


async def signaling_parent(ctx: workflow.Context) -> list[str]:
    options = workflow.SubWorkflowOptions(instance_id="signaled-child")
    result = workflow.create_sub_workflow_instance(ctx, options, waiting_child)
    await workflow.signal_workflow(ctx, "signaled-child", "poke", "from parent")
    try:
        await workflow.signal_workflow(ctx, "nobody", "poke")
    except workflow.WorkflowError as err:
        missing = err.message
    return [await result, missing]


def test_workflow_signals_another_workflow() -> None:
    tester = new_tester(signaling_parent)
    tester.register_workflow(waiting_child)

    tester.execute()

    assert tester.workflow_result() == ["child got from parent", "workflow instance not found"]


# -- continue-as-new -----------------------------------------------------------------------------


async def counting(ctx: workflow.Context, run: int) -> int:
    await workflow.sleep(ctx, timedelta(hours=1))
    if run < 3:
        raise workflow.ContinueAsNew(run + 1)
    return run


def test_continue_as_new_runs_to_the_final_execution() -> None:
    tester = new_tester(counting)
    first = tester.instance

    tester.execute(1)

    assert tester.workflow_result() == 3
    assert tester.instance.instance_id == first.instance_id
    assert tester.instance.execution_id != first.execution_id
    assert tester.now() == START + timedelta(hours=3)


# -- non-determinism -----------------------------------------------------------------------------

executions = {"count": 0}


async def nondeterministic(ctx: workflow.Context) -> str:
    # Differs between the first execution and every replay: a bug the tester must catch.
    executions["count"] += 1
    if executions["count"] == 1:
        await workflow.execute_activity(ctx, NO_RETRIES, ship, "order-1")
    else:
        await workflow.sleep(ctx, timedelta(seconds=1))
    await workflow.sleep(ctx, timedelta(seconds=1))
    return "done"


def test_nondeterminism_is_caught_by_replaying_every_task() -> None:
    executions["count"] = 0
    tester = new_tester(nondeterministic)
    tester.on_activity(ship).returns("t")

    tester.execute()

    assert tester.workflow_finished()
    with pytest.raises(workflow.NondeterminismError, match="ActivityScheduled") as info:
        tester.workflow_result()
    assert "TimerScheduled" in str(info.value)


async def parent_of_nondeterministic(ctx: workflow.Context) -> str:
    try:
        await workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), nondeterministic)
    except workflow.WorkflowError as err:
        return err.type
    return "child succeeded"


def test_nondeterministic_sub_workflow_fails_its_parent() -> None:
    executions["count"] = 0
    tester = new_tester(parent_of_nondeterministic, idle_timeout=5)
    tester.register_workflow(nondeterministic)
    tester.on_activity(ship).returns("t")

    tester.execute()

    assert tester.workflow_result() == "NondeterminismError"


# -- wall clock while real activities run --------------------------------------------------------

release = threading.Event()


def slow() -> str:
    if not release.wait(30):
        raise TimeoutError("never released")
    return "slow done"


def pause(seconds: float) -> None:
    time.sleep(seconds)


async def racing(ctx: workflow.Context) -> list[str]:
    order: list[str] = []
    activity = workflow.execute_activity(ctx, NO_RETRIES, slow)
    await workflow.select(
        ctx,
        workflow.on_future(activity, lambda f: order.append("activity")),
        workflow.on_future(workflow.schedule_timer(ctx, timedelta(milliseconds=50)), lambda f: order.append("timer")),
    )
    order.append(await activity)
    return order


def test_time_follows_the_wall_clock_while_activities_run() -> None:
    release.clear()
    tester = new_tester(racing)
    tester.register_activity(slow)
    # Fires in workflow time, which follows the wall clock while `slow` runs.
    tester.schedule_callback(timedelta(milliseconds=200), release.set)

    tester.execute()

    # The 50 ms timer fired while the activity still ran; the activity ended after the release.
    assert tester.workflow_result() == ["timer", "slow done"]
    assert tester.now() >= START + timedelta(milliseconds=200)


async def pausing(ctx: workflow.Context) -> float:
    before = workflow.now(ctx)
    await workflow.execute_activity(ctx, NO_RETRIES, pause, 0.1)
    return (workflow.now(ctx) - before).total_seconds()


def test_workflow_time_includes_the_time_activities_took() -> None:
    tester = new_tester(pausing)
    tester.register_activity(pause)

    tester.execute()

    assert tester.workflow_result() >= 0.1


# -- converter and context propagation ----------------------------------------------------------


class TaggingConverter(JsonConverter):
    """JSON with a marker, so a payload that skipped this converter fails to decode."""

    def to_payload(self, value: object) -> str:
        return "T" + super().to_payload(value)

    def from_payload(self, payload: str) -> object:
        if not payload.startswith("T"):
            raise PayloadError(f"payload {payload!r} did not come from TaggingConverter")
        return super().from_payload(payload[1:])


def test_custom_converter_is_used_for_every_payload() -> None:
    tester = new_tester(late_channel, converter=TaggingConverter())
    tester.signal_workflow("go", {"n": 1})
    tester.signal_workflow("go", [2])

    tester.execute()

    assert tester.workflow_result() == [{"n": 1}, [2], (START + timedelta(days=1)).isoformat()]


tenant: ContextVar[str] = ContextVar("tenant", default="")


class TenantPropagator:
    def inject(self, metadata: dict[str, str]) -> None:
        metadata["tenant"] = tenant.get()

    def extract(self, metadata: dict[str, str]) -> None:
        tenant.set(metadata.get("tenant", ""))

    def inject_from_workflow(self, ctx: workflow.Context, metadata: dict[str, str]) -> None:
        metadata["tenant"] = ctx.value("tenant", "")

    def extract_to_workflow(self, ctx: workflow.Context, metadata: dict[str, str]) -> workflow.Context:
        return workflow.with_value(ctx, "tenant", metadata.get("tenant", ""))


def whose() -> str:
    return f"activity sees {tenant.get()}"


async def tenant_workflow(ctx: workflow.Context) -> list[str]:
    return [ctx.value("tenant"), await workflow.execute_activity(ctx, NO_RETRIES, whose)]


def test_context_propagators_carry_values_into_workflow_and_activities() -> None:
    tester = new_tester(tenant_workflow, propagators=[TenantPropagator()])
    tester.register_activity(whose)
    token = tenant.set("acme")
    try:
        tester.execute()
    finally:
        tenant.reset(token)

    assert tester.workflow_result() == ["acme", "activity sees acme"]


# -- blocked workflows and misuse ----------------------------------------------------------------


def test_idle_timeout_when_nothing_can_happen() -> None:
    tester = new_tester(approvals, idle_timeout=0.2)
    tester.signal_workflow("approved", "only one")

    with pytest.raises(WorkflowBlocked, match=r"workflow blocked\? Nothing happened for 0.2s of wall time") as info:
        tester.execute(2)

    assert "Active workflows: approvals" in str(info.value)
    assert not tester.workflow_finished()
    with pytest.raises(RuntimeError, match="has not finished"):
        tester.workflow_result()


def test_idle_timeout_names_a_hung_activity() -> None:
    release.clear()
    tester = new_tester(racing, idle_timeout=0.3)
    tester.register_activity(slow)
    try:
        with pytest.raises(WorkflowBlocked, match="running activities: slow"):
            tester.execute()
    finally:
        release.set()  # let the activity's thread end


def test_max_history_size() -> None:
    tester = new_tester(sleepy, max_history_size=8)

    tester.execute(1)

    with pytest.raises(workflow.WorkflowError, match="workflow history size exceeded 8 events"):
        tester.workflow_result()


def test_registry_option_is_copied_and_execute_runs_once() -> None:
    shared = Registry()
    shared.register_activity(charge)
    tester = new_tester(order, registry=shared)
    tester.on_activity(ship).returns("t")
    tester.on_activity(refund).returns(None)

    tester.execute("order-9")

    assert tester.workflow_result() == "12 t"
    assert [name for name, _ in shared.workflows()] == []  # the tester registered into its copy
    with pytest.raises(RuntimeError, match="once"):
        tester.execute("order-9")


def test_bad_arguments_are_refused_before_running() -> None:
    tester = new_tester(sleepy)
    with pytest.raises(TypeError, match="mismatched argument count"):
        tester.execute()
    with pytest.raises(ValueError, match="must not be negative"):
        new_tester(sleepy).signal_workflow("x", after=-1)
    with pytest.raises(TypeError, match="workflow function itself"):
        WorkflowTester("sleepy")
