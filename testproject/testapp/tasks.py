"""Django tasks the tests enqueue through ``WorkflowsTaskBackend`` (Django 6 or the backport).

Tasks that must fail a given number of times count their runs in a *ledger* file, one line per
attempt, so a test can also see how often each ran.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task


def _append(path: str, line: str) -> int:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    return len(Path(path).read_text(encoding="utf-8").splitlines())


@task
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="other")
def shout(text: str) -> str:
    return text.upper()


@task(max_attempts=3, retry_interval=0.1)
def flaky(ledger: str, failures: int) -> dict[str, object]:
    """Fail the first ``failures`` attempts."""
    runs = _append(ledger, f"run pid={os.getpid()}")
    if runs <= failures:
        raise RuntimeError(f"failure {runs} of {failures}")
    return {"runs": runs}


@task(max_attempts=2, retry_interval=0.1)
def always_fails(ledger: str) -> None:
    runs = _append(ledger, "run")
    raise ValueError(f"broken on run {runs}")


@task(takes_context=True, max_attempts=2, retry_interval=0.1)
def with_context(context, ledger: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    runs = _append(ledger, "run")
    if runs == 1:
        raise RuntimeError("first attempt fails")
    return {"attempt": context.attempt, "id": context.task_result.id}


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@task(timeout=0.5, max_attempts=2, retry_interval=0.1)
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task
def record(ledger: str, label: str) -> str:
    _append(ledger, label)
    return label


@task
def start_order_workflow(instance_id: str) -> str:
    """A task that starts a workflow (and returns its instance id)."""
    from django_workflows import start_workflow

    return start_workflow("Workflow1", "from a task", instance_id=instance_id).instance_id
