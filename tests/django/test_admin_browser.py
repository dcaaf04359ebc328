"""The workflow admin in a real headless Chromium against a live server: log in, list, filter,
open instance pages, page through a long history, cancel from the list, signal through the form;
pages that refresh themselves (and pause), the list at 1280 px, times, compact history, the JSON
download and how a cancellation looks.

Screenshots land in ``<artifacts>/admin/`` for a human to look at (the pytest header names the
directory; ``WORKFLOWS_TEST_ARTIFACTS`` chooses it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from selenium.webdriver.support.ui import Select

from django_workflows.admin import WorkflowInstanceAdmin
from django_workflows.client import Client
from django_workflows.engine.history import EventType
from django_workflows.engine.history_export import read_history
from django_workflows.models import HistoryEvent
from tests.django.browser import (
    chromium,
    log_in,
    messages_shown,
    missing_browser,
    open_page,
    screenshot,
    submit,
    wait_until,
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


@pytest.fixture(autouse=True)
def no_refresh_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages do not refresh themselves during a test unless it asks (``fast_refresh``): a swap
    between two WebDriver calls would leave the second holding a stale element."""
    monkeypatch.setattr(WorkflowInstanceAdmin, "refresh_seconds", 3600)


@pytest.fixture
def operator(settings: Any) -> User:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return User.objects.create_superuser("operator", "operator@example.com", "operator-pw")


def by_css(driver: Any, selector: str) -> Any:
    return driver.find_element("css selector", selector)


def listed(driver: Any) -> list[str]:
    # In one script: the list may be swapped for a fresh copy between two WebDriver calls.
    return list(driver.execute_script(
        "return Array.from(document.querySelectorAll('#result_list td.field-instance_link a')).map(a => a.textContent)"
    ))


def click_row(driver: Any, pk: int) -> None:
    """Tick or untick a row's checkbox (one script: the row may be swapped meanwhile)."""
    driver.execute_script(f"document.querySelector(\"input.action-select[value='{pk}']\").click()")


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


# -- staying current ----------------------------------------------------------------------------

FAST_REFRESH = 0.5  # seconds between refreshes in these tests (the default is 5)
TIME_TEXT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")


@pytest.fixture
def fast_refresh(monkeypatch: pytest.MonkeyPatch, browser: Any) -> Iterator[None]:
    monkeypatch.setattr(WorkflowInstanceAdmin, "refresh_seconds", FAST_REFRESH)
    yield
    # The pause button is remembered in localStorage: leave the next test a resumed browser.
    browser.execute_script("window.localStorage.removeItem('django_workflows.refresh.paused')")


def refreshes(driver: Any) -> int:
    return int(by_css(driver, "#wf-refresh").get_attribute("data-refreshes"))


def wait_for_refreshes(driver: Any, count: int, message: str) -> None:
    start_count = refreshes(driver)
    wait_until(driver, lambda d: refreshes(d) >= start_count + count, message)


def not_reloaded(driver: Any) -> bool:
    return driver.execute_script("return window.wfMarker === 42") is True


