"""The admin's side of safe deploys, on the ORM backend with real workers: a v1 instance waiting
on a signal, a worker restarted with incompatible v2 code (the list and the page show "Blocked",
why and since when, and the history is unchanged), then v3 code with ``patched()`` (it completes
on the old branch; a new instance records a PatchMarker, shown in its history); the restart and
reset actions behind their permissions, by POST with CSRF, in the operator log.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.test import Client as HttpClient
from django.urls import reverse

from django_workflows import workflow
from django_workflows.backends import default_backend
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.core import InstanceState
from django_workflows.engine.history import EventType
from django_workflows.engine.registry import Registry
from django_workflows.models import HistoryEvent, WorkflowInstance
from django_workflows.worker import Worker, WorkerOptions
from tests.conftest import wait_for
from tests.django.test_admin import CHANGELIST, detail_url, listed_ids, row, staff_user, text_of
from tests.django.test_admin_actions import submit_form, texts

pytestmark = pytest.mark.django_db(transaction=True)

ONCE = workflow.ActivityOptions(retry_options=workflow.RetryOptions(max_attempts=1))
runs: list[str] = []


def reserve(order: str) -> str:
    runs.append(f"reserve:{order}")
    return "reserved"


def check_fraud(order: str) -> str:
    runs.append(f"check_fraud:{order}")
    return "ok"


def ship(order: str) -> str:
    runs.append(f"ship:{order}")
    return "shipped"


async def order_v1(ctx: workflow.Context, order: str) -> list[str]:
    await workflow.execute_activity(ctx, ONCE, reserve, order)
    await workflow.new_signal_channel(ctx, "approve").receive(ctx)
    return [await workflow.execute_activity(ctx, ONCE, ship, order)]


async def order_v2(ctx: workflow.Context, order: str) -> list[str]:
    await workflow.execute_activity(ctx, ONCE, reserve, order)
    await workflow.execute_activity(ctx, ONCE, check_fraud, order)  # added without a patch
    await workflow.new_signal_channel(ctx, "approve").receive(ctx)
    return [await workflow.execute_activity(ctx, ONCE, ship, order)]


async def order_v3(ctx: workflow.Context, order: str) -> list[str]:
    await workflow.execute_activity(ctx, ONCE, reserve, order)
    done = []
    if workflow.patched(ctx, "fraud-check"):
        done.append(await workflow.execute_activity(ctx, ONCE, check_fraud, order))
    await workflow.new_signal_channel(ctx, "approve").receive(ctx)
    done.append(await workflow.execute_activity(ctx, ONCE, ship, order))
    return done


async def order_failing(ctx: workflow.Context, order: str) -> list[str]:
    await workflow.execute_activity(ctx, ONCE, reserve, order)
    await workflow.execute_activity(ctx, ONCE, check_fraud, order)
    raise workflow.WorkflowError("computed the wrong total")


async def order_fixed(ctx: workflow.Context, order: str) -> list[str]:
    await workflow.execute_activity(ctx, ONCE, reserve, order)
    done = [await workflow.execute_activity(ctx, ONCE, check_fraud, order)]
    await workflow.new_signal_channel(ctx, "approve").receive(ctx)
    done.append(await workflow.execute_activity(ctx, ONCE, ship, order))
    return done


@contextmanager
def deployed(code: Any) -> Iterator[Client]:
    """A worker with ``code`` as the workflow "order" (one deploy), and a client."""
    backend = default_backend()
    registry = Registry()
    options = WorkerOptions(
        workflow_pollers=1, activity_pollers=1, blocked_retry_first_interval=0.2, blocked_retry_max_interval=0.5
    )
    worker = Worker(backend, options, registry=registry)
    worker.register_workflow(code, "order")
    for fn in (reserve, check_fraud, ship):
        worker.register_activity(fn)
    worker.start()
    try:
        yield Client(backend, registry=worker.registry)
    finally:
        worker.stop()
        assert worker.wait_for_completion(timeout=60), "the worker did not stop in time"
        backend.close()


def start(client: Client, instance_id: str, order: str) -> Any:
    return client.create_workflow_instance(WorkflowInstanceOptions(instance_id=instance_id), "order", order)


def history_of(instance_id: str) -> list[tuple[int, str, str]]:
    return list(
        HistoryEvent.objects.filter(instance=row(instance_id)).order_by("sequence_id").values_list("sequence_id", "event_type", "event_id")
    )


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_an_incompatible_deploy_is_blocked_in_the_admin_and_a_patch_finishes_it(admin_client: HttpClient) -> None:
    with deployed(order_v1) as client:
        old = start(client, "order-1", "o-1")
        wait_for(lambda: len(history_of("order-1")) >= 5, timeout=60, what="order-1 to wait for approval")
    recorded = history_of("order-1")

    with deployed(order_v2) as client:
        client.signal_workflow("order-1", "approve", True)
        wait_for(lambda: row("order-1").blocked_attempts >= 2, timeout=60, what="order-1 to be blocked")
        listing = text_of(admin_client.get(reverse(CHANGELIST)))
        assert re.search(r'wf-status-blocked">Blocked</span><div class="wf-muted wf-blocked-since" title="[^"]*check_fraud[^"]*">since <time[^>]*>[\d:\- ]+<span class="wf-ms">[^<]*</span></time> · NondeterminismError', listing)
        assert listed_ids(text_of(admin_client.get(reverse(CHANGELIST), {"status": "blocked"}))) == ["order-1"]
        assert listed_ids(text_of(admin_client.get(reverse(CHANGELIST), {"status": "running"}))) == []
        page = text_of(admin_client.get(detail_url("order-1")))
        assert 'id="wf-status">Blocked<' in page
        banner = page[page.index('id="wf-blocked"') : page.index('id="wf-summary"')]
        assert "failed attempts" in banner and "NondeterminismError" in banner and "check_fraud" in banner
        assert re.search(r"Since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", banner)
        assert history_of("order-1") == recorded  # nothing written while blocked

    with deployed(order_v3) as client:
        assert client.get_workflow_result(old, timeout=60) == ["shipped"]
        new = start(client, "order-2", "o-2")
        wait_for(lambda: any(t == EventType.PATCH_MARKER.value for _, t, _ in history_of("order-2")), timeout=60, what="the marker")
        client.signal_workflow("order-2", "approve", True)
        assert client.get_workflow_result(new, timeout=60) == ["ok", "shipped"]
    page = text_of(admin_client.get(detail_url("order-1")))
    assert 'id="wf-status">Completed<' in page and 'id="wf-blocked"' not in page
    page = text_of(admin_client.get(detail_url("order-2")))
    assert 'wf-event-PatchMarker' in page and "fraud-check" in page


def test_restart_action_needs_its_permission_and_is_logged() -> None:
    with deployed(order_v1) as client:
        first = start(client, "order-r", "o-r")
        wait_for(lambda: len(history_of("order-r")) >= 5, timeout=60, what="order-r to wait")
        client.signal_workflow("order-r", "approve", True)
        client.get_workflow_result(first, timeout=60)
        http = HttpClient()
        http.force_login(staff_user("viewer", "view_workflowinstance"))
        pk = row("order-r").pk
        assert "restart_instances" not in text_of(http.get(reverse(CHANGELIST)))
        http.post(reverse(CHANGELIST), {"action": "restart_instances", "_selected_action": [pk], "apply": "yes"})
        assert WorkflowInstance.objects.filter(instance_id="order-r").count() == 1

        http.force_login(staff_user("operator", "view_workflowinstance", "restart_workflowinstance"))
        page = http.post(reverse(CHANGELIST), {"action": "restart_instances", "_selected_action": [pk]})
        assert "Restart workflow instances" in text_of(page) and "Terminate a running execution first" in text_of(page)
        done = submit_form(http, page)
        assert done.status_code == 302
        assert "“order-r”: restarted" in texts(done)
        executions = WorkflowInstance.objects.filter(instance_id="order-r")
        assert executions.count() == 2 and row("order-r").pk != pk
        entry = LogEntry.objects.get(object_id=str(pk), action_flag=CHANGE)
        assert entry.change_message.startswith("Restarted through the admin as execution ")
        wait_for(lambda: len(history_of("order-r")) >= 5, timeout=60, what="the restarted execution to run")
        # The restarted one runs: restarting again is refused unless it is terminated first.
        page = http.post(reverse(CHANGELIST), {"action": "restart_instances", "_selected_action": [row("order-r").pk]})
        refused = submit_form(http, page)
        assert "still running, not restarted" in " ".join(texts(refused))
        assert WorkflowInstance.objects.filter(instance_id="order-r").count() == 2
        forced = submit_form(http, http.post(reverse(CHANGELIST), {"action": "restart_instances", "_selected_action": [row("order-r").pk]}), terminate_running="on")
        assert "“order-r”: restarted" in texts(forced)
        assert WorkflowInstance.objects.filter(instance_id="order-r").count() == 3
        assert WorkflowInstance.objects.filter(instance_id="order-r", outcome="terminated").count() == 1


def test_reset_from_a_history_row_reruns_only_the_work_after_it() -> None:
    runs.clear()
    with deployed(order_failing) as client:
        failed = start(client, "order-x", "o-x")
        with pytest.raises(workflow.WorkflowError):
            client.get_workflow_result(failed, timeout=60)
    failed_pk = row("order-x").pk
    tasks = [seq for seq, kind, _ in history_of("order-x") if kind == EventType.WORKFLOW_TASK_STARTED.value]

    http = HttpClient(enforce_csrf_checks=True)
    http.force_login(staff_user("viewer-2", "view_workflowinstance"))
    assert "Reset to here" not in text_of(http.get(detail_url("order-x")))
    http.force_login(staff_user("resetter", "view_workflowinstance", "reset_workflowinstance"))
    page = text_of(http.get(detail_url("order-x")))
    buttons = re.findall(r'name="to" value="(\d+)"', page)
    assert [int(b) for b in buttons] == tasks  # on workflow task rows only
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    # Without the CSRF token the POST is refused.
    assert http.post(reverse(CHANGELIST), {"action": "reset_instances", "_selected_action": [failed_pk], "to": tasks[2]}).status_code == 403
    confirm = http.post(
        reverse(CHANGELIST),
        {"action": "reset_instances", "_selected_action": [failed_pk], "to": tasks[2], "csrfmiddlewaretoken": token},
    )
    html = text_of(confirm)
    assert "Reset a workflow instance" in html and f'value="{tasks[2]}"' in html
    # A point that is not a workflow task is refused on the form, nothing is done.
    wrong = submit_form(http, confirm, to=str(tasks[2] + 1), csrfmiddlewaretoken=token)
    assert "not the start of a workflow task" in text_of(wrong)
    assert WorkflowInstance.objects.filter(instance_id="order-x").count() == 1

    with deployed(order_fixed) as client:
        runs.clear()
        done = submit_form(http, confirm, to=str(tasks[2]), reason="fixed the total", csrfmiddlewaretoken=token)
        assert done.status_code == 302 and "lookup" in done["Location"]
        new_row = row("order-x")
        assert new_row.pk != failed_pk
        wait_for(lambda: len(history_of("order-x")) > len(tasks), timeout=60, what="the reset execution to run")
        client.signal_workflow("order-x", "approve", True)
        result = client.get_workflow_result(client.backend.get_latest_execution("order-x"), timeout=60)
    # The fixed code replays the kept history (reserve, then the fraud check) and goes on.
    assert result == ["ok", "shipped"]
    assert runs == ["check_fraud:o-x", "ship:o-x"]  # reserve is not run again
    entry = LogEntry.objects.get(object_id=str(failed_pk), action_flag=CHANGE)
    assert entry.change_message.startswith(f"Reset to history sequence {tasks[2]} through the admin as execution ")
    assert entry.change_message.endswith(": fixed the total")
    assert WorkflowInstance.objects.get(pk=failed_pk).state == InstanceState.FINISHED.value
