"""One store's part of the scale bench (issue 21); ``bench.scale`` starts it once per store.

    python -m bench.scale_store --store postgres --sizes 100,10000,100000 --parts idle,throughput,latency

Three measurements, each on a freshly created database, with ``bench.scale_worker`` processes
(``runworkflows`` with live counters):

- **idle**: N instances of ``scale_wait`` (a one-hour timer or the signal ``wake``, whichever
  comes first) wait while one idle worker runs; for each size, cumulatively (100, then 10,000,
  then 100,000 in the same database), the worker's statements per second, its CPU and the
  store's CPU over a window, the look-up's plan and time (``EXPLAIN``), and a check that the
  instances really wait: the worker wrote no history in the window, and a signal to the newest
  instance wakes it and it finishes. The first ``TEMPLATES`` instances are run by a worker
  until they sit on their timer; on the ORM stores the rest are copies of the first, row by row
  (the instance, its payloads, history and pending timer, with new ids), written with
  ``bulk_create`` because running 100,000 first tasks would take longer than the bench; on
  Redis every instance is run to its timer by the worker.
- **throughput**: N ready ``scale_one`` instances (one no-op activity) created through
  ``Client.create_workflow_instances`` (timed: the bulk-creation rate), then ``--workers``
  workers start; the completion rate is taken between the 25 % and the 100 % point of the
  first ``--drain`` completions (the ORM stores' ``completed_at``; Redis: the count the driver
  samples). A size below ``--drain`` is topped up as it drains (the driver creates more so
  that N stay ready or running), so every size is timed over the same completions.
- **latency**: one idle worker; ``--latency-runs`` times, after an idle gap, create one
  ``scale_one`` and wait for its result; the latency is the store's completion time minus the
  creation time (what the client waited is reported too).

Prints one ``bench.harness`` result line (JSON) for ``bench.scale`` to collect.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench import harness, stores
from bench.scale_worker import LIVE_FILE_ENV, read_live

TEMPLATES = 100
WAIT_SECONDS = 3600.0
CREATE_CHUNK = 5000
CLONE_CHUNK = 2000


def db_name(store: str) -> str:
    if store == "mysql":
        return os.environ.get("BENCH_SCALE_MYSQL_DB", "wfscale")
    return os.environ.get("BENCH_SCALE_PG_DB", "wfscale")


def environment(store: str, run_dir: Path) -> dict[str, str]:
    from bench.ours import _environment

    env = _environment(store, run_dir)
    env.update(
        BENCH_SQLITE_PATH=str(run_dir / "scale.sqlite3"),
        # All three names: the settings read BENCH_PG_DB / BENCH_MYSQL_DB before BENCH_DB_NAME, and
        # a caller's own BENCH_PG_DB (for bench.run) must not point the workers elsewhere.
        BENCH_DB_NAME=db_name(store),
        BENCH_PG_DB=db_name("postgres"),
        BENCH_MYSQL_DB=db_name("mysql"),
        BENCH_REDIS_URL=os.environ.get("BENCH_SCALE_REDIS_URL", "redis://127.0.0.1:6379/14"),
    )
    return env


class Store:
    """The store under test, from the driver's side: reset, workers, counters."""

    def __init__(self, store: str, run_dir: Path, worker_args: list[str]) -> None:
        self.store = store
        self.run_dir = run_dir
        self.env = environment(store, run_dir)
        self.db = db_name(store)
        self.worker_args = worker_args
        self.orm = store != "redis"

    def reset(self) -> None:
        from django.core.management import call_command
        from django.db import connections

        connections.close_all()
        stores.remove_sqlite(self.run_dir / "scale.sqlite3")
        stores.remove_sqlite(self.run_dir / "redis-run-django.sqlite3")
        if self.store in ("mysql", "postgres"):
            stores.recreate_database(self.store, self.db)
        elif self.store == "redis":
            stores.flush_redis()
        call_command("migrate", verbosity=0, interactive=False)

    def start_workers(self, count: int = 1, live: bool = False, extra: list[str] | None = None) -> list[harness.WorkerProcess]:
        from django.db import connections

        connections.close_all()  # no connection (nor SQLite lock) held while workers run
        command = [sys.executable, "-m", "bench.scale_worker", *self.worker_args, *(extra or [])]
        return start_live_workers([command] * count, self.env, self.run_dir, live)

    def stop(self, workers: list[harness.WorkerProcess]) -> None:
        try:
            codes = harness.stop_workers(workers)
        finally:
            harness.kill_workers(workers)
        if any(codes):
            raise harness.RunFailed(f"workers exited with {codes}:\n" + "\n".join(w.log_tail() for w in workers))

    def live(self, index: int = 0) -> dict[str, Any]:
        return read_live(str(self.run_dir / f"live-{index}.json"))

    def server_sample(self) -> dict[str, Any]:
        return server_sample(self.store, self.db)


