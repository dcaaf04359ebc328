"""What a miss of the executor cache costs: the replay of a whole history, by its length.

    python -m bench.replay_cost [--store memory|sqlite] [--steps 100,1000,3000] [--uncached 300]

A workflow of N sequential activities runs to completion on the memory backend (only the
engine's own cost) or on the ORM backend over a fresh SQLite file (``bench.settings``). Then:

- ``load ms``: reading the finished history from the store, as a worker does on a cache miss
  (after a restart, an eviction, a sticky instance that moved to another worker);
- ``replay ms``: one fresh executor replays it; and the CPU per replayed event of both.
- ``uncached s`` / ``cached s``: the whole workflow run with ``workflow_executor_cache_size=0``
  (every task replays everything so far: quadratic in N) and with the default cache, for the
  ``--uncached`` step count.

The figures of docs/settings.md ("The executor cache") come from this. Single process, seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from django_workflows import workflow
from django_workflows.backends.memory import MemoryBackend
from django_workflows.client import Client
from django_workflows.engine.backend import Backend
from django_workflows.engine.core import WorkflowInstance
from django_workflows.testing import Replayer
from django_workflows.worker import Worker, WorkerOptions


def step(n: int) -> int:
    return n + 1


async def steps(ctx: workflow.Context, count: int) -> int:
    total = 0
    for _ in range(count):
        total = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, step, total)
    return total


def run(new_backend: Callable[[], Backend], count: int, cache_size: int | None) -> tuple[Backend, WorkflowInstance, float]:
    """Run ``steps(count)``; the backend, the instance, seconds taken."""
    backend = new_backend()
    options = WorkerOptions(workflow_executor_cache_size=cache_size, workflow_deadlock_timeout=0)
    worker = Worker(backend, options)
    worker.register_workflow(steps)
    worker.register_activity(step)
    worker.start()
    try:
        client = Client(backend, registry=worker.registry)
        started = time.perf_counter()
        instance = client.create_workflow_instance(None, steps, count)
        result = client.get_workflow_result(instance, timeout=3600)
        elapsed = time.perf_counter() - started
    finally:
        worker.stop()
        worker.wait_for_completion(60)
    if result != count:
        raise SystemExit(f"steps({count}) returned {result!r}")
    return backend, instance, elapsed


def replay_ms(backend: Backend, instance: WorkflowInstance) -> tuple[int, float, float]:
    """The history's length, and the CPU ms to load it and to load and replay it in one fresh
    executor (best of 3 each)."""
    replayer = Replayer()
    replayer.register_workflow(steps)
    events = len(backend.get_workflow_instance_history(instance))
    load = total = float("inf")
    for _ in range(3):
        started = time.process_time()
        backend.get_workflow_instance_history(instance)
        load = min(load, time.process_time() - started)
        started = time.process_time()
        report = replayer.replay_backend(backend, [instance])
        total = min(total, time.process_time() - started)
        report.raise_for_mismatches()
    return events, load * 1000, max(0.0, total - load) * 1000


def sqlite_backends() -> Callable[[], Backend]:
    """The ORM backend of ``bench.settings`` on a fresh, migrated SQLite file."""
    os.environ["BENCH_STORE"] = "sqlite"
    os.environ["BENCH_SQLITE_PATH"] = os.path.join(tempfile.mkdtemp(prefix="replay-cost-"), "db.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django_workflows.backends import workflow_backends

    return lambda: workflow_backends["default"]


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--steps", default="100,1000,3000", help="activity counts whose history to replay")
    parser.add_argument("--uncached", type=int, default=300, help="activity count to run with and without the cache")
    args = parser.parse_args(argv)
    logging.getLogger("django_workflows").setLevel(logging.WARNING)
    new_backend: Callable[[], Backend] = MemoryBackend if args.store == "memory" else sqlite_backends()
    print(f"store: {args.store}")
    print(f"{'activities':>10} {'events':>7} {'load ms':>8} {'replay ms':>10} {'us/event':>9}")
    for count in (int(n) for n in args.steps.split(",")):
        backend, instance, _ = run(new_backend, count, None)
        events, load, replay = replay_ms(backend, instance)
        print(f"{count:>10,} {events:>7,} {load:>8.1f} {replay:>10.1f} {(load + replay) * 1000 / events:>9.1f}")
    _, _, cached = run(new_backend, args.uncached, None)
    _, _, uncached = run(new_backend, args.uncached, 0)
    print(
        f"{args.uncached:,} sequential activities: {cached:.2f} s with the executor cache, "
        f"{uncached:.2f} s without ({uncached / cached:.1f}x)"
    )


if __name__ == "__main__":
    main()
