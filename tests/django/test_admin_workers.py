"""The admin's Workers page, the overview above the instance list and the warnings about queues
no live worker polls, with a real worker on the ORM backend; the same pages in headless Chromium
(docs/observability.md). Screenshots land in ``<artifacts>/admin/``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client as HttpClient

from django_workflows import workflow
from django_workflows.admin import workers as admin_workers
from django_workflows.backends import default_backend
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.core import InstanceState
from django_workflows.models import WorkflowInstance
from django_workflows.worker import Worker, WorkerOptions
from tests.conftest import wait_for
from tests.django.browser import chromium, log_in, missing_browser, open_page, screenshot

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = "/admin/django_workflows/registeredworker/"
CHANGELIST = "/admin/django_workflows/workflowinstance/"


async def awaits_approval(ctx: workflow.Context) -> str:
    return await workflow.new_signal_channel(ctx, "approve").receive(ctx)


@contextmanager
def running_worker(queue: str) -> Iterator[Worker]:
    backend = default_backend()
    worker = Worker(
        backend,
        WorkerOptions(
            workflow_pollers=1, activity_pollers=1, workflow_queues=[queue], activity_queues=[queue],
            app_version="release-42", run_scheduler=False,
        ),
    )
    worker.register_workflow(awaits_approval)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        assert worker.wait_for_completion(60), "the worker did not stop in time"
        backend.close()


@pytest.fixture(autouse=True)
def fresh_counts(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    admin_workers._counts_cache.clear()


def _scene(queue: str, orphan_queue: str) -> tuple[str, str]:
    """A running instance a worker serves, and one on a queue nobody polls."""
    client = Client(default_backend())
    served = f"served-{uuid.uuid4().hex[:6]}"
    orphan = f"orphan-{uuid.uuid4().hex[:6]}"
    client.create_workflow_instance(WorkflowInstanceOptions(instance_id=served, queue=queue), "awaits_approval")
    client.create_workflow_instance(WorkflowInstanceOptions(instance_id=orphan, queue=orphan_queue), "awaits_approval")
    return served, orphan


def _page(instance_id: str) -> str:
    return f"{CHANGELIST}{WorkflowInstance.objects.get(instance_id=instance_id).pk}/change/"


def _text(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_workers_page_overview_and_warnings(admin_client: HttpClient) -> None:
    queue, orphans = f"q-{uuid.uuid4().hex[:6]}", f"nobody-{uuid.uuid4().hex[:6]}"
    served, orphan = _scene(queue, orphans)
    with running_worker(queue) as worker:
        wait_for(lambda: Client(default_backend()).get_workflow_instance_state(served) is InstanceState.ACTIVE
                 and WorkflowInstance.objects.get(instance_id=served).last_sequence_id > 0, 30,
                 what="the served instance's first task")
        page = _text(admin_client.get(WORKERS))
        assert f'data-worker-id="{worker.worker_id}"' in page
        assert "release-42" in page and worker.backend.options.worker_name in page
        assert "1 live worker" in page
        assert f'data-queue="{orphans}"' in page and "no worker" in page
        assert f"No live worker polls the queue {orphans}" in page
        assert f"manage.py runworkflows --queue {orphans})" in page

        listing = _text(admin_client.get(CHANGELIST))
        assert 'id="wf-overview"' in listing
        assert '<span class="wf-count" data-status="running">2</span>' in listing
        assert f"No live worker polls the queue {orphans}" in listing
        assert queue not in listing.split('id="wf-unserved"')[1].split("</ul>")[0]

        assert "this instance does not run until one does" in _text(admin_client.get(_page(orphan)))
        assert 'id="wf-queue-warning"' not in _text(admin_client.get(_page(served)))

    # The worker stopped cleanly: it is gone, and now both queues are unserved.
    page = _text(admin_client.get(WORKERS))
    assert 'id="wf-no-workers"' in page and "data-worker-id" not in page
    admin_workers._counts_cache.clear()
    listing = _text(admin_client.get(CHANGELIST))
    assert "No live worker polls the queues" in listing and queue in listing and orphans in listing
    assert 'id="wf-queue-warning"' in _text(admin_client.get(_page(served)))


def test_workers_page_needs_view_permission(client: HttpClient) -> None:
    User.objects.create_user("clerk", password="clerk-pw", is_staff=True)
    client.login(username="clerk", password="clerk-pw")
    assert client.get(WORKERS).status_code == 403
    assert client.get(f"{WORKERS}add/").status_code == 404


@pytest.mark.browser
@pytest.mark.skipif(bool(missing_browser()), reason=missing_browser() or "browser present")
def test_workers_page_and_warnings_in_a_browser(live_server: Any) -> None:
    User.objects.create_superuser("operator", "operator@example.com", "operator-pw")
    queue, orphans = f"q-{uuid.uuid4().hex[:6]}", f"nobody-{uuid.uuid4().hex[:6]}"
    served, orphan = _scene(queue, orphans)
    base = live_server.url
    with chromium() as browser, running_worker(queue) as worker:
        log_in(browser, base, "operator", "operator-pw")
        open_page(browser, f"{base}/admin/")
        browser.find_element("link text", "Workers").click()
        wait_for(lambda: browser.find_elements("css selector", "tr.wf-worker"), 30, what="the Workers page")
        rows = browser.find_elements("css selector", "tr.wf-worker")
        assert [r.get_attribute("data-worker-id") for r in rows] == [worker.worker_id]
        assert "release-42" in rows[0].text and queue in rows[0].text
        unserved = browser.find_element("css selector", f'tr.wf-queue-unserved[data-queue="{orphans}"]')
        assert "no worker" in unserved.text.lower()
        assert orphans in browser.find_element("id", "wf-unserved").text
        screenshot(browser, "workers-01-page")

        open_page(browser, f"{base}{CHANGELIST}")
        overview = browser.find_element("id", "wf-overview")
        assert "1 live worker" in overview.text
        assert browser.find_element("css selector", '.wf-count[data-status="running"]').text == "2"
        assert f"No live worker polls the queue {orphans}" in browser.find_element("id", "wf-unserved").text
        screenshot(browser, "workers-02-list-warning")

        open_page(browser, f"{base}{_page(orphan)}")
        warning = browser.find_element("id", "wf-queue-warning")
        assert orphans in warning.text and "does not run until one does" in warning.text
        screenshot(browser, "workers-03-unserved-instance")
        warning.find_element("link text", "Live workers").click()
        wait_for(lambda: browser.current_url.endswith(WORKERS), 30, what="the link to the Workers page")
        open_page(browser, f"{base}{_page(served)}")
        assert not browser.find_elements("id", "wf-queue-warning")
        screenshot(browser, "workers-04-served-instance")
