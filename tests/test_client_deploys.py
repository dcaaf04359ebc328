"""The Client's side of safe deploys on the memory backend with a real worker: the async twins of
restart and reset, what a blocked instance's info and result timeout say."""

from __future__ import annotations

import asyncio

import pytest

from django_workflows import workflow
from django_workflows.backends.memory import MemoryBackend
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.errors import InstanceNotFinished, WorkflowTimeout
from django_workflows.engine.history import EventType
from django_workflows.testing.conformance.support import wait_until
from django_workflows.worker import Worker, WorkerOptions

ONCE = workflow.ActivityOptions(retry_options=workflow.RetryOptions(max_attempts=1))
calls: list[int] = []


def count(n: int) -> int:
    calls.append(n)
    return n


async def twice(ctx: workflow.Context, n: int) -> int:
    first = await workflow.execute_activity(ctx, ONCE, count, n)
    second = await workflow.execute_activity(ctx, ONCE, count, n + 1)
    return first + second


async def waits(ctx: workflow.Context) -> None:
    await workflow.new_signal_channel(ctx, "never").receive(ctx)


async def broken(ctx: workflow.Context) -> None:
    workflow.missing_api(ctx)  # type: ignore[attr-defined]


@pytest.fixture
def client() -> Client:
    backend = MemoryBackend()
    worker = Worker(backend, WorkerOptions(blocked_retry_first_interval=0.1, blocked_retry_max_interval=0.2))
    worker.register_workflow(twice)
    worker.register_workflow(broken)
    worker.register_workflow(waits)
    worker.register_activity(count)
    worker.start()
    yield Client(backend, registry=worker.registry)
    worker.stop()
    assert worker.wait_for_completion(30)


def test_async_restart_and_reset(client: Client) -> None:
    calls.clear()

    async def scenario() -> tuple[int, int]:
        first = await client.acreate_workflow_instance(WorkflowInstanceOptions(instance_id="t-1"), twice, 1)
        assert await client.aget_workflow_result(first, 30) == 3
        restarted = await client.arestart_workflow_instance(first)
        assert await client.aget_workflow_result(restarted, 30) == 3
        history = client.backend.get_workflow_instance_history(restarted)
        last_task = [e.sequence_id for e in history if e.type is EventType.WORKFLOW_TASK_STARTED][-1]
        reset = await client.areset_workflow_instance(restarted, last_task)
        info = await client.aget_workflow_instance_info(reset)
        assert info.instance == reset and info.blocked is None
        return await client.aget_workflow_result(reset, 30), len(calls)

    result, runs = asyncio.run(scenario())
    # Twice two activities, then the reset re-runs only the second one.
    assert (result, runs) == (3, 5) and calls[-1] == 2
    with pytest.raises(InstanceNotFinished):
        asyncio.run(client.arestart_workflow_instance(client.create_workflow_instance(None, waits)))


def test_a_blocked_instance_says_why_in_its_info_and_result_timeout(client: Client) -> None:
    instance = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="b-1"), broken)
    info = wait_until(lambda: (i := client.get_workflow_instance_info(instance)).blocked and i)
    assert info.is_blocked and info.blocked.error.type == "AttributeError" and "missing_api" in info.blocked.error.message
    with pytest.raises(WorkflowTimeout, match=r"it is blocked since .*failed attempts\): AttributeError: .*missing_api"):
        client.get_workflow_result(instance, 0.3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workflow_failure_policy": "explode"}, "workflow_failure_policy: the failure policy must be 'block' or 'fail'"),
        ({"workflow_failure_policies": {"order": "ignore"}}, r"workflow_failure_policies\['order'\]"),
        ({"blocked_retry_first_interval": 0}, "must be positive"),
        ({"blocked_retry_first_interval": 10, "blocked_retry_max_interval": 1}, "at most blocked_retry_max_interval"),
        ({"workflow_deadlock_timeout": -1}, "must not be negative"),
    ],
)
def test_worker_options_of_safe_deploys_are_checked(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkerOptions(**options)
