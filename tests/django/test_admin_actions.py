"""The workflow admin's actions (cancel, terminate, signal, remove) on selections in mixed states,
posted through Django's test client while a worker runs the instances on the ORM backend."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib import messages
from django.contrib.admin import site
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import Client as HttpClient
from django.test import RequestFactory
from django.urls import reverse

from django_workflows.admin import actions as admin_actions
from django_workflows.admin.actions import (
    Result,
    engine_instance,
    report,
    run_per_instance,
)
from django_workflows.client import Client
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import WorkflowError
from django_workflows.engine.history import EventType
from django_workflows.models import HistoryEvent, WorkflowInstance
from tests.django.test_admin import (
    CHANGELIST,
    admin_approval,
    admin_failing,
    admin_order,
    admin_supervisor,
    detail_url,
    row,
    running_worker,
    start,
    wait_until_waiting,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def client_and_worker() -> Iterator[Client]:
    with running_worker() as client:
        yield client


def post_action(http: HttpClient, action: str, instance_ids: list[str], **data: Any) -> Any:
    pks = [row(instance_id).pk for instance_id in instance_ids]
    return http.post(reverse(CHANGELIST), {"action": action, "_selected_action": pks, **data})


def submit_form(http: HttpClient, page: Any, **fields: Any) -> Any:
    """Post the intermediate form of ``page`` with its hidden inputs, as a browser would."""
    html = page.content.decode()
    form = html[html.index('<form method="post" action="' + reverse(CHANGELIST) + '" class="wf-form"') :]
    form = form[: form.index("</form>")]
    data: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form):
        data.setdefault(name, []).append(value)
    data.update({name: [value] for name, value in fields.items()})
    return http.post(reverse(CHANGELIST), data)


def texts(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def finished_order(client: Client, instance_id: str) -> None:
    client.wait_for_workflow_instance(start(client, instance_id, admin_order, instance_id, 7), timeout=60)


def waiting(client: Client, instance_id: str) -> None:
    start(client, instance_id, admin_approval, instance_id, queue="approvals")
    wait_until_waiting(instance_id)


def logged(instance_id: str, flag: int) -> list[str]:
    return list(
        LogEntry.objects.filter(object_repr__contains=f" {instance_id} (", action_flag=flag).values_list(
            "change_message", flat=True
        )
    )


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_a_mixed_selection(client_and_worker: Client, admin_client: HttpClient) -> None:
    client = client_and_worker
    waiting(client, "cancel-a")
    waiting(client, "cancel-b")
    finished_order(client, "cancel-done")
    response = post_action(admin_client, "cancel_instances", ["cancel-a", "cancel-b", "cancel-done"], index=0)
    assert response.status_code == 302 and response["Location"] == reverse(CHANGELIST)
    assert sorted(texts(response)) == [
        "“cancel-a”: cancellation requested",
        "“cancel-b”: cancellation requested",
        "“cancel-done”: already finished",
    ]
    for instance_id in ("cancel-a", "cancel-b"):
        client.wait_for_workflow_instance(instance_id, timeout=60)
        assert row(instance_id).outcome == "canceled"
        with pytest.raises(WorkflowError, match="canceled"):
            client.get_workflow_result(instance_id, timeout=1)
        assert logged(instance_id, CHANGE) == ["Cancellation requested through the admin."]
    assert logged("cancel-done", CHANGE) == []
    assert row("cancel-done").outcome == "completed"
    # The instance page links to its operator log, which shows the entry.
    log_page = admin_client.get(reverse("admin:django_workflows_workflowinstance_history", args=[row("cancel-a").pk]))
    assert "Cancellation requested through the admin." in log_page.content.decode()


def test_cancel_from_the_instance_page_comes_back_to_it(client_and_worker: Client, admin_client: HttpClient) -> None:
    waiting(client_and_worker, "cancel-page")
    url = detail_url("cancel-page")
    response = post_action(admin_client, "cancel_instances", ["cancel-page"], next=url)
    assert response.status_code == 302 and response["Location"] == url
    assert texts(response) == ["“cancel-page”: cancellation requested"]
    client_and_worker.wait_for_workflow_instance("cancel-page", timeout=60)
    page = admin_client.get(url).content.decode()
    assert 'id="wf-status">Canceled<' in page and "WorkflowExecutionCanceled" in page


def test_a_foreign_next_url_is_ignored(client_and_worker: Client, admin_client: HttpClient) -> None:
    waiting(client_and_worker, "cancel-next")
    response = post_action(admin_client, "cancel_instances", ["cancel-next"], next="https://evil.example/")
    assert response.status_code == 302 and response["Location"] == reverse(CHANGELIST)


# -- terminate ---------------------------------------------------------------------------------


def test_terminate_asks_for_a_reason_then_terminates_running_instances(
    client_and_worker: Client, admin_client: HttpClient
) -> None:
    client = client_and_worker
    start(client, "super-1", admin_supervisor, "super-1")
    wait_until_waiting("super-1-approval")
    finished_order(client, "term-done")
    selection = ["super-1-approval", "term-done"]

    form = post_action(admin_client, "terminate_instances", selection)
    html = form.content.decode()
    assert form.status_code == 200 and 'name="reason"' in html and 'name="apply"' in html
    assert "super-1-approval" in html and "term-done" in html

    assert "2 selected instances" in html
    missing = submit_form(admin_client, form, reason="  ")
    assert "This field is required." in missing.content.decode()
    assert row("super-1-approval").state == InstanceState.ACTIVE.value

    done = submit_form(admin_client, missing, reason="customer <b>left</b>")
    assert done.status_code == 302
    assert sorted(texts(done)) == ["“super-1-approval”: terminated", "“term-done”: already finished"]
    child = row("super-1-approval")
    assert child.outcome == "terminated" and child.state == InstanceState.FINISHED.value
    assert logged("super-1-approval", CHANGE) == ["Terminated through the admin: customer <b>left</b>"]
    # The parent hears of its child's end, through the backend (the row carried the parent link).
    client.wait_for_workflow_instance("super-1", timeout=60)
    with pytest.raises(WorkflowError, match="terminated"):
        client.get_workflow_result("super-1", timeout=1)
    page = admin_client.get(detail_url("super-1-approval")).content.decode()
    assert '<span class="wf-reason">customer &lt;b&gt;left&lt;/b&gt;</span>' in page
    # Its timer was dropped with it: nothing is pending, the timeline says so.
    assert 'id="wf-pending"' not in page
    assert 'title="timer approval-deadline: dropped"' in page


# -- signal ------------------------------------------------------------------------------------


BAD_PAYLOADS = [
    ("{'approved': true}", "The payload is not valid JSON: Expecting property name enclosed in double quotes"),
    ('{"approved": tru}', "The payload is not valid JSON: Expecting value"),
    ("NaN", "The payload is not valid JSON: NaN is not allowed in JSON payloads"),
    ("[1, 2", "The payload is not valid JSON"),
]


def test_signal_payload_must_be_valid_json(client_and_worker: Client, admin_client: HttpClient) -> None:
    waiting(client_and_worker, "sig-bad")
    for payload, error in BAD_PAYLOADS:
        response = post_action(admin_client, "signal_instances", ["sig-bad"], apply="yes", name="approve", payload=payload)
        html = response.content.decode()
        assert response.status_code == 200 and error in html, payload
        assert texts(response) == []
    assert not HistoryEvent.objects.filter(instance=row("sig-bad"), event_type=EventType.SIGNAL_RECEIVED.value).exists()
    assert row("sig-bad").state == InstanceState.ACTIVE.value


def test_signal_needs_a_name(client_and_worker: Client, admin_client: HttpClient) -> None:
    waiting(client_and_worker, "sig-noname")
    response = post_action(admin_client, "signal_instances", ["sig-noname"], apply="yes", name="", payload="1")
    assert "This field is required." in response.content.decode()
    # The rule every sender follows (engine.core.validate_signal_name), shown on the form.
    for name, error in ((" ", "must not be blank"), ("x" * 256, "at most 255 characters"), ("bell\a", "control character")):
        response = post_action(admin_client, "signal_instances", ["sig-noname"], apply="yes", name=name, payload="1")
        assert response.status_code == 200 and error in response.content.decode(), name
        assert texts(response) == []
    assert not HistoryEvent.objects.filter(instance=row("sig-noname"), event_type=EventType.SIGNAL_RECEIVED.value).exists()


def test_signal_payload_over_the_limit_is_refused_on_the_form(client_and_worker: Client, admin_client: HttpClient) -> None:
    waiting(client_and_worker, "sig-big")
    backend = client_and_worker.backend
    limits = backend.options.payload_limits()
    payload = json.dumps("x" * limits.max_size)
    response = post_action(admin_client, "signal_instances", ["sig-big"], apply="yes", name="approve", payload=payload)
    assert response.status_code == 200
    assert f"over the payload limit of {limits.max_size:,} bytes" in response.content.decode()
    assert not HistoryEvent.objects.filter(instance=row("sig-big"), event_type=EventType.SIGNAL_RECEIVED.value).exists()


def test_signal_a_mixed_selection(client_and_worker: Client, admin_client: HttpClient) -> None:
    client = client_and_worker
    waiting(client, "sig-a")
    finished_order(client, "sig-done")
    form = post_action(admin_client, "signal_instances", ["sig-a", "sig-done"])
    assert 'name="payload"' in form.content.decode() and 'name="name"' in form.content.decode()
    response = submit_form(admin_client, form, name="approve", payload='{"by": "ops", "ok": true, "note": "\u00e9t\u00e9"}')
    assert sorted(texts(response)) == ["“sig-a”: signal approve sent", "“sig-done”: already finished"]
    result = client.get_workflow_result("sig-a", timeout=60)
    assert result == {"order": "sig-a", "approval": {"by": "ops", "ok": True, "note": "\u00e9t\u00e9"}}
    # The log names the signal but keeps its payload out.
    assert logged("sig-a", CHANGE) == ["Signal 'approve' sent through the admin."]


def test_signal_goes_once_to_an_instance_whatever_executions_are_selected(
    client_and_worker: Client, admin_client: HttpClient
) -> None:
    waiting(client_and_worker, "sig-once")
    pks = [row("sig-once").pk, row("sig-once").pk]
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "signal_instances", "_selected_action": pks, "apply": "yes", "name": "approve", "payload": "1"},
    )
    assert texts(response) == ["“sig-once”: signal approve sent"]
    assert client_and_worker.get_workflow_result("sig-once", timeout=60)["approval"] == 1


# -- remove ------------------------------------------------------------------------------------


def test_remove_confirms_then_removes_only_finished_instances(
    client_and_worker: Client, admin_client: HttpClient
) -> None:
    client = client_and_worker
    finished_order(client, "rm-done")
    start(client, "rm-failed", admin_failing, "rm-failed")
    client.wait_for_workflow_instance("rm-failed", timeout=60)
    waiting(client, "rm-running")
    selection = ["rm-done", "rm-failed", "rm-running"]
    child_pk = row("rm-done-shipping").pk

    confirm = post_action(admin_client, "remove_instances", selection)
    assert confirm.status_code == 200 and "cannot be undone" in confirm.content.decode()
    assert WorkflowInstance.objects.filter(instance_id__in=selection).count() == 3

    response = submit_form(admin_client, confirm)
    assert response.status_code == 302 and response["Location"] == reverse(CHANGELIST)
    assert sorted(texts(response)) == [
        "“rm-done”: removed",
        "“rm-failed”: removed",
        "“rm-running”: still running, not removed",
    ]
    assert list(WorkflowInstance.objects.filter(instance_id__in=selection).values_list("instance_id", flat=True)) == [
        "rm-running"
    ]
    assert not HistoryEvent.objects.filter(instance__instance_id__in=["rm-done", "rm-failed"]).exists()
    # A child is its own instance: removing the parent leaves it.
    assert WorkflowInstance.objects.filter(pk=child_pk).exists()
    assert len(logged("rm-done", DELETION)) == 1 and logged("rm-running", DELETION) == []


def test_instances_removed_since_the_selection(client_and_worker: Client, admin_client: HttpClient) -> None:
    finished_order(client_and_worker, "rm-gone")
    pk = row("rm-gone").pk
    client_and_worker.remove_workflow_instance("rm-gone")
    response = admin_client.post(reverse(CHANGELIST), {"action": "cancel_instances", "index": 0, "_selected_action": [pk]})
    assert texts(response) == ["The selected instances do not exist anymore."]


def test_an_instance_removed_while_the_action_runs_is_reported_not_found(
    client_and_worker: Client, admin_user: User
) -> None:
    finished_order(client_and_worker, "race-1")
    stale = row("race-1")
    client_and_worker.remove_workflow_instance("race-1")
    request = RequestFactory().post("/")
    request.user = admin_user
    request._messages = CookieStorage(request)  # type: ignore[attr-defined]
    modeladmin = site._registry[WorkflowInstance]
    client = Client(modeladmin.get_backend())
    results = run_per_instance(
        modeladmin, request, [stale], lambda r: client.cancel_workflow_instance(engine_instance(r)), "canceled", print
    )
    assert results == [Result("race-1", "not found", messages.WARNING)]
    assert [str(m) for m in request._messages] == ["“race-1”: not found"]  # type: ignore[attr-defined]


def test_too_large_a_selection_does_nothing(
    client_and_worker: Client, admin_client: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin_actions, "MAX_ACTION_ROWS", 1)
    waiting(client_and_worker, "big-1")
    waiting(client_and_worker, "big-2")
    response = post_action(admin_client, "cancel_instances", ["big-1", "big-2"], index=0)
    assert texts(response) == ["Select at most 1 instances for one action; nothing was done."]
    assert row("big-1").state == row("big-2").state == InstanceState.ACTIVE.value


def test_long_reports_are_summed_up(admin_user: User) -> None:
    request = RequestFactory().post("/")
    request.user = admin_user
    request._messages = CookieStorage(request)  # type: ignore[attr-defined]
    results = [Result(f"i-{n}", "canceled" if n % 3 else "already finished", messages.SUCCESS) for n in range(40)]
    report(site._registry[WorkflowInstance], request, results)
    shown = [str(m) for m in request._messages]  # type: ignore[attr-defined]
    assert shown[:25] == [f"“{r.label}”: {r.outcome}" for r in results[:25]]
    assert shown[25:] == ["… and 15 more: 10 canceled, 5 already finished"]
