"""The four stores, seen from the bench: fresh databases, server counters, raw commit rate.

Uses the plain drivers (sqlite3, MySQLdb, psycopg, redis), not Django, so that it works for both
engines and in the process that only coordinates. Connection details come from the same
environment variables as ``testproject.settings`` (``MYSQL_*``, ``PG*``).

Database names (so that two benches can share the servers, each with names of its own): every
MariaDB/PostgreSQL database the bench drops and creates, and the Redis database it flushes, come
from the environment (``database_name``, ``redis_url``), with these defaults:

- ``BENCH_MYSQL_DB`` / ``BENCH_PG_DB``: ours (default ``wfbench``; ``BENCH_DB_NAME`` sets both);
- ``BENCH_PG_DBOS_DB``: DBOS's system database (default ``wfbench_dbos``; DBOS's SQLite file is
  in the run directory);
- ``BENCH_MYSQL_RAW_DB`` / ``BENCH_PG_RAW_DB``: the raw commit probe's (default ``wfbench_raw``);
- ``BENCH_REDIS_DB``: the Redis database number (default 15, on ``REDIS_HOST``/``REDIS_PORT``);
  ``BENCH_REDIS_URL`` overrides the whole URL.

Server counters (read before and after a run, as deltas):

- PostgreSQL: ``pg_stat_database.xact_commit + xact_rollback`` of the bench database only:
  every transaction, read-only autocommit statements included. PostgreSQL publishes a backend's
  counts when it goes idle (at most once a second) or exits, so read them after the workers exit.
- MariaDB: ``SHOW GLOBAL STATUS`` ``Com_commit + Com_rollback`` (explicit COMMIT/ROLLBACK only:
  a statement run in autocommit mode is not counted) and ``Questions`` (statements sent by
  clients), with InnoDB's deadlock and row-lock-wait counters. They are server-wide, so other
  clients running at the same time inflate them.
- Redis: ``INFO commandstats`` calls per command. Server-wide, and commands that Lua scripts run
  are counted too; round trips are counted in the workers instead (``bench.counting``).
- SQLite has no server: see ``bench.counting``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STORES = ("sqlite", "mysql", "postgres", "redis")
#: Stores DBOS can use as its system database.
DBOS_STORES = ("sqlite", "postgres")
RAW_COMMIT_SECONDS = 2.0


def mysql_params() -> dict[str, Any]:
    return {
        "host": os.environ.get("MYSQL_HOST", "127.0.0.1"),
        "port": int(os.environ.get("MYSQL_PORT", "3306")),
        "user": os.environ.get("MYSQL_USER", "djapp"),
        "password": os.environ.get("MYSQL_PASSWORD", "djapp-pw"),
    }


def pg_params() -> dict[str, Any]:
    return {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": int(os.environ.get("PGPORT", "5432")),
        "user": os.environ.get("PGUSER", "djapp"),
        "password": os.environ.get("PGPASSWORD", "djapp-pw"),
    }


def pg_url(dbname: str) -> str:
    p = pg_params()
    return f"postgresql://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{dbname}"


#: (store, role) -> (environment variable, default name); see the module docstring.
DATABASE_NAMES = {
    ("mysql", "ours"): ("BENCH_MYSQL_DB", "wfbench"),
    ("postgres", "ours"): ("BENCH_PG_DB", "wfbench"),
    ("postgres", "dbos"): ("BENCH_PG_DBOS_DB", "wfbench_dbos"),
    ("mysql", "raw"): ("BENCH_MYSQL_RAW_DB", "wfbench_raw"),
    ("postgres", "raw"): ("BENCH_PG_RAW_DB", "wfbench_raw"),
}


def database_name(store: str, role: str = "ours") -> str:
    """The MariaDB/PostgreSQL database the bench uses for ``role`` (``ours``, ``dbos``, ``raw``)
    on ``store``: from its environment variable, else today's default. It is dropped and created
    for every run, so two benches sharing a server must give each other different names."""
    variable, default = DATABASE_NAMES[(store, role)]
    name = os.environ.get(variable) or (os.environ.get("BENCH_DB_NAME") if role == "ours" else None) or default
    _check_name(name)
    return name


def redis_url() -> str:
    """The Redis database the bench flushes for every run (never database 0, the tests')."""
    if os.environ.get("BENCH_REDIS_URL"):
        return os.environ["BENCH_REDIS_URL"]
    host = os.environ.get("REDIS_HOST", "127.0.0.1")
    port = os.environ.get("REDIS_PORT", "6379")
    return f"redis://{host}:{port}/{int(os.environ.get('BENCH_REDIS_DB', '15'))}"


@contextmanager
def mysql_connection(db: str | None = None) -> Iterator[Any]:
    import MySQLdb

    params = mysql_params()
    if db:
        params["database"] = db
    conn = MySQLdb.connect(charset="utf8mb4", **params)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def pg_connection(dbname: str = "postgres", autocommit: bool = True) -> Iterator[Any]:
    import psycopg

    conn = psycopg.connect(dbname=dbname, autocommit=autocommit, **pg_params())
    try:
        yield conn
    finally:
        conn.close()


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(redis_url())


# -- fresh databases ------------------------------------------------------------------------


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _check_name(name: str) -> None:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bench database names are letters, digits and _, not {name!r}")


def recreate_database(store: str, name: str) -> None:
    """Drop and create the MariaDB/PostgreSQL database ``name``."""
    _check_name(name)
    if store == "mysql":
        with mysql_connection() as conn:
            cur = conn.cursor()
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    elif store == "postgres":
        with pg_connection() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    else:
        raise ValueError(f"{store} has no server databases to recreate")


def drop_database(store: str, name: str) -> None:
    if store == "mysql":
        with mysql_connection() as conn:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    elif store == "postgres":
        with pg_connection() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis() -> None:
    client = redis_client()
    try:
        client.flushdb()
    finally:
        client.close()


# -- server counters ------------------------------------------------------------------------


def read_server_counters(store: str, dbname: str = "") -> dict[str, int]:
    if store == "postgres":
        with pg_connection() as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT xact_commit, xact_rollback, deadlocks FROM pg_stat_database WHERE datname = %s", (dbname,)
            ).fetchone()
        if row is None:
            raise RuntimeError(f"no pg_stat_database row for {dbname!r}")
        return {"pg_xact_commit": int(row[0]), "pg_xact_rollback": int(row[1]), "pg_deadlocks": int(row[2])}
    if store == "mysql":
        with mysql_connection() as conn:
            cur = conn.cursor()
            cur.execute(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_commit', 'Com_rollback', 'Questions',"
                " 'Innodb_deadlocks', 'Innodb_row_lock_waits', 'Innodb_row_lock_time')"
            )
            return {f"mysql_{name}": int(value) for name, value in cur.fetchall()}
    if store == "redis":
        client = redis_client()
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return {f"redis_{name.removeprefix('cmdstat_')}": int(v["calls"]) for name, v in stats.items()}
    return {}


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after)) if after.get(k, 0) != before.get(k, 0)}