def start_live_workers(commands: list[list[str]], env: dict[str, str], run_dir: Path,
                       live: bool) -> list[harness.WorkerProcess]:
    """Start one worker per command (either engine's; worker ``i`` logs to ``run_dir/w<i>``) and
    wait until each is ready and, with ``live``, has published its first live counters."""
    workers = []
    for index, command in enumerate(commands):
        worker_env = dict(env)
        if live:
            worker_env[LIVE_FILE_ENV] = str(run_dir / f"live-{index}.json")
            Path(worker_env[LIVE_FILE_ENV]).unlink(missing_ok=True)
        sub = run_dir / f"w{index}"
        sub.mkdir(exist_ok=True)
        workers.extend(harness.start_workers([command], worker_env, sub))
    deadline = time.monotonic() + 120
    while any(w.ready_time() is None for w in workers) or (
        live and not all((run_dir / f"live-{i}.json").exists() for i in range(len(commands)))
    ):
        for w in workers:
            if w.proc.poll() is not None:
                raise harness.RunFailed(f"worker exited with {w.proc.returncode}:\n{w.log_tail()}")
        if time.monotonic() > deadline:
            harness.kill_workers(workers)
            raise harness.RunFailed("workers did not become ready within 120 s")
        time.sleep(0.05)
    return workers


# -- the store's side of the idle window (either engine's) ---------------------------------------


def server_sample(store: str, db: str) -> dict[str, Any]:
    """CPU seconds of the store's processes, and its statement counters, now (``db``: the
    PostgreSQL database whose backends and counters are read)."""
    sample: dict[str, Any] = {"time": time.time()}
    if store == "postgres":
        with stores.pg_connection() as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            pids = [row[0] for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (db,)
            )]
            row = conn.execute(
                "SELECT xact_commit + xact_rollback, tup_returned, tup_fetched FROM pg_stat_database WHERE datname = %s",
                (db,),
            ).fetchone()
        with stores.pg_connection(db) as conn:
            # Rows read per table by sequential scans, and per index: where the reads go.
            reads = {f"seq {t}": int(n) for t, n in conn.execute(
                "SELECT relname, seq_tup_read FROM pg_stat_user_tables"
            )}
            reads.update({f"idx {i}": int(n) for i, n in conn.execute(
                "SELECT indexrelname, idx_tup_read FROM pg_stat_user_indexes"
            )})
        sample["pg_reads"] = reads
        sample["cpu_by_pid"] = {pid: _proc_cpu(pid) for pid in pids}
        sample["pg_xacts"], sample["pg_tup_returned"], sample["pg_tup_fetched"] = (int(v) for v in row)
    elif store == "mysql":
        counters = stores.read_server_counters("mysql")
        with stores.mysql_connection() as conn:
            cur = conn.cursor()
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_select', 'Rows_read')")
            counters.update({f"mysql_{k}": int(v) for k, v in cur.fetchall()})
        sample["mysql_questions"] = counters["mysql_Questions"]
        sample["mysql_com_select"] = counters["mysql_Com_select"]
        sample["mysql_rows_read"] = counters["mysql_Rows_read"]
        sample["cpu_by_pid"] = {pid: _proc_cpu(pid) for pid in _pids_named(("mariadbd", "mysqld"))}
    elif store == "redis":
        client = stores.redis_client()
        try:
            cpu = client.info("cpu")
            calls = client.info("commandstats")
        finally:
            client.close()
        sample["redis_cpu_s"] = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
        sample["redis_calls"] = sum(int(v["calls"]) for v in calls.values())
    return sample


