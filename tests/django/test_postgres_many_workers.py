"""PostgreSQL as the engine of many workers (issue 21): ``runworkflows`` processes against one
PostgreSQL server, reached three ways, run the fault soak's workflows (``testapp.soak``: an
activity, a fan-out of two, a durable timer, a signal, a sub-workflow with one more activity)
and nothing is lost or done twice:

* ``direct``: 8 worker processes, each with its own connections to the server (the default);
* ``pool``: Django's connection pool (``DATABASES[...]["OPTIONS"]["pool"]``, psycopg_pool);
* ``pgbouncer``: PgBouncer in transaction mode (the Debian package, started by the test on a
  free port in front of the test database's server), with ``notifications=False`` (LISTEN cannot
  cross it), ``prepared_statements`` as its version allows, ``DISABLE_SERVER_SIDE_CURSORS``.

Every run is checked with the soak's invariants (``tests.soak.check``): every workflow and
sub-workflow finished once with the result its index determines, every history has exactly one
outcome per scheduled activity, timer and sub-workflow and each accepted signal once, nothing is
left in the tables, and every activity ran exactly once (no worker is killed, so at-least-once
allows no second run). The server connections are sampled while the workers run: through
PgBouncer they stay within its pool.

The default run is sized for CI (the three variants together in well under a minute on a loaded
two-core machine); ``WORKFLOWS_PG_MANY=big`` runs 8 workers and 500 workflows in every variant.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.db import connection
from django.test import override_settings

from django_workflows.backends.orm.checks import behind_pooler
from django_workflows.client import Client, WorkflowInstanceOptions
from testproject.testapp.soak import SIGNAL
from tests.conftest import REPO_ROOT, ManageProcess, subprocess_env, wait_for
from tests.django.private_servers import PrivatePgBouncer, missing_pgbouncer, pgbouncer_version
from tests.soak.check import RunRecord, check_ledger, check_store, instance_id
from tests.soak.leftovers import leftovers

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("DB", "sqlite") not in ("postgres", "postgresql"),
        reason="PostgreSQL as the engine of many workers: runs with DB=postgres",
    ),
]

BIG = os.environ.get("WORKFLOWS_PG_MANY") == "big"

#: PgBouncer's server connections per database and user (``default_pool_size``).
PGBOUNCER_POOL = 10
#: Django's pool per worker process: what its threads use at once (``docs/deployment.md``).
DJANGO_POOL = {"min_size": 2, "max_size": 12, "timeout": 30}
#: Leases: the defaults' order of magnitude, so that no lease runs out on a loaded machine (a
#: lease that ran out would let an activity run twice, which at-least-once allows but this test
#: counts as a failure).
OPTIONS: dict[str, Any] = {"workflow_lock_timeout": 60, "activity_lock_timeout": 60, "sticky_timeout": 2}


@dataclass
class Variant:
    workers: int
    workflows: int
    #: Merged into the workers' ``DATABASES["default"]`` (``tests.django.pg_settings``).
    database: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    problems: list[str]
    seconds: float
    #: The most connections of the workers' database the server had at once.
    peak_server_connections: int
    logs: list[ManageProcess]


def run_workers(variant: Variant, tmp_path: Path) -> Outcome:
    """Start ``variant.workers`` worker processes, run ``variant.workflows`` soak workflows
    (each with its signal and sub-workflow) through them, stop them with SIGTERM; the soak's
    invariant check of what the store and the activity ledger hold."""
    env = subprocess_env(
        {**OPTIONS, **variant.options},
        DJANGO_SETTINGS_MODULE="tests.django.pg_settings",
        WORKFLOWS_TEST_DATABASE=json.dumps(variant.database),
    )
    record = RunRecord(workflows=variant.workflows, ledger=tmp_path / "ledger.jsonl", lease_seconds=OPTIONS["activity_lock_timeout"])
    workers = [
        ManageProcess(["runworkflows", "--no-scheduler"], env, tmp_path / f"worker-{n}.log") for n in range(variant.workers)
    ]
    problems: list[str] = []
    peak = 0
    try:
        client = Client()
        started = time.monotonic()
        for index in range(variant.workflows):
            client.create_workflow_instance(
                WorkflowInstanceOptions(instance_id=instance_id(index)), "soak_workflow", str(record.ledger), index
            )
        for index in range(variant.workflows):
            token = f"{instance_id(index)}#0"
            client.signal_workflow(instance_id(index), SIGNAL, token)
            record.accepted[instance_id(index)].append(token)

        def finished() -> bool:
            nonlocal peak
            peak = max(peak, _server_connections())
            for worker in workers:
                if worker.proc.poll() is not None:
                    raise AssertionError(f"worker {worker.pid} exited with {worker.proc.returncode}:\n{worker.output()}")
            return client.get_stats().active_workflow_instances == 0

        wait_for(finished, timeout=600 if BIG else 240, interval=0.25, what="every workflow to finish")
        seconds = time.monotonic() - started
        for worker in workers:
            wait_for(lambda w=worker: " started (pid " in w.output(), what=f"worker {worker.pid} to log its start")
            worker.send(signal.SIGTERM)
        for worker in workers:
            try:
                code = worker.wait(90)
            except subprocess.TimeoutExpired:
                code = None
            if code != 0:
                problems.append(f"worker {worker.pid} exited with {code} after SIGTERM")
    finally:
        for worker in workers:
            worker.close()
    problems += check_store(client, record)
    problems += leftovers(client.backend)
    problems += check_ledger(record).problems
    for worker in workers:
        text = worker.log_path.read_text(errors="replace")
        if "Traceback" in text or " ERROR " in text:
            problems.append(f"worker {worker.pid} logged an error:\n{text[-3000:]}")
    return Outcome(problems, seconds, peak, workers)


def _server_connections() -> int:
    """Connections to this test's database the server has now, other than this process's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def _report(name: str, variant: Variant, outcome: Outcome) -> None:
    print(
        f"{name}: {variant.workers} workers, {variant.workflows} workflows (+ as many sub-workflows) in "
        f"{outcome.seconds:.1f} s; peak server connections {outcome.peak_server_connections}"
    )


