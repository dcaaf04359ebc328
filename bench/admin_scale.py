"""The admin and batch removal at scale (issue 21): fill a store with many instances, time the
admin's pages, then remove the finished instances in batches while workers run.

    python -m bench.admin_scale --store postgres --instances 100000 --events-per-instance 10
    python -m bench.admin_scale --store sqlite --instances 2000 --phases populate,admin   # seconds

Phases (``--phases``, all three by default, in this order):

- ``populate``: recreate the database (``ADMIN_SCALE_DB``, default ``wf_adminscale``; SQLite:
  ``bench/.data/adminscale.sqlite3``), migrate, and write ``--instances`` executions with
  ``--events-per-instance`` history events each, in the shape the ORM backend writes (one
  ``Payload`` row per event, the engine's attribute JSON, sequence ids 1..n,
  ``active_instance_id`` set while active), with COPY on PostgreSQL and multi-row INSERTs
  elsewhere. 80 % completed, 8 % running (waiting for a signal), 6 % failed, 2 % canceled, 2 %
  terminated, 2 % timed out; five workflow names, three queues, creation times spread over 60
  days. One more instance has ``--big-history`` events (the instance page's worst case).
- ``admin``: a superuser fetches the admin's pages through Django's test client: the list
  (default, filtered by status, by workflow name, searched by instance id, sorted), the instance
  page of the big instance, and the status counts header; for each the median time of
  ``--repeat`` requests after one warm-up, the number of queries and the slowest query, with its
  plan (EXPLAIN) when it took longer than ``--explain-ms``.
- ``remove``: two ``runworkflows`` processes run a steady load (``bench_chain`` workflows of two
  no-op activities, ``--rate`` per second); first ``--baseline`` seconds without removal, then
  ``Client.remove_workflow_instances`` removes every populated finished instance (``--batch-size``
  per batch) while the load goes on. Printed: each batch's duration (median, max), the removal
  rate, and the load's completions per second and start-to-end latency (p50, p99, max) with and
  without removal: a worker that waits for a lock the removal holds shows as latency.

Figures go to bench/RESULTS.md ("Admin and removal at scale").
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import harness, stores

DATA_DIR = harness.REPO_ROOT / "bench" / ".data" / "adminscale"
PHASES = ("populate", "admin", "remove")
WORKFLOW_NAMES = ("order_fulfillment", "invoice", "email_campaign", "nightly_report", "user_onboarding")
QUEUES = ("default", "billing", "emails")
#: Out of 50 instances: how many end how (the rest, 40, complete).
OUTCOME_PLAN = (("running", 4), ("failed", 3), ("canceled", 1), ("terminated", 1), ("timed_out", 1))
BIG_INSTANCE_ID = "big-history"
CHUNK = 20_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres", "mysql"), required=True)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--events-per-instance", type=int, default=10)
    parser.add_argument("--big-history", type=int, default=10_000, help="events of the one big instance")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per page (after one warm-up)")
    parser.add_argument("--explain-ms", type=float, default=20.0, help="EXPLAIN queries slower than this")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=10.0, help="load: workflows started per second")
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds of load before removal")
    parser.add_argument("--show-sql", action="store_true", help="print every query of every page")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON document")
    args = parser.parse_args(argv)
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if args.events_per_instance < 3:
        parser.error("--events-per-instance must be at least 3")
    return args


def environment(store: str) -> dict[str, str]:
    """The variables that point ``bench.admin_settings`` (here and in the workers) at the store."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.admin_settings",
        "BENCH_STORE": store,
        "BENCH_DB_NAME": os.environ.get("ADMIN_SCALE_DB", "wf_adminscale"),
        "BENCH_DATA_DIR": str(DATA_DIR),
        "BENCH_SQLITE_PATH": str(DATA_DIR / "adminscale.sqlite3"),
    }


# -- populate ---------------------------------------------------------------------------------