def transactions(store: str, measured: Any) -> tuple[int | None, str]:
    """The number the table shows as transactions (or round trips) and what it is.

    On PostgreSQL the driver's completion polls (one autocommit SELECT each, on the bench
    database) are subtracted; on the other stores they are not counted in the first place.
    """
    server, client = measured.server_counters, measured.client_counters
    if store == "postgres":
        total = server.get("pg_xact_commit", 0) + server.get("pg_xact_rollback", 0) - measured.polls
        return total, "xact_commit+xact_rollback"
    if store == "mysql":
        return server.get("mysql_Com_commit", 0) + server.get("mysql_Com_rollback", 0), "Com_commit+Com_rollback"
    if store == "sqlite":
        if "sqlite_tx" not in client:
            return None, "not counted"
        return client["sqlite_tx"], "transactions begun (traced)"
    if "redis_round_trips" not in client:
        return None, "not counted"
    return client["redis_round_trips"], "round trips (client-side)"


def wait_for_pg_backends(dbname: str, timeout: float = 10) -> None:
    """Wait until no backend is connected to ``dbname``: a backend publishes its counters to
    ``pg_stat_database`` when it exits, so this comes before the final counter reading."""
    deadline = time.monotonic() + timeout
    with pg_connection() as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (dbname,)).fetchone()
            if row[0] == 0:
                return
            time.sleep(0.05)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far, or None if it is gone (or unreadable)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PgServerCpu:
    """CPU time of the PostgreSQL backend processes serving one database, for the table's
    server-CPU column. The bench runs on the server's machine, so it reads their ``/proc/<pid>/stat``.

    ``pg_stat_activity`` lists a database's backends by pid. Call ``sample`` before the workers
    start (the baseline: the driver's own connection has already worked, migrating and creating),
    then often while they run (every completion poll) and once before they stop: a backend's
    CPU is counted up to its last sample, minus its baseline. A backend that appears and exits
    between two samples is missed; the workers keep their connections for the whole run.
    Autovacuum workers on the database are counted too (they work for the bench)."""

    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        self._conn: Any = None
        self._baseline: dict[int, float] | None = None
        self._last: dict[int, float] = {}

    def sample(self) -> None:
        if self._conn is None:
            import psycopg

            self._conn = psycopg.connect(dbname="postgres", autocommit=True, **pg_params())
        pids = [int(r[0]) for r in self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.dbname,)).fetchall()]
        seen = {pid: cpu for pid in pids if (cpu := process_cpu_seconds(pid)) is not None}
        if self._baseline is None:
            self._baseline = seen
        self._last.update(seen)

    def seconds(self) -> float:
        baseline = self._baseline or {}
        return sum(cpu - baseline.get(pid, 0.0) for pid, cpu in self._last.items())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# -- raw commit rate ------------------------------------------------------------------------


