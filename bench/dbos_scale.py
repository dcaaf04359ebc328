"""DBOS Transact's side of the scale bench (issue 21); ``bench.scale --dbos`` starts it per store.

    python -m bench.dbos_scale --store postgres --sizes 100,10000,100000 --parts idle,throughput,latency

The operations of ``bench.scale_store`` that DBOS has, measured the same way and reported with
the same keys, driving ``bench.dbos_app`` in ``bench/.venv-dbos`` (``bench.dbos_side.ensure_venv``
creates it): a fresh system database (SQLite under ``--run-dir``, or the PostgreSQL database
``BENCH_SCALE_PG_DBOS_DB``, default ``wfscale_dbos``, dropped and created), the queue ``scale``
registered with ``--polling-interval`` (and ``--worker-concurrency`` for the throughput part),
then ``bench.dbos_app worker`` processes.

- **idle**: one DBOS worker; N ``scale_wait`` workflows (``--wait recv``: ``DBOS.recv_async`` of
  the message ``wake`` with a one-hour timeout, the equivalent of ours' timer-or-signal;
  ``--wait sleep``: ``DBOS.sleep_async`` of an hour) are enqueued with ``DBOSClient`` and the
  worker dequeues and runs each until it waits (a DBOS workflow waits in the memory of the
  process that runs it, so they are run through DBOS, not copied in its tables: the time is
  reported). Sizes are cumulative, in the same worker. Then, over the window: the worker's
  statements per second (psycopg's cursors; SQLite: the trace callback), its CPU, the store's
  (PostgreSQL backends of the database, ``/proc/<pid>/stat``), rows read and transactions per
  second (``pg_stat_database``), the ``operation_outputs`` rows written in the window (ours:
  history written), and with ``recv`` a ``wake`` message sent to the newest, which finishes.
- **throughput**: N ``scale_one`` workflows (one no-op step) enqueued with
  ``DBOSClient.enqueue_in_transaction``, 5,000 per transaction (timed: the bulk-creation rate),
  then ``--workers`` workers; the completion rate between the 25 % and 100 % point of
  ``--drain`` completions (a workflow's completion: the later of its ``updated_at`` and its
  step's ``completed_at_epoch_ms``, since SQLite's ``updated_at`` is in whole seconds under
  Python 3.11). A size below ``--drain`` is topped up as it drains.
- **latency**: one idle worker; a client process enqueues one ``scale_one`` after each idle gap
  and waits for its result; latency = the workflow's completion (as above) minus the wall-clock
  time just before the enqueue (DBOS's SQLite ``created_at`` is in whole seconds).

Prints one ``bench.harness`` result line (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import harness, stores
from bench.dbos_side import _Tables, dbos_version, ensure_venv
from bench.scale_store import WAIT_SECONDS, add_driver_arguments, server_rates, server_sample, start_live_workers
from bench.scale_worker import read_live

QUEUE = "scale"
CHUNK = 5000


def db_name() -> str:
    name = os.environ.get("BENCH_SCALE_PG_DBOS_DB", "wfscale_dbos")
    stores._check_name(name)
    return name


class DbosStore:
    """DBOS's system database and worker processes, from the driver's side."""

    def __init__(self, store: str, run_dir: Path, polling: float) -> None:
        self.store = store
        self.run_dir = run_dir
        self.polling = polling
        self.python = str(ensure_venv())
        self.sqlite_path = run_dir / "dbos-scale.sqlite3"
        self.db = db_name() if store == "postgres" else ""
        self.url = stores.pg_url(self.db) if store == "postgres" else f"sqlite:///{self.sqlite_path}"
        self.env = harness.base_env()
        self.tables: _Tables | None = None

    def reset(self, worker_concurrency: int | None = None) -> None:
        self.close()
        if self.store == "sqlite":
            stores.remove_sqlite(self.sqlite_path)
            conn = sqlite3.connect(self.sqlite_path)
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: DBOS's connections inherit it
            conn.close()
        else:
            stores.recreate_database("postgres", self.db)
        command = ["scale-setup", "--polling-interval", str(self.polling)]
        if worker_concurrency:
            command += ["--worker-concurrency", str(worker_concurrency)]
        self.app(command)
        self.tables = _Tables(self.store, self.sqlite_path, self.db)

    def close(self) -> None:
        if self.tables is not None:
            self.tables.close()
            self.tables = None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        assert self.tables is not None
        return self.tables.query(sql, params)

    def app(self, command: list[str], timeout: float = 3600) -> dict[str, Any]:
        """Run a ``bench.dbos_app`` command to its end; its last line of JSON, if any."""
        proc = subprocess.run([self.python, "-m", "bench.dbos_app", command[0], "--url", self.url, *command[1:]],
                              cwd=harness.REPO_ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise harness.RunFailed(f"dbos_app {command[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        return result

    def app_background(self, command: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.run_dir / f"{command[0]}.log", "wb")  # noqa: SIM115 - the child keeps its own descriptor
        with log:
            return subprocess.Popen([self.python, "-m", "bench.dbos_app", command[0], "--url", self.url, *command[1:]],
                                    cwd=harness.REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def enqueue(self, workflow: str, prefix: str, first: int, count: int, wf_args: list[Any]) -> float:
        """Enqueue ``count`` workflows in batches; seconds taken (measured in the client)."""
        done = self.app(["enqueue", "--workflow", workflow, "--prefix", prefix, "--first", str(first),
                         "--count", str(count), "--chunk", str(CHUNK), "--args", json.dumps(wf_args)])
        return float(done["seconds"])

    def start_workers(self, count: int = 1, live: bool = False) -> list[harness.WorkerProcess]:
        commands = [[self.python, "-m", "bench.dbos_app", "worker", "--url", self.url, "--executor-id", f"scale-{i}"]
                    for i in range(count)]
        return start_live_workers(commands, self.env, self.run_dir, live)

    def stop(self, workers: list[harness.WorkerProcess]) -> None:
        try:
            harness.stop_workers(workers)
        finally:
            harness.kill_workers(workers)

    def live(self, index: int = 0) -> dict[str, Any]:
        return read_live(str(self.run_dir / f"live-{index}.json"))

    def count(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return int(self.query(sql, params)[0][0] or 0)

    def completion_times(self, prefix: str) -> list[float]:
        """Completion times (s) of the successful workflows whose id starts with ``prefix``, sorted."""
        rows = self.query(
            "SELECT ws.updated_at, MAX(oo.completed_at_epoch_ms) FROM {p}workflow_status ws"
            " LEFT JOIN {p}operation_outputs oo ON oo.workflow_uuid = ws.workflow_uuid"
            " WHERE ws.status = 'SUCCESS' AND ws.workflow_uuid LIKE ? GROUP BY ws.workflow_uuid, ws.updated_at",
            (prefix + "%",),
        )
        return sorted(max(updated, last_op or 0) / 1000 for updated, last_op in rows)


def wait_id(index: int) -> str:
    return f"scale-wait-{index}"


def _waiting(st: DbosStore) -> int:
    """Workflows that sit in their wait: the durable sleep (or recv's timeout) is recorded."""
    return st.count("SELECT count(DISTINCT workflow_uuid) FROM {p}operation_outputs WHERE function_name = 'DBOS.sleep'")


def idle(st: DbosStore, sizes: list[int], warmup: float, window: float, kind: str) -> list[dict[str, Any]]:
    st.reset()
    workers = st.start_workers(live=True)
    results = []
    have = 0
    try:
        for size in sorted(sizes):
            started = time.perf_counter()
            enqueue_s = st.enqueue("scale_wait", "scale-wait-", have, size - have, [kind, WAIT_SECONDS])
            deadline = time.monotonic() + max(300.0, (size - have) / 20)
            while _waiting(st) < size:
                if workers[0].proc.poll() is not None:
                    raise harness.RunFailed(f"DBOS worker exited:\n{workers[0].log_tail()}")
                if time.monotonic() > deadline:
                    raise harness.RunFailed(f"only {_waiting(st)} of {size} DBOS workflows reached their wait")
                time.sleep(0.5)
            populate = {"enqueue_s": enqueue_s, "run_to_wait_s": time.perf_counter() - started}
            have = size
            outputs_before = st.count("SELECT count(*) FROM {p}operation_outputs")
            time.sleep(warmup)
            w0, s0 = st.live(), server_sample(st.store, st.db)
            time.sleep(window)
            w1, s1 = st.live(), server_sample(st.store, st.db)
            seconds = w1["time"] - w0["time"]
            row: dict[str, Any] = {
                "size": size,
                "wait": kind,
                "window_s": seconds,
                "statements_per_s": (w1["counts"].get("statements", 0) - w0["counts"].get("statements", 0)) / seconds,
                "worker_cpu_pct": 100 * (w1["cpu_s"] - w0["cpu_s"]) / seconds,
                "worker_rss_mb": workers[0].peak_rss_mb(),
                **populate,
                **server_rates(st.store, s0, s1),
                # Operations recorded after the workflows had all reached their wait (ours: history).
                "history_written": st.count("SELECT count(*) FROM {p}operation_outputs") - outputs_before,
            }
            if kind == "recv":
                woke = st.app(["wake", "--workflow-id", wait_id(size - 1)], timeout=180)
                row["woken_result"], row["wake_s"] = woke["result"], woke["seconds"]
            results.append(row)
    finally:
        st.stop(workers)
        st.close()
    return results


def throughput(st: DbosStore, sizes: list[int], workers: int, drain: int, concurrency: int | None) -> list[dict[str, Any]]:
    results = []
    for size in sizes:
        st.reset(worker_concurrency=concurrency)
        created_s = st.enqueue("scale_one", "scale-one-", 0, size, [])
        wanted = drain
        feeder = None
        procs = st.start_workers(workers)
        try:
            if size < wanted:
                # Keep ``size`` unfinished as they drain, as ours does.
                feeder = st.app_background(["enqueue", "--workflow", "scale_one", "--prefix", "scale-one-",
                                            "--first", str(size), "--count", "0", "--keep", str(size),
                                            "--total", str(wanted)])
            deadline = time.monotonic() + max(300.0, wanted / 5)
            done_sql = "SELECT count(*) FROM {p}workflow_status WHERE queue_name = ? AND status = 'SUCCESS'"
            while (count := st.count(done_sql, (QUEUE,))) < wanted:
                if time.monotonic() > deadline:
                    raise harness.RunFailed(f"DBOS: only {count} of {wanted} completed")
                for w in procs:
                    if w.proc.poll() is not None:
                        raise harness.RunFailed(f"DBOS worker exited:\n{w.log_tail()}")
                time.sleep(0.2)
        finally:
            if feeder is not None:
                feeder.terminate()
                feeder.wait(30)
            st.stop(procs)
        times = st.completion_times("scale-one-")
        first = max(1, wanted // 4)
        rate = (wanted - first) / (times[wanted - 1] - times[first - 1])
        results.append({
            "size": size,
            "created_per_s": size / created_s,
            "completed_measured": wanted,
            "topped_up": size < wanted,
            "completed_per_s": rate,
            "workers": workers,
            "worker_concurrency": concurrency,
        })
    st.close()
    return results


def latency(st: DbosStore, runs: int, gap: str) -> dict[str, Any]:
    st.reset()
    workers = st.start_workers()
    try:
        time.sleep(2.0)
        done = st.app(["latency", "--runs", str(runs), "--gap", gap])
    finally:
        st.stop(workers)
    ends = dict(zip(*_ends(st), strict=True))
    st.close()
    stored = [ends[r["id"]] - r["started"] for r in done["runs"]]
    waited = [r["waited_s"] for r in done["runs"]]
    return {
        "runs": runs,
        "gap_s": [float(v) for v in gap.split(",")],
        "p50_ms": 1000 * harness.percentile(stored, 50),
        "p95_ms": 1000 * harness.percentile(stored, 95),
        "client_p50_ms": 1000 * harness.percentile(waited, 50),
        "client_p95_ms": 1000 * harness.percentile(waited, 95),
    }


def _ends(st: DbosStore) -> tuple[list[str], list[float]]:
    rows = st.query(
        "SELECT ws.workflow_uuid, ws.updated_at, MAX(oo.completed_at_epoch_ms) FROM {p}workflow_status ws"
        " LEFT JOIN {p}operation_outputs oo ON oo.workflow_uuid = ws.workflow_uuid"
        " WHERE ws.status = 'SUCCESS' AND ws.workflow_uuid LIKE ? GROUP BY ws.workflow_uuid, ws.updated_at",
        ("scale-lat-%",),
    )
    return [r[0] for r in rows], [max(r[1], r[2] or 0) / 1000 for r in rows]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=stores.DBOS_STORES, required=True)
    add_driver_arguments(parser)
    parser.add_argument("--idle-sizes", default="", help="sizes of the idle part (default: --sizes)")
    parser.add_argument("--wait", choices=("recv", "sleep"), default="recv", help="how the idle part's workflows wait")
    parser.add_argument("--polling-interval", type=float, default=0.1, help="the queue's polling_interval_sec")
    parser.add_argument("--worker-concurrency", type=int, default=100,
                        help="worker_concurrency of the throughput part's queue (0: no limit)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_dir: Path = (args.run_dir / f"dbos-{args.store}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    st = DbosStore(args.store, run_dir, args.polling_interval)
    parts = args.parts.split(",")
    result: dict[str, Any] = {
        "store": args.store, "engine": "dbos", "dbos_version": dbos_version(),
        "polling_interval": args.polling_interval, "load_before": harness.machine_load(),
    }
    if "idle" in parts:
        isizes = [int(s) for s in (args.idle_sizes or args.sizes).split(",") if s]
        result["idle"] = idle(st, isizes, args.warmup, args.window, args.wait)
    if "throughput" in parts:
        tsizes = [int(s) for s in (args.throughput_sizes or args.sizes).split(",") if s]
        result["throughput"] = throughput(st, tsizes, args.workers, args.drain, args.worker_concurrency or None)
    if "latency" in parts:
        result["latency"] = latency(st, args.latency_runs, args.latency_gap)
    result["load_after"] = harness.machine_load()
    if args.store == "postgres":
        stores.drop_database("postgres", st.db)
    harness.emit(result)


if __name__ == "__main__":
    main()
