"""``runworkflows`` when its store goes away: on MariaDB, PostgreSQL and Redis servers that each test
owns (stopped and started again by the test), the worker retries with capped exponential backoff
and logs one line per backoff step, picks up work again when the server is back, and exits with
status 1 after ``--max-outage`` seconds of outage so that a supervisor restarts it.

SQLite has no server to lose: an open SQLite connection keeps working when its file is removed or
its permissions change (and the tests run as root, which ignores permissions), so a worker on
SQLite meets an "outage" only as a database that stays locked; ``test_sqlite_store_locked_too_long``
holds the write lock from another process instead.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.django.private_servers import (
    PrivateMariaDB,
    PrivatePostgres,
    PrivateRedis,
    Processes,
    manage_env,
    mariadb_env,
    missing_postgres,
    missing_redis,
)

pytestmark = [pytest.mark.slow]

MAX_OUTAGE = 6
FAST = {"workflow_lock_timeout": 3, "activity_lock_timeout": 3, "sticky_timeout": 0}
STEP_LINE = re.compile(r"store unreachable for [\d.]+ s \((.+)\); next (workflow|activity) poll in [\d.]+ s, giving up after 6 s")
SCHEDULER_STEP_LINE = re.compile(r"the scheduler failed to fire due schedules \((.+)\); retrying in [\d.]+ s")
# PostgreSQL's notification listener backs off on steps of its own (2, 4... s), one line each.
LISTENER_STEP_LINE = re.compile(r"listening for notifications on '\w+' failed \((.+)\); polling until it reconnects in [\d.]+ s")
# A query that finds its connection gone reconnects once before it reports the failure to its
# poller: at most one such line per poller step.
RECONNECT_LINE = re.compile(r"database connection '\w+' was lost; retrying once")
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _records(lines: list[str]) -> list[str]:
    """Log records, each with its continuation lines (a driver's message may span several)."""
    records: list[str] = []
    for line in lines:
        if RECORD_START.match(line) or not records:
            records.append(line)
        else:
            records[-1] += " " + line.strip()
    return records


def _lines(output: str, pattern: re.Pattern[str] | str) -> list[str]:
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    return [line for line in output.splitlines() if regex.search(line)]


def _quickstart(processes: Processes, instance_id: str) -> None:
    out = processes.run("startworkflow", "Workflow1", "x", "--instance-id", instance_id, "--wait", "90", timeout=150)
    assert "Workflow completed with result: 59" in out


def outage_story(processes: Processes, stop: Callable[[], None], start: Callable[[], None]) -> None:
    """The same story on every store: work, a short outage the worker rides out, work again, then
    an outage longer than --max-outage that ends the worker with status 1."""
    worker = processes.start("runworkflows", "--max-outage", str(MAX_OUTAGE))
    _quickstart(processes, "before-outage")

    stop()
    wait_for(lambda: _lines(worker.output(), STEP_LINE), timeout=60, what="the worker to notice the outage")
    start()
    wait_for(lambda: "store reachable again" in worker.output(), timeout=90, what="the worker to recover")
    assert worker.proc.poll() is None, worker.output()
    _quickstart(processes, "after-outage")

    before = len(worker.output().splitlines())
    stop()
    stopped_at = time.monotonic()
    assert worker.wait(120) == 1, worker.output()
    waited = time.monotonic() - stopped_at
    output = worker.output()
    tail = output.splitlines()[before:]
    records = _records(tail)
    shown = "\n".join(tail)

    def kind(pattern: re.Pattern[str]) -> list[str]:
        return [record for record in records if pattern.search(record)]

    steps = kind(STEP_LINE)
    # One line per backoff step (0.5, 1, 2, 4 s... capped at the 6 s limit) of each kind of
    # poller, however many pollers fail how often: a handful, not one per poll.
    assert 2 <= len(steps) <= 12, shown
    # The scheduler backs off on its own steps (0.2, 0.4... capped at 5 s), one line each, and
    # so does PostgreSQL's notification listener.
    scheduler_steps = kind(SCHEDULER_STEP_LINE)
    assert len(scheduler_steps) <= 8, shown
    listener_steps = kind(LISTENER_STEP_LINE)
    assert len(listener_steps) <= 4, shown
    stepped = len(steps) + len(scheduler_steps) + len(listener_steps)
    reconnects = kind(RECONNECT_LINE)
    assert len(reconnects) <= stepped + 4, shown
    assert len(records) <= stepped + len(reconnects) + 12, shown
    assert "Traceback" not in output, output
    assert waited >= MAX_OUTAGE, f"exited {waited:.1f} s after the outage began, before --max-outage"
    assert "CommandError: the workflow store was unreachable for" in output
    assert "max_outage 6 s" in output and "supervisor can restart the worker" in output


@pytest.mark.mysql
@pytest.mark.skipif(shutil.which("mariadbd") is None, reason="needs the mariadb-server package (mariadbd)")
@pytest.mark.skipif(os.environ.get("DB") != "mysql", reason="runs in the MySQL environments (it starts its own MariaDB)")
def test_mariadb_outage(tmp_path: Path) -> None:
    server = PrivateMariaDB(tmp_path / "mariadb")
    server.start()
    server.create_database()
    processes = Processes(tmp_path, manage_env(mariadb_env(server), FAST))
    try:
        processes.run("migrate", "-v0")
        outage_story(processes, server.stop, server.start)
    finally:
        processes.close()
        server.stop()


@pytest.mark.postgres
@pytest.mark.skipif(bool(missing_postgres()), reason=missing_postgres() or "postgres present")
@pytest.mark.skipif(
    os.environ.get("DB") not in ("postgres", "postgresql"),
    reason="runs in the PostgreSQL environments (it starts its own PostgreSQL)",
)
def test_postgres_outage(tmp_path: Path) -> None:
    server = PrivatePostgres()
    processes: Processes | None = None
    try:
        server.start()
        server.sql("CREATE DATABASE wf")
        processes = Processes(tmp_path, manage_env(server.env(), FAST))
        processes.run("migrate", "-v0")
        outage_story(processes, server.stop, server.start)
    finally:
        if processes is not None:
            processes.close()
        server.destroy()


@pytest.mark.redis
@pytest.mark.skipif(bool(missing_redis()), reason=missing_redis() or "redis present")
def test_redis_outage(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    # The ORM database is not used by the Redis backend; a file of its own keeps it apart.
    env = manage_env({**server.env(), "DB": "sqlite", "SQLITE_PATH": str(tmp_path / "unused.sqlite3")}, FAST)
    processes = Processes(tmp_path, env)
    try:
        outage_story(processes, server.stop, server.start)
    finally:
        processes.close()
        server.stop()


@pytest.mark.skipif(os.environ.get("DB", "sqlite") != "sqlite", reason="runs in the SQLite environments")
def test_sqlite_store_locked_too_long(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock (a stuck migration, a long manual transaction)
    while a timer falls due: the worker's claims fail after the busy timeout, it logs the outage
    once per backoff step, and it exits after --max-outage."""
    database = tmp_path / "wf.sqlite3"
    env = manage_env(
        {"DB": "sqlite", "SQLITE_PATH": str(database)},
        {**FAST, "lock_retry_timeout": 0},
        DJANGO_SETTINGS_MODULE="tests.django.outage_settings",
    )
    processes = Processes(tmp_path, env)
    holder: subprocess.Popen[str] | None = None
    try:
        processes.run("migrate", "-v0")
        worker = processes.start("runworkflows", "--max-outage", "2")
        _quickstart(processes, "before-lock")
        # Its reminder timer falls due 3 s after the worker scheduled it (outage_settings).
        processes.run("startworkflow", "order_workflow", "999", "--instance-id", "timer-due")
        wait_for(lambda: _timer_scheduled(database), timeout=60, what="the reminder timer to be scheduled")
        holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(database)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert worker.wait(180) == 1, worker.output()
        output = worker.output()
        # Whichever poller meets the lock first (under load, the activity poller may give up the
        # worker before the workflow poller logs a step).
        steps = _lines(output, r"store unreachable for .*database is locked.*next (workflow|activity) poll")
        assert 1 <= len(steps) <= 8, output  # a few per poller, not one per poll
        assert "store reachable again" not in output, output
        assert "CommandError: the workflow store was unreachable for" in output
        assert "Traceback" not in output, output
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(30)
        processes.close()


def _timer_scheduled(database: Path) -> bool:
    with sqlite3.connect(database, timeout=5) as connection:
        row = connection.execute(
            "SELECT COUNT(*) FROM django_workflows_historyevent WHERE event_type = 'TimerScheduled'"
        ).fetchone()
    return bool(row[0])


_HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(600)
"""
