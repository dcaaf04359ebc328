"""Executions recorded before ``with_retries`` scheduled its first attempt at once keep replaying.

``fixtures/legacy_retry_order.json`` is the history a real worker recorded for
``legacy_order.legacy_order(21)`` with the code of that time (see ``legacy_order.py`` for the
ids each call took then and takes now). The executor must recognise it, replay it, and continue
it task by task exactly as it was recorded: a fresh executor at every task boundary, and an
executor that replayed once and then kept going (the executor cache). The one difference
allowed is the schedule event id of ``WorkflowExecutionFinished``: 0 now, the id of the
completing command then.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.engine.converter import default_converter
from django_workflows.engine.core import InstanceState, WorkflowInstance
from django_workflows.engine.executor import Executor
from django_workflows.engine.history import (
    ActivityCompletedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    WorkflowExecutionFinishedAttributes,
    event_from_dict,
    event_to_dict,
    new_event,
)
from django_workflows.engine.registry import Registry

from .drive import T0, Driver, FixedClock, HistoryStore, started
from .legacy_order import legacy_child, legacy_echo, legacy_order

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_retry_order.json"

#: Events a workflow task produces from commands; the others were pending events it consumed.
COMMAND_EVENTS = {
    EventType.ACTIVITY_SCHEDULED,
    EventType.TIMER_SCHEDULED,
    EventType.TIMER_CANCELED,
    EventType.SUB_WORKFLOW_SCHEDULED,
    EventType.SUB_WORKFLOW_CANCELLATION_REQUESTED,
    EventType.SIDE_EFFECT_RESULT,
    EventType.WORKFLOW_EXECUTION_FINISHED,
    EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}


def load() -> tuple[dict[str, Any], WorkflowInstance, list[Event]]:
    doc = json.loads(FIXTURE.read_text())
    instance = WorkflowInstance(doc["instance"]["instance_id"], doc["instance"]["execution_id"])
    return doc, instance, [event_from_dict(data) for data in doc["history"]]


def split_tasks(history: list[Event]) -> list[list[Event]]:
    tasks: list[list[Event]] = []
    for event in history:
        if event.type is EventType.WORKFLOW_TASK_STARTED:
            tasks.append([])
        tasks[-1].append(event)
    return tasks


def registry() -> Registry:
    registry = Registry()
    registry.register_workflow(legacy_order)
    registry.register_workflow(legacy_child)
    return registry


def new_executor(instance: WorkflowInstance, store: HistoryStore, clock: FixedClock) -> Executor:
    return Executor(
        registry=registry(), history_provider=store, instance=instance, converter=default_converter, clock=clock
    )


def comparable(events: list[Event]) -> list[dict[str, Any]]:
    """Every field but the event id (new for every event an executor produces)."""
    out = []
    for event in events:
        data = event_to_dict(event)
        del data["id"]
        out.append(data)
    return out


def expected_now(recorded: list[Event]) -> list[dict[str, Any]]:
    """The recorded task as this version writes it: Finished carries schedule event id 0."""
    expected = comparable(recorded)
    for data in expected:
        if data["t"] == EventType.WORKFLOW_EXECUTION_FINISHED.value:
            assert data.pop("seid") == 9, "the fixture records the completing command's id, as versions before did"
    return expected


def run_task(executor: Executor, store: HistoryStore, clock: FixedClock, recorded: list[Event]) -> list[Event]:
    """Execute the task ``recorded`` holds (its pending events, at its time); record it as it was."""
    clock.current = recorded[0].timestamp
    pending = [dataclasses.replace(e, sequence_id=0) for e in recorded[1:] if e.type not in COMMAND_EVENTS]
    result = executor.execute_task(last_sequence_id=len(store.events), new_events=pending)
    store.events.extend(recorded)  # the backend holds the recorded history
    return result.executed


def test_fixture_is_a_history_in_the_old_order() -> None:
    doc, _, history = load()
    assert doc["result"] == "retried@1|7|once|42|again|1"
    first_task = split_tasks(history)[0]
    assert [(e.type, e.schedule_event_id) for e in first_task[2:]] == [
        (EventType.SIDE_EFFECT_RESULT, 1),
        (EventType.ACTIVITY_SCHEDULED, 2),
        (EventType.TIMER_SCHEDULED, 3),
        (EventType.ACTIVITY_SCHEDULED, 4),
        (EventType.SUB_WORKFLOW_SCHEDULED, 5),
    ]


@pytest.mark.parametrize("boundary", range(1, 6))
def test_recorded_execution_is_continued_as_recorded(boundary: int, caplog: pytest.LogCaptureFixture) -> None:
    """A fresh executor takes over after task ``boundary`` and runs every later task itself."""
    _, instance, history = load()
    tasks = split_tasks(history)
    assert len(tasks) == 6
    store, clock = HistoryStore(), FixedClock()
    for recorded in tasks[:boundary]:
        store.events.extend(recorded)
    executor = new_executor(instance, store, clock)
    with caplog.at_level(logging.INFO, logger="django_workflows.workflow"):
        for recorded in tasks[boundary:]:
            assert comparable(run_task(executor, store, clock, recorded)) == expected_now(recorded)
    assert executor.state.legacy_retry_order
    assert any("retry order of django_workflows before" in r.getMessage() for r in caplog.records)
    assert executor.completed


def test_every_task_on_a_fresh_executor() -> None:
    """No executor cache: every task replays the whole recorded history first."""
    _, instance, history = load()
    tasks = split_tasks(history)
    store, clock = HistoryStore(), FixedClock()
    store.events.extend(tasks[0])
    for recorded in tasks[1:]:
        executed = run_task(new_executor(instance, store, clock), store, clock, recorded)
        assert comparable(executed) == expected_now(recorded)


def test_finished_recorded_history_replays_without_new_events() -> None:
    _, instance, history = load()
    store, clock = HistoryStore(), FixedClock(history[-1].timestamp)
    store.events = list(history)
    executor = new_executor(instance, store, clock)
    result = executor.execute_task(last_sequence_id=len(history), new_events=[])
    assert [e.type for e in result.executed] == [EventType.WORKFLOW_TASK_STARTED]
    assert result.state is InstanceState.FINISHED and result.error is None


def test_the_same_workflow_started_now_takes_go_workflows_order() -> None:
    _, _, history = load()
    driver = Driver([legacy_order, legacy_child])
    first = driver.task(dataclasses.replace(history[1], sequence_id=0))
    assert [(e.type, e.schedule_event_id) for e in first.executed[2:]] == [
        (EventType.ACTIVITY_SCHEDULED, 1),
        (EventType.SIDE_EFFECT_RESULT, 2),
        (EventType.ACTIVITY_SCHEDULED, 3),
        (EventType.SUB_WORKFLOW_SCHEDULED, 4),
        (EventType.TIMER_SCHEDULED, 5),
    ]
    # And a replay of that history stays in go-workflows' order.
    executor = driver.new_executor()
    executor.execute_task(last_sequence_id=len(driver.store.events), new_events=[])
    assert not executor.state.legacy_retry_order


def test_history_that_fits_neither_order_names_the_later_divergence() -> None:
    """The recorded history with the code's last activity renamed: go-workflows' order fails at
    the first command, the old order only at the renamed one, which is the real divergence."""
    _, instance, history = load()
    renamed = []
    for event in history:
        attributes = event.attributes
        if isinstance(attributes, ActivityScheduledAttributes) and attributes.inputs == ['"again"']:
            event = dataclasses.replace(event, attributes=dataclasses.replace(attributes, name="legacy_other"))
        renamed.append(event)
    tasks = split_tasks(renamed)
    store, clock = HistoryStore(), FixedClock()
    for recorded in tasks[:-1]:
        store.events.extend(recorded)
    result = new_executor(instance, store, clock).execute_task(
        last_sequence_id=len(store.events), new_events=[e for e in tasks[-1] if e.type is EventType.ACTIVITY_COMPLETED]
    )
    assert result.state is InstanceState.FINISHED
    assert isinstance(result.error, workflow.NondeterminismError)
    message = str(result.error)
    assert "history event ActivityScheduled at history sequence 19 with schedule event id 8" in message
    assert "produce ActivityScheduled(legacy_other), but it produced ActivityScheduled(legacy_echo)" in message


# -- choosing the order when both fit by name -----------------------------------------------------


async def same_name(ctx: workflow.Context) -> str:
    retried = workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, legacy_echo, "retried")
    once = workflow.execute_activity(ctx, workflow.ActivityOptions(), legacy_echo, "once")
    return f"{await retried}-{await once}"


def result_of(event: Event, value: str) -> Event:
    return new_event(ActivityCompletedAttributes(result=json.dumps(value)), T0, schedule_event_id=event.schedule_event_id)


def test_old_order_is_chosen_when_only_the_inputs_tell_the_orders_apart() -> None:
    """Two calls of one activity: in both orders the names match the history, but only the old
    order matches its inputs; results must reach the calls that asked for them."""
    driver = Driver([same_name])
    # The old code's numbering of the first task (the fixture tests show the legacy order is it).
    driver.executor.state.legacy_retry_order = True
    first = driver.task(started("same_name"))
    inputs = [(e.schedule_event_id, e.attributes.inputs) for e in first.activity_events]  # type: ignore[attr-defined]
    assert inputs == [(1, ['"once"']), (2, ['"retried"'])]

    fresh = driver.new_executor()
    results = [result_of(e, e.attributes.inputs[0].strip('"')) for e in first.activity_events]  # type: ignore[attr-defined]
    second = driver.task(*results, executor=fresh)
    assert fresh.state.legacy_retry_order
    assert second.executed[-1].attributes == WorkflowExecutionFinishedAttributes(result='"retried-once"')


def test_new_order_history_with_changed_inputs_stays_in_the_new_order() -> None:
    """Inputs that differ from the history are allowed (code may change them); when the old
    order fits no better, the execution keeps go-workflows' order."""

    async def v1(ctx: workflow.Context) -> str:
        return await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, legacy_echo, "x")

    async def v2(ctx: workflow.Context) -> str:
        return await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, legacy_echo, "y")

    driver = Driver([(v1, "wf")])
    first = driver.task(started("wf"))
    changed = Registry()
    changed.register_workflow(v2, "wf")
    fresh = driver.new_executor(changed)
    second = driver.task(result_of(first.activity_events[0], "x"), executor=fresh)
    assert not fresh.state.legacy_retry_order
    assert second.executed[-1].attributes == WorkflowExecutionFinishedAttributes(result='"x"')

