"""The replayer for CI over a recorded corpus (``tests/histories``, recorded from the example
project's workflows by ``tests/histories/record.py``): it replays against the code of today, and
a deliberately incompatible change to the order flow is reported, by ``Replayer`` and by
``manage.py replayworkflows`` over files and over the database.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_workflows import registration, workflow
from django_workflows.backends import default_backend
from django_workflows.engine.backend import ExecutionSeed
from django_workflows.engine.core import WorkflowInstance
from django_workflows.engine.history import EventType, WorkflowExecutionStartedAttributes
from django_workflows.engine.registry import Registry
from django_workflows.replay import SelectionError, parse_since
from django_workflows.testing import Replayer, ReplayFailed
from django_workflows.testing.history_files import WorkflowHistory, read_histories
from testproject.example import orders

CORPUS = Path(__file__).resolve().parent.parent / "histories"
ORDER_FILES = {
    "order-approved-and-shipped.json",
    "order-rejected-after-reminders.json",
    "order-waiting-for-approval.json",
}


async def order_workflow_with_a_fraud_check(ctx: workflow.Context, order_id: int) -> dict[str, Any]:
    """The example's order flow with an activity added in the middle, without ``patched()``."""
    options = workflow.DEFAULT_ACTIVITY_OPTIONS
    await workflow.execute_activity(ctx, options, orders.set_order_status, order_id, "awaiting_approval")
    await workflow.execute_activity(ctx, options, "check_fraud", order_id)
    decision = await orders._wait_for_decision(ctx, order_id)
    return {"order": order_id, "approved": decision.get("approved")}


def _incompatible_registry() -> Registry:
    changed = Registry()
    for name, fn in registration.registry.workflows():
        changed.register_workflow(order_workflow_with_a_fraud_check if name == "order_workflow" else fn, name)
    # Activities too: workflows name them through the registry (activity1 is "Activity1").
    for name, fn in registration.registry.activities():
        changed.register_activity(fn, name)
    return changed


def test_the_corpus_replays_against_the_code_of_today() -> None:
    # Five histories recorded by this version, the same five by the version before it.
    report = Replayer().replay_files(CORPUS)
    assert report.ok, report.summary()
    assert report.replayed == len(list(CORPUS.rglob("*.json"))) == 10


def test_an_incompatible_change_is_reported_for_every_history_it_breaks() -> None:
    report = Replayer(_incompatible_registry()).replay_files(CORPUS)
    assert report.replayed == 10 and len(report.mismatches) == 6
    broken = {Path(m.source).name for m in report.mismatches}
    assert broken == ORDER_FILES  # the quickstart and the shipping child still replay
    waiting = next(m for m in report.mismatches if m.source == str(CORPUS / "order-waiting-for-approval.json"))
    assert waiting.instance.instance_id == "order-3" and waiting.workflow_name == "order_workflow"
    # Reported where the history and the code part: the recorded timer, where the code now
    # schedules the fraud check.
    assert (waiting.sequence_id, waiting.event_type) == (6, "TimerScheduled")
    assert waiting.expected == "TimerScheduled" and waiting.got == "ActivityScheduled(check_fraud)"
    assert "order-3" in str(waiting) and "expected TimerScheduled, got ActivityScheduled(check_fraud)" in str(waiting)
    with pytest.raises(ReplayFailed, match="replayed 10 histories: 6 mismatch"):
        report.raise_for_mismatches()


def test_a_history_the_code_finished_earlier_is_reported() -> None:
    async def returns_at_once(ctx: workflow.Context, order_id: int) -> str:
        return "done"

    replayer = Replayer(Registry())
    replayer.register_workflow(returns_at_once, "order_workflow")
    (history,) = read_histories(CORPUS / "order-waiting-for-approval.json")
    report = replayer.replay(history)
    (mismatch,) = report.mismatches
    assert mismatch.event_type == "ActivityScheduled" and mismatch.got == "the end of the workflow"


def test_an_unregistered_workflow_is_reported() -> None:
    report = Replayer(Registry()).replay_files(CORPUS / "workflow1-completed.json")
    (mismatch,) = report.mismatches
    assert "workflow Workflow1 not found" in mismatch.got


def test_replayworkflows_over_files() -> None:
    out = StringIO()
    call_command("replayworkflows", str(CORPUS), stdout=out)
    assert "Replayed 10 histories: all match" in out.getvalue()


def test_replayworkflows_over_files_fails_on_an_incompatible_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registration, "registry", _incompatible_registry())
    err = StringIO()
    with pytest.raises(CommandError, match="6 of 10 histories do not replay"):
        call_command("replayworkflows", str(CORPUS), stderr=err)
    assert err.getvalue().count("MISMATCH") == 6
    assert "order-3" in err.getvalue()


def test_replayworkflows_refuses_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}', encoding="utf-8")
    with pytest.raises(CommandError, match="not a history export"):
        call_command("replayworkflows", str(bad))


def _store(history: WorkflowHistory, instance_id: str) -> WorkflowInstance:
    """Put a recorded history in the database as an execution (the ORM backend's own write)."""
    instance = WorkflowInstance(instance_id, f"{instance_id}-execution")
    started = next(e.attributes for e in history.events if isinstance(e.attributes, WorkflowExecutionStartedAttributes))
    default_backend().create_workflow_instance_from_history(ExecutionSeed(instance=instance, started=started, history=history.events))
    return instance


@pytest.mark.django_db(transaction=True)
def test_replayworkflows_over_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    (waiting,) = read_histories(CORPUS / "order-waiting-for-approval.json")
    (quickstart,) = read_histories(CORPUS / "workflow1-completed.json")
    _store(waiting, "db-order-1")
    _store(waiting, "db-order-2")
    _store(quickstart, "db-quickstart")  # active too: the corpus' terminal event is in its history
    out = StringIO()
    call_command("replayworkflows", stdout=out)
    assert "Replayed 3 histories" in out.getvalue()

    monkeypatch.setattr(registration, "registry", _incompatible_registry())
    err = StringIO()
    with pytest.raises(CommandError, match="2 of 3 histories"):
        call_command("replayworkflows", stderr=err)
    # Filters: the workflow name, how many, since when, and the state.
    with pytest.raises(CommandError, match="1 of 1 histories"):
        call_command("replayworkflows", "--workflow", "order_workflow", "--limit", "1", stderr=StringIO())
    out = StringIO()
    call_command("replayworkflows", "--workflow", "Workflow1", stdout=out)
    assert "Replayed 1 histories" in out.getvalue()
    out = StringIO()
    call_command("replayworkflows", "--state", "failed", "--since", "1h", stdout=out)
    assert "Replayed 0 histories" in out.getvalue()
    with pytest.raises(CommandError, match="2 of 2"):
        call_command("replayworkflows", "--workflow", "order_workflow", "--since", "1h", stderr=StringIO())
    with pytest.raises(CommandError, match="expected an ISO date"):
        call_command("replayworkflows", "--since", "yesterday-ish")


def test_parse_since() -> None:
    now = timezone.now()
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("90s", now) == now - timedelta(seconds=90)
    assert parse_since("2026-01-02").date().isoformat() == "2026-01-02"
    with pytest.raises(SelectionError):
        parse_since("soon")


def test_a_recorded_history_names_its_events() -> None:
    (approved,) = read_histories(CORPUS / "order-approved-and-shipped.json")
    types = [e.type for e in approved.events]
    assert types[0] is EventType.WORKFLOW_TASK_STARTED and EventType.SUB_WORKFLOW_COMPLETED in types
    assert approved.workflow_name == "order_workflow" and approved.instance.instance_id == "order-1"
