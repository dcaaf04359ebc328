"""An exception raised in workflow code keeps its type: the Client, the admin and ``manage.py
workflows show`` name the exception's class (``KeyError``) with the panic flag, not ``PanicError``."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.test import Client as HttpClient
from django.urls import reverse

from django_workflows import workflow
from django_workflows.backends import default_backend
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.registry import Registry
from django_workflows.models import WorkflowInstance
from django_workflows.worker import Worker, WorkerOptions

pytestmark = pytest.mark.django_db(transaction=True)


async def panicky(ctx: workflow.Context, key: str) -> int:
    await workflow.sleep(ctx, 0.01)
    return {"present": 1}[key]  # a KeyError: bad data, so the workflow fails (it is not blocked)


@pytest.fixture
def client() -> Iterator[Client]:
    backend = default_backend()
    registry = Registry()
    worker = Worker(backend, WorkerOptions(workflow_pollers=1, activity_pollers=1, run_scheduler=False), registry=registry)
    worker.register_workflow(panicky)
    worker.start()
    try:
        yield Client(backend, registry=registry)
    finally:
        worker.stop()
        assert worker.wait_for_completion(timeout=60)
        backend.close()


def test_a_panic_keeps_its_type_everywhere_it_is_shown(client: Client, admin_client: HttpClient) -> None:
    instance = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="panic-1"), panicky, "missing")
    with pytest.raises(workflow.PanicError) as info:
        client.get_workflow_result(instance, timeout=60)
    error = info.value
    assert (error.type, error.message, error.panic) == ("KeyError", "'missing'", True)
    assert "panicky" in error.stacktrace

    row = WorkflowInstance.objects.get(instance_id="panic-1")
    page = admin_client.get(reverse("admin:django_workflows_workflowinstance_change", args=[row.pk])).content.decode()
    assert '<strong class="wf-error-type">KeyError</strong>' in page and "raised in workflow code" in page
    assert "PanicError" not in page
    listing = admin_client.get(reverse("admin:django_workflows_workflowinstance_changelist")).content.decode()
    assert "KeyError: &#x27;missing&#x27;" in listing

    out = io.StringIO()
    call_command("workflows", "show", "panic-1", stdout=out)
    assert "Error:      KeyError: 'missing' (raised in workflow code)" in out.getvalue()
    out = io.StringIO()
    call_command("workflows", "show", "panic-1", "--json", stdout=out)
    shown = json.loads(out.getvalue())["error"]
    assert (shown["type"], shown["message"], shown["panic"]) == ("KeyError", "'missing'", True)