class Shapes:
    """The attribute JSON of each kind of event, encoded once (the texts do not depend on the
    instance; only ids do)."""

    def __init__(self) -> None:
        from django_workflows.engine.errors import ErrorInfo
        from django_workflows.engine.history import (
            ActivityCompletedAttributes,
            ActivityScheduledAttributes,
            WorkflowExecutionFinishedAttributes,
            WorkflowExecutionStartedAttributes,
            WorkflowExecutionTerminatedAttributes,
            WorkflowExecutionTimedOutAttributes,
            WorkflowTaskStartedAttributes,
            attributes_to_json,
        )

        self.started = {
            (name, queue): attributes_to_json(
                WorkflowExecutionStartedAttributes(name=name, queue=queue, inputs=['{"order": 1234, "items": 3}'])
            )
            for name in WORKFLOW_NAMES
            for queue in QUEUES
        }
        self.task = attributes_to_json(WorkflowTaskStartedAttributes())
        self.scheduled = attributes_to_json(ActivityScheduledAttributes(name="charge_card", inputs=["1234"], queue="default"))
        self.completed = attributes_to_json(ActivityCompletedAttributes(result='"ok"'))
        canceled = ErrorInfo(type="Canceled", message="workflow canceled")
        self.endings = {
            "completed": ("WorkflowExecutionFinished", attributes_to_json(WorkflowExecutionFinishedAttributes(result='"done"'))),
            "failed": (
                "WorkflowExecutionFinished",
                attributes_to_json(
                    WorkflowExecutionFinishedAttributes(
                        error=ErrorInfo(type="PaymentError", message="card declined", stacktrace="Traceback ...\n" * 5)
                    )
                ),
            ),
            "canceled": ("WorkflowExecutionFinished", attributes_to_json(WorkflowExecutionFinishedAttributes(error=canceled))),
            "terminated": (
                "WorkflowExecutionTerminated",
                attributes_to_json(WorkflowExecutionTerminatedAttributes(reason="stuck, terminated by an operator")),
            ),
            "timed_out": (
                "WorkflowExecutionTimedOut",
                attributes_to_json(WorkflowExecutionTimedOutAttributes(execution_timeout=3600.0)),
            ),
        }

    def history(self, name: str, queue: str, outcome: str, events: int) -> list[tuple[str, int, str]]:
        """(event type, schedule event id, data) for sequence ids 1..events: start, workflow
        tasks, activities scheduled and completed, the ending event unless running."""
        rows = [("WorkflowExecutionStarted", 0, self.started[name, queue]), ("WorkflowTaskStarted", 0, self.task)]
        body = events - 2 - (outcome != "running")
        while body >= 3:
            seq = len(rows) + 1
            rows += [
                ("ActivityScheduled", seq, self.scheduled),
                ("WorkflowTaskStarted", 0, self.task),
                ("ActivityCompleted", seq, self.completed),
            ]
            body -= 3
        rows += [("WorkflowTaskStarted", 0, self.task)] * body
        if outcome != "running":
            rows.append((self.endings[outcome][0], 0, self.endings[outcome][1]))
        return rows


def _outcome(index: int) -> str:
    slot = index % 50
    for outcome, n in OUTCOME_PLAN:
        if slot < n:
            return outcome
        slot -= n
    return "completed"


class Writer:
    """Rows into one table: COPY on PostgreSQL, multi-row INSERTs elsewhere, ``CHUNK`` at a time."""

    def __init__(self, cursor: Any, vendor: str, table: str, columns: Sequence[str]) -> None:
        self.cursor, self.vendor, self.table, self.columns = cursor, vendor, table, list(columns)
        self.rows: list[tuple[Any, ...]] = []
        self.written = 0

    def add(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)

    def flush(self) -> None:
        if not self.rows:
            return
        cols = ", ".join(self.columns)
        if self.vendor == "postgresql":
            with self.cursor.cursor.copy(f"COPY {self.table} ({cols}) FROM STDIN") as copy:
                for row in self.rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(self.columns))
            self.cursor.executemany(f"INSERT INTO {self.table} ({cols}) VALUES ({marks})", self.rows)
        self.written += len(self.rows)
        self.rows = []


def _stamp(vendor: str) -> Callable[[datetime | None], Any]:
    # SQLite: the text form the backend writes (DbNow: milliseconds); MySQL: naive UTC.
    if vendor == "sqlite":
        return lambda moment: None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    if vendor == "mysql":
        return lambda moment: None if moment is None else moment.replace(tzinfo=None)
    return lambda moment: moment


