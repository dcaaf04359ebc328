"""App config of the bench app: installs the counters in worker processes that ask for them."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "bench.benchapp"
    label = "benchapp"
    verbose_name = "django_workflows benchmark"

    def ready(self) -> None:
        from bench import counting

        if not counting.enabled():
            return
        from django.conf import settings
        from django.db.backends.signals import connection_created

        if settings.STORE == "redis":
            counting.install_redis_counter()
        else:
            connection_created.connect(_count_sqlite_connection, dispatch_uid="bench-sqlite-counter")
        counting.write_counts_at_exit()


def _count_sqlite_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # MariaDB and PostgreSQL are counted by the server (per database); SQLite has no server.
    if connection.vendor == "sqlite":
        from bench import counting

        counting.install_sqlite_counter(connection.connection)
