"""Run one workload on one store with django_workflows and ``runworkflows`` worker processes.

    python -m bench.ours --store sqlite --workload W1 --scale full --workers 2

``bench.run`` starts this once per (store, workload, repetition), so each run gets a fresh
process, a fresh database and fresh workers. Steps: recreate the store, migrate, create every
root workflow through ``Client``, start the workers (``manage.py runworkflows`` with
``bench.settings``), wait until no instance is active, stop the workers with SIGTERM, then read
every instance's history (the activity count is the number of ``ActivityCompleted`` events) and
print one result line (``bench.harness.emit``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from bench import harness, stores
from bench.workloads import WORKLOADS, get_workload

DEFAULT_TIMEOUT = 900.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=stores.STORES, required=True)
    parser.add_argument("--workload", choices=WORKLOADS, required=True)
    parser.add_argument("--scale", choices=("smoke", "full"), default="full")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-args", default="", help="extra runworkflows flags, e.g. '--activity-pollers 4'")
    parser.add_argument("--run-dir", type=Path, default=harness.REPO_ROOT / "bench" / ".data" / "ours")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def _environment(store: str, run_dir: Path) -> dict[str, str]:
    env = harness.base_env()
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        BENCH_STORE=store,
        BENCH_DATA_DIR=str(run_dir),
        BENCH_SQLITE_PATH=str(run_dir / "ours.sqlite3"),
    )
    return env


def _reset_store(store: str, run_dir: Path, db_name: str) -> None:
    stores.remove_sqlite(run_dir / "ours.sqlite3")
    stores.remove_sqlite(run_dir / "redis-run-django.sqlite3")
    if store in ("mysql", "postgres"):
        stores.recreate_database(store, db_name)
    elif store == "redis":
        stores.flush_redis()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    env = _environment(args.store, run_dir)
    os.environ.update(env)
    workload = get_workload(args.workload, args.scale)
    db_name = stores.database_name(args.store) if args.store in ("mysql", "postgres") else ""

    _reset_store(args.store, run_dir, db_name)

    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)

    from django_workflows.client import Client, WorkflowInstanceOptions

    client = Client()
    backend = client.backend
    root_args = workload.root_args()
    for instance_id in workload.root_ids():
        client.create_workflow_instance(WorkflowInstanceOptions(instance_id=instance_id), workload.workflow_name, *root_args)
    connections.close_all()  # hold no connection (nor SQLite lock) while the workers run

    command = [sys.executable, str(harness.REPO_ROOT / "manage.py"), "runworkflows", *shlex.split(args.worker_args)]

    done = _done_check(args.store, backend)

    measured = harness.measure_run(
        store=args.store, db_name=db_name, commands=[command] * args.workers, env=env, run_dir=run_dir,
        done=done, timeout=args.timeout, before_stop=connections.close_all,
    )
    roots, activities, workflows = _collect(backend, workload)
    tx, tx_what = stores.transactions(args.store, measured)
    result = harness.summarize(
        engine="ours",
        store=args.store,
        workload=workload,
        measured=measured,
        roots=roots,
        activities=activities,
        workflows=workflows,
        transactions=tx,
        transactions_what=tx_what,
        extra={"worker_args": args.worker_args},
    )
    harness.emit(result)


def _done_check(store: str, backend: Any) -> Any:
    """True once no instance is active. On the SQL stores one autocommit SELECT, so that each
    poll is exactly one transaction the driver can subtract from PostgreSQL's count."""
    if store == "redis":
        return lambda: backend.get_stats().active_workflow_instances == 0
    from django_workflows.engine.core import InstanceState
    from django_workflows.models import WorkflowInstance

    active = WorkflowInstance.objects.filter(state=InstanceState.ACTIVE.value)
    return lambda: not active.exists()


def _collect(backend: Any, workload: Any) -> tuple[list[tuple[float, float]], int, int]:
    """Root (created, completed) times, ActivityCompleted events, finished instances; fails on
    an instance that did not complete successfully."""
    from django_workflows.engine.core import InstanceState
    from django_workflows.engine.history import (
        EventType,
        WorkflowExecutionFinishedAttributes,
    )

    roots = []
    activities = 0
    finished = 0
    root_ids = set(workload.root_ids())
    for instance_id in workload.all_instance_ids():
        instance = backend.get_latest_execution(instance_id)
        info = backend.get_workflow_instance_info(instance)
        history = backend.get_workflow_instance_history(instance)
        if info.state is not InstanceState.FINISHED or info.completed_at is None:
            raise harness.RunFailed(f"{instance_id} did not finish ({info.state})")
        outcome = next(
            (e.attributes for e in reversed(history) if isinstance(e.attributes, WorkflowExecutionFinishedAttributes)),
            None,
        )
        if outcome is None or outcome.error is not None:
            raise harness.RunFailed(f"{instance_id} did not complete successfully: {outcome}")
        finished += 1
        activities += sum(1 for e in history if e.type is EventType.ACTIVITY_COMPLETED)
        if instance_id in root_ids:
            roots.append((info.created_at.timestamp(), info.completed_at.timestamp()))
    return roots, activities, finished


if __name__ == "__main__":
    main()
