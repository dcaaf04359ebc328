"""Django settings of the benchmark (``DJANGO_SETTINGS_MODULE=bench.settings``).

The bench driver and the ``runworkflows`` workers it starts share these settings; environment
variables choose the store of one run:

- ``BENCH_STORE``: ``sqlite`` (default), ``mysql``, ``postgres`` or ``redis``; the ORM backend
  on that database, or the Redis backend.
- ``BENCH_MYSQL_DB`` / ``BENCH_PG_DB`` (or ``BENCH_DB_NAME`` for both): the MariaDB/PostgreSQL
  database (default ``wfbench``), which the driver drops and creates before every run;
  ``BENCH_SQLITE_PATH``: the SQLite file (default ``bench/.data/ours.sqlite3``), deleted before
  every run.
- ``BENCH_REDIS_DB`` (default 15) or ``BENCH_REDIS_URL``: the Redis database, flushed before
  every run, so the bench never touches database 0 that the tests use. See ``bench.stores``.
- ``BENCH_WORKFLOWS_OPTIONS``: JSON merged into the backend's OPTIONS.
- ``BENCH_COUNT_FILE`` / ``BENCH_READY_FILE``: set by the driver for each worker (see
  ``bench.counting`` and ``bench.readiness``).

Connection details of the servers come from the same variables as ``testproject.settings``
(``MYSQL_*``, ``PG*``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.stores import database_name, redis_url

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR") or BASE_DIR / ".data")

SECRET_KEY = "django-insecure-bench-only"
DEBUG = False  # DEBUG would keep every query in memory
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_workflows",
    "bench.benchapp",
]

STORES = ("sqlite", "mysql", "postgres", "redis")
STORE = os.environ.get("BENCH_STORE", "sqlite").strip().lower()
if STORE not in STORES:
    raise ValueError(f"BENCH_STORE must be one of {', '.join(STORES)}, not {STORE!r}")
DB_NAME = database_name(STORE) if STORE in ("mysql", "postgres") else ""

# Workers keep their connections: runworkflows calls close_old_connections() before every task,
# which with the default CONN_MAX_AGE=0 would reconnect for every task.
_PERSISTENT = {"CONN_MAX_AGE": None, "CONN_HEALTH_CHECKS": False}


def sqlite_database(path: str | Path) -> dict[str, object]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            # As recommended for the ORM backend (and as in testproject): writers queue at BEGIN.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        **_PERSISTENT,
    }


if STORE == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MYSQL_PORT", "3306"),
            "USER": os.environ.get("MYSQL_USER", "djapp"),
            "PASSWORD": os.environ.get("MYSQL_PASSWORD", "djapp-pw"),
            "NAME": DB_NAME,
            "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},
            **_PERSISTENT,
        }
    }
elif STORE == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "USER": os.environ.get("PGUSER", "djapp"),
            "PASSWORD": os.environ.get("PGPASSWORD", "djapp-pw"),
            "NAME": DB_NAME,
            **_PERSISTENT,
        }
    }
elif STORE == "sqlite":
    DATABASES = {"default": sqlite_database(os.environ.get("BENCH_SQLITE_PATH") or DATA_DIR / "ours.sqlite3")}
else:
    # The Redis backend keeps nothing in the database; Django still wants one.
    DATABASES = {"default": sqlite_database(DATA_DIR / "redis-run-django.sqlite3")}

REDIS_URL = redis_url()
CACHES: dict[str, dict[str, object]] = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if STORE == "redis":
    # Only where the backend uses it: Django's system checks build every cache, and importing
    # django-redis (redis-py) cost each worker on the SQL stores 0.1-0.2 s of CPU at start-up,
    # about 0.5 ms per activity of the tree's 512 on two workers.
    CACHES["workflows"] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }

_options = json.loads(os.environ.get("BENCH_WORKFLOWS_OPTIONS") or "{}")
if STORE == "redis":
    WORKFLOWS = {
        "default": {
            "BACKEND": "django_workflows.backends.redis.RedisBackend",
            "OPTIONS": {"connection": "workflows", **_options},
        }
    }
else:
    WORKFLOWS = {"default": {"BACKEND": "django_workflows.backends.orm.OrmBackend", "OPTIONS": _options}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "ready": {"class": "bench.readiness.ReadyFileHandler"},
    },
    "loggers": {
        # Warnings and errors only: logging every task would be part of what we time.
        "django_workflows": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django_workflows.runner": {"handlers": ["console", "ready"], "level": "INFO", "propagate": False},
    },
}
