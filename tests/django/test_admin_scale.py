"""The instance list and page stay bounded on a big store (issue 21; admin/scale.py): no query
counts or reads a whole instances or history table, the number of queries does not grow with
the rows, counts above the cap are estimated or shown as "more than". Small data (the big
store is bench/admin_scale.py's); the caps are lowered instead."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_workflows.admin import scale, workers
from django_workflows.engine.history import WorkflowExecutionStartedAttributes, attributes_to_json
from django_workflows.models import HistoryEvent, Payload, WorkflowInstance

CHANGELIST = "admin:django_workflows_workflowinstance_changelist"
#: The list as operators use it: default, filtered, searched, sorted, a date, a later page.
LIST_QUERIES = [
    {},
    {"status": "failed"},
    {"status": "running"},
    {"workflow_name": "invoice"},
    {"queue": "billing", "status": "completed"},
    {"q": "scale-0001"},
    {"q": "SCALE-00"},
    {"o": "1"},
    {"o": "-4"},
    {"p": "2"},
]

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_counts() -> Iterator[None]:
    workers._counts_cache.clear()
    yield
    workers._counts_cache.clear()


def make_instances(n: int, events: int = 3, prefix: str = "scale") -> list[WorkflowInstance]:
    """``n`` executions in the backend's shape (a start event and workflow tasks; every fifth
    running, every fourth failed, the rest completed), two workflow names, two queues."""
    now = timezone.now()
    rows = []
    for i in range(n):
        running, failed = i % 5 == 0, i % 4 == 1
        instance_id = f"{prefix}-{i:04d}"
        rows.append(WorkflowInstance(
            instance_id=instance_id,
            execution_id=uuid.uuid4().hex,
            active_instance_id=instance_id if running else None,
            workflow_name=("invoice", "report")[i % 2],
            queue=("default", "billing")[i % 3 == 0],
            state=0 if running else 2,
            outcome="" if running else ("failed" if failed else "completed"),
            created_at=now - timedelta(hours=n - i),
            completed_at=None if running else now - timedelta(hours=n - i) + timedelta(seconds=3),
            last_sequence_id=events,
        ))
    created = WorkflowInstance.objects.bulk_create(rows)
    created = list(WorkflowInstance.objects.filter(instance_id__startswith=f"{prefix}-").order_by("id"))
    payloads, history = [], []
    for instance in created:
        for seq in range(1, events + 1):
            if seq == 1:
                event_type = "WorkflowExecutionStarted"
                data = attributes_to_json(WorkflowExecutionStartedAttributes(name=instance.workflow_name, queue=instance.queue))
            else:
                event_type, data = "WorkflowTaskStarted", "{}"
            payload = Payload(id=uuid.uuid4().hex, instance=instance, data=data)
            payloads.append(payload)
            history.append(HistoryEvent(
                instance=instance, payload=payload, event_id=uuid.uuid4().hex, event_type=event_type,
                timestamp=instance.created_at, sequence_id=seq,
            ))
    Payload.objects.bulk_create(payloads)
    HistoryEvent.objects.bulk_create(history)
    return created


def list_queries(client: HttpClient, params: dict[str, str]) -> list[dict[str, Any]]:
    workers._counts_cache.clear()  # the header counts as on the first view of its cache period
    with CaptureQueriesContext(connection) as context:
        response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200, (params, response.status_code)
    return list(context.captured_queries)


@pytest.mark.parametrize("params", LIST_QUERIES, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()) or "default")
def test_the_list_counts_no_whole_table(admin_client: HttpClient, params: dict[str, str]) -> None:
    make_instances(60)
    statements = [q["sql"] for q in list_queries(admin_client, params)]
    assert scale.unbounded_counts(statements) == []
    table = WorkflowInstance._meta.db_table
    # Nor reads every row for the filters' choices or the date drill-down.
    distinct = [s for s in statements if "SELECT DISTINCT" in s.upper() and table in s and " WHERE " not in s.upper()]
    assert distinct == []


def test_unbounded_counts_recognizes_what_the_list_used_to_run() -> None:
    table = WorkflowInstance._meta.db_table
    old = [
        f'SELECT COUNT(*) AS "__count" FROM "{table}"',
        f'SELECT "{table}"."state", COUNT("{table}"."id") AS "n" FROM "{table}" GROUP BY 1',
    ]
    bounded = [
        f'SELECT COUNT(*) FROM (SELECT "{table}"."id" FROM "{table}" LIMIT 10001) subquery',
        f'SELECT COUNT(*) FROM "{table}" WHERE "{table}"."state" = 0',
    ]
    assert scale.unbounded_counts(old + bounded) == old


def test_the_number_of_queries_does_not_grow_with_the_rows(admin_client: HttpClient) -> None:
    make_instances(8, prefix="few")
    few = {str(params): len(list_queries(admin_client, params)) for params in LIST_QUERIES[:5]}
    make_instances(120, prefix="many")
    many = {str(params): len(list_queries(admin_client, params)) for params in LIST_QUERIES[:5]}
    assert many == few


def test_counts_above_the_cap_are_estimated_or_capped(admin_client: HttpClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scale, "COUNT_CAP", 10)
    make_instances(40)
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    label = re.search(r'<span class="wf-result-count([^"]*)">([^<]+)</span>', html)
    assert label is not None
    assert "wf-result-count-approximate" in label.group(1)
    assert label.group(2).startswith(("about ", "more than 10")), label.group(2)
    # The header: completed (22 of 40) above the cap, failed (8) exact.
    assert '<span class="wf-count" data-status="completed">10+</span>' in html
    assert '<span class="wf-count" data-status="failed">8</span>' in html
    # A filter down to a few rows counts exactly.
    failed = admin_client.get(reverse(CHANGELIST), {"status": "failed"}).content.decode()
    assert '<span class="wf-result-count">8</span>' in failed


def test_exact_counts_below_the_cap(admin_client: HttpClient) -> None:
    make_instances(12)
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert '<span class="wf-result-count">12</span>' in html
    assert '<span class="wf-count" data-status="running">3</span>' in html


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the estimate is PostgreSQL's")
def test_postgresql_estimates_the_whole_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scale, "COUNT_CAP", 10)
    make_instances(50)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {WorkflowInstance._meta.db_table}")
    paginator = scale.EstimatedCountPaginator(WorkflowInstance.objects.order_by("-created_at"), 20)
    with CaptureQueriesContext(connection) as context:
        count = paginator.count
    assert paginator.approximate and count > 10
    assert [q["sql"] for q in context.captured_queries if "reltuples" in q["sql"]]
    assert scale.unbounded_counts(q["sql"] for q in context.captured_queries) == []


def test_filters_offer_the_indexed_values(admin_client: HttpClient) -> None:
    make_instances(10)
    assert scale.indexed_values(WorkflowInstance.objects.all(), "workflow_name") == ["invoice", "report"]
    assert scale.indexed_values(WorkflowInstance.objects.all(), "queue", state=0) == ["billing", "default"]
    assert scale.indexed_values(WorkflowInstance.objects.all(), "queue", cap=1) == ["billing"]


def test_the_instance_page_reads_the_same_queries_for_any_history_length(admin_client: HttpClient) -> None:
    short, long = make_instances(1, events=5, prefix="short")[0], make_instances(1, events=450, prefix="long")[0]

    def page_queries(instance: WorkflowInstance, page: str = "1") -> list[str]:
        url = reverse("admin:django_workflows_workflowinstance_change", args=[instance.pk])
        with CaptureQueriesContext(connection) as context:
            response = admin_client.get(url, {"page": page})
        assert response.status_code == 200
        return [q["sql"] for q in context.captured_queries]

    assert len(page_queries(long, "3")) == len(page_queries(short))
    statements = page_queries(long, "3")
    assert scale.unbounded_counts(statements) == []
    # History payloads by key, not by a join (which PostgreSQL answers by hashing the whole
    # payload table for a page deep in a long history).
    payload = Payload._meta.db_table
    assert not [s for s in statements if "JOIN" in s.upper() and f'"{payload}"' in s and "sequence_id" in s and "OFFSET" in s.upper()]
