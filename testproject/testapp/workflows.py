"""Workflows and activities the test suite runs in ``runworkflows`` subprocesses.

They coordinate with the tests through files: a *ledger* gets one line per activity execution
(so a test can count re-executions), and a *gate* file holds an activity until the test creates
it. Some deliberately kill their worker with ``os._exit`` to simulate a crash.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django_workflows import activity, register_activity, register_workflow, workflow

from . import soak  # noqa: F401  (registers the fault soak's workflows: tests/soak)


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@register_activity
def ledger_step(ledger: str, step: int, gate: str = "") -> int:
    """Record an execution of ``step``; if ``gate`` is given, wait (up to 120 s) until it exists."""
    _append(ledger, f"start {step} pid={os.getpid()}")
    deadline = time.monotonic() + 120
    while gate and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    _append(ledger, f"done {step} pid={os.getpid()}")
    return step


@register_workflow
async def ledger_workflow(ctx: workflow.Context, ledger: str, steps: int, gated_step: int, gate: str) -> list[int]:
    """Run ``steps`` activities in sequence; ``gated_step`` waits for the gate file."""
    results = []
    for step in range(1, steps + 1):
        options = workflow.ActivityOptions(retry_options=workflow.RetryOptions(max_attempts=1))
        results.append(
            await workflow.execute_activity(ctx, options, ledger_step, ledger, step, gate if step == gated_step else "")
        )
    return results


@register_activity
def crash_worker(ledger: str) -> None:
    """Kill the worker process running this activity, every time."""
    _append(ledger, f"crash pid={os.getpid()}")
    os._exit(9)


@register_workflow
async def poison_workflow(ctx: workflow.Context, ledger: str) -> str:
    try:
        await workflow.execute_activity(ctx, workflow.ActivityOptions(), crash_worker, ledger)
    except workflow.WorkflowError as err:
        return f"{err.type}: {err}"
    return "activity returned"


@register_workflow
async def crash_in_workflow_task(ctx: workflow.Context, marker: str, ledger: str) -> int:
    """Kill the worker in the middle of a workflow task, once (when ``marker`` does not exist yet)."""
    first = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, ledger_step, ledger, 1)
    if not workflow.replaying(ctx) and not Path(marker).exists():
        Path(marker).touch()
        os._exit(9)  # the task's result is never committed; another worker must redo it
    second = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, ledger_step, ledger, 2)
    return first + second


@register_activity
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@register_workflow
async def slow_workflow(ctx: workflow.Context, seconds: float) -> float:
    return await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, slow, seconds)


@register_workflow
async def collect_signals(ctx: workflow.Context, count: int) -> list[object]:
    """Return the arguments of the first ``count`` signals named ``note``; canceled, raise
    ``Canceled`` (tests of the shortcuts)."""
    channel = workflow.new_signal_channel(ctx, "note")
    received: list[object] = []
    while len(received) < count:
        await workflow.select(
            ctx,
            workflow.on_receive(channel, lambda value, ok: received.append(value)),
            workflow.on_receive(ctx.done()),
        )
        if ctx.err() is not None:
            raise workflow.Canceled()
    return received


@register_workflow
async def hanging_workflow(ctx: workflow.Context, seconds: float) -> str:
    """Workflow code that never yields back to the engine: a deadlock the worker must detect."""
    time.sleep(seconds)
    return "woke up"


@register_activity
def timed_step(ledger: str, gate: str) -> str:
    """Attempt 1 waits (up to 120 s, without heartbeats) until ``gate`` exists; later attempts
    return at once. Every start and end goes to the ledger."""
    attempt = activity.attempt()
    _append(ledger, f"start {attempt} pid={os.getpid()}")
    deadline = time.monotonic() + 120
    while attempt == 0 and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    _append(ledger, f"done {attempt} pid={os.getpid()}")
    return f"attempt {attempt} pid={os.getpid()}"


@register_workflow
async def timed_workflow(ctx: workflow.Context, ledger: str, gate: str, attempts: int) -> str:
    """Runs ``timed_step`` with a 3 s start-to-close timeout; a timed-out attempt is retried
    up to ``attempts`` attempts in all."""
    options = workflow.ActivityOptions(
        start_to_close_timeout=3, retry_options=workflow.RetryOptions(max_attempts=attempts)
    )
    try:
        return await workflow.execute_activity(ctx, options, timed_step, ledger, gate)
    except workflow.ActivityTimeoutError as err:
        return f"timed out: {err.timeout_type.value}"


@register_activity
def stuck_step(ledger: str) -> None:
    """Record the start, then sleep for good: code stuck in its thread (graceful-shutdown tests)."""
    _append(ledger, f"activity pid={os.getpid()}")
    time.sleep(10**6)


@register_workflow
async def stuck_activity_workflow(ctx: workflow.Context, ledger: str) -> None:
    await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, stuck_step, ledger)


@register_workflow
async def stuck_workflow(ctx: workflow.Context, ledger: str) -> None:
    """Workflow code stuck in its task's thread (run with deadlock detection off)."""
    _append(ledger, f"workflow pid={os.getpid()}")
    time.sleep(10**6)
