"""The schedules' admin in a real headless Chromium against a live server, with a worker firing
an every-second schedule: the list, the schedule page with its runs, trigger now, pause and
unpause from the page, following a run to its instance page, and deleting from the list.

Screenshots land in ``tests/artifacts/admin/schedules-*.png`` for a human to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import Select

from django_workflows import workflow
from django_workflows.backends import default_backend
from django_workflows.client import Client
from django_workflows.engine.registry import Registry
from django_workflows.models import Schedule
from django_workflows.schedules import RunAction, ScheduleSpec
from django_workflows.testing.conformance.support import wait_until
from django_workflows.worker import Worker, WorkerOptions
from tests.django.browser import chromium, log_in, messages_shown, missing_browser, open_page, screenshot, submit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(bool(missing_browser()), reason=missing_browser() or "browser present"),
]

CHANGELIST = "/admin/django_workflows/schedule/"


async def browser_beat(ctx: workflow.Context, label: str) -> str:
    return label


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def operator(settings: Any) -> User:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return User.objects.create_superuser("scheduler-op", "op@example.com", "op-pw")


def by_css(driver: Any, selector: str) -> Any:
    return driver.find_element("css selector", selector)


def started(client: Client, schedule_id: str) -> list[Any]:
    return [run for run in client.describe_schedule(schedule_id).recent_runs if run.action is RunAction.STARTED]


def test_schedules_in_the_browser(browser: Any, live_server: Any, operator: User) -> None:
    registry = Registry()
    registry.register_workflow(browser_beat)
    client = Client(default_backend(), registry=registry)
    client.create_schedule("beat", timedelta(seconds=1), browser_beat, "beat", overlap="allow_all")
    client.create_schedule(
        "nightly", ScheduleSpec(cron="30 2 * * *", time_zone="Europe/Berlin"), browser_beat, "report", paused=True
    )
    base = live_server.url
    worker = Worker(default_backend(), WorkerOptions(scheduler_interval=0.2), registry=registry)
    worker.start()
    try:
        wait_until(lambda: len(started(client, "beat")) >= 2, timeout=60, what="the schedule to fire")
        log_in(browser, base, "scheduler-op", "op-pw")
        open_page(browser, f"{base}{CHANGELIST}")
        rows = browser.find_elements("css selector", "#result_list td.field-schedule_link a")
        assert [cell.text for cell in rows] == ["beat", "nightly"]
        assert "every 1s" in by_css(browser, "#result_list").text
        assert "cron 30 2 * * * (Europe/Berlin)" in by_css(browser, "#result_list").text
        screenshot(browser, "schedules-01-list")

        # The schedule page: its runs, each linking to its instance.
        submit(browser, browser.find_element("link text", "beat"))
        assert by_css(browser, "#content h1").text.startswith("beat")
        assert "every 1s" in by_css(browser, "#wf-when").text
        assert len(browser.find_elements("css selector", "#wf-next li")) == 5
        assert browser.find_elements("css selector", "#wf-runs a.wf-run-link")
        screenshot(browser, "schedules-02-page")

        # Pause from the page, then trigger now while paused, then unpause.
        submit(browser, by_css(browser, "button[name=wf-pause]"))
        assert messages_shown(browser) == ["“beat”: paused"]
        assert by_css(browser, "#wf-paused").text == "Paused"
        count = len(started(client, "beat"))
        submit(browser, by_css(browser, "button[name=wf-trigger]"))
        (message,) = messages_shown(browser)
        assert message.startswith("“beat”: started beat@trigger-")
        assert len(started(client, "beat")) == count + 1
        screenshot(browser, "schedules-03-triggered-while-paused")
        submit(browser, by_css(browser, "button[name=wf-unpause]"))
        assert messages_shown(browser) == ["“beat”: unpaused"]
        wait_until(lambda: len(started(client, "beat")) >= count + 3, timeout=60, what="firings after unpausing")

        # Follow the triggered run to its instance page.
        open_page(browser, browser.current_url)
        trigger_link = next(
            link for link in browser.find_elements("css selector", "#wf-runs a.wf-run-link") if "@trigger-" in link.text
        )
        instance_id = trigger_link.text
        submit(browser, trigger_link)
        assert by_css(browser, "#content h1").text.startswith(instance_id)
        screenshot(browser, "schedules-04-run-instance")

        # Delete the paused one from the list, through its confirmation page.
        nightly = Schedule.objects.get(schedule_id="nightly")

        def choose_delete() -> None:
            open_page(browser, f"{base}{CHANGELIST}")
            by_css(browser, f"input.action-select[value='{nightly.pk}']").click()
            Select(browser.find_element("name", "action")).select_by_value("delete_schedules")
            submit(browser, by_css(browser, "button[name=index]"))

        try:
            choose_delete()
        except WebDriverException:
            # Chromium under load sometimes hands out a node of the page it just left; the
            # second attempt starts from a freshly loaded list.
            choose_delete()
        assert "stop firing and are deleted" in by_css(browser, "#content").text
        submit(browser, by_css(browser, "form.wf-form input[type=submit]"))
        assert messages_shown(browser) == ["“nightly”: deleted"]
        assert [cell.text for cell in browser.find_elements("css selector", "#result_list td.field-schedule_link a")] == ["beat"]
        screenshot(browser, "schedules-05-deleted", full_page=False)
    finally:
        client.pause_schedule("beat")
        worker.stop()
        worker.wait_for_completion(timeout=30)
