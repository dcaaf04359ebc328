"""The example order flow, driven through its views with a worker running in the test: the page
shows how the workflow ended (shipped, rejected, canceled, terminated, failed), offers only the
buttons that still make sense, and stops reloading once the workflow has ended."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client as HttpClient
from selenium.common.exceptions import WebDriverException

from django_workflows.backends import default_backend
from django_workflows.client import Client
from django_workflows.engine.errors import Canceled, WorkflowError, WorkflowTerminated
from django_workflows.registration import registry
from django_workflows.worker import Worker, WorkerOptions
from testproject.example import orders as order_flow
from testproject.example.models import Order
from tests.conftest import wait_for
from tests.django.browser import chromium, log_in, missing_browser, open_page, screenshot, submit, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

REFRESH = '<meta http-equiv="refresh"'


@pytest.fixture
def worker() -> Iterator[Worker]:
    with Worker(default_backend(), WorkerOptions(workflow_pollers=1, activity_pollers=2), registry=registry) as w:
        yield w


def place_order(http: HttpClient, item: str = "teapot", quantity: int = 2) -> Order:
    response = http.post("/orders/", {"item": item, "quantity": str(quantity)})
    assert response.status_code == 302
    return Order.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[1]))


def status_of(order: Order) -> str:
    order.refresh_from_db()
    return order.status


def page(http: HttpClient, order: Order) -> str:
    response = http.get(f"/orders/{order.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def shown_status(html: str) -> str:
    match = re.search(r'<span id="status" class="status ([a-z_]+)">([^<]*)</span>', html)
    assert match, html
    return f"{match[1]}: {match[2]}"


def buttons(html: str) -> list[str]:
    return re.findall(r'<button name="decision" value="([a-z]+)"', html)


def awaiting_approval(http: HttpClient, item: str = "teapot", quantity: int = 2) -> Order:
    order = place_order(http, item, quantity)
    wait_for(lambda: status_of(order) == Order.Status.AWAITING_APPROVAL, what="the workflow to ask for approval")
    html = page(http, order)
    assert shown_status(html) == "awaiting_approval: Awaiting approval"
    assert buttons(html) == ["approve", "reject", "cancel"]
    assert REFRESH in html  # the page keeps reloading while the workflow runs
    return order


def assert_finished_page(http: HttpClient, order: Order, status: str) -> str:
    html = page(http, order)
    assert shown_status(html) == status
    assert buttons(html) == [], "no buttons once the workflow has ended"
    assert REFRESH not in html, "the page stops reloading once the workflow has ended"
    return html


def test_approved_order_is_shipped_by_the_sub_workflow(worker: Worker) -> None:
    http = HttpClient()
    order = awaiting_approval(http)

    response = http.post(f"/orders/{order.pk}/", {"decision": "approve"}, follow=True)
    assert "Approval sent to the workflow." in response.content.decode()
    result = Client().get_workflow_result(order.workflow_instance_id, timeout=60)
    assert result == {"order": order.pk, "status": "shipped", "tracking": f"TRACK-{order.pk:06d}"}
    order.refresh_from_db()
    assert order.status == Order.Status.SHIPPED and order.tracking_number == f"TRACK-{order.pk:06d}"
    shipping = Client().get_workflow_instance_info(f"shipping-{order.pk}")
    assert shipping.workflow_name == "ship_order"
    assert shipping.instance.parent is not None and shipping.instance.parent.instance_id == order.workflow_instance_id
    html = assert_finished_page(http, order, "shipped: Shipped")
    assert f'id="tracking">TRACK-{order.pk:06d}<' in html
    # The workflow has ended: a decision from a page left open is refused, and the page says why.
    response = http.post(f"/orders/{order.pk}/", {"decision": "reject"})
    assert response.status_code == 409
    assert "This order cannot be rejected now: it is shipped." in response.content.decode()


def test_unanswered_order_gets_reminders_then_is_rejected(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(order_flow, "REMINDER_SECONDS", 0.2)
    http = HttpClient()
    order = place_order(http, "kettle")
    result = Client().get_workflow_result(order.workflow_instance_id, timeout=60)
    assert result["status"] == "rejected" and "3 reminders" in result["reason"]
    order.refresh_from_db()
    assert order.status == Order.Status.REJECTED and order.reminders_sent == 3
    assert 'id="reminders">3<' in assert_finished_page(http, order, "rejected: Rejected")


def test_a_canceled_order_shows_canceled_and_takes_no_more_decisions(worker: Worker) -> None:
    http = HttpClient()
    order = awaiting_approval(http)
    response = http.post(f"/orders/{order.pk}/", {"decision": "cancel"}, follow=True)
    assert "Cancellation requested." in response.content.decode()
    with pytest.raises(Canceled):
        Client().get_workflow_result(order.workflow_instance_id, timeout=60)
    assert status_of(order) == Order.Status.AWAITING_APPROVAL  # no activity ran: the row did not change
    assert_finished_page(http, order, "canceled: Canceled")
    response = http.post(f"/orders/{order.pk}/", {"decision": "approve"})
    assert response.status_code == 409
    assert "This order cannot be approved now: it is canceled." in response.content.decode()
    assert shown_status(response.content.decode()) == "canceled: Canceled"


def test_a_terminated_order_shows_terminated_with_the_reason(worker: Worker) -> None:
    http = HttpClient()
    order = awaiting_approval(http)
    Client().terminate_workflow_instance(order.workflow_instance_id, "customer phoned to call it off")
    with pytest.raises(WorkflowTerminated):
        Client().get_workflow_result(order.workflow_instance_id, timeout=60)
    html = assert_finished_page(http, order, "terminated: Terminated")
    assert 'id="detail" class="detail">customer phoned to call it off<' in html
    assert http.post(f"/orders/{order.pk}/", {"decision": "cancel"}).status_code == 409


def test_an_order_the_carrier_refuses_shows_failed_with_the_error(worker: Worker) -> None:
    http = HttpClient()
    order = awaiting_approval(http, "chairs", order_flow.MAX_SHIPMENT_QUANTITY + 1)
    assert http.post(f"/orders/{order.pk}/", {"decision": "approve"}).status_code == 302
    with pytest.raises(WorkflowError, match="the carrier takes at most 10 items per shipment, not 11"):
        Client().get_workflow_result(order.workflow_instance_id, timeout=60)
    html = assert_finished_page(http, order, "failed: Failed")
    assert "the carrier takes at most 10 items per shipment, not 11" in html
    assert status_of(order) == Order.Status.APPROVED  # the last step the workflow recorded


def test_the_list_shows_each_order_as_its_workflow_ended_and_links_to_the_admin(worker: Worker) -> None:
    http = HttpClient()
    canceled = awaiting_approval(http, "cup")
    waiting = awaiting_approval(http, "saucer")
    http.post(f"/orders/{canceled.pk}/", {"decision": "cancel"})
    with pytest.raises(Canceled):
        Client().get_workflow_result(canceled.workflow_instance_id, timeout=60)
    html = http.get("/orders/").content.decode()
    rows = dict(re.findall(r'<a href="/orders/(\d+)/">#\d+</a>.*?<span class="status ([a-z_]+)">', html, re.S))
    assert rows == {str(canceled.pk): "canceled", str(waiting.pk): "awaiting_approval"}
    for order in (canceled, waiting):
        assert f'href="/admin/django_workflows/workflowinstance/lookup/?instance_id=order-{order.pk}"' in html


def test_each_order_links_to_its_instance_page_in_the_admin(worker: Worker) -> None:
    http = HttpClient()
    order = awaiting_approval(http)
    link = f"/admin/django_workflows/workflowinstance/lookup/?instance_id={order.workflow_instance_id}"
    assert f'id="admin-link" href="{link}"' in page(http, order)
    admin = HttpClient()
    admin.force_login(User.objects.create_superuser("operator", "operator@example.com", "pw"))
    response = admin.get(link, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0].startswith("/admin/django_workflows/workflowinstance/")
    assert order.workflow_instance_id in response.content.decode()
    assert "order_workflow" in response.content.decode()


def test_the_site_root_links_to_the_order_flow_and_the_admin() -> None:
    html = HttpClient().get("/").content.decode()
    assert 'href="/orders/"' in html
    assert 'href="/admin/django_workflows/workflowinstance/"' in html
    assert 'href="/static/example/site.css"' in html


def test_bad_order_form_and_bad_decision_are_rejected(worker: Worker) -> None:
    http = HttpClient()
    assert http.post("/orders/", {"item": "", "quantity": "1"}).status_code == 400
    assert http.post("/orders/", {"item": "cup", "quantity": "zero"}).status_code == 400
    assert not Order.objects.exists()
    order = place_order(http)
    response = http.post(f"/orders/{order.pk}/", {"decision": "maybe"})
    assert response.status_code == 400
    assert "Choose approve, reject or cancel." in response.content.decode()


# --- in a real browser ----------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(bool(missing_browser()), reason=missing_browser() or "browser present")
def test_in_a_browser_the_page_reloads_until_shipped_then_stops_and_links_to_the_admin(
    worker: Worker, live_server: Any, settings: Any
) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_superuser("operator", "operator@example.com", "operator-pw")
    base = live_server.url
    with chromium(width=1200, height=900) as browser:
        open_page(browser, f"{base}/")
        submit(browser, browser.find_element("link text", "The order flow"))
        browser.find_element("name", "item").send_keys("teapot")
        submit(browser, browser.find_element("css selector", "button.primary"))
        # The page reloads itself until the workflow asks for approval: a mark set on this copy
        # of the page is gone once the buttons show.
        browser.execute_script("window.stillThisPage = true")
        wait_until(
            browser,
            lambda d: not d.execute_script("return window.stillThisPage === true")
            and d.find_elements("css selector", "button[value=approve]"),
            "the approval buttons after a reload",
            ignored=(WebDriverException,),
        )
        assert browser.find_element("id", "status").text == "Awaiting approval"
        screenshot(browser, "order-awaiting-approval", full_page=False)
        # By selector: the page may have reloaded itself since the buttons showed.
        submit(browser, "button[value=approve]")
        wait_until(
            browser, lambda d: d.find_element("id", "status").text == "Shipped", "the order to ship", ignored=(WebDriverException,)
        )
        # Shipped: nothing more will change, so no buttons and no reloading.
        assert browser.find_elements("css selector", "button[name=decision]") == []
        assert browser.execute_script("return document.querySelector('meta[http-equiv=refresh]') === null")
        screenshot(browser, "order-shipped", full_page=False)

        log_in(browser, base, "operator", "operator-pw")
        order = Order.objects.get()
        open_page(browser, f"{base}/orders/{order.pk}/")
        submit(browser, browser.find_element("id", "admin-link"))
        assert browser.find_element("css selector", "#content h1").text.startswith(order.workflow_instance_id)
        assert '"status": "shipped"' in browser.find_element("id", "wf-outcome").text
        screenshot(browser, "order-admin-instance", full_page=False)