def _loop(commit_one: Any, seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        commit_one(n)
        n += 1
        if n % 50 == 0 and time.perf_counter() >= deadline:
            break
    return n / (time.perf_counter() - start)


def raw_commit_rate(store: str, data_dir: Path, seconds: float = RAW_COMMIT_SECONDS) -> float:
    """Tiny INSERT + COMMIT in a tight loop on one connection, per second: the store's physical
    limit for anything that commits once per step. Redis: one SET per round trip, with the
    server's persistence settings as they are."""
    if store == "sqlite":
        path = data_dir / "raw-commit.sqlite3"
        remove_sqlite(path)
        conn = sqlite3.connect(path, isolation_level="IMMEDIATE")
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            conn.commit()

            def one(n: int) -> None:
                conn.execute("INSERT INTO t (v) VALUES (?)", ("x",))
                conn.commit()

            return _loop(one, seconds)
        finally:
            conn.close()
            remove_sqlite(path)
    if store == "mysql":
        raw_db = database_name("mysql", "raw")
        recreate_database("mysql", raw_db)
        try:
            with mysql_connection(raw_db) as conn:
                cur = conn.cursor()
                cur.execute("CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(8)) ENGINE=InnoDB")
                conn.autocommit(False)

                def one(n: int) -> None:
                    cur.execute("INSERT INTO t (v) VALUES (%s)", ("x",))
                    conn.commit()

                return _loop(one, seconds)
        finally:
            drop_database("mysql", raw_db)
    if store == "postgres":
        raw_db = database_name("postgres", "raw")
        recreate_database("postgres", raw_db)
        try:
            with pg_connection(raw_db, autocommit=False) as conn:
                conn.execute("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v TEXT)")
                conn.commit()

                def one(n: int) -> None:
                    conn.execute("INSERT INTO t (v) VALUES (%s)", ("x",))
                    conn.commit()

                return _loop(one, seconds)
        finally:
            drop_database("postgres", raw_db)
    if store == "redis":
        client = redis_client()
        try:

            def one(n: int) -> None:
                client.set("wfbench:raw", n)

            rate = _loop(one, seconds)
            client.delete("wfbench:raw")
            return rate
        finally:
            client.close()
    raise ValueError(f"unknown store {store!r}")


def server_versions() -> dict[str, str]:
    """Versions of the servers, for the results page; a server that does not answer is noted."""
    versions: dict[str, str] = {"sqlite": sqlite3.sqlite_version}
    try:
        with mysql_connection() as conn:
            cur = conn.cursor()
            cur.execute("SELECT VERSION()")
            versions["mysql"] = str(cur.fetchone()[0])
    # Any failure (driver missing, server down, bad credentials) is reported, not fatal: the
    # run may not use this store.
    except Exception as exc:  # noqa: BLE001
        versions["mysql"] = f"unavailable ({exc.__class__.__name__})"
    try:
        with pg_connection() as conn:
            versions["postgres"] = str(conn.execute("SHOW server_version").fetchone()[0])
    except Exception as exc:  # noqa: BLE001
        versions["postgres"] = f"unavailable ({exc.__class__.__name__})"
    try:
        client = redis_client()
        versions["redis"] = str(client.info("server")["redis_version"])
        client.close()
    except Exception as exc:  # noqa: BLE001
        versions["redis"] = f"unavailable ({exc.__class__.__name__})"
    return versions
