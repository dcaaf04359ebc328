"""Pieces of backend logic that every backend shares, so they behave the same."""

from __future__ import annotations

from datetime import datetime

from ..engine.core import WorkflowInstance
from ..engine.errors import ActivityAbandoned, InstanceAlreadyExists, WorkflowError, WorkflowTerminated
from ..engine.history import (
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    SubWorkflowFailedAttributes,
    WorkflowExecutionTerminatedAttributes,
    new_event,
)

#: Events for another instance that go to its *active* execution rather than the exact one they
#: were addressed to (a child may have continued as new since).
FOLLOW_ACTIVE_EXECUTION = frozenset({EventType.WORKFLOW_EXECUTION_CANCELED, EventType.SIGNAL_RECEIVED})


def activity_queue(event: Event, task_queue: str) -> str:
    attributes = event.attributes
    assert isinstance(attributes, ActivityScheduledAttributes)
    return attributes.queue or task_queue


def abandoned_activity_result(activity_event: Event, leases: int, now: datetime) -> Event:
    """The failure recorded for an activity whose workers kept dying while running it."""
    attributes = activity_event.attributes
    assert isinstance(attributes, ActivityScheduledAttributes)
    error = ActivityAbandoned(
        f"activity {attributes.name} was leased {leases} times without completing; "
        "its worker probably crashes while running it"
    )
    return new_event(
        ActivityFailedAttributes(error=error.to_info()), now, schedule_event_id=activity_event.schedule_event_id
    )


def duplicate_sub_workflow_result(child: WorkflowInstance, now: datetime) -> Event:
    """What a parent receives when it starts a child whose instance id is already active."""
    error = WorkflowError(str(InstanceAlreadyExists()), type="InstanceAlreadyExists", permanent=True)
    return new_event(SubWorkflowFailedAttributes(error=error.to_info()), now, schedule_event_id=child.parent_event_id)


def terminated_events(instance: WorkflowInstance, reason: str, now: datetime) -> tuple[Event, Event | None]:
    """The history event of a termination and, for a sub-workflow, the event for its parent."""
    terminated = new_event(WorkflowExecutionTerminatedAttributes(reason=reason), now)
    if instance.parent is None:
        return terminated, None
    error = WorkflowTerminated(f"workflow terminated: {reason}" if reason else "workflow terminated", permanent=True)
    parent_event = new_event(
        SubWorkflowFailedAttributes(error=error.to_info()), now, schedule_event_id=instance.parent_event_id
    )
    return terminated, parent_event
