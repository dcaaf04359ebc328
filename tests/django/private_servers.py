"""Database and Redis servers that one test owns: started in a temporary directory on a free
port, so the test can stop and restart them without disturbing the servers the rest of the
suite (and other tox environments) share. The crash, outage and restart tests and the fault soak
(``tests.soak``, which runs outside pytest too) use them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT, ManageProcess, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_postgres() -> str:
    if not (PG_BIN / "postgres").exists():
        return f"needs PostgreSQL 15 server binaries in {PG_BIN}"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "PostgreSQL refuses to run as root, and runuser is not there to drop to the postgres user"
    return ""


def missing_redis() -> str:
    return "" if shutil.which("redis-server") else "needs redis-server"


class PrivateMariaDB:
    """A MariaDB server in ``root`` (root connects over its socket; ``create_database`` adds the
    ``wf`` database and user that ``mariadb_env`` describes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
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

    def create_database(self) -> None:
        self.sql(
            "CREATE DATABASE wf CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
            "CREATE USER 'wf'@'127.0.0.1' IDENTIFIED BY 'wf-pw'; GRANT ALL ON *.* TO 'wf'@'127.0.0.1';"
        )


def missing_mariadb() -> str:
    return "" if shutil.which("mariadbd") else "needs the mariadb-server package (mariadbd)"


class PrivatePostgres:
    """A PostgreSQL cluster with trust authentication on loopback (as the ``postgres`` OS user
    when the tests run as root: the server refuses to run as root)."""

    def __init__(self) -> None:
        # Not pytest's tmp_path: the postgres user cannot enter root's 0700 directories.
        self.root = Path(tempfile.mkdtemp(prefix="wf-pg-", dir="/tmp"))
        self.port = free_port()
        self.data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *args], check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c synchronous_commit=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "start", "-o", options)

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def sql(self, statement: str) -> None:
        # -d: not the PGDATABASE of the environment (CI exports the shared server's database).
        self._run(str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                  "-c", statement)

    def env(self) -> dict[str, str]:
        return {"DB": "postgres", "PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": "postgres",
                "PGPASSWORD": "", "PGDATABASE": "wf"}

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def missing_pgbouncer() -> str:
    if shutil.which("pgbouncer") is None and not Path("/usr/sbin/pgbouncer").exists():
        return "needs the pgbouncer package (.ci/services.sh installs it with WITH_POSTGRES=1)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "PgBouncer refuses to run as root, and runuser is not there to drop to the postgres user"
    return ""


def pgbouncer_version() -> tuple[int, ...]:
    """The installed PgBouncer's version, e.g. (1, 18, 0)."""
    out = subprocess.run([_pgbouncer(), "--version"], check=True, capture_output=True, text=True).stdout
    return tuple(int(part) for part in out.split()[1].split("."))


def _pgbouncer() -> str:
    return shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


class PrivatePgBouncer:
    """PgBouncer in front of a PostgreSQL server, on a free port of its own, with its own ini and
    user list (``user`` with ``password``, which it also logs in to the server with): every
    database name passes through to the server. ``pool_mode`` is PgBouncer's; ``settings`` adds
    lines to its ``[pgbouncer]`` section (``max_prepared_statements``, pool sizes)."""

    def __init__(
        self, server_host: str, server_port: int, user: str, password: str, *, pool_mode: str = "transaction",
        settings: dict[str, Any] | None = None,
    ) -> None:
        # Not pytest's tmp_path: PgBouncer refuses to run as root, and the postgres user cannot
        # enter root's 0700 directories.
        self.root = Path(tempfile.mkdtemp(prefix="wf-pgbouncer-", dir="/tmp"))
        self.port = free_port()
        self.log = self.root / "pgbouncer.log"
        self.proc: subprocess.Popen[bytes] | None = None
        (self.root / "userlist.txt").write_text(f'"{user}" "{password}"\n')
        lines = {
            "listen_addr": "127.0.0.1", "listen_port": self.port, "unix_socket_dir": "",
            "auth_type": "md5", "auth_file": self.root / "userlist.txt",
            "pool_mode": pool_mode, "max_client_conn": 2000, "default_pool_size": 10,
            "logfile": self.log, "pidfile": self.root / "pgbouncer.pid",
            # psycopg sends none of these, but other drivers do; they do not matter to a pooler.
            "ignore_startup_parameters": "extra_float_digits",
            **(settings or {}),
        }
        (self.root / "pgbouncer.ini").write_text(
            f"[databases]\n* = host={server_host} port={server_port}\n\n[pgbouncer]\n"
            + "".join(f"{key} = {value}\n" for key, value in lines.items())
        )
        if os.geteuid() == 0:
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, "postgres", "postgres")

    def start(self) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [*prefix, _pgbouncer(), str(self.root / "pgbouncer.ini")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_for(self._listens, timeout=30, what="PgBouncer to listen")

    def _listens(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"PgBouncer exited with {self.proc.returncode}:\n{self.log_text()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # runuser passes SIGTERM on to PgBouncer (which then closes its connections).
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A Redis server in ``root``. ``persistent``: with an append-only file written at every
    command, so that a restart (``stop`` then ``start``) keeps the data, as a production Redis
    for workflows must (``django_workflows.W020``); without it a restart empties the store."""

    def __init__(self, root: Path, persistent: bool = False) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", *persistence,
             "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=30, what="redis-server to start")

    def _answers(self) -> bool:
        out = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
        return out.stdout.strip() == "PONG"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def env(self) -> dict[str, str]:
        return {"WORKFLOWS_BACKEND": "redis", "REDIS_URL": f"redis://127.0.0.1:{self.port}/0"}


def mariadb_env(server: PrivateMariaDB) -> dict[str, str]:
    return {"DB": "mysql", "MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(server.port), "MYSQL_USER": "wf",
            "MYSQL_PASSWORD": "wf-pw", "MYSQL_DATABASE": "wf"}


def manage_env(store_env: dict[str, str], workflow_options: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``manage.py`` subprocess on a private store."""
    env = dict(os.environ)
    for name in ("DB", "SQLITE_PATH", "MYSQL_DATABASE", "PGDATABASE", "WORKFLOWS_BACKEND", "REDIS_URL"):
        env.pop(name, None)
    env.update(store_env)
    env.update(
        WORKFLOWS_OPTIONS=json.dumps(workflow_options or {}), PYTHONUNBUFFERED="1", TESTPROJECT_TEST_APPS="1",
        WORKFLOWS_LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


class Processes:
    """``manage.py`` subprocesses of one test, killed at the end."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.started: list[ManageProcess] = []

    def start(self, *args: str) -> ManageProcess:
        process = ManageProcess(list(args), self.env, self.log_dir / f"{args[0]}-{time.monotonic_ns()}.log")
        self.started.append(process)
        return process

    def run(self, *args: str, timeout: float = 120) -> str:
        """Run a command to its end; its output (it must succeed)."""
        process = self.start(*args)
        code = process.wait(timeout)
        assert code == 0, f"manage.py {' '.join(args)} exited {code}:\n{process.output()}"
        return process.output()

    def close(self) -> None:
        for process in self.started:
            process.close()


__all__ = ["REPO_ROOT", "PrivateMariaDB", "PrivatePgBouncer", "PrivatePostgres", "PrivateRedis", "Processes"]
