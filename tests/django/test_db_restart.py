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

pytestmark = [
    pytest.mark.mysql,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("mariadbd") is None, reason="needs the mariadb-server package (mariadbd)"),
    pytest.mark.skipif(os.environ.get("DB") != "mysql", reason="runs in the MySQL tox environments only"),
]

FAST_LEASES = {"workflow_lock_timeout": 2, "activity_lock_timeout": 2, "sticky_timeout": 0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateMariaDB:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.socket = root / "mysqld.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={root / 'data'}",
             "--auth-root-authentication-method=socket", "--skip-test-db"],
            check=True, capture_output=True,
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--user=root", f"--datadir={self.root / 'data'}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--log-error={self.root / 'error.log'}",
             "--skip-name-resolve", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
             "--innodb-buffer-pool-size=32M"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.sql("SELECT 1", check=False).returncode == 0, timeout=60, what="MariaDB to start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)

    def sql(self, statement: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mariadb", "--no-defaults", "-hlocalhost", f"--socket={self.socket}", "-uroot", "-N", "-e", statement],
            check=check, capture_output=True, text=True,
        )


@pytest.fixture
def mariadb(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    server = PrivateMariaDB(tmp_path / "mariadb")
    server.start()
    server.sql(
        "CREATE DATABASE wf CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
        "CREATE USER 'wf'@'127.0.0.1' IDENTIFIED BY 'wf-pw'; GRANT ALL ON *.* TO 'wf'@'127.0.0.1';"
    )
    yield server
    server.stop()


def _env(server: PrivateMariaDB, **extra: str) -> dict[str, str]:
    import json

    env = dict(os.environ)
    env.update(
        DB="mysql", MYSQL_HOST="127.0.0.1", MYSQL_PORT=str(server.port), MYSQL_USER="wf", MYSQL_PASSWORD="wf-pw",
        MYSQL_DATABASE="wf", WORKFLOWS_OPTIONS=json.dumps(FAST_LEASES), PYTHONUNBUFFERED="1",
        TESTPROJECT_TEST_APPS="1",
    )
    env.update(extra)
    return env


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
