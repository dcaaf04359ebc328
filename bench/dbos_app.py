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

The scale bench (``bench.dbos_scale``, issue 21) uses ``scale_wait`` (an ``async`` workflow
waiting for the message ``wake`` with a one-hour timeout, or sleeping an hour: the equivalent of
ours' ``scale_wait``) and ``scale_one`` (one no-op step), on the queue ``scale``, with the
commands ``scale-setup``, ``enqueue`` (``DBOSClient.enqueue_in_transaction``, a chunk of
workflows per transaction: DBOS's batched way), ``wake`` and ``latency``; a ``worker`` with
``BENCH_SCALE_LIVE_FILE`` set publishes its live counters as ``bench.scale_worker`` does.

"Started up front" means: ``setup`` migrates the system database, registers the queues and
enqueues every root workflow on the queue ``bench`` with ``DBOSClient``; then the driver starts
the ``worker`` processes, which ``DBOS.launch()`` and dequeue. Like ours, workers get the same
SQLite settings as ours (WAL, ``synchronous=NORMAL``), and the bench's counters
(``bench.counting``) when ``BENCH_COUNT_FILE`` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import threading
import time
from typing import Any

from dbos import DBOS, DBOSClient, EnqueueOptions
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench import counting, readiness, scale_worker

APP_NAME = "wfbench"
ROOT_QUEUE = "bench"
FANOUT_QUEUE = "bench_fanout"
SCALE_QUEUE = "scale"


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


@DBOS.workflow(name="scale_wait")
async def scale_wait(kind: str, seconds: float) -> str:
    """Wait for the message ``wake`` (or ``seconds``, DBOS's durable timeout), or sleep."""
    if kind == "sleep":
        await DBOS.sleep_async(seconds)
        return "timer"
    message = await DBOS.recv_async("wake", timeout_seconds=seconds)
    return "timer" if message is None else str(message)


@DBOS.workflow(name="scale_one")
def scale_one() -> int:
    return noop(0)


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


def scale_setup(args: argparse.Namespace) -> None:
    """Migrate the system database and register the scale bench's queue."""
    DBOS(config=_config(args.url, "setup"))  # type: ignore[arg-type]
    DBOS.launch()
    DBOS.register_queue(
        SCALE_QUEUE, worker_concurrency=args.worker_concurrency, polling_interval_sec=args.polling_interval
    )
    DBOS.destroy()


def _sqlalchemy_url(url: str) -> str:
    # DBOS runs PostgreSQL through psycopg 3; SQLAlchemy's default for postgresql:// is psycopg2.
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _enqueue_batch(client: DBOSClient, engine: Any, workflow: str, ids: list[str], wf_args: list[Any]) -> None:
    with engine.begin() as conn:
        for workflow_id in ids:
            options: EnqueueOptions = {
                "queue_name": SCALE_QUEUE,
                "workflow_name": workflow,
                "workflow_id": workflow_id,
                "app_version": "bench",
            }
            client.enqueue_in_transaction(conn, options, *wf_args)


def enqueue(args: argparse.Namespace) -> None:
    """Enqueue ``--count`` workflows in transactions of ``--chunk`` (timed); with ``--keep``,
    then keep topping up so that ``--keep`` stay unfinished until ``--total`` were enqueued."""
    import sqlalchemy as sa

    wf_args = json.loads(args.args)
    client = DBOSClient(system_database_url=args.url)
    engine = sa.create_engine(_sqlalchemy_url(args.url))
    ids = [f"{args.prefix}{i}" for i in range(args.first, args.first + args.count)]
    try:
        started = time.perf_counter()
        for offset in range(0, len(ids), args.chunk):
            _enqueue_batch(client, engine, args.workflow, ids[offset:offset + args.chunk], wf_args)
        print(json.dumps({"enqueued": len(ids), "seconds": time.perf_counter() - started}), flush=True)
        created = args.first + args.count
        prefix = "dbos." if engine.dialect.name == "postgresql" else ""
        count_done = sa.text(
            f"SELECT count(*) FROM {prefix}workflow_status WHERE queue_name = :q AND status = 'SUCCESS'"
        )
        while args.keep and created < args.total:
            with engine.connect() as conn:
                done = int(conn.execute(count_done, {"q": SCALE_QUEUE}).scalar() or 0)
            more = min(args.total, done + args.keep) - created
            if more > 0:
                _enqueue_batch(client, engine, args.workflow,
                               [f"{args.prefix}{i}" for i in range(created, created + more)], wf_args)
                created += more
            time.sleep(0.05)
    finally:
        engine.dispose()
        client.destroy()


def wake(args: argparse.Namespace) -> None:
    """Send ``wake`` to one waiting workflow and wait for its result."""
    client = DBOSClient(system_database_url=args.url)
    try:
        started = time.perf_counter()
        client.send(args.workflow_id, "signal", "wake")
        result = client.retrieve_workflow(args.workflow_id).get_result()
        print(json.dumps({"result": result, "seconds": time.perf_counter() - started}), flush=True)
    finally:
        client.destroy()


def latency(args: argparse.Namespace) -> None:
    """``--runs`` times, after an idle gap, enqueue one ``scale_one`` and wait for its result;
    prints each run's id, the wall-clock time before the enqueue and what the client waited."""
    client = DBOSClient(system_database_url=args.url)
    low, high = (float(v) for v in args.gap.split(","))
    rng = random.Random(21)
    runs = []
    try:
        for i in range(args.runs):
            time.sleep(rng.uniform(low, high))
            started_wall, started = time.time(), time.perf_counter()
            options: EnqueueOptions = {"queue_name": SCALE_QUEUE, "workflow_name": "scale_one",
                                       "workflow_id": f"scale-lat-{i}", "app_version": "bench"}
            client.enqueue(options).get_result()
            runs.append({"id": f"scale-lat-{i}", "started": started_wall, "waited_s": time.perf_counter() - started})
    finally:
        client.destroy()
    print(json.dumps({"runs": runs}), flush=True)


def worker(args: argparse.Namespace) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    live_file = os.environ.get(scale_worker.LIVE_FILE_ENV)
    if live_file:
        # The scale bench's live counters: statements on psycopg's cursors (SQLite: the trace
        # callback installed in _on_connect), CPU time, published while the worker runs.
        scale_worker.count_driver_cursors()
        threading.Thread(target=scale_worker.publish, args=(live_file,), name="scale-live-counters", daemon=True).start()
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
    p_scale = sub.add_parser("scale-setup")
    p_scale.add_argument("--url", required=True)
    p_scale.add_argument("--worker-concurrency", type=int, default=None)
    p_scale.add_argument("--polling-interval", type=float, default=1.0)
    p_enqueue = sub.add_parser("enqueue")
    p_enqueue.add_argument("--url", required=True)
    p_enqueue.add_argument("--workflow", required=True)
    p_enqueue.add_argument("--prefix", required=True)
    p_enqueue.add_argument("--first", type=int, default=0)
    p_enqueue.add_argument("--count", type=int, required=True)
    p_enqueue.add_argument("--chunk", type=int, default=5000)
    p_enqueue.add_argument("--args", default="[]", help="the workflow's arguments, a JSON list")
    p_enqueue.add_argument("--keep", type=int, default=0)
    p_enqueue.add_argument("--total", type=int, default=0)
    p_wake = sub.add_parser("wake")
    p_wake.add_argument("--url", required=True)
    p_wake.add_argument("--workflow-id", required=True)
    p_latency = sub.add_parser("latency")
    p_latency.add_argument("--url", required=True)
    p_latency.add_argument("--runs", type=int, required=True)
    p_latency.add_argument("--gap", default="0.5,1.5")
    args = parser.parse_args()
    commands = {"setup": setup, "worker": worker, "scale-setup": scale_setup, "enqueue": enqueue,
                "wake": wake, "latency": latency}
    commands[args.command](args)


if __name__ == "__main__":
    main()