def server_rates(store: str, s0: dict[str, Any], s1: dict[str, Any]) -> dict[str, Any]:
    """The store's CPU % and per-second counters between two ``server_sample`` calls."""
    seconds = s1["time"] - s0["time"]
    row: dict[str, Any] = {}
    if "cpu_by_pid" in s0:
        row["store_cpu_pct"] = 100 * _cpu_delta(s0["cpu_by_pid"], s1["cpu_by_pid"]) / seconds
    if store == "postgres":
        row["pg_xacts_per_s"] = (s1["pg_xacts"] - s0["pg_xacts"]) / seconds
        reads = {k: (v - s0["pg_reads"].get(k, 0)) / seconds for k, v in s1["pg_reads"].items()}
        row["pg_reads_per_s"] = {k: round(v, 1) for k, v in sorted(reads.items(), key=lambda kv: -kv[1]) if v}
        row["pg_rows_read_per_s"] = (
            s1["pg_tup_returned"] + s1["pg_tup_fetched"] - s0["pg_tup_returned"] - s0["pg_tup_fetched"]
        ) / seconds
    elif store == "mysql":
        row["mysql_com_select_per_s"] = (s1["mysql_com_select"] - s0["mysql_com_select"]) / seconds
        row["mysql_rows_read_per_s"] = (s1["mysql_rows_read"] - s0["mysql_rows_read"]) / seconds
    elif store == "redis":
        row["store_cpu_pct"] = 100 * (s1["redis_cpu_s"] - s0["redis_cpu_s"]) / seconds
        row["redis_calls_per_s"] = (s1["redis_calls"] - s0["redis_calls"]) / seconds
    return row


