"""Run one workload on one store with DBOS Transact, under the same rules as ``bench.ours``.

    python -m bench.dbos_side --store sqlite --workload W1 --scale full --workers 2

Runs in the bench's own environment and drives ``bench.dbos_app`` in ``bench/.venv-dbos``
(see ``ensure_venv``): fresh system database, ``setup`` (migrate, register queues, enqueue every
root workflow), N ``worker`` processes, wait until every root workflow has a final status,
SIGTERM. Results are read from DBOS's tables with plain SQL: ``workflow_status`` (created_at,
updated_at in epoch ms) for the roots, ``operation_outputs`` rows of the no-op step for the
activity count.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import harness, stores
from bench.workloads import DBOS_WORKLOADS, get_workload

VENV = harness.REPO_ROOT / "bench" / ".venv-dbos"
VENV_PYTHON = VENV / "bin" / "python"
#: The version the issue's anchors were measured with; pip installs exactly this one.
DBOS_REQUIREMENT = "dbos==3.4.0"
STEP_NAMES = ("bench_noop", "bench_noop_async")


def ensure_venv(python: str = "python3.11") -> Path:
    """Create ``bench/.venv-dbos`` with DBOS if it is missing. Python 3.11: DBOS's SQLite
    support on 3.12+ needs a newer SQLite than Debian 12's."""
    if not VENV_PYTHON.exists():
        subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(VENV_PYTHON), "-c", "import dbos, importlib.metadata as m; print(m.version('dbos'))"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "-q", DBOS_REQUIREMENT], check=True)
    return VENV_PYTHON


def dbos_version() -> str:
    probe = subprocess.run([str(VENV_PYTHON), "-c", "import importlib.metadata as m; print(m.version('dbos'))"],
                           capture_output=True, text=True, check=True)
    return probe.stdout.strip()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=stores.DBOS_STORES, required=True)
    parser.add_argument("--workload", choices=DBOS_WORKLOADS, required=True)
    parser.add_argument("--scale", choices=("smoke", "full"), default="full")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--w3", choices=("queue", "async"), default="queue")
    parser.add_argument("--worker-concurrency", type=int, default=None,
                        help="DBOS queue worker_concurrency of the root queue (default: no limit)")
    parser.add_argument("--polling-interval", type=float, default=1.0, help="DBOS queue polling_interval_sec")
    parser.add_argument("--run-dir", type=Path, default=harness.REPO_ROOT / "bench" / ".data" / "dbos")
    parser.add_argument("--timeout", type=float, default=900.0)
    return parser.parse_args(argv)


class _Tables:
    """Plain-SQL reads of DBOS's system database (schema ``dbos`` on PostgreSQL)."""

    def __init__(self, store: str, sqlite_path: Path, db_name: str) -> None:
        self.store = store
        self.prefix = "dbos." if store == "postgres" else ""
        # One connection in autocommit mode: each query is one transaction (on PostgreSQL the
        # driver subtracts its completion polls from the count), and no lock is held between.
        if store == "postgres":
            import psycopg

            self.conn: Any = psycopg.connect(dbname=db_name, autocommit=True, **stores.pg_params())
        else:
            self.conn = sqlite3.connect(sqlite_path, timeout=30, isolation_level=None)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        sql = sql.replace("{p}", self.prefix)
        if self.store == "postgres":
            sql = sql.replace("?", "%s")
        return list(self.conn.execute(sql, params).fetchall())

    def close(self) -> None:
        self.conn.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    workload = get_workload(args.workload, args.scale)
    python = str(ensure_venv())
    sqlite_path = run_dir / "dbos.sqlite3"
    db_name = stores.database_name("postgres", "dbos") if args.store == "postgres" else ""
    if args.store == "sqlite":
        stores.remove_sqlite(sqlite_path)
        conn = sqlite3.connect(sqlite_path)
        conn.execute("PRAGMA journal_mode=WAL")  # persistent: DBOS's connections inherit it
        conn.close()
        url = f"sqlite:///{sqlite_path}"
    else:
        stores.recreate_database("postgres", db_name)
        url = stores.pg_url(db_name)
    env = harness.base_env()
    setup = [python, "-m", "bench.dbos_app", "setup", "--url", url, "--workload", workload.name,
             "--count", str(workload.count), "--steps", str(workload.steps), "--w3", args.w3,
             "--polling-interval", str(args.polling_interval)]
    if args.worker_concurrency:
        setup += ["--worker-concurrency", str(args.worker_concurrency)]
    done_setup = subprocess.run(setup, cwd=harness.REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if done_setup.returncode != 0:
        raise harness.RunFailed(f"DBOS setup failed:\n{done_setup.stdout}\n{done_setup.stderr}")

    tables = _Tables(args.store, sqlite_path, db_name)
    commands = [[python, "-m", "bench.dbos_app", "worker", "--url", url, "--executor-id", f"bench-worker-{i}"]
                for i in range(args.workers)]

    def done() -> bool:
        rows = tables.query(
            "SELECT count(*) FROM {p}workflow_status WHERE queue_name = ?"
            " AND status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')",
            ("bench",),
        )
        return rows[0][0] >= workload.count

    measured = harness.measure_run(
        store=args.store, db_name=db_name, commands=commands, env=env, run_dir=run_dir,
        done=done, timeout=args.timeout,
    )

    # workflow_status times are in whole seconds on SQLite under Python 3.11 (DBOS uses
    # unixepoch('subsec') only on 3.12+), so a root's completion is the later of its
    # updated_at and its last recorded operation, which DBOS stamps in milliseconds.
    rows = tables.query(
        "SELECT ws.workflow_uuid, ws.status, ws.created_at, ws.updated_at, MAX(oo.completed_at_epoch_ms)"
        " FROM {p}workflow_status ws LEFT JOIN {p}operation_outputs oo ON oo.workflow_uuid = ws.workflow_uuid"
        " WHERE ws.queue_name = ? GROUP BY ws.workflow_uuid, ws.status, ws.created_at, ws.updated_at",
        ("bench",),
    )
    failed = [r for r in rows if r[1] != "SUCCESS"]
    if failed or len(rows) != workload.count:
        raise harness.RunFailed(f"DBOS: {len(rows)} root workflows, not successful: {failed[:5]}")
    roots = [(created / 1000, max(updated, last_op or 0) / 1000) for _, _, created, updated, last_op in rows]
    # DBOS.launch() starts dequeuing before it returns, so a worker may work before it can say
    # it is ready: the clock starts at the first step if that came first.
    first_step = tables.query("SELECT MIN(started_at_epoch_ms) FROM {p}operation_outputs")[0][0]
    placeholders = ", ".join("?" for _ in STEP_NAMES)
    activities = tables.query(f"SELECT count(*) FROM {{p}}operation_outputs WHERE function_name IN ({placeholders})",
                              STEP_NAMES)[0][0]
    workflows = tables.query("SELECT count(*) FROM {p}workflow_status WHERE status = 'SUCCESS'")[0][0]
    tables.close()
    tx, tx_what = stores.transactions(args.store, measured)
    result = harness.summarize(
        engine="dbos",
        store=args.store,
        workload=workload,
        measured=measured,
        roots=roots,
        activities=int(activities),
        workflows=len(rows),
        transactions=tx,
        transactions_what=tx_what,
        first_work=None if first_step is None else first_step / 1000,
        extra={
            "dbos_w3": args.w3,
            "dbos_worker_concurrency": args.worker_concurrency,
            "dbos_polling_interval": args.polling_interval,
            "dbos_workflows_incl_children": int(workflows),
        },
    )
    harness.emit(result)



if __name__ == "__main__":
    sys.exit(main())
