"""Batch removal on the ORM store while a worker runs (issue 21; backends/orm/removal.py):
several short transactions, only executions that finished before the cutoff, long histories
cut down in bounded pieces. The 100,000-instance run under load is bench/admin_scale.py's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Max

from django_workflows import workflow
from django_workflows.backends.orm import removal
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.core import InstanceState
from django_workflows.models import HistoryEvent, Payload, WorkflowInstance
from tests.conftest import wait_for
from tests.django.workers import running_worker

pytestmark = pytest.mark.django_db(transaction=True)


def double(n: int) -> int:
    return 2 * n


async def removal_quick(ctx: workflow.Context, n: int) -> int:
    return await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, double, n)


async def removal_waits(ctx: workflow.Context) -> Any:
    return await workflow.new_signal_channel(ctx, "go").receive(ctx)


@pytest.fixture
def client() -> Iterator[Client]:
    with running_worker((removal_quick, removal_waits), (double,)) as client:
        yield client


def start(client: Client, prefix: str, n: int) -> list[Any]:
    return [
        client.create_workflow_instance(WorkflowInstanceOptions(instance_id=f"{prefix}-{i}"), removal_quick, i)
        for i in range(n)
    ]


def finish(client: Client, instances: list[Any]) -> None:
    for instance in instances:
        client.wait_for_workflow_instance(instance, timeout=60)


def cutoff_after(prefix: str) -> Any:
    last = WorkflowInstance.objects.filter(instance_id__startswith=f"{prefix}-").aggregate(Max("completed_at"))
    return last["completed_at__max"] + timedelta(milliseconds=1)


def test_removal_takes_several_transactions_and_only_old_finished_executions(client: Client) -> None:
    finish(client, start(client, "old", 12))
    waiting = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="waiting"), removal_waits)
    cutoff = cutoff_after("old")
    # Work for the worker while the removal runs; these finish after the cutoff.
    newer = start(client, "new", 6)
    batches: list[int] = []
    removed = client.remove_workflow_instances(finished_before=cutoff, batch_size=5, progress=lambda n, total: batches.append(n))
    assert removed == 12
    assert [n for n in batches if n] == [5, 5, 2]
    finish(client, newer)
    left = set(WorkflowInstance.objects.values_list("instance_id", flat=True))
    assert left == {"waiting", *(f"new-{i}" for i in range(6))}
    assert not HistoryEvent.objects.filter(instance__instance_id__startswith="old-").exists()
    assert set(Payload.objects.values_list("instance__instance_id", flat=True).distinct()) <= left
    assert client.get_workflow_instance_state(waiting) is InstanceState.ACTIVE
    # Nothing more to remove before the same cutoff.
    assert client.remove_workflow_instances(finished_before=cutoff, batch_size=5) == 0


def test_long_histories_are_cut_in_bounded_transactions(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    finish(client, start(client, "long", 3))
    lengths = list(WorkflowInstance.objects.values_list("last_sequence_id", flat=True))
    assert min(lengths) > 3
    monkeypatch.setattr(removal, "ROW_BUDGET", 3)
    cuts: list[int] = []
    real_cut = removal._cut_history

    def cut(store: Any, row_id: int) -> int:
        count = real_cut(store, row_id)
        cuts.append(count)
        return count

    monkeypatch.setattr(removal, "_cut_history", cut)
    batches: list[int] = []
    removed = client.remove_workflow_instances(
        finished_before=cutoff_after("long"), batch_size=10, progress=lambda n, total: batches.append(n)
    )
    assert removed == 3
    # One execution per batch (each history is over the budget), its history cut 3 rows at a time.
    assert [n for n in batches if n] == [1, 1, 1]
    assert cuts and max(cuts) <= 3 and sum(cuts) == sum(lengths)
    wait_for(lambda: not WorkflowInstance.objects.exists(), timeout=10, what="every execution removed")
    assert not HistoryEvent.objects.exists() and not Payload.objects.exists()
