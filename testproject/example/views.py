"""Views of the example app: start ``Workflow1`` from a form and watch its instance."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from django_workflows import start_workflow
from django_workflows.client import Client
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import InstanceNotFound, WorkflowError

from .workflows import workflow1


@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        text = request.POST.get("input", "").strip() or "input-for-workflow"
        instance = start_workflow(workflow1, text, instance_id=request.POST.get("instance_id") or None)
        return redirect("example:instance", instance_id=instance.instance_id)
    return render(request, "example/index.html")


def instance(request: HttpRequest, instance_id: str) -> HttpResponse:
    client = Client()
    try:
        info = client.get_workflow_instance_info(instance_id)
    except (InstanceNotFound, ValueError):
        return render(request, "example/instance.html", {"instance_id": instance_id, "missing": True}, status=404)
    result = error = None
    if info.state is not InstanceState.ACTIVE:
        try:
            result = client.get_workflow_result(info.instance, timeout=0.1)
        except WorkflowError as exc:
            error = exc
    return render(
        request,
        "example/instance.html",
        {"instance_id": instance_id, "info": info, "result": result, "error": error},
    )
