"""The history export format (``engine.history_export``): a real history survives the round trip
event for event, and documents that are not exports are refused with a message naming why."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.backends.memory import MemoryBackend
from django_workflows.engine.core import WorkflowInstance
from django_workflows.engine.history import EventType
from django_workflows.engine.history_export import (
    FORMAT,
    VERSION,
    HistoryFormatError,
    dumps_history,
    export_history,
    read_history,
)
from django_workflows.worker import WorkerOptions, WorkflowOrchestrator

NO_RETRY = workflow.ActivityOptions(retry_options=workflow.RetryOptions(max_attempts=1))


def double(n: int) -> int:
    return n * 2


def fail() -> None:
    raise ValueError("nope")


async def child(ctx: workflow.Context, n: int) -> int:
    return n + 1


async def everything(ctx: workflow.Context, n: int) -> dict[str, Any]:
    doubled = await workflow.execute_activity(ctx, NO_RETRY, double, n)
    await workflow.sleep(ctx, timedelta(milliseconds=10))
    try:
        await workflow.execute_activity(ctx, NO_RETRY, fail)
    except workflow.WorkflowError as err:
        failure = str(err)
    approved = await workflow.new_signal_channel(ctx, "approve").receive(ctx)
    sub = await workflow.create_sub_workflow_instance(
        ctx, workflow.SubWorkflowOptions(instance_id="export-child"), child, doubled
    )
    return {"doubled": doubled, "failure": failure, "approved": approved, "child": sub}


@pytest.fixture(scope="module")
def recorded() -> tuple[WorkflowInstance, list[Any], list[Any]]:
    backend = MemoryBackend()
    with WorkflowOrchestrator(backend, WorkerOptions(workflow_pollers=1, activity_pollers=1)) as orchestrator:
        for fn in (double, fail):
            orchestrator.register_activity(fn)
        orchestrator.register_workflow(everything)
        orchestrator.register_workflow(child)
        instance = orchestrator.create_workflow_instance(None, everything, 4)
        orchestrator.signal_workflow(instance.instance_id, "approve", {"by": "ops"})
        assert orchestrator.get_workflow_result(instance, 30)["child"] == 9
        child_instance = backend.get_latest_execution("export-child")
        return instance, backend.get_workflow_instance_history(instance), backend.get_workflow_instance_history(
            child_instance
        )


def test_round_trip_of_a_real_history(recorded: Any) -> None:
    instance, events, _ = recorded
    types = {event.type for event in events}
    assert {EventType.TIMER_FIRED, EventType.ACTIVITY_FAILED, EventType.SIGNAL_RECEIVED, EventType.SUB_WORKFLOW_COMPLETED} <= types
    text = dumps_history(instance, "everything", events)
    document = json.loads(text)
    assert document["format"] == FORMAT and document["version"] == VERSION
    assert document["instance"] == instance.instance_id and document["execution"] == instance.execution_id
    assert document["parent"] is None and document["workflow_name"] == "everything"
    started = document["events"][1]
    assert set(started) == {"id", "type", "timestamp", "schedule_event_id", "sequence_id", "visible_at", "attributes"}
    assert started["type"] == "WorkflowExecutionStarted" and started["attributes"]["inputs"] == ["4"]
    loaded = read_history(text)
    assert loaded.instance == instance and loaded.workflow_name == "everything"
    assert loaded.events == events  # every field, attributes included, timers' times included
    assert read_history(document).events == events


def test_a_sub_workflow_keeps_its_parent(recorded: Any) -> None:
    instance, _, child_events = recorded
    child_instance = WorkflowInstance("export-child", "e-1", parent=instance, parent_event_id=7)
    loaded = read_history(export_history(child_instance, "child", child_events))
    assert loaded.instance.parent == instance and loaded.instance.parent_event_id == 7
    assert loaded.events == child_events


def _document(recorded: Any) -> dict[str, Any]:
    instance, events, _ = recorded
    return export_history(instance, "everything", events)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="something-else"), "format is 'something-else'"),
        (lambda d: d.update(version=VERSION + 1), f"version {VERSION + 1} is newer than this reader"),
        (lambda d: d.update(version="1"), "version must be a positive integer"),
        (lambda d: d.pop("instance"), "instance must be a non-empty string, got None"),
        (lambda d: d.update(events={}), "events must be a list"),
        (lambda d: d["events"][2].update(type="Nonsense"), "events[2].type 'Nonsense' is not an event type"),
        (lambda d: d["events"][1].update(timestamp="yesterday"), "events[1].timestamp is not an ISO 8601 time"),
        (lambda d: d["events"][1].update(timestamp="2030-01-01T10:00:00"), "events[1].timestamp has no UTC offset"),
        (lambda d: d["events"][1]["attributes"].pop("name"), "events[1].attributes do not fit WorkflowExecutionStarted"),
        (lambda d: d["events"].pop(1), "events[1] has sequence_id 3, expected 2"),
    ],
)
def test_bad_documents_are_refused_with_a_reason(recorded: Any, change: Any, message: str) -> None:
    document = json.loads(json.dumps(_document(recorded)))
    change(document)
    with pytest.raises(HistoryFormatError) as raised:
        read_history(document)
    assert message in str(raised.value)


def test_not_json_at_all() -> None:
    with pytest.raises(HistoryFormatError, match="invalid JSON"):
        read_history("{oops")
    with pytest.raises(HistoryFormatError, match="expected a JSON object, got list"):
        read_history("[]")