def test_a_running_instance_page_refreshes_itself_and_can_pause(
    browser: Any, live_server: Any, operator: User, fast_refresh: None
) -> None:
    base = live_server.url
    with running_worker() as client:
        start(client, "r-wait", admin_approval, "r-wait", queue="approvals")
        wait_until_waiting("r-wait")
        log_in(browser, base, "operator", "operator-pw")
        open_instance(browser, base, "r-wait")
        browser.execute_script("window.wfMarker = 42")
        assert by_css(browser, "#wf-refresh-toggle").text == "Pause auto-refresh"
        wait_for_refreshes(browser, 2, "the running instance's page to refresh")

        # Paused: the workflow completes, the page does not change. (The button is looked up
        # again: an element found before a refresh may be gone after it.)
        by_css(browser, "#wf-refresh-toggle").click()
        assert by_css(browser, "#wf-refresh-toggle").text == "Resume auto-refresh"
        paused_at = refreshes(browser)
        client.signal_workflow("r-wait", "approve", {"approved": True})
        client.wait_for_workflow_instance("r-wait", timeout=60)
        time.sleep(FAST_REFRESH * 4)  # several refresh periods pass without a refresh
        assert refreshes(browser) == paused_at
        assert by_css(browser, "#wf-status").text == "Running"
        assert "Auto-refresh paused." in by_css(browser, "#wf-refresh-state").text
        screenshot(browser, "09-refresh-paused", full_page=False)

        # Resumed: the page catches up without a reload, and stops refreshing once finished.
        by_css(browser, "#wf-refresh-toggle").click()
        wait_until(browser, lambda d: by_css(d, "#wf-status").text == "Completed", "the page to show the completion")
        assert not_reloaded(browser), "the page was reloaded instead of refreshed"
        assert "SignalReceived" in by_css(browser, "#history").text
        assert by_css(browser, "#wf-refresh").get_attribute("data-live") == "0"
        assert by_css(browser, ".wf-timeline .wf-bar-received")  # the signal on the timeline
        assert "approve" in by_css(browser, "#wf-timeline").text
        stopped_at = refreshes(browser)
        time.sleep(FAST_REFRESH * 4)
        assert refreshes(browser) == stopped_at, "a finished instance's page keeps refreshing"
        screenshot(browser, "10-refreshed-completed")


def test_the_list_refreshes_itself_but_not_while_rows_are_selected(
    browser: Any, live_server: Any, operator: User, fast_refresh: None
) -> None:
    base = live_server.url
    client = Client()
    start(client, "l-first", admin_order, "l-first", 1)
    log_in(browser, base, "operator", "operator-pw")
    open_page(browser, f"{base}{CHANGELIST}")
    browser.execute_script("window.wfMarker = 42")
    assert listed(browser) == ["l-first"]

    start(client, "l-second", admin_order, "l-second", 2)
    wait_until(browser, lambda d: "l-second" in listed(d), "the list to show the new instance")
    assert not_reloaded(browser)

    # A selected row holds the list still (the operator is about to run an action on it).
    click_row(browser, row("l-first").pk)
    assert by_css(browser, ".action-counter").text == "1 of 2 selected"
    start(client, "l-third", admin_order, "l-third", 3)
    time.sleep(FAST_REFRESH * 4)
    assert "l-third" not in listed(browser)
    assert "waits while you select rows" in by_css(browser, "#wf-refresh-state").text
    screenshot(browser, "11-list-held-while-selected", full_page=False)
    click_row(browser, row("l-first").pk)
    wait_until(browser, lambda d: "l-third" in listed(d), "the list to refresh once nothing is selected")
    assert not_reloaded(browser)
    # The refreshed rows work with the admin's actions like the first ones (and selecting one
    # stops the refreshes, so the elements stay put from here on).
    click_row(browser, row("l-third").pk)
    assert by_css(browser, ".action-counter").text == "1 of 3 selected"
    by_css(browser, "#action-toggle").click()
    assert by_css(browser, ".action-counter").text == "3 of 3 selected"


