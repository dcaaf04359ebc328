"""Profiling aid: time the engine's and the backend's operations inside worker processes.

With ``BENCH_TIME_OPS=1`` our workers wrap the backend's task methods, ``Executor.execute_task``
and ``ActivityRunner.run``, and add to their counters (``bench.counting``), per operation:
``op_calls``, ``op_wall_us`` (elapsed) and ``op_cpu_us`` (CPU time of the calling thread, so
waiting for a lock, the GIL or the database is not in it). A poll that found no task is counted
as ``<name>:empty``. The wrappers cost a few microseconds per call.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

from bench import counting

ENV = "BENCH_TIME_OPS"
BACKEND_METHODS = (
    "get_workflow_task",
    "get_workflow_tasks",
    "complete_workflow_task",
    "extend_workflow_task",
    "abandon_workflow_task",
    "get_activity_task",
    "get_activity_tasks",
    "complete_activity_task",
    "extend_activity_task",
    "abandon_activity_task",
    "get_workflow_instance_history",
)


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        result = None
        try:
            result = fn(*args, **kwargs)
            return result
        finally:
            empty = result is None or (name.endswith("_tasks") and not result)
            label = f"{name}:empty" if name.startswith("get_") and "_task" in name and empty else name
            counting.bump(f"op_calls: {label}")
            counting.bump(f"op_wall_us: {label}", int((time.perf_counter() - wall) * 1e6))
            counting.bump(f"op_cpu_us: {label}", int((time.thread_time() - cpu) * 1e6))

    return wrapper


def install(backend_class: type) -> None:
    from django_workflows.engine.activity_runner import ActivityRunner
    from django_workflows.engine.executor import Executor

    for name in BACKEND_METHODS:
        if hasattr(backend_class, name):
            setattr(backend_class, name, _timed(name, getattr(backend_class, name)))
    Executor.execute_task = _timed("Executor.execute_task", Executor.execute_task)  # type: ignore[method-assign]
    ActivityRunner.run = _timed("ActivityRunner.run", ActivityRunner.run)  # type: ignore[method-assign]
