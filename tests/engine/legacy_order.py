"""The workflow behind ``fixtures/legacy_retry_order.json``: a history recorded by a real worker
of django_workflows before ``with_retries`` ran the first attempt at once (commit 09bb8b5).

Do not change this code: the fixture is its recorded history, and the tests replay that history
against it. Each call below gets a different schedule event id in the old order than in
go-workflows' order, so a replay that numbered them the new way would not match:

- old order (recorded): ``side_effect`` 1, ``once`` 2, timer 3, then, once ``main`` blocks, the
  retry coroutines: ``retried`` 4, the child 5; after the first results ``mark`` before ``again``.
- go-workflows' order: ``retried`` 1, ``side_effect`` 2, ``once`` 3, the child 4, timer 5.

The first attempt of ``flaky`` fails, so the history also holds a retry scheduled from the
retry coroutine.
"""

from __future__ import annotations

from datetime import timedelta

from django_workflows import activity, workflow

RETRY_TWICE = workflow.SubWorkflowOptions(retry_options=workflow.RetryOptions(max_attempts=2))


def legacy_echo(value: str) -> str:
    return value


def legacy_flaky(value: str) -> str:
    if activity.attempt() == 0:
        raise RuntimeError("the first attempt fails")
    return f"{value}@{activity.attempt()}"


async def legacy_child(ctx: workflow.Context, n: int) -> int:
    return n * 2


async def legacy_order(ctx: workflow.Context, n: int) -> str:
    retried = workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, legacy_flaky, "retried")
    # Not awaited here: a side effect's future is resolved at once when it runs, but only by its
    # recorded event on replay, so awaiting it here would block a replay where the recording
    # went on (and the old order let the retry coroutines take ids there).
    stamp = workflow.side_effect(ctx, lambda: 7)
    once = workflow.execute_activity(ctx, workflow.ActivityOptions(), legacy_echo, "once")
    child = workflow.create_sub_workflow_instance(ctx, RETRY_TWICE, legacy_child, n)
    timer = workflow.schedule_timer(ctx, timedelta(milliseconds=200), name="pause")
    first = f"{await retried}|{await stamp}|{await once}|{await child}"
    await timer
    again = workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, legacy_echo, "again")
    mark = await workflow.side_effect(ctx, lambda: 1)
    return f"{first}|{await again}|{mark}"
