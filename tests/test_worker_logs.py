"""What a worker tells in its logs (docs/observability.md): one line per finished workflow, a
warning for every failed activity attempt and failed workflow, retries, with the ``extra`` fields
structured handlers read; and ``runworkflows`` in a project that configured no logging."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.backends.memory import MemoryBackend
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.errors import WorkflowError
from django_workflows.worker import Worker, WorkerOptions
from tests.conftest import REPO_ROOT

_calls: dict[str, int] = {}


def unreliable(key: str) -> str:
    _calls[key] = _calls.get(key, 0) + 1
    if _calls[key] == 1:
        raise ConnectionError("the payment service timed out")
    return "paid"


def refuse() -> None:
    raise workflow.PermanentError("card declined")


async def checkout(ctx: workflow.Context, key: str) -> str:
    retry = workflow.ActivityOptions(retry_options=workflow.RetryOptions(max_attempts=3))
    paid = await workflow.execute_activity(ctx, retry, unreliable, key)
    if key.startswith("decline"):
        await workflow.execute_activity(ctx, retry, refuse)
    return paid


def _run(key: str) -> Any:
    backend = MemoryBackend()
    worker = Worker(backend, WorkerOptions(workflow_pollers=1, activity_pollers=1, run_scheduler=False))
    worker.register_workflow(checkout)
    worker.register_activity(unreliable)
    worker.register_activity(refuse)
    with worker:
        client = Client(backend, registry=worker.registry)
        instance = client.create_workflow_instance(WorkflowInstanceOptions(instance_id=key), checkout, key)
        try:
            return instance, client.get_workflow_result(instance, timeout=30)
        except WorkflowError as error:
            return instance, error


def _records(caplog: Any) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "django_workflows.worker"]


def test_a_finished_workflow_and_a_retried_activity_are_logged_with_their_fields(caplog: Any) -> None:
    key = f"ok-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.INFO, logger="django_workflows"):
        instance, result = _run(key)
    assert result == "paid"
    records = _records(caplog)
    (failed,) = [r for r in records if "failed" in r.getMessage()]
    assert failed.levelno == logging.WARNING
    assert "activity unreliable (attempt 1)" in failed.getMessage()
    assert "ConnectionError: the payment service timed out" in failed.getMessage()
    assert "retry policy decides" in failed.getMessage()
    assert (failed.instance_id, failed.execution_id) == (instance.instance_id, instance.execution_id)
    assert (failed.activity, failed.attempt) == ("unreliable", 0)

    (retry,) = [r for r in records if r.getMessage().startswith("retrying activity")]
    assert retry.levelno == logging.INFO and "attempt 2" in retry.getMessage()
    assert (retry.workflow, retry.activity, retry.attempt) == ("checkout", "unreliable", 1)

    (done,) = [r for r in records if "completed" in r.getMessage()]
    assert done.levelno == logging.INFO and done.getMessage().startswith("workflow checkout completed")
    assert (done.instance_id, done.workflow, done.activity, done.attempt) == (instance.instance_id, "checkout", None, None)


def test_a_failed_workflow_and_a_permanent_failure_are_warnings(caplog: Any) -> None:
    key = f"decline-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.INFO, logger="django_workflows"):
        instance, result = _run(key)
    assert isinstance(result, WorkflowError)
    records = _records(caplog)
    (declined,) = [r for r in records if "activity refuse" in r.getMessage()]
    assert declined.levelno == logging.WARNING and "not retried: the error is permanent" in declined.getMessage()
    (ended,) = [r for r in records if r.getMessage().startswith("workflow checkout failed")]
    assert ended.levelno == logging.WARNING and "card declined" in ended.getMessage()
    assert (ended.instance_id, ended.workflow) == (instance.instance_id, "checkout")
    assert not [r for r in records if r.getMessage().startswith("retrying activity refuse")]


# A project as startproject makes it: no LOGGING for django_workflows, no handler anywhere.
_FRESH_PROJECT = r"""
import sys
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django_workflows"],
    DATABASES={},
    USE_TZ=True,
    WORKFLOWS={"default": {"BACKEND": "django_workflows.backends.memory.MemoryBackend"}},
)
django.setup()
from django.core.management import call_command

call_command("runworkflows", "--until-idle", "--queue", "mail", *sys.argv[1:])
"""


def _fresh_worker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _FRESH_PROJECT, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_runworkflows_logs_to_the_console_in_a_project_without_logging() -> None:
    done = _fresh_worker("--app-version", "2026.12.1")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    (started,) = [line for line in lines if " started (pid " in line]
    assert " INFO django_workflows.runner: worker " in started
    assert "workflow tasks from mail, _system_; activity tasks from mail, _system_" in started
    assert "app version 2026.12.1" in started
    assert any("INFO django_workflows.runner: worker stopped: " in line for line in lines), done.stderr


@pytest.mark.slow
def test_log_level_quiets_the_console() -> None:
    done = _fresh_worker("--log-level", "warning")
    assert done.returncode == 0, done.stderr
    assert " INFO " not in done.stderr, done.stderr
