"""Views of the example app: start ``Workflow1`` from a form and watch its instance; place orders
and approve or reject them (the approval is a workflow signal)."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from django_workflows import signal_workflow, start_workflow
from django_workflows.client import Client
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import InstanceNotFound, WorkflowError

from .models import Order
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


# --- the order flow ----------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def orders(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        item = request.POST.get("item", "").strip()
        try:
            quantity = int(request.POST.get("quantity", "1"))
        except ValueError:
            quantity = 0
        if not item or quantity < 1:
            return render(
                request,
                "example/orders.html",
                {"orders": Order.objects.all()[:50], "error": "Give an item and a quantity of at least 1."},
                status=400,
            )
        with transaction.atomic():
            # The post_save receiver starts order_workflow once this transaction commits.
            order = Order.objects.create(item=item, quantity=quantity)
        return redirect("example:order", pk=order.pk)
    return render(request, "example/orders.html", {"orders": Order.objects.all()[:50]})


@require_http_methods(["GET", "POST"])
def order(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk)
    if request.method == "POST":
        decision = request.POST.get("decision")
        if decision not in {"approve", "reject"}:
            return HttpResponse("decision must be approve or reject", status=400)
        try:
            signal_workflow(order.workflow_instance_id, "approval", {"approved": decision == "approve", "reason": "by operator"})
        except InstanceNotFound:
            return HttpResponse("this order's workflow is not running any more", status=409)
        return redirect("example:order", pk=order.pk)
    client = Client()
    try:
        info = client.get_workflow_instance_info(order.workflow_instance_id)
    except InstanceNotFound:
        info = None
    return render(request, "example/order.html", {"order": order, "info": info})
