"""The bench's workflows and activities (see ``bench.workloads`` for the shapes).

The tree ports go-workflows' ``bench/workflows.go`` (Root, Mid, Leaf, Activity). Its
sub-workflows get deterministic ids, ``<parent id>.<index>``, so that the driver can find every
instance afterwards and count its activities from history.
"""

from __future__ import annotations

from typing import Any

from django_workflows import register_activity, register_workflow, workflow


@register_activity(name="bench_noop")
def noop(i: int) -> int:
    return i


@register_activity(name="bench_payload")
def payload(size: int) -> str:
    # go-workflows' Activity returns a seeded random string; any string of the size will do.
    return ("abcdefghijklmnopqrstuvwxyz0123456789" * (size // 36 + 1))[:size]


@register_workflow(name="bench_chain")
async def chain(ctx: workflow.Context, steps: int) -> int:
    """W1/W2: ``steps`` activities, one after the other."""
    for i in range(steps):
        await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, noop, i)
    return steps


@register_workflow(name="bench_fanout")
async def fanout(ctx: workflow.Context, steps: int) -> int:
    """W3: ``steps`` activities scheduled at once, then gathered."""
    futures = [workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, noop, i) for i in range(steps)]
    return len(await workflow.gather(ctx, *futures))


def _child_options(ctx: workflow.Context, index: int) -> workflow.SubWorkflowOptions:
    return workflow.SubWorkflowOptions(instance_id=f"{workflow.workflow_instance(ctx).instance_id}.{index}")


@register_workflow(name="bench_tree_root")
async def tree_root(ctx: workflow.Context, shape: dict[str, int]) -> int:
    futures = [
        workflow.create_sub_workflow_instance(ctx, _child_options(ctx, i), tree_mid, shape, shape["depth"] - 1)
        for i in range(shape["fanout"])
    ]
    return sum(await workflow.gather(ctx, *futures))


@register_workflow(name="bench_tree_mid")
async def tree_mid(ctx: workflow.Context, shape: dict[str, int], depth: int) -> int:
    futures: list[Any]
    if depth == 0:
        futures = [
            workflow.create_sub_workflow_instance(ctx, _child_options(ctx, i), tree_leaf, shape)
            for i in range(shape["leaf_fanout"])
        ]
    else:
        futures = [
            workflow.create_sub_workflow_instance(ctx, _child_options(ctx, i), tree_mid, shape, depth - 1)
            for i in range(shape["fanout"])
        ]
    return sum(await workflow.gather(ctx, *futures))


@register_workflow(name="bench_tree_leaf")
async def tree_leaf(ctx: workflow.Context, shape: dict[str, int]) -> int:
    futures = [
        workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, payload, shape["result_size"])
        for _ in range(shape["activities"])
    ]
    return len(await workflow.gather(ctx, *futures))


# -- the scale bench (bench.scale) ---------------------------------------------------------------


@register_workflow(name="scale_wait")
async def scale_wait(ctx: workflow.Context, seconds: float) -> str:
    """Waits for a timer of ``seconds`` or the signal ``wake``, whichever comes first."""
    wake = workflow.new_signal_channel(ctx, "wake")
    timer_ctx, cancel = workflow.with_cancel(ctx)
    result: str = await workflow.select(
        ctx,
        workflow.on_receive(wake, lambda value, ok: "signal"),
        workflow.on_future(workflow.schedule_timer(timer_ctx, seconds), lambda future: "timer"),
    )
    cancel()  # the timer that did not fire: a workflow may not finish with a pending future
    return result


@register_workflow(name="scale_one")
async def scale_one(ctx: workflow.Context) -> int:
    """One no-op activity: the unit of the scale bench's throughput and wake-up latency."""
    result: int = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, noop, 1)
    return result