def populate(instances: int, events: int, big_history: int) -> dict[str, Any]:
    from django.core.management import call_command
    from django.db import connection, transaction

    from django_workflows.models import HistoryEvent, Payload, WorkflowInstance

    call_command("migrate", verbosity=0)
    vendor = connection.vendor
    stamp = _stamp(vendor)
    shapes = Shapes()
    now = datetime.now(UTC)
    span = timedelta(days=60).total_seconds()
    instance_columns = [
        "id", "instance_id", "execution_id", "active_instance_id", "parent_instance_id", "parent_execution_id",
        "parent_schedule_event_id", "workflow_name", "queue", "state", "outcome", "metadata", "created_at",
        "completed_at", "last_sequence_id", "lease_token", "worker", "blocked_attempts",
    ]
    history_columns = ["event_id", "event_type", "timestamp", "schedule_event_id", "sequence_id", "instance_id", "payload_id"]
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        rows = Writer(cursor, vendor, WorkflowInstance._meta.db_table, instance_columns)
        payloads = Writer(cursor, vendor, Payload._meta.db_table, ["id", "instance_id", "data"])
        history = Writer(cursor, vendor, HistoryEvent._meta.db_table, history_columns)
        plan: Iterator[tuple[str, str, int]] = (
            (f"order-{i:07d}", _outcome(i), events) for i in range(instances)
        )
        for pk, (instance_id, outcome, n) in enumerate([*plan, (BIG_INSTANCE_ID, "completed", big_history)], start=1):
            name, queue = WORKFLOW_NAMES[pk % len(WORKFLOW_NAMES)], QUEUES[pk % len(QUEUES) if pk % 7 else 0]
            # Older instances first, so ids and creation times grow together (as in a real store);
            # the newest an hour old, so that all finished ones are before the removal's cutoff.
            created = now - timedelta(hours=1, seconds=span * (1 - pk / (instances + 1)))
            running = outcome == "running"
            completed = None if running else created + timedelta(seconds=2 + pk % 30)
            state = 0 if running else 2
            rows.add((
                pk, instance_id, uuid.uuid4().hex, instance_id if running else None, "", "", 0, name, queue, state,
                "" if running else outcome, "{}", stamp(created), stamp(completed), n, "", "", 0,
            ))
            for seq, (event_type, schedule_id, data) in enumerate(shapes.history(name, queue, outcome, n), start=1):
                payload_id = uuid.uuid4().hex
                payloads.add((payload_id, pk, data))
                moment = created + timedelta(milliseconds=seq)
                history.add((uuid.uuid4().hex, event_type, stamp(moment), schedule_id, seq, pk, payload_id))
            if len(history.rows) >= CHUNK:
                # Parents before children: MariaDB checks the foreign keys per statement.
                for writer in (rows, payloads, history):
                    writer.flush()
        for writer in (rows, payloads, history):
            writer.flush()
        if vendor == "postgresql":
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{WorkflowInstance._meta.db_table}', 'id'), %s)", [instances + 1])
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (WorkflowInstance, Payload, HistoryEvent):
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    elif vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    elif vendor == "mysql":
        with connection.cursor() as cursor:
            for model in (WorkflowInstance, Payload, HistoryEvent):
                cursor.execute(f"ANALYZE TABLE {model._meta.db_table}")
                cursor.fetchall()
    return {
        "instances": rows.written,
        "history_rows": history.written,
        "payload_rows": payloads.written,
        "seconds": round(time.monotonic() - started, 1),
    }


# -- admin --------------------------------------------------------------------------------------


def _explain(connection: Any, sql: str) -> str:
    prefix = {"postgresql": "EXPLAIN (ANALYZE, BUFFERS) ", "sqlite": "EXPLAIN QUERY PLAN ", "mysql": "EXPLAIN "}
    try:
        with connection.cursor() as cursor:
            cursor.execute(prefix[connection.vendor] + sql)
            return "\n".join(" | ".join(str(v) for v in row) for row in cursor.fetchall())
    except Exception as exc:  # noqa: BLE001 - a captured statement whose parameters were not inlined
        return f"(no plan: {exc})"


def full_counts(queries: Sequence[dict[str, Any]]) -> list[str]:
    """The captured queries that count a whole instances or history table (a COUNT with
    neither WHERE nor LIMIT)."""
    from django_workflows.admin.scale import unbounded_counts

    return unbounded_counts(q["sql"] for q in queries)


