"""The example order flow, driven through its views with a worker running in the test."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from django_workflows.backends import default_backend
from django_workflows.client import Client
from django_workflows.registration import registry
from django_workflows.worker import Worker, WorkerOptions
from testproject.example import orders as order_flow
from testproject.example.models import Order
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker():
    with Worker(default_backend(), WorkerOptions(workflow_pollers=1, activity_pollers=2), registry=registry) as w:
        yield w


def place_order(http: HttpClient, item: str = "teapot") -> Order:
    response = http.post("/orders/", {"item": item, "quantity": "2"})
    assert response.status_code == 302
    return Order.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1]))


def status_of(order: Order) -> str:
    order.refresh_from_db()
    return order.status


def test_approved_order_is_shipped_by_the_sub_workflow(worker):
    http = HttpClient()
    order = place_order(http)
    wait_for(lambda: status_of(order) == Order.Status.AWAITING_APPROVAL, what="the workflow to ask for approval")
    assert "Approve" in http.get(f"/orders/{order.pk}/").content.decode()

    assert http.post(f"/orders/{order.pk}/", {"decision": "approve"}).status_code == 302
    result = Client().get_workflow_result(order.workflow_instance_id, timeout=60)
    assert result == {"order": order.pk, "status": "shipped", "tracking": f"TRACK-{order.pk:06d}"}
    order.refresh_from_db()
    assert order.status == Order.Status.SHIPPED and order.tracking_number == f"TRACK-{order.pk:06d}"
    shipping = Client().get_workflow_instance_info(f"shipping-{order.pk}")
    assert shipping.workflow_name == "ship_order"
    assert shipping.instance.parent is not None and shipping.instance.parent.instance_id == order.workflow_instance_id
    # The workflow has ended: another decision is refused.
    assert http.post(f"/orders/{order.pk}/", {"decision": "reject"}).status_code == 409


def test_unanswered_order_gets_reminders_then_is_rejected(worker, monkeypatch):
    monkeypatch.setattr(order_flow, "REMINDER_SECONDS", 0.2)
    order = place_order(HttpClient(), "kettle")
    result = Client().get_workflow_result(order.workflow_instance_id, timeout=60)
    assert result["status"] == "rejected" and "3 reminders" in result["reason"]
    order.refresh_from_db()
    assert order.status == Order.Status.REJECTED and order.reminders_sent == 3


def test_bad_order_form_and_bad_decision_are_rejected(worker):
    http = HttpClient()
    assert http.post("/orders/", {"item": "", "quantity": "1"}).status_code == 400
    assert http.post("/orders/", {"item": "cup", "quantity": "zero"}).status_code == 400
    assert not Order.objects.exists()
    order = place_order(http)
    assert http.post(f"/orders/{order.pk}/", {"decision": "maybe"}).status_code == 400
