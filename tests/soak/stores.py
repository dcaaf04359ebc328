"""The store a soak runs on, owned by the soak: a SQLite file, or a MariaDB, PostgreSQL or Redis
server of its own (``tests.django.private_servers``) on a free port, so that restarting it
disturbs nobody else's tests and the soak starts from an empty store.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tests.django.private_servers import (
    PrivateMariaDB,
    PrivatePostgres,
    PrivateRedis,
    mariadb_env,
    missing_mariadb,
    missing_postgres,
    missing_redis,
)

BACKENDS = ("sqlite", "mysql", "postgres", "redis")


def missing(backend: str) -> str:
    """Why a soak on ``backend`` cannot run on this machine, or "" when it can."""
    if backend == "mysql":
        return missing_mariadb()
    if backend == "postgres":
        return missing_postgres()
    if backend == "redis":
        if not missing_redis() and shutil.which("redis-cli") is None:
            return "needs redis-cli"
        return missing_redis()
    return ""


class SoakStore:
    """One backend's store: ``start``, ``restart`` (stop the server, then start it on the same
    data), ``close``; ``env`` is what a ``manage.py`` process needs to use it."""

    def __init__(self, backend: str, root: Path) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.backend = backend
        self.root = root
        self._mariadb: PrivateMariaDB | None = None
        self._postgres: PrivatePostgres | None = None
        self._redis: PrivateRedis | None = None

    @property
    def uses_orm(self) -> bool:
        return self.backend != "redis"

    @property
    def can_restart(self) -> bool:
        """SQLite has no server: nothing to restart."""
        return self.backend != "sqlite"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.backend == "mysql":
            self._mariadb = PrivateMariaDB(self.root / "mariadb")
            self._mariadb.start()
            self._mariadb.create_database()
        elif self.backend == "postgres":
            self._postgres = PrivatePostgres()
            self._postgres.start()
            self._postgres.sql("CREATE DATABASE wf")
        elif self.backend == "redis":
            self._redis = PrivateRedis(self.root / "redis", persistent=True)
            self._redis.start()

    @property
    def env(self) -> dict[str, str]:
        if self._mariadb is not None:
            return {**mariadb_env(self._mariadb), "WORKFLOWS_BACKEND": "orm"}
        if self._postgres is not None:
            return {**self._postgres.env(), "WORKFLOWS_BACKEND": "orm"}
        # SQLite, and the Redis backend's (unused) database: a file of the soak's own.
        sqlite = {"DB": "sqlite", "SQLITE_PATH": str(self.root / "soak.sqlite3")}
        if self._redis is not None:
            return {**sqlite, **self._redis.env()}
        return {**sqlite, "WORKFLOWS_BACKEND": "orm"}

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server, wait ``down_for`` seconds, start it again on the same data."""
        server = self._mariadb or self._postgres or self._redis
        if server is None:
            raise ValueError("SQLite has no server to restart (--restart needs mysql, postgres or redis)")
        server.stop()
        time.sleep(down_for)
        server.start()

    def close(self) -> None:
        if self._mariadb is not None:
            self._mariadb.stop()
        if self._postgres is not None:
            self._postgres.destroy()
        if self._redis is not None:
            self._redis.stop()

