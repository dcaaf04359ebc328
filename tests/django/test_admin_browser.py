"""The workflow admin in a real headless Chromium against a live server: log in, list, filter,
open instance pages, page through a long history, cancel from the list, signal through the form.

Screenshots land in ``<artifacts>/admin/`` for a human to look at (the pytest header names the
directory; ``WORKFLOWS_TEST_ARTIFACTS`` chooses it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from selenium.webdriver.support.ui import Select

from tests.django.browser import (
    chromium,
    log_in,
    messages_shown,
    missing_browser,
    open_page,
    screenshot,
    submit,
)
from tests.django.test_admin import (
    admin_approval,
    admin_order,
    row,
    run_world,
    running_worker,
    start,
    wait_until_waiting,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(bool(missing_browser()), reason=missing_browser() or "browser present"),
]

CHANGELIST = "/admin/django_workflows/workflowinstance/"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def operator(settings: Any) -> User:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return User.objects.create_superuser("operator", "operator@example.com", "operator-pw")


def by_css(driver: Any, selector: str) -> Any:
    return driver.find_element("css selector", selector)


def listed(driver: Any) -> list[str]:
    return [cell.text for cell in driver.find_elements("css selector", "#result_list td.field-instance_link a")]


def open_instance(driver: Any, base: str, instance_id: str) -> None:
    open_page(driver, f"{base}{CHANGELIST}{row(instance_id).pk}/change/")
    assert by_css(driver, "#content h1").text.startswith(instance_id)


def test_list_filters_and_instance_pages(browser: Any, live_server: Any, operator: User) -> None:
    world = run_world()
    base = live_server.url
    log_in(browser, base, "operator", "operator-pw")
    open_page(browser, f"{base}{CHANGELIST}")
    assert world.waiting in listed(browser) and world.failing in listed(browser)
    screenshot(browser, "01-list")

    # The status filter in the sidebar, then the search box.
    submit(browser, browser.find_element("xpath", "//*[@id='changelist-filter']//a[normalize-space()='Failed']"))
    assert listed(browser) == [world.failing]
    search = browser.find_element("id", "searchbar")
    search.clear()
    search.send_keys("order-1")
    submit(browser, browser.find_element("css selector", "#changelist-search input[type=submit]"))
    assert listed(browser) == []  # still filtered on "Failed": order-1 completed
    open_page(browser, f"{base}{CHANGELIST}?q=order-1")
    assert sorted(listed(browser)) == [world.order, world.shipping]
    screenshot(browser, "02-list-searched", full_page=False)

    # A failed instance: its error, with the traceback, escaped.
    open_instance(browser, base, world.failing)
    outcome = by_css(browser, "#wf-outcome")
    assert "ValueError: card declined for order-2 <script>alert(1)</script>" in outcome.text
    assert "Traceback (most recent call last)" in by_css(browser, "#wf-outcome pre.wf-traceback").text
    screenshot(browser, "03-instance-failed")

    # A parent: result, timeline and its child in the tree; follow the link to the child.
    open_instance(browser, base, world.order)
    assert '"charged": 42' in by_css(browser, "#wf-outcome").text
    assert len(browser.find_elements("css selector", "#wf-timeline .wf-bar")) == 2
    screenshot(browser, "04-instance-parent")
    submit(browser, browser.find_element("link text", world.shipping))
    assert by_css(browser, "#content h1").text.startswith(world.shipping)

    # A long history, page 2.
    open_instance(browser, base, world.chatty)
    submit(browser, browser.find_element("css selector", "nav.wf-pages a[href='?page=2#history']"))
    numbers = [int(cell.text) for cell in browser.find_elements("css selector", "#history td.wf-num")]
    assert numbers[0] == 101 and numbers == list(range(101, 101 + len(numbers)))

    # A running one: its pending timer.
    open_instance(browser, base, world.waiting)
    assert "approval-deadline" in by_css(browser, "#wf-pending-timers").text
    screenshot(browser, "05-instance-running")


def test_cancel_from_the_list_and_signal_through_the_form(browser: Any, live_server: Any, operator: User) -> None:
    base = live_server.url
    with running_worker() as client:
        for instance_id in ("b-wait-1", "b-wait-2"):
            start(client, instance_id, admin_approval, instance_id, queue="approvals")
        client.wait_for_workflow_instance(start(client, "b-done", admin_order, "b-done", 5), timeout=60)
        for instance_id in ("b-wait-1", "b-wait-2"):
            wait_until_waiting(instance_id)
        log_in(browser, base, "operator", "operator-pw")

        # Cancel a running and a finished instance from the list.
        open_page(browser, f"{base}{CHANGELIST}")
        for instance_id in ("b-wait-1", "b-done"):
            by_css(browser, f"input.action-select[value='{row(instance_id).pk}']").click()
        Select(browser.find_element("name", "action")).select_by_value("cancel_instances")
        submit(browser, by_css(browser, "button[name=index]"))
        assert sorted(messages_shown(browser)) == ["“b-done”: already finished", "“b-wait-1”: cancellation requested"]
        screenshot(browser, "06-cancel-reported", full_page=False)
        client.wait_for_workflow_instance("b-wait-1", timeout=60)
        open_page(browser, f"{base}{CHANGELIST}?status=canceled")
        assert listed(browser) == ["b-wait-1"]

        # Signal the other one from its page: a bad payload first, then a good one.
        open_instance(browser, base, "b-wait-2")
        submit(browser, by_css(browser, "button[name=wf-signal]"))
        browser.find_element("name", "name").send_keys("approve")
        payload = browser.find_element("name", "payload")
        payload.clear()
        payload.send_keys("{approved: yes}")
        submit(browser, by_css(browser, "form.wf-form input[type=submit]"))
        errors = by_css(browser, ".errorlist").text
        assert "The payload is not valid JSON" in errors
        screenshot(browser, "07-signal-invalid", full_page=False)
        payload = browser.find_element("name", "payload")
        payload.clear()
        payload.send_keys('{"approved": true, "by": "operator"}')
        submit(browser, by_css(browser, "form.wf-form input[type=submit]"))
        # Back on the instance page, with the report.
        assert by_css(browser, "#content h1").text.startswith("b-wait-2")
        assert messages_shown(browser) == ["“b-wait-2”: signal approve sent"]
        assert client.get_workflow_result("b-wait-2", timeout=60)["approval"] == {"approved": True, "by": "operator"}
        open_page(browser, browser.current_url)
        assert by_css(browser, "#wf-status").text == "Completed"
        assert '"by": "operator"' in by_css(browser, "#wf-outcome").text
        assert "SignalReceived" in by_css(browser, "#history").text
        screenshot(browser, "08-signal-done")
