"""History events (engine.history): the JSON form of every event type survives a round trip."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from django_workflows.engine.core import WorkflowInstance
from django_workflows.engine.errors import ErrorInfo
from django_workflows.engine.history import (
    ATTRIBUTE_CLASSES,
    TERMINAL_EVENT_TYPES,
    ActivityCancellationRequestedAttributes,
    ActivityCompletedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Attributes,
    EventType,
    PatchMarkerAttributes,
    SideEffectResultAttributes,
    SignalReceivedAttributes,
    SubWorkflowCancellationRequestedAttributes,
    SubWorkflowCompletedAttributes,
    SubWorkflowFailedAttributes,
    SubWorkflowScheduledAttributes,
    TimerCanceledAttributes,
    TimerFiredAttributes,
    TimerScheduledAttributes,
    TraceStartedAttributes,
    WorkflowExecutionCanceledAttributes,
    WorkflowExecutionContinuedAsNewAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    WorkflowExecutionTerminatedAttributes,
    WorkflowExecutionTimedOutAttributes,
    WorkflowTaskStartedAttributes,
    attributes_from_json,
    attributes_to_json,
    event_from_json,
    event_to_dict,
    event_to_json,
    new_event,
)

T = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone.utc)
PARENT = WorkflowInstance("parent", "p-exec")
CHILD = WorkflowInstance("child", "c-exec", parent=PARENT, parent_event_id=4)
ERROR = ErrorInfo(
    type="ValueError",
    message="bad ✗",
    permanent=True,
    stacktrace="Traceback ...",
    cause=ErrorInfo(type="KeyError", message="'k'"),
)

SAMPLES: dict[EventType, Attributes] = {
    EventType.WORKFLOW_EXECUTION_STARTED: WorkflowExecutionStartedAttributes(
        name="order", queue="q", inputs=['"o-1"', "12"], metadata={"tenant": "acme"}, execution_timeout=90.5
    ),
    EventType.WORKFLOW_EXECUTION_TIMED_OUT: WorkflowExecutionTimedOutAttributes(execution_timeout=90.5),
    EventType.WORKFLOW_EXECUTION_FINISHED: WorkflowExecutionFinishedAttributes(result='{"ok":true}', error=ERROR),
    EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW: WorkflowExecutionContinuedAsNewAttributes(
        result="1", continued_execution_id="next"
    ),
    EventType.WORKFLOW_EXECUTION_TERMINATED: WorkflowExecutionTerminatedAttributes(reason="stuck"),
    EventType.WORKFLOW_EXECUTION_CANCELED: WorkflowExecutionCanceledAttributes(),
    EventType.WORKFLOW_TASK_STARTED: WorkflowTaskStartedAttributes(),
    EventType.SUB_WORKFLOW_SCHEDULED: SubWorkflowScheduledAttributes(
        sub_workflow_queue="children", sub_workflow_instance=CHILD, name="ship", inputs=["1"], metadata={"a": "b"}
    ),
    EventType.SUB_WORKFLOW_CANCELLATION_REQUESTED: SubWorkflowCancellationRequestedAttributes(sub_workflow_instance=CHILD),
    EventType.SUB_WORKFLOW_COMPLETED: SubWorkflowCompletedAttributes(result='"shipped"'),
    EventType.SUB_WORKFLOW_FAILED: SubWorkflowFailedAttributes(error=ERROR),
    EventType.ACTIVITY_SCHEDULED: ActivityScheduledAttributes(
        name="charge",
        inputs=['"o-1"'],
        metadata={"trace": "t"},
        queue="payments",
        attempt=2,
        start_to_close_timeout=30.0,
        schedule_to_close_timeout=55.25,
        schedule_to_start_timeout=5.0,
        heartbeat_timeout=3.0,
        heartbeat_details='{"row":17}',
    ),
    EventType.ACTIVITY_COMPLETED: ActivityCompletedAttributes(result="42"),
    EventType.ACTIVITY_FAILED: ActivityFailedAttributes(error=ERROR, heartbeat_details="17"),
    EventType.ACTIVITY_CANCELLATION_REQUESTED: ActivityCancellationRequestedAttributes(activity_id="a1b2"),
    EventType.TIMER_SCHEDULED: TimerScheduledAttributes(at=T + timedelta(hours=1), name="reminder"),
    EventType.TIMER_FIRED: TimerFiredAttributes(scheduled_at=T, at=T + timedelta(hours=1), name="reminder"),
    EventType.TIMER_CANCELED: TimerCanceledAttributes(),
    EventType.SIGNAL_RECEIVED: SignalReceivedAttributes(name="approve", arg='{"by":"ann"}'),
    EventType.SIDE_EFFECT_RESULT: SideEffectResultAttributes(result='"random"'),
    EventType.TRACE_STARTED: TraceStartedAttributes(span_id="abc123"),
    EventType.PATCH_MARKER: PatchMarkerAttributes(patch_id="add-fraud-check", deprecated=True),
}


def test_go_workflows_19_event_types_and_three_of_ours() -> None:
    # go-workflows' 19 keep their names; ours: PatchMarker (versioning), activity cancellation
    # requests and execution timeouts.
    assert len(EventType) == 22
    assert set(ATTRIBUTE_CLASSES) == set(EventType) == set(SAMPLES)
    assert EventType.WORKFLOW_EXECUTION_STARTED.value == "WorkflowExecutionStarted"
    assert EventType.ACTIVITY_CANCELLATION_REQUESTED.value == "ActivityCancellationRequested"
    assert EventType.WORKFLOW_EXECUTION_TIMED_OUT.value == "WorkflowExecutionTimedOut"
    assert TERMINAL_EVENT_TYPES == {
        EventType.WORKFLOW_EXECUTION_FINISHED,
        EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
        EventType.WORKFLOW_EXECUTION_TERMINATED,
        EventType.WORKFLOW_EXECUTION_TIMED_OUT,
    }


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.value)
def test_event_json_round_trip(event_type: EventType) -> None:
    event = new_event(SAMPLES[event_type], T, schedule_event_id=3, visible_at=T + timedelta(seconds=5)).with_sequence_id(9)
    text = event_to_json(event)
    data = json.loads(text)
    assert data["t"] == event_type.value and data["sid"] == 9 and data["seid"] == 3
    back = event_from_json(text)
    assert back == event
    # Equality of instances ignores the parent link; the JSON form does not.
    assert event_to_dict(back) == event_to_dict(event)
    assert attributes_from_json(event_type, attributes_to_json(event.attributes)) == event.attributes


def test_sub_workflow_instance_keeps_its_parent() -> None:
    attributes = attributes_from_json(
        EventType.SUB_WORKFLOW_SCHEDULED, attributes_to_json(SAMPLES[EventType.SUB_WORKFLOW_SCHEDULED])
    )
    assert isinstance(attributes, SubWorkflowScheduledAttributes)
    child = attributes.sub_workflow_instance
    assert child.parent == PARENT and child.parent_event_id == 4 and child.parent.parent is None


def test_error_cause_chain_round_trips() -> None:
    attributes = attributes_from_json(EventType.ACTIVITY_FAILED, attributes_to_json(SAMPLES[EventType.ACTIVITY_FAILED]))
    assert isinstance(attributes, ActivityFailedAttributes)
    assert attributes.error == ERROR
    assert attributes.error.cause is not None and attributes.error.cause.type == "KeyError"


def test_defaults_are_left_out_of_the_json() -> None:
    event = new_event(WorkflowTaskStartedAttributes(), T)
    data = event_to_dict(event)
    assert data == {"id": event.id, "t": "WorkflowTaskStarted", "ts": T.isoformat(), "attr": {}}
    finished = json.loads(attributes_to_json(WorkflowExecutionFinishedAttributes(result="1")))
    assert finished == {"result": "1"}


def test_unknown_attribute_keys_are_ignored_and_times_keep_their_zone() -> None:
    attributes = attributes_from_json(
        "TimerScheduled", json.dumps({"at": "2026-03-04T05:06:07+02:00", "name": "x", "added_later": 1})
    )
    assert isinstance(attributes, TimerScheduledAttributes)
    assert attributes.at.utcoffset() == timedelta(hours=2)
    with pytest.raises(ValueError):
        attributes_from_json("NoSuchEvent", "{}")


def test_activity_timeout_errors_keep_their_timeout_type() -> None:
    from django_workflows.engine.errors import ActivityTimeoutError, TimeoutType, WorkflowError

    error = ActivityTimeoutError("late", timeout_type="heartbeat")
    assert error.permanent is False and error.timeout_type is TimeoutType.HEARTBEAT
    info = ErrorInfo.from_dict(json.loads(json.dumps(error.to_info().to_dict())))
    back = WorkflowError.from_info(info)
    assert isinstance(back, ActivityTimeoutError) and back.timeout_type is TimeoutType.HEARTBEAT
    assert (back.type, back.message) == ("ActivityTimeout", "late")
    # The timeouts after which another attempt cannot help are permanent.
    assert ActivityTimeoutError(timeout_type=TimeoutType.SCHEDULE_TO_CLOSE).permanent
    assert ActivityTimeoutError(timeout_type=TimeoutType.SCHEDULE_TO_START).permanent
    with pytest.raises(ValueError):
        ActivityTimeoutError(timeout_type="sometime")


def test_events_recorded_before_timeouts_and_details_read_with_defaults() -> None:
    # JSON as versions before activity timeouts wrote it: the new fields take their defaults.
    scheduled = attributes_from_json("ActivityScheduled", '{"name":"charge","inputs":["1"],"queue":"q","attempt":1}')
    assert isinstance(scheduled, ActivityScheduledAttributes)
    assert (scheduled.start_to_close_timeout, scheduled.heartbeat_details, scheduled.has_timeouts) == (None, None, False)
    failed = attributes_from_json("ActivityFailed", '{"error":{"type":"ValueError","message":"x"}}')
    assert isinstance(failed, ActivityFailedAttributes)
    assert failed.heartbeat_details is None and failed.error.timeout_type == ""
    started = attributes_from_json("WorkflowExecutionStarted", '{"name":"wf","queue":"default"}')
    assert isinstance(started, WorkflowExecutionStartedAttributes) and started.execution_timeout is None
    # ... and the new fields are left out of the JSON when unset, so old readers see old JSON.
    assert "heartbeat_details" not in attributes_to_json(ActivityScheduledAttributes(name="charge"))
