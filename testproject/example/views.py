"""Views of the example app: start ``Workflow1`` from a form and watch its instance; place orders
and approve, reject (a workflow signal) or cancel them (a workflow cancellation)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from django_workflows import cancel_workflow, signal_workflow, start_workflow
from django_workflows.client import Client
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import InstanceNotFound, WorkflowError

from .models import Order
from .progress import order_progress
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
            return _orders_page(request, error="Give an item and a quantity of at least 1.", status=400)
        with transaction.atomic():
            # The post_save receiver starts order_workflow once this transaction commits.
            order = Order.objects.create(item=item, quantity=quantity)
        return redirect("example:order", pk=order.pk)
    return _orders_page(request)


def _orders_page(request: HttpRequest, error: str = "", status: int = 200) -> HttpResponse:
    client = Client()
    rows = [(order, order_progress(order, client)) for order in Order.objects.all()[:50]]
    return render(request, "example/orders.html", {"rows": rows, "error": error}, status=status)


@dataclass(frozen=True, slots=True)
class _Button:
    #: The ``OrderProgress`` flag that says whether the button makes sense now.
    allowed_when: str
    #: "This order can no longer be ...".
    done: str
    sent: str


_BUTTONS = {
    "approve": _Button("can_decide", "approved", "Approval sent to the workflow."),
    "reject": _Button("can_decide", "rejected", "Rejection sent to the workflow."),
    "cancel": _Button("can_cancel", "canceled", "Cancellation requested."),
}


@require_http_methods(["GET", "POST"])
def order(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk)
    if request.method == "POST":
        decision = request.POST.get("decision", "")
        button = _BUTTONS.get(decision)
        if button is None:
            return _order_page(request, order, error="Choose approve, reject or cancel.", status=400)
        progress = order_progress(order)
        too_late = f"This order cannot be {button.done} now: it is {progress.label.lower()}."
        if not getattr(progress, button.allowed_when):
            # A page left open while the workflow moved on: show where it stands now.
            return _order_page(request, order, error=too_late, status=409)
        try:
            if decision == "cancel":
                cancel_workflow(order.workflow_instance_id)
            else:
                approval = {"approved": decision == "approve", "reason": "by operator"}
                signal_workflow(order.workflow_instance_id, "approval", approval)
        except InstanceNotFound:  # it ended between the check and the request
            return _order_page(request, order, error=f"This order cannot be {button.done} now: its workflow ended.", status=409)
        messages.success(request, button.sent)
        return redirect("example:order", pk=order.pk)
    return _order_page(request, order)


def _order_page(request: HttpRequest, order: Order, error: str = "", status: int = 200) -> HttpResponse:
    context = {"order": order, "progress": order_progress(order), "error": error}
    return render(request, "example/order.html", context, status=status)
