"""The workflow admin's pages, through Django's test client: list, filters, search, date
hierarchy, the instance page (input, result, error with traceback, history pages, timeline,
tree, pending work), read-only-ness, permissions and CSRF.

The instances are real: a worker runs the workflows below on the ORM backend once per module
(``world``), and every test reads the rows it left. The action tests (``test_admin_actions``)
and the browser tests import ``run_world`` and the workflows from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client as HttpClient
from django.urls import reverse

from django_workflows import workflow
from django_workflows.admin.display import MAX_SHOWN_CHARS, format_duration, pretty_json
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.core import InstanceState
from django_workflows.engine.history import EventType
from django_workflows.models import (
    ActivityTask,
    HistoryEvent,
    Payload,
    PendingEvent,
    WorkflowInstance,
)
from django_workflows.worker import WorkerOptions
from tests.conftest import wait_for
from tests.django import workers

NO_RETRY = workflow.ActivityOptions(retry_options=workflow.RetryOptions(max_attempts=1))
CHANGELIST = "admin:django_workflows_workflowinstance_changelist"


# -- the workflows behind the pages ----------------------------------------------------------


def charge(order_id: str, amount: int) -> dict[str, Any]:
    return {"order": order_id, "charged": amount}


def ship(order_id: str) -> str:
    return f"shipped {order_id}"


def reject(order_id: str) -> None:
    raise ValueError(f"card declined for {order_id} <script>alert(1)</script>")


async def admin_shipping(ctx: workflow.Context, order_id: str) -> str:
    await workflow.sleep(ctx, timedelta(milliseconds=20))
    return await workflow.execute_activity(ctx, NO_RETRY, ship, order_id)


async def admin_order(ctx: workflow.Context, order_id: str, amount: int) -> dict[str, Any]:
    charged = await workflow.execute_activity(ctx, NO_RETRY, charge, order_id, amount)
    options = workflow.SubWorkflowOptions(instance_id=f"{order_id}-shipping")
    shipped = await workflow.create_sub_workflow_instance(ctx, options, admin_shipping, order_id)
    return {"charged": charged, "shipped": shipped}


async def admin_failing(ctx: workflow.Context, order_id: str) -> None:
    await workflow.execute_activity(ctx, NO_RETRY, reject, order_id)


async def admin_approval(ctx: workflow.Context, order_id: str) -> dict[str, Any]:
    """Waits for an "approve" signal, with an hour-long deadline timer pending meanwhile; ends as
    canceled when its instance is canceled."""
    timer_ctx, cancel_timer = workflow.with_cancel(ctx)
    deadline = workflow.schedule_timer(timer_ctx, timedelta(hours=1), name="approval-deadline")
    approvals = workflow.new_signal_channel(ctx, "approve")
    result = await workflow.select(
        ctx,
        workflow.on_receive(approvals, lambda value, ok: {"order": order_id, "approval": value}),
        workflow.on_future(deadline, lambda future: {"order": order_id, "approval": None}),
    )
    cancel_timer()
    if ctx.err() is not None:  # canceled by an operator: end as canceled, not as a timeout
        raise ctx.err()
    return result


async def admin_supervisor(ctx: workflow.Context, order_id: str) -> dict[str, Any]:
    """A parent whose child waits for approval (a terminated child fails its parent)."""
    options = workflow.SubWorkflowOptions(instance_id=f"{order_id}-approval", queue="approvals")
    return await workflow.create_sub_workflow_instance(ctx, options, admin_approval, order_id)


async def admin_stuck(ctx: workflow.Context, order_id: str) -> str:
    """Schedules an activity on a queue no test worker polls: it stays pending."""
    options = workflow.ActivityOptions(queue="manual", retry_options=workflow.RetryOptions(max_attempts=1))
    return await workflow.execute_activity(ctx, options, ship, order_id)


async def admin_chatty(ctx: workflow.Context, steps: int) -> int:
    """A long history: one SideEffectResult event per step."""
    total = 0
    for _step in range(steps):
        total += await workflow.side_effect(ctx, lambda: 1)
    return total


async def admin_counter(ctx: workflow.Context, n: int) -> int:
    if n < 2:
        raise workflow.ContinueAsNew(n + 1)
    return n


WORKFLOWS = [
    admin_shipping,
    admin_order,
    admin_failing,
    admin_approval,
    admin_supervisor,
    admin_stuck,
    admin_chatty,
    admin_counter,
]
ACTIVITIES = [charge, ship, reject]
QUEUES = ("default", "approvals")


def running_worker() -> AbstractContextManager[Client]:
    """A worker on the configured ORM backend with this module's workflows; yields a client."""
    options = WorkerOptions(workflow_pollers=1, activity_pollers=1, workflow_queues=QUEUES, activity_queues=("default",))
    return workers.running_worker(WORKFLOWS, ACTIVITIES, options)


