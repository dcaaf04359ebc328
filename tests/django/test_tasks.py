"""``WorkflowsTaskBackend``: Django's task API run by the workflow engine.

Every test that runs tasks does so twice (``store``): on the ORM backend in the test database
(``enqueue`` joins the caller's transaction) and on Redis (it waits for the commit). They need
Django's task framework: Django 6.x, or on Django 5.2 the django-tasks backport ([tasks] extra).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core import checks
from django.db import transaction
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

compat = pytest.importorskip(
    "django_workflows.tasks.compat",
    reason="Django's task framework is not installed: Django 6.x, or on Django 5.2 the django-tasks backport "
    "(pip install 'django-workflows[tasks]')",
    exc_type=ImportError,
)

from django_workflows import start_workflow  # noqa: E402
from django_workflows.client import Client  # noqa: E402
from django_workflows.registration import registry  # noqa: E402
from django_workflows.tasks import WorkflowsTask, WorkflowsTaskBackend  # noqa: E402
from django_workflows.tasks.system import TASK_WORKFLOW_NAME  # noqa: E402
from django_workflows.testing.conformance.support import WAIT, wait_until  # noqa: E402
from django_workflows.worker import Worker, WorkerOptions  # noqa: E402
from testproject.example.workflows import workflow1  # noqa: E402
from testproject.testapp import tasks  # noqa: E402

from .stores import Store  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)

Status = compat.TaskResultStatus


def finished(result: Any, timeout: float = WAIT) -> Any:
    """Refresh ``result`` until its task finished."""

    def done() -> bool:
        result.refresh()
        return result.is_finished

    wait_until(done, timeout=timeout, what=f"task {result.id} to finish")
    return result


def ledger(tmp_path: Path) -> str:
    return str(tmp_path / f"ledger-{uuid.uuid4().hex}")


def picked_up(result: Any) -> None:
    """Wait until a worker ran the task's first workflow task (its history has begun)."""
    backend = Client().backend
    wait_until(lambda: backend.get_workflow_instance_history(backend.get_latest_execution(result.id)), what="the first workflow task")


def runs(path: str) -> int:
    return len(Path(path).read_text().splitlines()) if Path(path).exists() else 0


# -- configuration and Django's validation -------------------------------------------------


def test_the_backend_passes_djangos_checks_and_says_what_it_supports() -> None:
    backend = compat.task_backends["default"]
    assert isinstance(backend, WorkflowsTaskBackend)
    assert (backend.supports_defer, backend.supports_async_task, backend.supports_get_result) == (True, True, True)
    assert backend.supports_priority is False
    assert [m for m in checks.run_checks() if m.level >= checks.ERROR] == []
    for task in (tasks.add, tasks.shout, tasks.flaky, tasks.with_context, tasks.async_double, tasks.sleepy):
        backend.validate_task(task)
    assert tasks.flaky.max_attempts == 3  # a @task(...) keyword argument of the task class


def test_what_the_backend_cannot_do_is_refused_with_djangos_error() -> None:
    with pytest.raises(compat.InvalidTask, match="does not support setting priority"):
        tasks.add.using(priority=10)
    with pytest.raises(compat.InvalidTask, match="Queue 'nowhere' is not valid"):
        tasks.add.using(queue_name="nowhere")
    with pytest.raises(compat.InvalidTask, match="max_attempts must be a whole number of at least 1, got 0"):
        WorkflowsTask(func=tasks.add.func, max_attempts=0)
    with pytest.raises(compat.InvalidTask, match="timeout must be positive"):
        WorkflowsTask(func=tasks.add.func, timeout=-1)


def test_bad_settings_fail_with_the_option_named() -> None:
    setting = {"default": {"BACKEND": "django_workflows.tasks.WorkflowsTaskBackend", "OPTIONS": {"retries": 3}}}
    with override_settings(TASKS=setting):
        with pytest.raises(compat.InvalidTaskBackend, match=r"unknown option\(s\) retries"):
            compat.task_backends["default"]
    setting = {
        "default": {
            "BACKEND": "django_workflows.tasks.WorkflowsTaskBackend",
            "QUEUES": ["default", "a:b"],
            "OPTIONS": {"workflows_backend": "missing"},
        }
    }
    with override_settings(TASKS=setting):
        ids = sorted(m.id for m in compat.task_backends["default"].check())
    assert ids == ["django_workflows.E101", "django_workflows.E102"]


