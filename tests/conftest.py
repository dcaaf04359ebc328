"""Shared pytest helpers for the whole test suite."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_ROOT / "django_workflows"
#: Where tests put files for a human to look at (browser screenshots): outside the checkout, so
#: a test run leaves nothing in it. ``WORKFLOWS_TEST_ARTIFACTS=tests/artifacts`` (git-ignored)
#: keeps them beside the tests instead.
ARTIFACTS_DIR = Path(os.environ.get("WORKFLOWS_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "django_workflows-test-artifacts")


def pytest_report_header(config: pytest.Config) -> str:
    # Say which database this run uses, so CI logs of parallel tox envs are easy to tell apart.
    from django.conf import settings

    db = settings.DATABASES["default"]
    return (
        f"django_workflows: DB={db['ENGINE'].rsplit('.', 1)[-1]} test NAME={db.get('TEST', {}).get('NAME')}"
        f"; artifacts in {ARTIFACTS_DIR}"
        + ("" if redis_tests_run_here() else "; the Redis tests run with DB=sqlite (deselected here)")
    )


# --- tests that need a server --------------------------------------------------------------


@functools.cache
def missing_redis() -> str:
    """Why the ``redis`` tests cannot run here, or "" when they can. Under CI they always run:
    there a Redis that does not answer is a failure, not a reason to skip."""
    if os.environ.get("CI"):
        return ""
    from django.conf import settings

    if "workflows" not in settings.CACHES:
        return "needs the django-redis package (pip install -e .[test]) for the 'workflows' cache"
    location = settings.CACHES["workflows"].get("LOCATION")
    try:
        from django_redis import get_redis_connection

        get_redis_connection("workflows").ping()
    except Exception as exc:  # any reason the server cannot be reached
        return f"needs a Redis server at REDIS_URL={location} (start one, or set REDIS_URL): {exc}"
    return ""


def redis_tests_run_here() -> bool:
    """The Redis store does not depend on the Django database, so its tests run in the DB=sqlite
    environments only (CI's default run has one per Django version), unless
    WORKFLOWS_REDIS_TESTS=all asks for them with every database."""
    return os.environ.get("DB", "sqlite") == "sqlite" or os.environ.get("WORKFLOWS_REDIS_TESTS") == "all"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not redis_tests_run_here():
        deselected = [item for item in items if item.get_closest_marker("redis")]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if not item.get_closest_marker("redis")]
    # Asked once, and only when some selected test needs it (a plain SQLite run on a machine
    # without Redis skips these tests with the reason instead of failing them).
    if not any(item.get_closest_marker("redis") for item in items):
        return
    reason = missing_redis()
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if item.get_closest_marker("redis"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


# --- worker subprocesses -----------------------------------------------------------------


def subprocess_env(workflow_options: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    """Environment for a ``manage.py`` subprocess that uses this test run's database."""
    from django.conf import settings
    from django.db import connection

    env = dict(os.environ)
    name = str(connection.settings_dict["NAME"])
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine.endswith("sqlite3"):
        env["DB"], env["SQLITE_PATH"] = "sqlite", name
    elif engine.endswith("mysql"):
        env["DB"], env["MYSQL_DATABASE"] = "mysql", name
    else:
        env["DB"], env["PGDATABASE"] = "postgres", name
    env["WORKFLOWS_OPTIONS"] = json.dumps(workflow_options or {})
    env["PYTHONUNBUFFERED"] = "1"
    env["TESTPROJECT_TEST_APPS"] = "1"  # the subprocess needs the test workflows
    env.setdefault("WORKFLOWS_LOG_LEVEL", "INFO")
    env.update(extra)
    return env


class ManageProcess:
    """A ``manage.py`` subprocess whose output goes to a file (printed if a test fails)."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "manage.py"), *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self._log.close()


@pytest.fixture
def manage(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., ManageProcess]]:
    """Start ``manage.py`` subprocesses on the test database; all are killed at teardown."""
    started: list[ManageProcess] = []

    def start(*args: str, workflow_options: dict[str, Any] | None = None, **env: str) -> ManageProcess:
        process = ManageProcess(
            list(args), subprocess_env(workflow_options, **env), tmp_path / f"manage-{len(started)}.log"
        )
        started.append(process)
        return process

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for process in started:
        process.close()
        if failed:
            # The log file, not process.output(): close() has closed the handle that flushes it.
            text = process.log_path.read_text(errors="replace")
            print(f"--- output of manage.py {' '.join(process.args)} ---\n{text}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    # Lets fixtures see whether the test body failed (to print subprocess logs).
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