def start(client: Client, instance_id: str, wf: Any, *args: Any, queue: str = "default") -> Any:
    return client.create_workflow_instance(WorkflowInstanceOptions(instance_id=instance_id, queue=queue), wf, *args)


def wait_until_waiting(instance_id: str) -> None:
    """Until the approval workflow has run its first task (its deadline timer is pending)."""
    wait_for(
        lambda: HistoryEvent.objects.filter(
            instance__instance_id=instance_id, event_type=EventType.TIMER_SCHEDULED.value
        ).exists(),
        timeout=30,
        what=f"{instance_id} to wait for its signal",
    )


def row(instance_id: str) -> WorkflowInstance:
    return WorkflowInstance.objects.filter(instance_id=instance_id).latest("created_at", "id")


@dataclass(frozen=True)
class World:
    order: str = "order-1"
    shipping: str = "order-1-shipping"
    failing: str = "order-2"
    waiting: str = "order-3"
    chatty: str = "chatty-1"
    counter: str = "counter-1"
    stuck: str = "stuck-1"
    chatty_steps: int = 130


def run_world() -> World:
    """Run one instance of each kind to where the pages need it."""
    world = World()
    with running_worker() as client:
        done = [
            start(client, world.order, admin_order, world.order, 42),
            start(client, world.failing, admin_failing, world.failing),
            start(client, world.chatty, admin_chatty, world.chatty_steps),
            start(client, world.counter, admin_counter, 0),
        ]
        start(client, world.waiting, admin_approval, world.waiting, queue="approvals")
        start(client, world.stuck, admin_stuck, world.stuck)
        for instance in done[:3]:
            client.wait_for_workflow_instance(instance, timeout=60)
        wait_for(
            lambda: WorkflowInstance.objects.filter(instance_id=world.counter, state=InstanceState.FINISHED.value).exists(),
            timeout=60,
            what="the counter's last execution",
        )
        wait_until_waiting(world.waiting)
        wait_for(
            lambda: ActivityTask.objects.filter(instance__instance_id=world.stuck).exists(),
            timeout=30,
            what="the stuck instance's activity task",
        )
    return world


def clear_workflow_tables() -> None:
    # Test clean-up only: the admin itself never writes these tables.
    for model in (PendingEvent, ActivityTask, HistoryEvent, Payload, WorkflowInstance):
        model.objects.all().delete()


@pytest.fixture(scope="module")
def world(django_db_setup: Any, django_db_blocker: Any) -> Iterator[World]:
    with django_db_blocker.unblock():
        clear_workflow_tables()
        try:
            yield run_world()
        finally:
            clear_workflow_tables()


def staff_user(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="django_workflows", codename__in=codenames))
    return User.objects.get(pk=user.pk)  # a fresh object: permissions are cached per object


def detail_url(instance_id: str) -> str:
    return reverse("admin:django_workflows_workflowinstance_change", args=[row(instance_id).pk])