def test_unknown_ids_and_other_workflows_are_not_results(store: Store) -> None:
    backend = compat.task_backends["default"]
    instance = start_workflow(workflow1, "x", instance_id="not-a-task")
    for result_id in ("no-such-task", "bad:id", instance.instance_id):
        with pytest.raises(compat.TaskResultDoesNotExist):
            backend.get_result(result_id)


# -- enqueue atomically with the view's transaction ----------------------------------------


def test_enqueue_from_a_view_that_commits_and_one_that_rolls_back(store: Store, worker: Worker, client: Any) -> None:
    url = reverse("testapp:enqueue-add")
    committed = client.post(url, {"a": 2, "b": 3})
    assert committed.status_code == 200 and committed.json()["status"] == "READY"
    rolled_back = client.post(url, {"a": 1, "b": 1, "rollback": 1})
    assert rolled_back.status_code == 409
    result = finished(tasks.add.get_result(committed.json()["id"]))
    assert result.status == Status.SUCCESSFUL and result.return_value == 5
    assert result.args == [2, 3] and result.attempts == 1
    with pytest.raises(compat.TaskResultDoesNotExist):
        tasks.add.get_result(rolled_back.json()["id"])


def test_inside_a_transaction_the_task_is_enqueued_with_it(store: Store) -> None:
    enqueued: list[str] = []

    def on_enqueued(sender: Any, task_result: Any, **kwargs: Any) -> None:
        enqueued.append(task_result.id)

    compat.task_enqueued.connect(on_enqueued)
    try:
        with transaction.atomic():
            result = tasks.add.enqueue(1, 2)
            if store.in_transaction:
                assert tasks.add.get_result(result.id).status == Status.READY  # written in the transaction
            else:
                with pytest.raises(compat.TaskResultDoesNotExist):
                    tasks.add.get_result(result.id)
            assert enqueued == []  # the signal waits for the commit
        assert enqueued == [result.id]
    finally:
        compat.task_enqueued.disconnect(on_enqueued)
    assert tasks.add.get_result(result.id).status == Status.READY  # no worker runs here


def test_bad_arguments_fail_at_enqueue(store: Store) -> None:
    with pytest.raises(TypeError):
        tasks.add.enqueue({1, 2}, 3)
    assert Client().get_stats().active_workflow_instances == 0


# -- running -----------------------------------------------------------------------------


def test_retries_then_success_and_retries_then_final_failure(store: Store, worker: Worker, tmp_path: Path) -> None:
    flaky_ledger, broken_ledger = ledger(tmp_path), ledger(tmp_path)
    flaky = tasks.flaky.enqueue(flaky_ledger, 2)
    broken = tasks.always_fails.enqueue(broken_ledger)

    flaky = finished(flaky)
    assert flaky.status == Status.SUCCESSFUL and flaky.return_value == {"runs": 3}
    assert flaky.attempts == 3 and runs(flaky_ledger) == 3
    assert [e.exception_class for e in flaky.errors] == [RuntimeError, RuntimeError]
    assert "failure 1 of 2" in flaky.errors[0].traceback and "Traceback (most recent call last)" in flaky.errors[0].traceback
    assert flaky.enqueued_at <= flaky.started_at <= flaky.last_attempted_at <= flaky.finished_at
    assert flaky.started_at < flaky.last_attempted_at  # three attempts, the last one later

    broken = finished(broken)
    assert broken.status == Status.FAILED and broken.attempts == 2 and runs(broken_ledger) == 2
    assert [e.exception_class_path for e in broken.errors] == ["builtins.ValueError", "builtins.ValueError"]
    assert "broken on run 2" in broken.errors[-1].traceback
    with pytest.raises(ValueError, match="Task failed"):
        broken.return_value  # noqa: B018 - the property raises
    # The workflow behind it failed with the task's error, as the admin shows it.
    with pytest.raises(Exception, match="broken on run 2") as failure:
        Client().get_workflow_result(broken.id, timeout=1)
    assert getattr(failure.value, "type", "") == "builtins.ValueError"


def test_a_timeout_per_attempt(store: Store, worker: Worker) -> None:
    slow = finished(tasks.sleepy.enqueue(3.0))  # timeout=0.5, max_attempts=2
    assert slow.status == Status.FAILED and slow.attempts == 2
    assert [e.exception_class for e in slow.errors] == [TimeoutError, TimeoutError]
    assert "attempt 2 did not finish within 0.5 s" in slow.errors[-1].traceback
    quick = finished(tasks.sleepy.enqueue(0.01))
    assert quick.status == Status.SUCCESSFUL and quick.return_value == 0.01


