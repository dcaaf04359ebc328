"""The workflows of the fault soak (``python -m tests.soak``, ``tests/soak/``).

Each ``soak_workflow`` runs one activity, then two in parallel, a durable timer, waits for a
signal, and starts a sub-workflow that runs one more activity. Every activity execution appends a
line to the run's *ledger* (one file, opened in append mode, so that lines from several worker
processes never interleave), which is how the soak's check counts re-executions and sees on
which worker process each one ran. The results are a pure function of the workflow's index
(``expected_result``), so the check knows what every instance had to return.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from typing import Any

from django_workflows import activity, register_activity, register_workflow, workflow

#: The name of the signal each soak workflow waits for; its argument is a token the driver chose.
SIGNAL = "soak-go"
#: The activity steps: a, then b and c in parallel, and d in the sub-workflow.
STEPS = ("a", "b", "c", "d")
#: How long an activity works: long enough that a SIGKILL often lands in the middle of one.
ACTIVITY_SECONDS = 0.2
TIMER = timedelta(milliseconds=500)
#: Activities are retried; a lease lost to a killed worker is not an attempt (``lease_count``).
OPTIONS = workflow.ActivityOptions(retry_options=workflow.RetryOptions(max_attempts=3))


def step_value(index: int, step: str) -> int:
    return index * 10 + STEPS.index(step) + 1


def expected_result(index: int, token: str) -> dict[str, Any]:
    """What ``soak_workflow(ledger, index)`` returns when its signal carried ``token``."""
    return {"values": [step_value(index, s) for s in "abc"], "token": token, "child": step_value(index, "d")}


def child_instance_id(instance_id: str) -> str:
    return f"{instance_id}-child"


def _record(ledger: str, entry: dict[str, Any]) -> None:
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    # One write(2) of an O_APPEND descriptor: lines of concurrent processes stay whole. No fsync:
    # a SIGKILL does not lose what the kernel already has.
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@register_activity
def soak_step(ledger: str, instance_id: str, index: int, step: str) -> int:
    """Record the execution (``start``), work a little, record its end (``done``)."""
    entry = {"instance": instance_id, "step": step, "pid": os.getpid(), "attempt": activity.attempt()}
    _record(ledger, {**entry, "event": "start", "at": time.time()})
    time.sleep(ACTIVITY_SECONDS)
    _record(ledger, {**entry, "event": "done", "at": time.time()})
    return step_value(index, step)


@register_workflow
async def soak_child(ctx: workflow.Context, ledger: str, index: int) -> int:
    instance_id = workflow.workflow_instance(ctx).instance_id
    return await workflow.execute_activity(ctx, OPTIONS, soak_step, ledger, instance_id, index, "d")


@register_workflow
async def soak_workflow(ctx: workflow.Context, ledger: str, index: int) -> dict[str, Any]:
    instance_id = workflow.workflow_instance(ctx).instance_id
    a = await workflow.execute_activity(ctx, OPTIONS, soak_step, ledger, instance_id, index, "a")
    b, c = await workflow.gather(
        ctx,
        workflow.execute_activity(ctx, OPTIONS, soak_step, ledger, instance_id, index, "b"),
        workflow.execute_activity(ctx, OPTIONS, soak_step, ledger, instance_id, index, "c"),
    )
    await workflow.sleep(ctx, TIMER)
    token = await workflow.new_signal_channel(ctx, SIGNAL).receive(ctx)
    child = await workflow.create_sub_workflow_instance(
        ctx, workflow.SubWorkflowOptions(instance_id=child_instance_id(instance_id)), soak_child, ledger, index
    )
    return {"values": [a, b, c], "token": token, "child": child}