def admin_pages(repeat: int, explain_ms: float) -> list[dict[str, Any]]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client as HttpClient
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from django_workflows.admin import workers
    from django_workflows.models import HistoryEvent, Payload, WorkflowInstance

    # A store populated by an older version gets the newer indexes (a no-op otherwise), and on
    # PostgreSQL a vacuum, as autovacuum would have run in a store that grew over weeks (the
    # visibility map lets counts read an index alone).
    call_command("migrate", verbosity=0)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (WorkflowInstance, HistoryEvent, Payload):
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first() or user_model.objects.create_superuser("bench", "", "bench")
    http = HttpClient()
    http.force_login(user)
    changelist = reverse("admin:django_workflows_workflowinstance_changelist")
    big = WorkflowInstance.objects.filter(instance_id=BIG_INSTANCE_ID).values_list("pk", flat=True).first()
    some = WorkflowInstance.objects.order_by().values_list("instance_id", flat=True).filter(pk=max(1, (big or 2) // 2)).first()
    # Page 100 (or the middle page of a small store): the list's OFFSET.
    deep = max(1, min(100, WorkflowInstance.objects.count() // 100))
    pages: list[tuple[str, Callable[[], Any]]] = [
        ("list", lambda: http.get(changelist)),
        ("list ?status=failed", lambda: http.get(changelist, {"status": "failed"})),
        ("list ?status=running", lambda: http.get(changelist, {"status": "running"})),
        ("list ?workflow_name=invoice", lambda: http.get(changelist, {"workflow_name": "invoice"})),
        ("list ?queue=billing&status=completed", lambda: http.get(changelist, {"queue": "billing", "status": "completed"})),
        ("list ?q=<instance id>", lambda: http.get(changelist, {"q": some or "order-0000001"})),
        ("list ?q=order-00 (prefix)", lambda: http.get(changelist, {"q": "order-00"})),
        ("list sorted by instance id (?o=1)", lambda: http.get(changelist, {"o": "1"})),
        ("list sorted by completed (?o=-4)", lambda: http.get(changelist, {"o": "-4"})),
        (f"list page {deep} (?p={deep})", lambda: http.get(changelist, {"p": str(deep)})),
        ("list of one day (date hierarchy)", lambda: http.get(changelist, _one_day())),
    ]
    if big is not None:
        page = reverse("admin:django_workflows_workflowinstance_change", args=[big])
        pages += [
            (f"instance page ({BIG_INSTANCE_ID})", lambda: http.get(page)),
            (f"instance page ({BIG_INSTANCE_ID}) ?page=50", lambda: http.get(page, {"page": "50"})),
        ]
    pages.append(("status counts header", lambda: workers.status_counts(connection.alias)))
    results = []
    for label, fetch in pages:
        timings = []
        captured: list[dict[str, Any]] = []
        for attempt in range(repeat + 1):
            workers._counts_cache.clear()  # time the header as the first view in its cache period
            with CaptureQueriesContext(connection) as context:
                started = time.perf_counter()
                response = fetch()
                elapsed = time.perf_counter() - started
            status = getattr(response, "status_code", 200)
            if status != 200:
                raise RuntimeError(f"{label}: HTTP {status}")
            if attempt:
                timings.append(elapsed)
                captured = list(context.captured_queries)
        slowest = max(captured, key=lambda q: float(q["time"])) if captured else None
        result: dict[str, Any] = {
            "page": label,
            "median_ms": round(statistics.median(timings) * 1000, 1),
            "queries": len(captured),
            "full_counts": full_counts(captured),
            "sql": [(round(float(q["time"]) * 1000, 1), q["sql"]) for q in captured],
        }
        if slowest is not None:
            result["slowest_ms"] = round(float(slowest["time"]) * 1000, 1)
            result["slowest_sql"] = slowest["sql"][:400]
            if float(slowest["time"]) * 1000 >= explain_ms:
                result["plan"] = _explain(connection, slowest["sql"])
        results.append(result)
    return results


def _one_day() -> dict[str, str]:
    day = datetime.now(UTC) - timedelta(days=3)
    return {"created_at__day": str(day.day), "created_at__month": str(day.month), "created_at__year": str(day.year)}


# -- remove -------------------------------------------------------------------------------------


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(harness.percentile(ordered, 50) * 1000, 1),
        "p99_ms": round(harness.percentile(ordered, 99) * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


class Load:
    """Starts ``bench_chain`` workflows (two no-op activities) at a steady rate in a thread."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.started: list[tuple[float, str]] = []  # (time.time() at creation, instance id)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="load", daemon=True)

    def run(self) -> None:
        from django.db import connection

        from django_workflows.client import Client, WorkflowInstanceOptions

        client = Client()
        next_at = time.monotonic()
        n = 0
        try:
            while not self.stop.is_set():
                instance_id = f"load-{n:06d}"
                client.create_workflow_instance(WorkflowInstanceOptions(instance_id=instance_id), "bench_chain", 2)
                self.started.append((time.time(), instance_id))
                n += 1
                next_at += self.interval
                self.stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            connection.close()


def remove_under_load(store: str, workers: int, rate: float, baseline: float, batch_size: int) -> dict[str, Any]:
    from django.db import connections

    from django_workflows.client import Client
    from django_workflows.engine.core import InstanceState
    from django_workflows.models import WorkflowInstance

    cutoff = datetime.now(UTC) - timedelta(minutes=30)
    to_remove = WorkflowInstance.objects.filter(completed_at__lt=cutoff).exclude(state=InstanceState.ACTIVE.value).count()
    connections.close_all()
    run_dir = DATA_DIR / "workers"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**harness.base_env(), **environment(store)}
    command = [sys.executable, str(harness.REPO_ROOT / "manage.py"), "runworkflows"]
    procs = harness.start_workers([command] * workers, env, run_dir)
    load = Load(rate)
    batches: list[tuple[float, int]] = []  # (seconds, removed) per batch
    try:
        harness.wait_until_done(procs, lambda: all(p.ready_time() for p in procs), timeout=60)
        load.thread.start()
        time.sleep(baseline)
        removal_started = time.time()
        last = time.perf_counter()

        def progress(removed: int, total: int) -> None:
            nonlocal last
            now = time.perf_counter()
            batches.append((now - last, removed))
            last = now

        removed = Client().remove_workflow_instances(finished_before=cutoff, batch_size=batch_size, progress=progress)
        removal_ended = time.time()
        # As long again after the removal, so the load's last instances are not all cut short.
        time.sleep(min(baseline, 10.0))
        load.stop.set()
        load.thread.join()
        ids = [instance_id for _, instance_id in load.started]
        harness.wait_until_done(
            procs,
            lambda: not WorkflowInstance.objects.filter(instance_id__in=ids, state=InstanceState.ACTIVE.value).exists(),
            timeout=300,
        )
    finally:
        load.stop.set()
        connections.close_all()
        harness.stop_workers(procs)
    ends = dict(
        WorkflowInstance.objects.filter(instance_id__startswith="load-").values_list("instance_id", "completed_at")
    )
    before, during = [], []
    for created, instance_id in load.started:
        completed = ends.get(instance_id)
        if completed is None:
            continue
        latency = completed.timestamp() - created
        if created < removal_started:
            before.append(latency)
        elif created < removal_ended:
            during.append(latency)
    durations = [seconds for seconds, count in batches if count]
    removal_seconds = removal_ended - removal_started
    return {
        "to_remove": to_remove,
        "removed": removed,
        "batch_size": batch_size,
        "batches": len(durations),
        "batch_median_ms": round(statistics.median(durations) * 1000, 1) if durations else None,
        "batch_max_ms": round(max(durations) * 1000, 1) if durations else None,
        "removal_seconds": round(removal_seconds, 1),
        "removed_per_second": round(removed / removal_seconds) if removal_seconds else None,
        "load_rate": rate,
        "latency_without_removal": _percentiles(before),
        "latency_during_removal": _percentiles(during),
        "left": WorkflowInstance.objects.filter(completed_at__lt=cutoff).count(),
    }


# -- main ---------------------------------------------------------------------------------------


def _print_text(results: dict[str, Any], show_sql: bool) -> None:
    out = io.StringIO()
    out.write(f"store {results['store']}, load {results['load']}\n")
    if "populate" in results:
        out.write(f"populate: {json.dumps(results['populate'])}\n")
    for page in results.get("admin", []):
        out.write(
            f"{page['page']:<45} {page['median_ms']:>8.1f} ms  {page['queries']:>3} queries"
            f"  slowest {page.get('slowest_ms', 0):>7.1f} ms  full counts: {len(page['full_counts'])}\n"
        )
        if "plan" in page:
            out.write(f"    {page['slowest_sql']}\n")
            out.write("".join(f"      {line}\n" for line in page["plan"].splitlines()[:15]))
        if show_sql:
            out.write("".join(f"      {ms:>7.1f} ms  {sql[:300]}\n" for ms, sql in page["sql"]))
    if "remove" in results:
        out.write(f"remove: {json.dumps(results['remove'])}\n")
    sys.stdout.write(out.getvalue())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    phases = args.phases.split(",")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    env = environment(args.store)
    os.environ.update(env)
    if "populate" in phases:
        if args.store == "sqlite":
            stores.remove_sqlite(Path(env["BENCH_SQLITE_PATH"]))
        else:
            stores.recreate_database(args.store, env["BENCH_DB_NAME"])

    import django

    django.setup()
    results: dict[str, Any] = {"store": args.store, "load": harness.machine_load()}
    if "populate" in phases:
        results["populate"] = populate(args.instances, args.events_per_instance, args.big_history)
    if "admin" in phases:
        results["admin"] = admin_pages(args.repeat, args.explain_ms)
    if "remove" in phases:
        results["remove"] = remove_under_load(args.store, args.workers, args.rate, args.baseline, args.batch_size)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        _print_text(results, args.show_sql)


if __name__ == "__main__":
    main()
