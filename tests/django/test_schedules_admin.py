"""The schedules' admin through Django's test client: the list (next run, last run, paused), the
schedule page (definition, next fire times, recent runs linking to their instances), the actions
pause, unpause, trigger and delete each behind its own permission, POST only with CSRF; plus the
model's migration and the ``runworkflows --no-scheduler`` flag.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.test import Client as HttpClient
from django.urls import reverse

from django_workflows import workflow
from django_workflows.backends import default_backend
from django_workflows.client import Client
from django_workflows.models import Schedule, WorkflowInstance
from django_workflows.runner import WorkerSettings
from django_workflows.schedules import ScheduleNotFound, ScheduleSpec

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:django_workflows_schedule_changelist"


async def admin_report(ctx: workflow.Context, fmt: str) -> str:
    return fmt


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def client() -> Client:
    return Client(default_backend())


@pytest.fixture
def schedules(client: Client) -> Client:
    client.create_schedule("nightly", ScheduleSpec(cron="30 2 * * *", time_zone="Europe/Berlin"), admin_report, "pdf")
    client.create_schedule("hourly", timedelta(hours=1), admin_report, "<b>csv</b>", paused=True, note="on hold")
    client.trigger_schedule("nightly")
    return client


def user_with(*codenames: str) -> HttpClient:
    user = User.objects.create_user("op-" + "-".join(codenames or ("none",)), password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_workflows", codename__in=codenames))
    http = HttpClient()
    http.force_login(user)
    return http


def superuser() -> HttpClient:
    User.objects.create_superuser("root", "root@example.com", "pw")
    http = HttpClient()
    http.login(username="root", password="pw")
    return http


def pk(schedule_id: str) -> int:
    return Schedule.objects.get(schedule_id=schedule_id).pk


def post_action(http: HttpClient, action: str, *schedule_ids: str, **data: Any) -> Any:
    return http.post(reverse(CHANGELIST), {"action": action, "_selected_action": [pk(s) for s in schedule_ids], **data})


def texts(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_the_list_shows_when_next_last_and_paused(schedules: Client) -> None:
    page = superuser().get(reverse(CHANGELIST)).content.decode()
    assert "nightly" in page and "hourly" in page
    assert "cron 30 2 * * * (Europe/Berlin)" in page and "every 3600s" in page
    assert 'wf-status-running">Running' in page  # the triggered run of nightly
    assert "icon-yes.svg" in page and "icon-no.svg" in page  # paused / not paused
    assert "Trigger selected schedules now" in page and "Delete selected schedules" in page


def test_the_schedule_page_links_runs_to_their_instances(schedules: Client) -> None:
    http = superuser()
    page = http.get(reverse("admin:django_workflows_schedule_change", args=[pk("nightly")])).content.decode()
    run = schedules.describe_schedule("nightly").recent_runs[0].instance
    assert "nightly@trigger-" in page and "(triggered)" in page
    assert page.count("<li class=\"wf-mono\">") == 5  # five next fire times
    link = re.search(r'class="wf-run-link" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    response = http.get(link)
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:django_workflows_workflowinstance_change",
        args=[WorkflowInstance.objects.get(instance_id=run.instance_id).pk],
    )
    hourly = http.get(reverse("admin:django_workflows_schedule_change", args=[pk("hourly")])).content.decode()
    assert "&lt;b&gt;csv&lt;/b&gt;" in hourly and "<b>csv</b>" not in hourly  # escaped
    assert "on hold" in hourly and "None while paused." in hourly
    assert 'name="wf-unpause"' in hourly and 'name="wf-pause"' not in hourly


def test_viewing_needs_only_the_view_permission_and_acting_each_its_own(schedules: Client) -> None:
    viewer = user_with("view_schedule")
    page = viewer.get(reverse("admin:django_workflows_schedule_change", args=[pk("nightly")])).content.decode()
    assert "wf-action-" not in page  # no buttons without the action permissions
    response = post_action(viewer, "pause_schedules", "nightly")
    assert not schedules.describe_schedule("nightly").paused
    assert response.status_code in (200, 302)
    assert user_with().get(reverse(CHANGELIST)).status_code == 403

    pauser = user_with("view_schedule", "pause_schedule")
    assert 'name="wf-pause"' in pauser.get(reverse("admin:django_workflows_schedule_change", args=[pk("nightly")])).content.decode()
    response = post_action(pauser, "pause_schedules", "nightly")
    assert texts(response) == ["“nightly”: paused"]
    described = schedules.describe_schedule("nightly")
    assert described.paused and "in the admin" in described.note
    assert post_action(pauser, "unpause_schedules", "nightly") is not None
    assert schedules.describe_schedule("nightly").paused  # unpausing is another permission

    unpauser = user_with("view_schedule", "unpause_schedule")
    texts(post_action(unpauser, "unpause_schedules", "nightly", "hourly"))
    assert not schedules.describe_schedule("nightly").paused and not schedules.describe_schedule("hourly").paused

    trigger = user_with("view_schedule", "trigger_schedule")
    response = post_action(trigger, "trigger_schedules", "hourly")
    (message,) = texts(response)
    assert message.startswith("“hourly”: started hourly@trigger-")
    assert WorkflowInstance.objects.filter(instance_id__startswith="hourly@trigger-").count() == 1
    assert LogEntry.objects.filter(action_flag=CHANGE, object_id=str(pk("hourly"))).exists()

    deleter = user_with("view_schedule", "delete_schedule")
    confirm = post_action(deleter, "delete_schedules", "hourly")
    assert confirm.status_code == 200 and "stop firing and are deleted" in confirm.content.decode()
    assert Schedule.objects.filter(schedule_id="hourly").exists()  # not before confirming
    done = post_action(deleter, "delete_schedules", "hourly", apply="yes")
    assert texts(done) == ["“hourly”: deleted"]
    with pytest.raises(ScheduleNotFound):
        schedules.describe_schedule("hourly")
    assert LogEntry.objects.filter(action_flag=DELETION).exists()
    assert WorkflowInstance.objects.filter(instance_id__startswith="hourly@trigger-").exists()  # runs stay


def test_schedule_arguments_are_payloads_hidden_without_view_payloads(schedules: Client) -> None:
    from django_workflows.admin.display import PAYLOAD_HIDDEN

    url = reverse("admin:django_workflows_schedule_change", args=[pk("hourly")])
    page = user_with("view_schedule").get(url).content.decode()
    assert "hourly" in page and "every 3600s" in page and "csv" not in page and str(PAYLOAD_HIDDEN) in page
    page = user_with("view_schedule", "view_payloads").get(url).content.decode()
    assert "&lt;b&gt;csv&lt;/b&gt;" in page and str(PAYLOAD_HIDDEN) not in page


def test_actions_need_post_with_a_csrf_token(schedules: Client) -> None:
    User.objects.create_superuser("csrf", "csrf@example.com", "pw")
    http = HttpClient(enforce_csrf_checks=True)
    http.login(username="csrf", password="pw")
    response = post_action(http, "pause_schedules", "nightly")
    assert response.status_code == 403
    assert not schedules.describe_schedule("nightly").paused
    detail = reverse("admin:django_workflows_schedule_change", args=[pk("nightly")])
    assert superuser().post(detail, {}).status_code == 403  # the schedule page saves nothing
    assert superuser_get_add_is_forbidden()


def superuser_get_add_is_forbidden() -> bool:
    http = HttpClient()
    http.login(username="csrf", password="pw")
    return http.get(reverse("admin:django_workflows_schedule_add")).status_code == 403


def test_the_migration_only_adds_the_schedule_table() -> None:
    from importlib import import_module

    migration = import_module("django_workflows.migrations.0003_schedules").Migration
    assert [type(operation).__name__ for operation in migration.operations] == ["CreateModel"]
    assert migration.dependencies == [("django_workflows", "0002_pending_ready_at")]


def test_runworkflows_can_leave_the_scheduler_off() -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandParser

    from django_workflows.management.commands.runworkflows import Command

    parser = CommandParser()
    Command().add_arguments(parser)
    assert parser.parse_args(["--no-scheduler"]).no_scheduler is True
    assert WorkerSettings(run_scheduler=False).worker_options().run_scheduler is False
    assert WorkerSettings().worker_options().run_scheduler is True
    assert call_command is not None


def test_the_example_schedule_is_declared_synced_and_runs(client: Client) -> None:
    from django_workflows.registration import registry
    from django_workflows.worker import Worker, WorkerOptions
    from testproject.example.models import Order

    # bulk_create sends no post_save: no order workflow starts and changes them meanwhile.
    Order.objects.bulk_create([Order(item="book", status="shipped"), Order(item="pen", status="shipped"), Order(item="ink")])
    worker = Worker(default_backend(), WorkerOptions(scheduler_interval=0.2), registry=registry)
    worker.start()
    try:
        described = client.describe_schedule("daily-order-summary")
        assert described.declared and described.workflow_name == "daily_order_summary"
        assert described.spec == ScheduleSpec(cron="0 6 * * *", time_zone="Europe/Berlin")
        assert described.catchup_window == timedelta(hours=1)
        run = client.trigger_schedule("daily-order-summary")
        assert run is not None
        assert client.get_workflow_result(run, timeout=60) == {"new": 1, "shipped": 2}
    finally:
        worker.stop()
        worker.wait_for_completion(timeout=30)
