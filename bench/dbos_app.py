"""The DBOS Transact side of the bench; runs in ``bench/.venv-dbos`` (Python 3.11, ``dbos`` from PyPI).

    python -m bench.dbos_app setup  --url URL --workload W1 --count 500 --steps 2 [--w3 queue|async]
    python -m bench.dbos_app worker --url URL --executor-id w0

The same workloads as ours (``bench.workloads``), written the way DBOS's documentation shows:

- W1/W2 ``bench_chain``: a workflow calling ``steps`` no-op ``@DBOS.step`` functions in turn.
- W3, ``--w3 queue`` (default) ``bench_fanout``: the fan-out of DBOS's queue tutorial: the
  workflow enqueues ``steps`` no-op steps on the queue ``bench_fanout`` and waits for every
  handle's result. Each enqueued step runs as its own (child) workflow, on any worker process.
- W3, ``--w3 async`` ``bench_fanout_async``: an ``async`` workflow that starts the no-op async
  steps with ``asyncio.create_task`` in a fixed order and awaits ``asyncio.gather``, as DBOS
  documents for parallel steps; they run in the process that runs the workflow.

"Started up front" means: ``setup`` migrates the system database, registers the queues and
enqueues every root workflow on the queue ``bench`` with ``DBOSClient``; then the driver starts
the ``worker`` processes, which ``DBOS.launch()`` and dequeue. Like ours, workers get the same
SQLite settings as ours (WAL, ``synchronous=NORMAL``), and the bench's counters
(``bench.counting``) when ``BENCH_COUNT_FILE`` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading
from typing import Any

from dbos import DBOS, DBOSClient, EnqueueOptions
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench import counting, readiness

APP_NAME = "wfbench"
ROOT_QUEUE = "bench"
FANOUT_QUEUE = "bench_fanout"


@DBOS.step(name="bench_noop")
def noop(i: int) -> int:
    return i


@DBOS.step(name="bench_noop_async")
async def noop_async(i: int) -> int:
    return i


@DBOS.workflow(name="bench_chain")
def chain(steps: int) -> int:
    for i in range(steps):
        noop(i)
    return steps


@DBOS.workflow(name="bench_fanout")
def fanout(steps: int) -> int:
    queue = DBOS.retrieve_queue(FANOUT_QUEUE)
    assert queue is not None, f"queue {FANOUT_QUEUE} is not registered"
    handles = [queue.enqueue(noop, i) for i in range(steps)]
    return len([handle.get_result() for handle in handles])


@DBOS.workflow(name="bench_fanout_async")
async def fanout_async(steps: int) -> int:
    tasks = [asyncio.create_task(noop_async(i)) for i in range(steps)]
    return len(await asyncio.gather(*tasks))


@event.listens_for(Engine, "connect")
def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Only SQLite: the same durability setting as our bench settings (WAL is set on the file
    # before DBOS creates its tables; synchronous is per connection).
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        if counting.enabled():
            counting.install_sqlite_counter(dbapi_connection)


def _config(url: str, executor_id: str) -> dict[str, Any]:
    return {
        "name": APP_NAME,
        "system_database_url": url,
        "executor_id": executor_id,
        "log_level": "WARNING",
        "application_version": "bench",
    }


def setup(args: argparse.Namespace) -> None:
    DBOS(config=_config(args.url, "setup"))  # type: ignore[arg-type]
    DBOS.launch()
    DBOS.register_queue(
        ROOT_QUEUE, worker_concurrency=args.worker_concurrency, polling_interval_sec=args.polling_interval
    )
    DBOS.register_queue(FANOUT_QUEUE, polling_interval_sec=args.polling_interval)
    DBOS.destroy()
    workflow = {"W1": "bench_chain", "W2": "bench_chain", "W3": "bench_fanout"}[args.workload]
    if args.workload == "W3" and args.w3 == "async":
        workflow = "bench_fanout_async"
    client = DBOSClient(system_database_url=args.url)
    try:
        for i in range(args.count):
            options: EnqueueOptions = {
                "queue_name": ROOT_QUEUE,
                "workflow_name": workflow,
                "workflow_id": f"{args.workload}-{i}",
                "app_version": "bench",
            }
            client.enqueue(options, args.steps)
    finally:
        client.destroy()
    print(f"enqueued {args.count} x {workflow}({args.steps})", flush=True)


def worker(args: argparse.Namespace) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    DBOS(config=_config(args.url, args.executor_id))  # type: ignore[arg-type]
    DBOS.launch()
    readiness.mark_ready()
    stop.wait()
    # Every workflow has finished when the driver stops us: write the counters and leave
    # without DBOS.destroy(), whose thread joins only add to the shutdown time.
    counting.write_counts()
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description="DBOS side of the django_workflows bench")
    sub = parser.add_subparsers(dest="command", required=True)
    p_setup = sub.add_parser("setup")
    p_setup.add_argument("--url", required=True)
    p_setup.add_argument("--workload", choices=("W1", "W2", "W3"), required=True)
    p_setup.add_argument("--count", type=int, required=True)
    p_setup.add_argument("--steps", type=int, required=True)
    p_setup.add_argument("--w3", choices=("queue", "async"), default="queue")
    p_setup.add_argument("--worker-concurrency", type=int, default=None)
    p_setup.add_argument("--polling-interval", type=float, default=1.0)
    p_worker = sub.add_parser("worker")
    p_worker.add_argument("--url", required=True)
    p_worker.add_argument("--executor-id", required=True)
    args = parser.parse_args()
    if args.command == "setup":
        setup(args)
    else:
        worker(args)


if __name__ == "__main__":
    main()