def test_list_columns_at_1280_pixels(browser: Any, live_server: Any, operator: User) -> None:
    world = run_world()
    base = live_server.url
    size = browser.get_window_size()
    browser.set_window_size(1280, 900)
    try:
        log_in(browser, base, "operator", "operator-pw")
        open_page(browser, f"{base}{CHANGELIST}")
        visible_right = browser.execute_script("return document.querySelector('.results').getBoundingClientRect().right")
        for column in ("created", "completed"):
            right = browser.execute_script(
                f"return document.querySelector('#result_list th.column-{column}').getBoundingClientRect().right"
            )
            assert right <= visible_right, f"the {column} column is scrolled out of view at 1280 px"
        screenshot(browser, "12-list-1280", full_page=False)
        failing = by_css(browser, f"input.action-select[value='{row(world.failing).pk}']").find_element(
            "xpath", "./ancestor::tr"
        )
        snippet = failing.find_element("css selector", "td.field-error .wf-error-snippet")
        assert snippet.get_attribute("title").startswith("ValueError: card declined for order-2 <script>")
        child = by_css(browser, f"input.action-select[value='{row(world.shipping).pk}']").find_element("xpath", "./ancestor::tr")
        assert child.find_element("css selector", "td.field-parent a").text == world.order
        assert child.find_element("css selector", "td.field-execution").text == row(world.shipping).execution_id[:8]
        for cell in browser.find_elements("css selector", "#result_list td.field-created time"):
            assert TIME_TEXT.match(cell.text), cell.text
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_instance_page_times_compact_mode_download_and_cancellation(
    browser: Any, live_server: Any, operator: User
) -> None:
    world = run_world()
    base = live_server.url
    log_in(browser, base, "operator", "operator-pw")

    # A fired timer is shown at the time it fired; every time has the one format.
    open_instance(browser, base, world.shipping)
    fired = HistoryEvent.objects.get(instance=row(world.shipping), event_type=EventType.TIMER_FIRED.value)
    cell = by_css(browser, "#history tr.wf-event-TimerFired td.wf-nowrap")
    assert cell.find_element("css selector", "time").get_attribute("datetime") == fired.visible_at.isoformat()
    assert "scheduled" in cell.text
    times = browser.find_elements("css selector", "#content time.wf-time")
    assert len(times) > 10 and all(TIME_TEXT.match(t.text) for t in times), [t.text for t in times]
    page_text = by_css(browser, "#content").text
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{6}|UTC|[ap]\.m\.", page_text), "a time in another format"

    # Compact mode: no WorkflowTaskStarted rows, and the pages stay compact.
    open_instance(browser, base, world.chatty)
    assert browser.find_elements("css selector", "#history tr.wf-event-WorkflowTaskStarted")
    submit(browser, by_css(browser, "#wf-compact-toggle"))
    assert not browser.find_elements("css selector", "#history tr.wf-event-WorkflowTaskStarted")
    assert "(without workflow task events)" in by_css(browser, "#history h2").text
    assert "compact=1" in by_css(browser, "nav.wf-pages a").get_attribute("href")
    screenshot(browser, "13-history-compact", full_page=False)

    # The JSON download is the history export format.
    link = by_css(browser, "#wf-history-json")
    document = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.json()).then(done);",
        link.get_attribute("href"),
    )
    loaded = read_history(document)
    assert loaded.instance.instance_id == world.chatty and loaded.workflow_name == "admin_chatty"
    assert len(loaded.events) == HistoryEvent.objects.filter(instance=row(world.chatty)).count()

    # An operator's cancellation reads as one: no engine traceback in sight.
    with running_worker() as client:
        start(client, "c-wait", admin_approval, "c-wait", queue="approvals")
        wait_until_waiting("c-wait")
        open_instance(browser, base, "c-wait")
        assert by_css(browser, "button[name=wf-cancel]").text == "Cancel workflow"
        assert by_css(browser, "button[name=wf-terminate]").text == "Terminate workflow…"
        submit(browser, by_css(browser, "button[name=wf-cancel]"))
        client.wait_for_workflow_instance("c-wait", timeout=60)
    open_instance(browser, base, "c-wait")
    outcome = by_css(browser, "#wf-outcome")
    assert outcome.find_element("css selector", "h2").text == "Canceled"
    assert "cancellation requested at" in outcome.find_element("css selector", ".wf-canceled").text
    assert "Traceback (most recent call last)" not in outcome.text
    assert outcome.find_element("css selector", "details.wf-trace").get_attribute("open") is None
    assert by_css(browser, "#wf-status").text == "Canceled"
    assert "cancellation requested" in by_css(browser, "#wf-timeline").text
    screenshot(browser, "14-instance-canceled")