def text_of(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def listed_ids(html: str) -> list[str]:
    """Instance ids in the changelist's rows, in order."""
    return re.findall(r'<td class="field-instance_link"><a href="[^"]+" title="[^"]+">([^<]+)</a>', html)


pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# -- the list ----------------------------------------------------------------------------------


def test_list_shows_every_execution_with_status_name_queue_and_duration(world: World, admin_client: HttpClient) -> None:
    html = text_of(admin_client.get(reverse(CHANGELIST)))
    ids = listed_ids(html)
    # The counter continued as new twice: three executions of one id.
    assert sorted(ids) == sorted(
        [world.order, world.shipping, world.failing, world.waiting, world.stuck, world.chatty] + [world.counter] * 3
    )
    for label in ("Completed", "Failed", "Running", "Continued as new"):
        assert f">{label}</span>" in html
    assert "admin_approval" in html and "approvals" in html
    assert "running for " in html  # the waiting instance's duration
    assert re.search(r'<div class="wf-muted wf-duration">\d+(\.\d)? (ms|s)</div>', html)
    # The date hierarchy offers the creation date of the rows.
    assert f"created_at__year={row(world.order).created_at.year}" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=running", ["order-3", "stuck-1"]),
        ("status=failed", ["order-2"]),
        ("status=continued_as_new", ["counter-1", "counter-1"]),
        ("workflow_name=admin_order", ["order-1"]),
        ("queue=approvals", ["order-3"]),
        ("status=completed&workflow_name=admin_shipping", ["order-1-shipping"]),
        ("q=order-1", ["order-1", "order-1-shipping"]),
        ("q=ORDER-1-SHIP", ["order-1-shipping"]),
        ("q=nothing-like-this", []),
    ],
)
def test_filters_and_search(world: World, admin_client: HttpClient, query: str, expected: list[str]) -> None:
    html = text_of(admin_client.get(f"{reverse(CHANGELIST)}?{query}"))
    assert sorted(listed_ids(html)) == sorted(expected)


def test_search_by_exact_execution_id(world: World, admin_client: HttpClient) -> None:
    execution_id = row(world.failing).execution_id
    html = text_of(admin_client.get(reverse(CHANGELIST), {"q": execution_id}))
    assert listed_ids(html) == [world.failing]


def test_filter_sidebar_offers_names_and_queues(world: World, admin_client: HttpClient) -> None:
    html = text_of(admin_client.get(reverse(CHANGELIST)))
    sidebar = html[html.index('id="changelist-filter"') :]
    for choice in ("?status=terminated", "?workflow_name=admin_chatty", "?queue=approvals"):
        assert choice in sidebar


def test_date_hierarchy_drills_down_by_creation_date(world: World, admin_client: HttpClient) -> None:
    created = row(world.order).created_at
    html = text_of(admin_client.get(reverse(CHANGELIST), {"created_at__year": created.year}))
    assert world.order in listed_ids(html)
    html = text_of(admin_client.get(reverse(CHANGELIST), {"created_at__year": created.year - 1}))
    assert listed_ids(html) == []


# -- the instance page -------------------------------------------------------------------------


def test_completed_instance_shows_input_result_timeline_and_children(world: World, admin_client: HttpClient) -> None:
    html = text_of(admin_client.get(detail_url(world.order)))
    assert 'id="wf-status">Completed<' in html
    inputs = section(html, "wf-input")
    assert "&quot;order-1&quot;" in inputs and "42" in inputs
    result = section(html, "wf-outcome")
    assert "&quot;charged&quot;: 42" in result and "shipped order-1" in result
    timeline = section(html, "wf-timeline")
    assert "charge" in timeline and "admin_shipping" in timeline and "wf-bar-completed" in timeline
    tree = section(html, "wf-tree")
    assert world.shipping in tree and 'class="wf-current"' in tree
    # The child's page shows its parent above it, and its fired timer on the timeline.
    child = text_of(admin_client.get(detail_url(world.shipping)))
    assert world.order in section(child, "wf-tree")
    assert "wf-bar-fired" in section(child, "wf-timeline")
    assert f"?instance_id={world.order}&amp;execution_id=" in section(child, "wf-summary")


