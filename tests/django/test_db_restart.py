"""A worker survives a restart of the MariaDB server and dropped connections (reliability.md F4).

Each test runs its own MariaDB server in a temporary directory, so restarting it cannot disturb
the server the rest of the suite (and other tox environments) share.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, ManageProcess, wait_for
from tests.django.private_servers import PrivateMariaDB, manage_env, mariadb_env

pytestmark = [
    pytest.mark.mysql,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("mariadbd") is None, reason="needs the mariadb-server package (mariadbd)"),
    pytest.mark.skipif(os.environ.get("DB") != "mysql", reason="runs in the MySQL tox environments only"),
]

FAST_LEASES = {"workflow_lock_timeout": 2, "activity_lock_timeout": 2, "sticky_timeout": 0}


@pytest.fixture
def mariadb(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    server = PrivateMariaDB(tmp_path / "mariadb")
    server.start()
    server.create_database()
    yield server
    server.stop()


def _env(server: PrivateMariaDB, **extra: str) -> dict[str, str]:
    return manage_env(mariadb_env(server), FAST_LEASES, **extra)


def _manage(server: PrivateMariaDB, tmp_path: Path, *args: str) -> ManageProcess:
    return ManageProcess(list(args), _env(server), tmp_path / f"{args[0]}-{time.monotonic_ns()}.log")


def _result(server: PrivateMariaDB, instance_id: str) -> str:
    script = (
        "import django; django.setup();"
        "from django_workflows.client import Client;"
        f"print(Client().get_workflow_result({instance_id!r}, timeout=120))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
        env=_env(server, DJANGO_SETTINGS_MODULE="testproject.settings"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().splitlines()[-1]


def _start(server: PrivateMariaDB, tmp_path: Path, instance_id: str, ledger: Path, gate: Path) -> None:
    starter = _manage(
        server, tmp_path, "startworkflow", "ledger_workflow", str(ledger), "3", "2", str(gate), "--instance-id", instance_id
    )
    assert starter.wait(60) == 0, starter.output()
    starter.close()


def test_worker_survives_a_database_restart(mariadb: PrivateMariaDB, tmp_path: Path):
    migrate = _manage(mariadb, tmp_path, "migrate", "-v0")
    assert migrate.wait(120) == 0, migrate.output()
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    _start(mariadb, tmp_path, "restart-1", ledger, gate)
    worker = _manage(mariadb, tmp_path, "runworkflows")
    try:
        wait_for(lambda: ledger.exists() and "start 2" in ledger.read_text(), timeout=60, what="activity 2 to start")
        mariadb.stop()  # every connection of the worker dies with the server
        time.sleep(1)
        mariadb.start()
        gate.touch()
        assert _result(mariadb, "restart-1") == "[1, 2, 3]"
        assert worker.proc.poll() is None, "the worker must still be running"
    finally:
        worker.send(signal.SIGTERM)
        worker.wait(60)
        if worker.proc.returncode:
            print(worker.output())
        worker.close()


def test_worker_survives_dropped_connections(mariadb: PrivateMariaDB, tmp_path: Path):
    migrate = _manage(mariadb, tmp_path, "migrate", "-v0")
    assert migrate.wait(120) == 0, migrate.output()
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    _start(mariadb, tmp_path, "dropped-1", ledger, gate)
    worker = _manage(mariadb, tmp_path, "runworkflows")
    try:
        wait_for(lambda: ledger.exists() and "start 2" in ledger.read_text(), timeout=60, what="activity 2 to start")
        ids = mariadb.sql("SELECT id FROM information_schema.processlist WHERE user = 'wf'").stdout.split()
        assert ids, "the worker has database connections to drop"
        for connection_id in ids:
            mariadb.sql(f"KILL CONNECTION {int(connection_id)}", check=False)
        gate.touch()
        assert _result(mariadb, "dropped-1") == "[1, 2, 3]"
        assert worker.proc.poll() is None, "the worker must still be running"
    finally:
        worker.send(signal.SIGTERM)
        worker.wait(60)
        worker.close()
