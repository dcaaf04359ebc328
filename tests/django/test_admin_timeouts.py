"""The admin shows execution timeouts (status "Timed out"), delayed starts (status "Scheduled",
"Scheduled for") and, for running activities, when their attempt times out, their last
heartbeat details and a requested cancellation. Real instances run by a worker on the ORM
backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from django_workflows import activity, workflow
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.models import ActivityTask, WorkflowInstance
from tests.conftest import wait_for
from tests.django.test_admin import listed_ids
from tests.django.workers import running_worker

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "admin:django_workflows_workflowinstance_changelist"
gate = threading.Event()


async def admin_sleeps_too_long(ctx: workflow.Context) -> str:
    await workflow.sleep(ctx, 3600)
    return "woke"


async def admin_later(ctx: workflow.Context) -> str:
    return "ran"


def admin_export(rows: int) -> str:
    activity.heartbeat({"row": 5})
    gate.wait(60)  # no heartbeats meanwhile: the page shows the stored details
    try:
        activity.heartbeat({"row": 6})
    except activity.ActivityCanceled:
        return "stopped at row 6"
    return "exported"


async def admin_exporting(ctx: workflow.Context) -> str:
    options = workflow.ActivityOptions(start_to_close_timeout=600)
    return await workflow.execute_activity(ctx, options, admin_export, 10)


@pytest.fixture
def client() -> Iterator[Client]:
    workflows = (admin_sleeps_too_long, admin_later, admin_exporting)
    with running_worker(workflows, (admin_export,), before_stop=gate.set) as client:
        yield client


def page(http: HttpClient, instance_id: str) -> str:
    row = WorkflowInstance.objects.filter(instance_id=instance_id).latest("created_at", "id")
    response = http.get(reverse("admin:django_workflows_workflowinstance_change", args=[row.pk]))
    assert response.status_code == 200
    return response.content.decode()


def listing(http: HttpClient, **query: Any) -> list[str]:
    response = http.get(reverse(CHANGELIST), query)
    assert response.status_code == 200
    return listed_ids(response.content.decode())


def test_timed_out_scheduled_and_running_activities_are_shown(client: Client, admin_client: HttpClient) -> None:
    gate.clear()
    timed_out = client.create_workflow_instance(
        WorkflowInstanceOptions(instance_id="too-long", execution_timeout=1), admin_sleeps_too_long
    )
    client.create_workflow_instance(WorkflowInstanceOptions(instance_id="later", start_delay=3600), admin_later)
    exporting = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="exporting"), admin_exporting)

    client.wait_for_workflow_instance(timed_out, timeout=60)
    assert WorkflowInstance.objects.get(instance_id="too-long").outcome == "timed_out"
    html = page(admin_client, "too-long")
    assert "wf-status-timed_out" in html and 'id="wf-timed-out"' in html and "(1.0 s)" in html
    assert "too-long" in listing(admin_client, status="timed_out")
    assert "too-long" not in listing(admin_client, status="failed")

    html = page(admin_client, "later")
    assert "wf-status-scheduled" in html and 'id="wf-scheduled-for"' in html
    assert listing(admin_client, status="scheduled") == ["later"]
    assert "later" not in listing(admin_client, status="running")
    assert 'wf-status-scheduled">Scheduled' in admin_client.get(reverse(CHANGELIST)).content.decode()

    wait_for(
        lambda: ActivityTask.objects.filter(instance__instance_id="exporting", heartbeat_details__isnull=False).exists(),
        timeout=30,
        what="the export's heartbeat",
    )
    html = page(admin_client, "exporting")
    assert "last heartbeat details:" in html and "&quot;row&quot;: 5" in html
    task = ActivityTask.objects.get(instance__instance_id="exporting")
    assert task.deadline is not None and task.deadline.strftime("%Y-%m-%d %H:%M:%S") in html

    client.cancel_workflow_instance(exporting)
    wait_for(
        lambda: ActivityTask.objects.filter(instance__instance_id="exporting", cancel_requested=True).exists(),
        timeout=30,
        what="the cancellation request to reach the activity task",
    )
    assert "cancellation requested" in page(admin_client, "exporting")
    gate.set()
    assert client.get_workflow_result(exporting, timeout=60) == "stopped at row 6"
