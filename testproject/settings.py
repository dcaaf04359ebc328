"""Settings of the test and example project.

The database is picked by the ``DB`` environment variable: ``sqlite`` (default), ``mysql``
or ``postgres``; connection details come from the same variables that ``.ci/services.sh``
exports. Test database names carry the tox environment and pytest-xdist worker, so that
parallel tox environments sharing one server never collide.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _module_exists(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _test_db_suffix() -> str:
    suffix = (
        re.sub(r"[^A-Za-z0-9]+", "_", os.environ.get("TOX_ENV_NAME", "")).strip("_")
        or "local"
    )
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        suffix += "_" + re.sub(r"[^A-Za-z0-9]+", "_", worker)
    return suffix


SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-testproject-only-never-in-production"
)
DEBUG = _env_flag("DJANGO_DEBUG", True)
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_workflows",
]
if _module_exists("testproject.example"):
    INSTALLED_APPS.append("testproject.example")
# Workflows and activities that the tests run in worker subprocesses (crashes, slow work): only
# under pytest and in the subprocesses the tests start, so the example worker does not list them.
if "pytest" in sys.modules or _env_flag("TESTPROJECT_TEST_APPS", False):
    INSTALLED_APPS.append("testproject.testapp")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"
WSGI_APPLICATION = "testproject.wsgi.application"
ASGI_APPLICATION = "testproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- databases -------------------------------------------------------------------------
DB = os.environ.get("DB", "sqlite").strip().lower()
_SUFFIX = _test_db_suffix()
_CHECKOUT = hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:8]

if DB == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH") or BASE_DIR / "db.sqlite3",
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so two writers wait on each other
                # (up to "timeout") instead of failing with "database is locked" on upgrade.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not :memory:, so worker subprocesses started by tests see the test data; in
            # the temporary directory, so a test run leaves no files in the checkout (the hash
            # of the checkout's path keeps two checkouts apart).
            "TEST": {"NAME": Path(tempfile.gettempdir()) / f"django_workflows-{_CHECKOUT}-test_db_{_SUFFIX}.sqlite3"},
        }
    }
elif DB == "mysql":
    _mysql_db = os.environ.get("MYSQL_DATABASE", "djapp")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MYSQL_PORT", "3306"),
            "USER": os.environ.get("MYSQL_USER", "djapp"),
            "PASSWORD": os.environ.get("MYSQL_PASSWORD", "djapp-pw"),
            "NAME": _mysql_db,
            "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},
            "TEST": {
                "CHARSET": "utf8mb4",
                "COLLATION": "utf8mb4_unicode_ci",
                "NAME": f"test_{_mysql_db}_{_SUFFIX}",
            },
        }
    }
elif DB in {"postgres", "postgresql"}:
    _pg_db = os.environ.get("PGDATABASE", "djapp")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "USER": os.environ.get("PGUSER", "djapp"),
            "PASSWORD": os.environ.get("PGPASSWORD", "djapp-pw"),
            "NAME": _pg_db,
            "TEST": {"NAME": f"test_{_pg_db}_{_SUFFIX}"},
        }
    }
else:
    raise ValueError(f"DB must be sqlite, mysql or postgres, not {DB!r}")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- caches ----------------------------------------------------------------------------
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}
if _module_exists("django_redis"):
    CACHES["workflows"] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }

# --- workflows -------------------------------------------------------------------------
# WORKFLOWS_BACKEND=orm|redis picks the default backend; WORKFLOWS_OPTIONS (JSON) adds options,
# e.g. '{"workflow_lock_timeout": 2}' for worker processes in crash-recovery tests.
WORKFLOWS_BACKEND = os.environ.get("WORKFLOWS_BACKEND", "orm").strip().lower()
_workflow_options = json.loads(os.environ.get("WORKFLOWS_OPTIONS") or "{}")
if WORKFLOWS_BACKEND == "redis":
    WORKFLOWS = {
        "default": {
            "BACKEND": "django_workflows.backends.redis.RedisBackend",
            "OPTIONS": {"connection": "workflows", **_workflow_options},
        },
    }
elif WORKFLOWS_BACKEND == "orm":
    WORKFLOWS = {
        "default": {
            "BACKEND": "django_workflows.backends.orm.OrmBackend",
            "OPTIONS": _workflow_options,
        },
    }
else:
    raise ValueError(f"WORKFLOWS_BACKEND must be orm or redis, not {WORKFLOWS_BACKEND!r}")

# --- django.tasks -----------------------------------------------------------------------
# Enqueued tasks run in runworkflows workers (django_workflows.tasks); on Django 5.2 with the
# django-tasks backport installed as well. Retries and timeouts are per task in testapp.tasks.
if _module_exists("django.tasks") or _module_exists("django_tasks"):
    TASKS = {
        "default": {
            "BACKEND": "django_workflows.tasks.WorkflowsTaskBackend",
            "QUEUES": ["default", "other"],
            "OPTIONS": {"max_attempts": 1},
        },
    }
    if not _module_exists("django.tasks"):
        INSTALLED_APPS.append("django_tasks")  # the backport's system checks

# --- i18n, static ----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

# --- logging ---------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "django_workflows": {
            "handlers": ["console"],
            "level": os.environ.get("WORKFLOWS_LOG_LEVEL", "INFO").upper(),
            "propagate": False,
        },
    },
}