def test_failed_instance_shows_error_type_message_and_escaped_traceback(world: World, admin_client: HttpClient) -> None:
    html = text_of(admin_client.get(detail_url(world.failing)))
    error = section(html, "wf-outcome")
    assert '<strong class="wf-error-type">ValueError</strong>' in error
    assert "card declined for order-2 &lt;script&gt;alert(1)&lt;/script&gt;" in error
    assert "Traceback (most recent call last)" in error and "in reject" in error
    assert "<script>alert(1)</script>" not in html
    assert "wf-bar-failed" in section(html, "wf-timeline")


def test_running_instance_shows_pending_timer_and_signal_channel_state(world: World, admin_client: HttpClient) -> None:
    html = text_of(admin_client.get(detail_url(world.waiting)))
    assert 'id="wf-status">Running<' in html
    assert "running for " in section(html, "wf-summary")
    assert "Not finished yet." in section(html, "wf-outcome")
    timers = section(html, "wf-pending-timers")
    # The future event is named for what it is: a timer due at a time, not a "TimerFired".
    assert "Timer due at" in timers and "approval-deadline" in timers and "TimerFired" not in timers
    due = PendingEvent.objects.get(instance=row(world.waiting), event_type=EventType.TIMER_FIRED.value).visible_at
    assert f'datetime="{due.isoformat()}"' in timers
    assert "wf-bar-pending" in section(html, "wf-timeline")


def test_pending_activity_is_listed_with_its_input(world: World, admin_client: HttpClient) -> None:
    html = text_of(admin_client.get(detail_url(world.stuck)))
    activities = section(html, "wf-pending-activities")
    assert "<td>ship</td>" in activities and "<td>manual</td>" in activities
    assert "waiting for a worker" in activities and "&quot;stuck-1&quot;" in activities
    assert "wf-bar-pending" in section(html, "wf-timeline")


def test_long_history_is_paginated(
    world: World, admin_client: HttpClient, django_assert_max_num_queries: Any
) -> None:
    url = detail_url(world.chatty)
    total = HistoryEvent.objects.filter(instance=row(world.chatty)).count()
    assert total > 100
    # One page of events and its payloads, whatever the history's length: a bounded number of queries.
    with django_assert_max_num_queries(20):
        first = text_of(admin_client.get(url))
    assert f"History: {total} events" in first
    assert sequence_ids(first) == list(range(1, 101))
    assert "?page=2#history" in first
    second = text_of(admin_client.get(url, {"page": 2}))
    assert sequence_ids(second) == list(range(101, total + 1))
    assert "SideEffectResult" in second and "WorkflowExecutionFinished" in second
    # Past the end: the last page, not an error.
    assert sequence_ids(text_of(admin_client.get(url, {"page": 99}))) == list(range(101, total + 1))