def _proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids_named(names: tuple[str, ...]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the processes present at both samples used in between."""
    return sum(after[pid] - before[pid] for pid in before if pid in after and after[pid] == after[pid])


# -- populating waiting instances ---------------------------------------------------------------


def _client() -> Any:
    from django_workflows.client import Client

    return Client()


def create_instances(client: Any, workflow: str, ids: list[str], *args: Any) -> float:
    """Create the instances ``ids`` through ``create_workflow_instances`` in chunks; seconds taken."""
    from django_workflows.client import WorkflowInstanceOptions

    started = time.perf_counter()
    for offset in range(0, len(ids), CREATE_CHUNK):
        chunk = ids[offset:offset + CREATE_CHUNK]
        client.create_workflow_instances(
            [client.prepare_workflow_instance(WorkflowInstanceOptions(instance_id=i), workflow, *args) for i in chunk]
        )
    return time.perf_counter() - started


def wait_id(index: int) -> str:
    return f"scale-wait-{index}"


def _orm_waiting(ids: list[str]) -> int:
    """How many of ``ids`` sit on their timer: started, a timer pending, nothing ready."""
    from django.db.models import Q

    from django_workflows.models import PendingEvent, WorkflowInstance

    rows = WorkflowInstance.objects.filter(instance_id__in=ids, state=0, last_sequence_id__gt=0)
    ready = PendingEvent.objects.filter(instance__instance_id__in=ids).filter(Q(visible_at__isnull=True))
    timers = PendingEvent.objects.filter(instance__instance_id__in=ids, event_type="TimerFired").count()
    if ready.exists():
        return 0
    return min(rows.count(), timers)


def run_to_timers(st: Store, client: Any, ids: list[str]) -> float:
    """Create ``ids`` and let a worker run each to its timer; seconds taken."""
    started = time.perf_counter()
    create_instances(client, "scale_wait", ids, WAIT_SECONDS)
    workers = st.start_workers()
    try:
        deadline = time.monotonic() + max(120.0, len(ids) / 20)
        while True:
            waiting = _orm_waiting(ids) if st.orm else _redis_waiting(client, ids)
            if waiting >= len(ids):
                break
            if time.monotonic() > deadline:
                raise harness.RunFailed(f"only {waiting} of {len(ids)} instances reached their timer")
            time.sleep(0.5)
    finally:
        from django.db import connections

        connections.close_all()
        st.stop(workers)
    return time.perf_counter() - started


def _redis_waiting(client: Any, ids: list[str]) -> int:
    """Redis: instances whose history holds the scheduled timer (sampled at the ends of ``ids``)."""
    sample = ids[:5] + ids[-5:] if len(ids) > 10 else ids
    for instance_id in sample:
        history = client.backend.get_workflow_instance_history(client.backend.get_latest_execution(instance_id))
        if not any(e.type.value == "TimerScheduled" for e in history):
            return 0
    stats = client.backend.get_stats()
    if sum(stats.pending_workflow_tasks.values()):
        return 0
    return len(ids)


def clone_waiting(template_id: str, first: int, last: int) -> float:
    """Copy the waiting instance ``template_id`` as ``wait_id(first)`` .. ``wait_id(last - 1)``:
    its execution row, payloads, history and pending timer, with new instance, execution and
    payload ids; seconds taken."""
    from django.db import transaction

    from django_workflows.engine.core import new_execution_id
    from django_workflows.models import HistoryEvent, Payload, PendingEvent, WorkflowInstance

    started = time.perf_counter()
    template = WorkflowInstance.objects.get(instance_id=template_id)
    fields = {k: v for k, v in WorkflowInstance.objects.filter(pk=template.pk).values()[0].items() if k != "id"}
    fields.update(locked_until=None, lease_token="", worker="", sticky_until=None)
    payloads = list(Payload.objects.filter(instance_id=template.pk).values())
    history = list(HistoryEvent.objects.filter(instance_id=template.pk).values())
    pending = list(PendingEvent.objects.filter(instance_id=template.pk).values())
    for offset in range(first, last, CLONE_CHUNK):
        indexes = range(offset, min(offset + CLONE_CHUNK, last))
        with transaction.atomic():
            rows = WorkflowInstance.objects.bulk_create(
                [WorkflowInstance(**{**fields, "instance_id": wait_id(i), "active_instance_id": wait_id(i),
                                     "execution_id": new_execution_id()}) for i in indexes]
            )
            new_payloads, new_history, new_pending = [], [], []
            for row in rows:
                ids = {p["id"]: uuid.uuid4().hex for p in payloads}
                new_payloads += [Payload(**{**p, "id": ids[p["id"]], "instance_id": row.pk}) for p in payloads]
                new_history += [
                    HistoryEvent(**{**h, "id": None, "instance_id": row.pk, "payload_id": ids[h["payload_id"]]})
                    for h in history
                ]
                new_pending += [
                    PendingEvent(**{**p, "id": None, "instance_id": row.pk, "payload_id": ids[p["payload_id"]]})
                    for p in pending
                ]
            Payload.objects.bulk_create(new_payloads, batch_size=1000)
            HistoryEvent.objects.bulk_create(new_history, batch_size=1000)
            PendingEvent.objects.bulk_create(new_pending, batch_size=1000)
    return time.perf_counter() - started


# -- EXPLAIN of the idle look-up and the claim ---------------------------------------------------


def explain(store: str) -> dict[str, Any]:
    """The plans of the claim's look-up (``find_candidates``) and lock (``claim_candidates``),
    and the look-up's execution time where the database reports it."""
    from django.db import connection

    from django_workflows.backends import workflow_backends
    from django_workflows.backends.orm.sql import HotSql

    sql: HotSql = workflow_backends["default"].store.sql
    look, look_params = sql._statement("find_candidates_1", HotSql.find_candidates_template(1)).render(
        {"queue_0": "default", "worker": "scale-bench", "limit": 8}
    )
    claim_template = HotSql._CLAIM_CANDIDATES.replace("{skip_locked}", "").replace("{order}", "")
    claim, claim_params = sql._statement("scale_claim", claim_template).render(
        {"row_ids": [1, 2, 3], "worker": "scale-bench", "limit": 2}
    )
    result: dict[str, Any] = {}
    with connection.cursor() as cursor:
        raw = cursor.connection.cursor()
        if store == "postgres":
            raw.execute("EXPLAIN (ANALYZE, BUFFERS) " + look, look_params)
            result["lookup_plan"] = [r[0] for r in raw.fetchall()]
            raw.execute("EXPLAIN " + claim, claim_params)
            result["claim_plan"] = [r[0] for r in raw.fetchall()]
            times = [line for line in result["lookup_plan"] if line.startswith("Execution Time")]
            result["lookup_ms"] = float(times[0].split()[2]) if times else None
        elif store == "sqlite":
            raw.execute("EXPLAIN QUERY PLAN " + look, look_params)
            result["lookup_plan"] = [r[-1] for r in raw.fetchall()]
            raw.execute("EXPLAIN QUERY PLAN " + claim, claim_params)
            result["claim_plan"] = [r[-1] for r in raw.fetchall()]
        elif store == "mysql":
            raw.execute("EXPLAIN " + look, look_params)
            result["lookup_plan"] = [" ".join(str(c) for c in r) for r in raw.fetchall()]
        else:
            return result
        # The look-up, timed from here (median of 20 runs).
        runs = []
        for _ in range(20):
            t = time.perf_counter()
            raw.execute(look, look_params)
            raw.fetchall()
            runs.append((time.perf_counter() - t) * 1000)
        result["lookup_client_ms"] = harness.percentile(runs, 50)
        raw.close()
    return result


# -- the three measurements ---------------------------------------------------------------------


def idle(st: Store, sizes: list[int], warmup: float, window: float, templates: int = TEMPLATES) -> list[dict[str, Any]]:
    from django.db import connections

    from django_workflows.models import HistoryEvent

    client = _client()
    results = []
    have = 0
    for size in sorted(sizes):
        populate: dict[str, float] = {}
        if have < size:
            run = list(range(have, min(size, templates))) if st.orm else list(range(have, size))
            if run:
                populate["run_to_timer_s"] = run_to_timers(st, client, [wait_id(i) for i in run])
            first = max(have, templates) if st.orm else size
            if first < size:
                populate["clone_s"] = clone_waiting(wait_id(0), first, size)
            have = size
        plan = explain(st.store) if st.orm else {}
        history_before = HistoryEvent.objects.count() if st.orm else None
        connections.close_all()
        workers = st.start_workers(live=True)
        try:
            time.sleep(warmup)
            w0, s0 = st.live(), st.server_sample()
            time.sleep(window)
            w1, s1 = st.live(), st.server_sample()
            seconds = w1["time"] - w0["time"]
            row: dict[str, Any] = {
                "size": size,
                "window_s": seconds,
                "statements_per_s": (w1["counts"].get("statements", 0) - w0["counts"].get("statements", 0)) / seconds,
                "worker_cpu_pct": 100 * (w1["cpu_s"] - w0["cpu_s"]) / seconds,
                **populate,
                **plan,
            }
            if st.store == "redis":
                row["round_trips_per_s"] = (
                    w1["counts"].get("redis_round_trips", 0) - w0["counts"].get("redis_round_trips", 0)
                ) / seconds
                row["statements_per_s"] = row["round_trips_per_s"]
            row.update(server_rates(st.store, s0, s1))
            # They really wait: the worker wrote nothing in the window, and a signal wakes one.
            if st.orm:
                row["history_written"] = HistoryEvent.objects.count() - (history_before or 0)
            woken = wait_id(size - 1)
            t = time.perf_counter()
            client.signal_workflow(woken, "wake")
            row["woken_result"] = client.get_workflow_result(woken, timeout=120)
            row["wake_s"] = time.perf_counter() - t
            connections.close_all()
        finally:
            st.stop(workers)
        results.append(row)
    return results


def throughput(st: Store, sizes: list[int], workers: int, drain: int) -> list[dict[str, Any]]:
    from django.db import connections

    client = _client()
    results = []
    for size in sizes:
        st.reset()
        client = _client()
        ids = [f"scale-one-{i}" for i in range(size)]
        created_s = create_instances(client, "scale_one", ids)
        created = size
        # A backlog smaller than the completions timed is topped up as it drains, so that every
        # size is timed over the same number of completions with ``size`` instances ready.
        wanted = drain
        connections.close_all()
        procs = st.start_workers(workers)
        samples: list[tuple[float, int]] = []
        try:
            done = _completed_count(st, client, size)
            deadline = time.monotonic() + max(300.0, wanted / 5)
            while True:
                count = done()
                samples.append((time.time(), count))
                if count >= wanted:
                    break
                if created < wanted and created - count < size:
                    more = [f"scale-one-{i}" for i in range(created, min(wanted, count + size))]
                    create_instances(client, "scale_one", more)
                    created += len(more)
                if time.monotonic() > deadline:
                    raise harness.RunFailed(f"only {count} of {wanted} completed")
                for w in procs:
                    if w.proc.poll() is not None:
                        raise harness.RunFailed(f"worker exited:\n{w.log_tail()}")
                time.sleep(0.05 if created < wanted else 0.2)
            connections.close_all()
        finally:
            st.stop(procs)
        # From a quarter of the way: the workers have filled their pipelines by then.
        first = max(1, wanted // 4)
        if st.orm:
            times = _completion_times(wanted)
            rate = (wanted - first) / (times[wanted - 1] - times[first - 1])
        else:
            rate = _rate_from_samples(samples, first, wanted)
        results.append({
            "size": size,
            "created_per_s": size / created_s,
            "completed_measured": wanted,
            "topped_up": created > size,
            "completed_per_s": rate,
            "workers": workers,
        })
    return results


def _completed_count(st: Store, client: Any, size: int) -> Any:
    if st.orm:
        from django_workflows.models import WorkflowInstance

        finished = WorkflowInstance.objects.filter(completed_at__isnull=False)
        return finished.count
    return lambda: size - client.backend.get_stats().active_workflow_instances


def _completion_times(count: int) -> list[float]:
    from django_workflows.models import WorkflowInstance

    rows = WorkflowInstance.objects.filter(completed_at__isnull=False).order_by("completed_at")
    return [t.timestamp() for t in rows.values_list("completed_at", flat=True)[:count]]


def _rate_from_samples(samples: list[tuple[float, int]], first: int, last: int) -> float:
    t_first = next(t for t, n in samples if n >= first)
    t_last = next(t for t, n in samples if n >= last)
    n_first = next(n for _, n in samples if n >= first)
    n_last = next(n for _, n in samples if n >= last)
    return (n_last - n_first) / (t_last - t_first) if t_last > t_first else float("nan")


def latency(st: Store, runs: int, gap: tuple[float, float]) -> dict[str, Any]:
    from django.db import connections

    from django_workflows.client import WorkflowInstanceOptions

    st.reset()
    client = _client()
    connections.close_all()
    workers = st.start_workers()
    stored, waited = [], []
    rng = random.Random(21)
    try:
        time.sleep(2.0)
        for i in range(runs):
            time.sleep(rng.uniform(*gap))
            t = time.perf_counter()
            instance = client.create_workflow_instance(WorkflowInstanceOptions(instance_id=f"scale-lat-{i}"), "scale_one")
            client.get_workflow_result(instance, timeout=60)
            waited.append(time.perf_counter() - t)
            info = client.get_workflow_instance_info(instance)
            stored.append((info.completed_at - info.created_at).total_seconds())
        connections.close_all()
    finally:
        st.stop(workers)
    return {
        "runs": runs,
        "gap_s": list(gap),
        "p50_ms": 1000 * harness.percentile(stored, 50),
        "p95_ms": 1000 * harness.percentile(stored, 95),
        "client_p50_ms": 1000 * harness.percentile(waited, 50),
        "client_p95_ms": 1000 * harness.percentile(waited, 95),
    }


def add_driver_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of either engine's scale driver (``bench.scale._driver_args`` passes them)."""
    parser.add_argument("--sizes", default="100,10000")
    parser.add_argument("--throughput-sizes", default="")
    parser.add_argument("--parts", default="idle,throughput,latency")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--drain", type=int, default=2000)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--latency-gap", default="0.5,1.5")
    parser.add_argument("--run-dir", type=Path, default=harness.REPO_ROOT / "bench" / ".data" / "scale")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=stores.STORES, required=True)
    add_driver_arguments(parser)
    parser.add_argument("--worker-args", default="")
    parser.add_argument("--templates", type=int, default=TEMPLATES, help="waiting instances run by a worker, not copied")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import shlex

    args = parse_args(argv)
    run_dir: Path = (args.run_dir / args.store).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    st = Store(args.store, run_dir, shlex.split(args.worker_args))
    os.environ.update(st.env)
    import django

    django.setup()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    parts = args.parts.split(",")
    result: dict[str, Any] = {"store": args.store, "load_before": harness.machine_load()}
    if "idle" in parts:
        st.reset()
        result["idle"] = idle(st, sizes, args.warmup, args.window, args.templates)
    if "throughput" in parts:
        tsizes = [int(s) for s in (args.throughput_sizes or args.sizes).split(",") if s]
        result["throughput"] = throughput(st, tsizes, args.workers, args.drain)
    if "latency" in parts:
        low, high = (float(v) for v in args.latency_gap.split(","))
        result["latency"] = latency(st, args.latency_runs, (low, high))
    result["load_after"] = harness.machine_load()
    from django.db import connections

    connections.close_all()
    if args.store in ("mysql", "postgres"):
        stores.drop_database(args.store, st.db)
    harness.emit(result)


if __name__ == "__main__":
    main()