def test_run_after_waits_durably(store: Store, worker: Worker) -> None:
    run_after = timezone.now() + timedelta(seconds=2)
    result = tasks.add.using(run_after=run_after).enqueue(20, 22)
    picked_up(result)
    result.refresh()
    assert result.status == Status.READY and result.started_at is None
    result = finished(result)
    assert result.status == Status.SUCCESSFUL and result.return_value == 42
    assert result.started_at >= run_after
    assert result.task.run_after == run_after


def test_context_async_tasks_and_other_queues(store: Store, worker: Worker, tmp_path: Path) -> None:
    context_ledger = ledger(tmp_path)
    with_context = tasks.with_context.enqueue(context_ledger)
    doubled = tasks.async_double.enqueue(21)
    assert finished(with_context).return_value == {"attempt": 2, "id": with_context.id}
    assert finished(doubled).return_value == 42
    # queue_name "other" is a queue of its own: the test's worker polls only "default".
    shouted = tasks.shout.enqueue("hi")
    info = Client().get_workflow_instance_info(shouted.id)
    assert (info.workflow_name, info.queue) == (TASK_WORKFLOW_NAME, "other")
    other = Worker(store.backend, WorkerOptions(workflow_queues=("other",), activity_queues=("other",)), registry=registry)
    other.start()
    try:
        assert finished(shouted).return_value == "HI"
    finally:
        other.stop()
        assert other.wait_for_completion(60)


def test_aenqueue_and_aget_result(store: Store, worker: Worker) -> None:
    async def run() -> Any:
        result = await tasks.add.aenqueue(3, 4)
        for _ in range(600):
            await result.arefresh()
            if result.is_finished:
                return await tasks.add.aget_result(result.id)
            await asyncio.sleep(0.05)
        raise AssertionError("task did not finish")

    # As Django runs an async view: the thread-sensitive calls use this thread's connection.
    result = async_to_sync(run)()
    assert result.status == Status.SUCCESSFUL and result.return_value == 7


def test_a_task_that_starts_a_workflow(store: Store, worker: Worker) -> None:
    result = finished(tasks.start_order_workflow.enqueue("from-a-task"))
    assert result.return_value == "from-a-task"
    assert Client().get_workflow_result("from-a-task", timeout=WAIT) == 59


def test_a_canceled_task_does_not_run(store: Store, worker: Worker, tmp_path: Path) -> None:
    path = ledger(tmp_path)
    result = tasks.record.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(path, "never")
    picked_up(result)
    Client().cancel_workflow_instance(result.id)
    result = finished(result)
    assert result.status == Status.FAILED and runs(path) == 0
    assert "Canceled" in result.errors[-1].traceback


# -- restarts ----------------------------------------------------------------------------


def test_results_survive_worker_restarts(store: Store, manage: Any, tmp_path: Path) -> None:
    path = ledger(tmp_path)
    first = [tasks.record.enqueue(path, f"first-{n}") for n in range(3)]
    worker = manage("runworkflows", workflow_options=store.options, **store.env)
    for result in first:
        finished(result, timeout=120)
    worker.send(signal.SIGKILL)
    worker.wait(60)
    second = [tasks.record.enqueue(path, f"second-{n}") for n in range(3)]
    for result in first:
        result.refresh()
        assert result.status == Status.SUCCESSFUL
    for result in second:
        assert tasks.record.get_result(result.id).status == Status.READY
    manage("runworkflows", workflow_options=store.options, **store.env)
    for result in second:
        assert finished(result, timeout=120).return_value == result.args[1]
    assert sorted(Path(path).read_text().splitlines()) == sorted([f"first-{n}" for n in range(3)] + [f"second-{n}" for n in range(3)])
    assert {tasks.record.get_result(r.id).worker_ids[0] for r in first} != {tasks.record.get_result(r.id).worker_ids[0] for r in second}


# -- the admin ---------------------------------------------------------------------------


def test_tasks_in_the_admin_with_arguments_and_outcome(store: Store, worker: Worker, admin_client: Any) -> None:
    if not store.in_transaction:
        pytest.skip("the admin shows the ORM backend's tables")
    from .test_admin import CHANGELIST, detail_url

    result = finished(tasks.add.enqueue(40, 2))
    listing = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert result.id in listing and TASK_WORKFLOW_NAME in listing
    page = admin_client.get(detail_url(result.id)).content.decode()
    assert "testproject.testapp.tasks.add" in page and "RunDjangoTask" in page and "42" in page
