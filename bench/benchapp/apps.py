"""App config of the bench app: installs the counters in worker processes that ask for them."""

from __future__ import annotations

import atexit
import os
import sys
import time
from typing import Any

from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "bench.benchapp"
    label = "benchapp"
    verbose_name = "django_workflows benchmark"

    def ready(self) -> None:
        from bench import counting

        switch = os.environ.get("BENCH_SWITCH_INTERVAL")
        if switch:
            # An experiment knob (see bench/README.md): how long a thread that wants the GIL
            # back after I/O waits for a busy one to yield.
            sys.setswitchinterval(float(switch))

        if os.environ.get("BENCH_CPROFILE"):
            _profile_every_thread(os.environ["BENCH_CPROFILE"])

        if not counting.enabled():
            return
        from django.conf import settings
        from django.utils.module_loading import import_string

        from bench import optiming

        if optiming.enabled():
            optiming.install(import_string(settings.WORKFLOWS["default"]["BACKEND"]))
        from django.db.backends.signals import connection_created

        if settings.STORE == "redis":
            counting.install_redis_counter()
        else:
            connection_created.connect(_count_sqlite_connection, dispatch_uid="bench-sqlite-counter")
            if counting.shapes_enabled():
                connection_created.connect(_count_shapes, dispatch_uid="bench-sql-shapes")
        counting.write_counts_at_exit()
        # Registered after the writer, so it runs before it (atexit is last in, first out).
        atexit.register(_count_backend_retries)


def _profile_every_thread(directory: str) -> None:
    """A profiling aid (``BENCH_CPROFILE=<dir>``): cProfile in every thread started from now on,
    the merged statistics written to ``<dir>/worker-<pid>.prof`` at exit (``pstats`` reads it).
    Timed by thread CPU (waiting is not in it); cProfile slows every Python call, so it tells
    where the CPU goes, not the real speed."""
    import cProfile
    import pstats
    import threading

    profilers: list[cProfile.Profile] = []

    def start(frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        profiler = cProfile.Profile(time.thread_time)
        profilers.append(profiler)
        profiler.enable()

    threading.setprofile(start)

    def dump() -> None:
        threading.setprofile(None)  # type: ignore[arg-type]
        stats = None
        for profiler in list(profilers):
            try:
                stats = pstats.Stats(profiler) if stats is None else stats.add(profiler)
            except (TypeError, ValueError):  # a thread that never got to run a call
                continue
        if stats is not None:
            os.makedirs(directory, exist_ok=True)
            stats.dump_stats(os.path.join(directory, f"worker-{os.getpid()}.prof"))

    atexit.register(dump)


def _count_backend_retries() -> None:
    """The ORM backend's count of transactions it ran again after a lock conflict."""
    from bench import counting
    from django_workflows.backends import workflow_backends

    for alias in workflow_backends:
        retries = getattr(workflow_backends[alias], "retries", None)
        if isinstance(retries, int):
            counting.bump("backend_retries", retries)


def _count_shapes(sender: Any, connection: Any, **kwargs: Any) -> None:
    from bench import counting

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            counting.count_shape(sql, time.perf_counter() - start)

    if wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(wrapper)


def _count_sqlite_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # MariaDB and PostgreSQL are counted by the server (per database); SQLite has no server.
    if connection.vendor == "sqlite":
        from bench import counting

        counting.install_sqlite_counter(connection.connection)