def test_bounded_parts_say_when_they_are_cut(
    world: World, admin_client: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_workflows.admin import detail as admin_detail

    monkeypatch.setattr(admin_detail, "TIMELINE_LIMIT", 1)
    monkeypatch.setattr(admin_detail, "TREE_MAX_NODES", 0)
    html = text_of(admin_client.get(detail_url(world.order)))
    assert "The first 1 of 2 operations are shown." in section(html, "wf-timeline")
    assert "The tree is cut here" in html


def test_damaged_stored_data_does_not_break_the_page(world: World, admin_client: HttpClient) -> None:
    event = HistoryEvent.objects.filter(instance=row(world.order), event_type="ActivityCompleted").get()
    Payload.objects.filter(pk=event.payload_id).update(data="{not json")  # rolled back after the test
    html = text_of(admin_client.get(detail_url(world.order)))
    assert "cannot decode attributes" in section(html, "history") and "{not json" in html


def test_history_decodes_payloads(world: World, admin_client: HttpClient) -> None:
    html = text_of(admin_client.get(detail_url(world.order)))
    history = section(html, "history")
    for event_type in ("WorkflowExecutionStarted", "ActivityScheduled", "ActivityCompleted", "SubWorkflowScheduled"):
        assert event_type in history
    # Payloads are shown decoded and indented, not as the stored JSON-in-JSON.
    assert "&quot;charged&quot;: 42" in history
    assert '\\"' not in history


def test_continued_as_new_links_to_the_next_execution(world: World, admin_client: HttpClient) -> None:
    first = WorkflowInstance.objects.filter(instance_id=world.counter).order_by("created_at", "id").first()
    assert first is not None
    html = text_of(admin_client.get(reverse("admin:django_workflows_workflowinstance_change", args=[first.pk])))
    outcome = section(html, "wf-outcome")
    assert "Continued as new" in outcome
    executions = section(html, "wf-executions")
    assert executions.count("wf-status-continued_as_new") == 2 and "wf-status-completed" in executions
    next_link = re.search(r'href="([^"]+)">Next execution', outcome)
    assert next_link is not None
    response = admin_client.get(next_link.group(1).replace("&amp;", "&"))
    assert response.status_code == 302
    assert response["Location"] != reverse("admin:django_workflows_workflowinstance_change", args=[first.pk])


def test_lookup_of_an_unknown_instance_goes_back_to_the_list(world: World, admin_client: HttpClient) -> None:
    response = admin_client.get(reverse("admin:django_workflows_workflowinstance_lookup"), {"instance_id": "ghost"}, follow=True)
    assert "No stored execution of instance ghost." in text_of(response)


def test_unknown_object_id_redirects_with_a_message(world: World, admin_client: HttpClient) -> None:
    response = admin_client.get(reverse("admin:django_workflows_workflowinstance_change", args=[987654]), follow=True)
    assert "doesn’t exist" in text_of(response)


# -- read-only, permissions, CSRF --------------------------------------------------------------


def test_nothing_can_be_added_edited_or_deleted(world: World, admin_client: HttpClient) -> None:
    url = detail_url(world.order)
    assert admin_client.get(reverse("admin:django_workflows_workflowinstance_add")).status_code == 403
    assert admin_client.post(url, {"workflow_name": "hacked"}).status_code == 403
    delete = reverse("admin:django_workflows_workflowinstance_delete", args=[row(world.order).pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert row(world.order).workflow_name == "admin_order"
    html = text_of(admin_client.get(reverse(CHANGELIST)))
    assert 'value="delete_selected"' not in html and "workflowinstance/add/" not in html
    # Only the instance admin is registered: history, payloads and tasks have no admin pages.
    index = text_of(admin_client.get(reverse("admin:app_list", args=["django_workflows"])))
    assert "Workflow instances" in index
    for hidden in ("History events", "Payloads", "Pending events", "Activity tasks"):
        assert hidden not in index


def test_superuser_sees_every_action(world: World, admin_client: HttpClient) -> None:
    html = text_of(admin_client.get(reverse(CHANGELIST)))
    for action in (
        "cancel_instances", "terminate_instances", "signal_instances", "remove_instances", "restart_instances", "reset_instances"
    ):
        assert f'value="{action}"' in html
    running = text_of(admin_client.get(detail_url(world.waiting)))
    assert {"wf-cancel", "wf-signal", "wf-terminate", "wf-restart"} <= set(re.findall(r'name="(wf-\w+)"', running))
    finished = text_of(admin_client.get(detail_url(world.order)))
    # Remove and restart; "Reset to here" on the history's workflow task rows (wf-reset-<sequence>).
    assert set(re.findall(r'name="(wf-\w+)"', finished)) == {"wf-remove", "wf-restart"}
    assert re.search(r'name="wf-reset-\d+"', finished)


def test_view_only_staff_sees_pages_but_no_actions(world: World, client: HttpClient) -> None:
    client.force_login(staff_user("viewer", "view_workflowinstance"))
    html = text_of(client.get(reverse(CHANGELIST)))
    assert world.waiting in listed_ids(html)
    assert "cancel_instances" not in html and 'name="action"' not in html
    page = text_of(client.get(detail_url(world.waiting)))
    assert "<form" not in section(page, "wf-actions") and "approval-deadline" in page
    assert "Operator log" in section(page, "wf-actions")
    # Posting the action anyway does nothing: without any permitted action the list ignores it.
    response = client.post(
        reverse(CHANGELIST), {"action": "cancel_instances", "index": 0, "_selected_action": [row(world.waiting).pk]}, follow=True
    )
    assert response.status_code == 200
    assert not cancel_requested(world.waiting)


def test_each_action_needs_its_own_permission(world: World, client: HttpClient) -> None:
    client.force_login(staff_user("canceller", "view_workflowinstance", "cancel_workflowinstance"))
    html = text_of(client.get(reverse(CHANGELIST)))
    assert 'value="cancel_instances"' in html
    for other in ("terminate_instances", "signal_instances", "remove_instances"):
        assert other not in html
    page = text_of(client.get(detail_url(world.waiting)))
    assert set(re.findall(r'name="(wf-\w+)"', page)) == {"wf-cancel"}
    response = client.post(
        reverse(CHANGELIST),
        {"action": "terminate_instances", "apply": "yes", "reason": "x", "_selected_action": [row(world.waiting).pk]},
        follow=True,
    )
    assert "No action selected." in text_of(response)
    assert row(world.waiting).state == InstanceState.ACTIVE.value


def test_payloads_are_hidden_without_the_view_payloads_permission(world: World, client: HttpClient) -> None:
    from django_workflows.admin.display import PAYLOAD_HIDDEN

    hidden = str(PAYLOAD_HIDDEN).replace("“", "&quot;").replace("”", "&quot;")
    client.force_login(staff_user("auditor", "view_workflowinstance"))
    assert world.order in listed_ids(text_of(client.get(reverse(CHANGELIST))))
    html = text_of(client.get(detail_url(world.order)))
    # States and event names stay visible; inputs, results and history payloads do not.
    assert 'id="wf-status">Completed<' in html
    history = section(html, "history")
    for event_type in ("WorkflowExecutionStarted", "ActivityScheduled", "ActivityCompleted", "SubWorkflowScheduled"):
        assert event_type in history
    assert "charge" in history and "admin_shipping" in history  # names are not payloads
    for part in (section(html, "wf-input"), section(html, "wf-outcome"), history):
        assert str(PAYLOAD_HIDDEN) in part or hidden in part
    assert "order-1" not in section(html, "wf-input") and "charged" not in html and "shipped order-1" not in html
    # Pending activities' inputs too, and the history download (every payload) is refused.
    stuck = text_of(client.get(detail_url(world.stuck)))
    assert "<td>ship</td>" in section(stuck, "wf-pending-activities") and "&quot;stuck-1&quot;" not in stuck
    url = reverse("admin:django_workflows_workflowinstance_history_json", args=[row(world.order).pk])
    assert f'href="{url}"' not in html and client.get(url).status_code == 403
    # An error is not a payload: its type and message stay visible.
    failed = text_of(client.get(detail_url(world.failing)))
    assert '<strong class="wf-error-type">ValueError</strong>' in section(failed, "wf-outcome")

    client.force_login(staff_user("owner", "view_workflowinstance", "view_payloads"))
    html = text_of(client.get(detail_url(world.order)))
    assert "&quot;charged&quot;: 42" in section(html, "history") and "shipped order-1" in section(html, "wf-outcome")
    assert str(PAYLOAD_HIDDEN) not in html and client.get(url).status_code == 200


def test_staff_without_view_permission_is_refused(world: World, client: HttpClient) -> None:
    client.force_login(staff_user("nobody"))
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(detail_url(world.order)).status_code == 403
    assert client.get(reverse("admin:django_workflows_workflowinstance_lookup"), {"instance_id": world.order}).status_code == 403


def test_anonymous_users_are_sent_to_the_login_page(world: World, client: HttpClient) -> None:
    for url in (reverse(CHANGELIST), detail_url(world.order)):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_actions_without_csrf_token_are_refused(world: World, admin_user: User) -> None:
    client = HttpClient(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(
        reverse(CHANGELIST), {"action": "cancel_instances", "index": 0, "_selected_action": [row(world.waiting).pk]}
    )
    assert response.status_code == 403
    assert not cancel_requested(world.waiting)


def test_pages_send_a_csrf_token_with_every_action_form(world: World, admin_user: User) -> None:
    client = HttpClient(enforce_csrf_checks=True)
    client.force_login(admin_user)
    page = text_of(client.get(detail_url(world.waiting)))
    forms = re.findall(r'<form method="post".*?</form>', page, re.DOTALL)
    # Cancel, signal, terminate, restart, and a reset per workflow task of the history.
    resets = len(re.findall(r'name="wf-reset-\d+"', page))
    assert resets >= 1 and len(forms) == 4 + resets
    assert all('name="csrfmiddlewaretoken"' in form for form in forms)


# -- formatting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0123, "12 ms"), (4.25, "4.2 s"), (185, "3 min 5 s"), (7800, "2 h 10 min"), (3 * 86400 + 4 * 3600, "3 d 4 h")],
)
def test_durations_read_well(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


def test_huge_payloads_are_cut_on_the_page() -> None:
    shown = pretty_json({"blob": "x" * (MAX_SHOWN_CHARS * 2)})
    assert len(shown) < MAX_SHOWN_CHARS + 100
    assert shown.endswith("more characters not shown)")


# -- helpers -----------------------------------------------------------------------------------


def section(html: str, element_id: str) -> str:
    """The HTML from the element with ``element_id`` to the start of the next module."""
    start = html.index(f'id="{element_id}"')
    end = html.find('<div class="module"', start + 1)
    return html[start : end if end != -1 else len(html)]


def sequence_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td class="wf-num">(\d+)</td>', section(html, "history"))]


def cancel_requested(instance_id: str) -> bool:
    canceled = EventType.WORKFLOW_EXECUTION_CANCELED.value
    instance = row(instance_id)
    return (
        PendingEvent.objects.filter(instance=instance, event_type=canceled).exists()
        or HistoryEvent.objects.filter(instance=instance, event_type=canceled).exists()
    )


# -- history download and compact history --------------------------------------------------------


def test_history_downloads_as_the_export_format(world: World, admin_client: HttpClient, client: HttpClient) -> None:
    from django_workflows.engine.history_export import read_history

    url = reverse("admin:django_workflows_workflowinstance_history_json", args=[row(world.order).pk])
    assert f'href="{url}"' in text_of(admin_client.get(detail_url(world.order)))
    response = admin_client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="{world.order}-{row(world.order).execution_id[:8]}-history.json"'
    loaded = read_history(response.content)
    assert loaded.instance.instance_id == world.order and loaded.workflow_name == "admin_order"
    assert [e.sequence_id for e in loaded.events] == list(
        HistoryEvent.objects.filter(instance=row(world.order)).order_by("sequence_id").values_list("sequence_id", flat=True)
    )
    # A sub-workflow's export names its parent.
    child = read_history(admin_client.get(reverse(
        "admin:django_workflows_workflowinstance_history_json", args=[row(world.shipping).pk]
    )).content)
    assert child.instance.parent is not None and child.instance.parent.instance_id == world.order
    # Staff without the view permission get nothing; anonymous users go to the login page.
    client.force_login(staff_user("nobody"))
    assert client.get(url).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302


def test_compact_history_leaves_out_workflow_task_events(world: World, admin_client: HttpClient) -> None:
    full = text_of(admin_client.get(detail_url(world.order)))
    compact = text_of(admin_client.get(detail_url(world.order) + "?compact=1"))
    assert "wf-event-WorkflowTaskStarted" in full
    assert "wf-event-WorkflowTaskStarted" not in compact and "wf-event-ActivityCompleted" in compact
    assert "(without workflow task events)" in compact and "Show all events" in compact