def test_direct_connections(tmp_path: Path) -> None:
    """The main variant: 8 worker processes, each with its own connections, LISTEN/NOTIFY and
    prepared statements on (the defaults)."""
    variant = Variant(workers=8, workflows=500 if BIG else 48)
    outcome = run_workers(variant, tmp_path)
    _report("direct", variant, outcome)
    assert not outcome.problems, "\n".join(outcome.problems)


def test_django_connection_pool(tmp_path: Path) -> None:
    pytest.importorskip("psycopg_pool", reason="Django's connection pool needs psycopg[pool] (the postgres extra)")
    variant = Variant(workers=8 if BIG else 3, workflows=500 if BIG else 20, database={"OPTIONS": {"pool": DJANGO_POOL}})
    outcome = run_workers(variant, tmp_path)
    _report("pool", variant, outcome)
    assert not outcome.problems, "\n".join(outcome.problems)
    # Each process: its pool, and the notification listener's connection of its own.
    assert outcome.peak_server_connections <= variant.workers * (DJANGO_POOL["max_size"] + 1)


@pytest.fixture
def pgbouncer() -> Any:
    reason = missing_pgbouncer()
    if reason and not os.environ.get("CI"):  # under CI a missing PgBouncer is a failure
        pytest.skip(reason)
    settings = connection.settings_dict
    bouncer = PrivatePgBouncer(
        settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432), settings["USER"], settings["PASSWORD"],
        settings={"default_pool_size": PGBOUNCER_POOL, "max_prepared_statements": 100} if _carries_prepared()
        else {"default_pool_size": PGBOUNCER_POOL},
    )
    bouncer.start()
    yield bouncer
    bouncer.destroy()


def _carries_prepared() -> bool:
    """PgBouncer 1.21 and later carry protocol-level prepared statements in transaction mode
    (``max_prepared_statements``); earlier ones cannot."""
    return pgbouncer_version() >= (1, 21)


def test_pgbouncer_transaction_mode(tmp_path: Path, pgbouncer: PrivatePgBouncer) -> None:
    variant = Variant(
        workers=8 if BIG else 3,
        workflows=500 if BIG else 20,
        database={"PORT": str(pgbouncer.port), "DISABLE_SERVER_SIDE_CURSORS": True},
        options={"notifications": False, "prepared_statements": _carries_prepared()},
    )
    outcome = run_workers(variant, tmp_path)
    _report("pgbouncer", variant, outcome)
    assert not outcome.problems, "\n".join(outcome.problems) + "\n--- PgBouncer's log ---\n" + pgbouncer.log_text()[-3000:]
    # However many workers, the server sees PgBouncer's pool only.
    assert outcome.peak_server_connections <= PGBOUNCER_POOL




def test_the_database_check_warns_of_notifications_and_prepared_statements_through_a_pooler(
    pgbouncer: PrivatePgBouncer,
) -> None:
    """``manage.py check --database default`` (and ``migrate``) as a user runs it, through PgBouncer:
    the default options are warned of, a backend with both off is not."""
    env = subprocess_env(
        DJANGO_SETTINGS_MODULE="tests.django.pg_settings",
        WORKFLOWS_TEST_DATABASE=json.dumps({"PORT": str(pgbouncer.port)}),
        WORKFLOWS_TEST_BACKENDS=json.dumps({"quiet": {"notifications": False, "prepared_statements": False}}),
    )
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "manage.py"), "check", "--database", "default"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    warned = set(re.findall(r"\(django_workflows\.(W00[45])\) The workflow backend '(\w+)'", out.stdout + out.stderr))
    assert warned == {("W004", "default"), ("W005", "default")}, out.stdout + out.stderr
    # A direct connection: nothing to warn of, whatever the options.
    assert behind_pooler("default") is False
    with override_settings(WORKFLOWS={"default": {"BACKEND": "django_workflows.backends.orm.OrmBackend"}}):
        messages = checks.run_checks(tags=[checks.Tags.database], databases=["default"])
    assert not {m.id for m in messages} & {"django_workflows.W004", "django_workflows.W005"}
