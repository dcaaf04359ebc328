"""A Django ``TaskResult`` read from the history of a ``DjangoTask`` instance.

Everything comes from what the store keeps for any workflow, so results outlive the workers:

- ``enqueued_at``: the start event; the arguments and the task's settings: its spec.
- Each attempt is an ``ActivityScheduled`` event of ``RunDjangoTask`` (input 2 is the attempt
  number); its ``ActivityCompleted`` event holds the attempt's outcome (worker id, start, end,
  error with traceback, a timeout being a ``TimeoutError``); an ``ActivityFailed`` event an
  engine error.
- ``status``: ``SUCCESSFUL``/``FAILED`` once the instance finished (canceled and terminated
  tasks are ``FAILED``); while it is active, ``RUNNING`` when an attempt has been handed to the
  workers and has not ended, else ``READY`` (waiting for ``run_after``, a retry's backoff, or
  the first workflow task). The history records an attempt when it ends, so "handed to the
  workers" includes an attempt still waiting in the queue for a free worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..engine.backend import InstanceInfo
from ..engine.converter import Converter
from ..engine.core import InstanceState
from ..engine.errors import WorkflowError
from ..engine.history import (
    ActivityCompletedAttributes,
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Event,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    WorkflowExecutionTerminatedAttributes,
)
from .system import SPEC_METADATA_KEY, TASK_ACTIVITY_NAME, engine_error


@dataclass
class _Attempt:
    number: int
    scheduled_at: datetime
    outcome: dict[str, Any] | None = None


@dataclass
class TaskRecord:
    """What the history says about one task, before it becomes a ``TaskResult``."""

    spec: dict[str, Any]
    enqueued_at: datetime
    status: str
    attempts: list[dict[str, Any]] = field(default_factory=list)
    running_since: datetime | None = None
    finished_at: datetime | None = None
    return_value: Any = None
    final_error: dict[str, Any] | None = None

    @property
    def started_at(self) -> datetime | None:
        if self.attempts:
            return datetime.fromisoformat(self.attempts[0]["started_at"]) if self.attempts[0].get("started_at") else None
        return self.running_since

    @property
    def last_attempted_at(self) -> datetime | None:
        if self.running_since is not None:
            return self.running_since
        for attempt in reversed(self.attempts):
            if attempt.get("started_at"):
                return datetime.fromisoformat(attempt["started_at"])
        return None

    @property
    def errors(self) -> list[dict[str, Any]]:
        errors = [attempt["error"] for attempt in self.attempts if not attempt["ok"]]
        final = self.final_error
        # The workflow fails with its last attempt's error; anything else (canceled, terminated)
        # is an error of its own.
        if final is not None and (not errors or final.get("type") != errors[-1]["exception_class_path"]):
            errors.append(final)
        return errors

    @property
    def worker_ids(self) -> list[str]:
        return [attempt.get("worker_id") or "" for attempt in self.attempts]


def read_record(info: InstanceInfo, history: list[Event], converter: Converter) -> TaskRecord:
    """Walk the history of one ``DjangoTask`` execution."""
    start = history[0].attributes if history else None
    if isinstance(start, WorkflowExecutionStartedAttributes) and start.inputs:
        spec = dict(converter.from_payload(start.inputs[0]))
    elif SPEC_METADATA_KEY in info.metadata:
        spec = json.loads(info.metadata[SPEC_METADATA_KEY])  # no workflow task has run yet
    else:
        raise ValueError(f"{info.instance} is not a task: it has neither a start event nor a spec")
    record = TaskRecord(spec=spec, enqueued_at=info.created_at, status="READY")
    attempts: dict[int, _Attempt] = {}
    for event in history:
        attributes = event.attributes
        if isinstance(attributes, ActivityScheduledAttributes) and attributes.name == TASK_ACTIVITY_NAME:
            number = int(converter.from_payload(attributes.inputs[1])) if len(attributes.inputs) > 1 else len(attempts) + 1
            attempts[event.schedule_event_id] = _Attempt(number, event.timestamp)
        elif isinstance(attributes, ActivityCompletedAttributes) and event.schedule_event_id in attempts:
            attempt = attempts[event.schedule_event_id]
            if attempt.outcome is None and attributes.result is not None:
                attempt.outcome = dict(converter.from_payload(attributes.result))
        elif isinstance(attributes, ActivityFailedAttributes) and event.schedule_event_id in attempts:
            attempt = attempts[event.schedule_event_id]
            if attempt.outcome is None:
                error = engine_error(WorkflowError.from_info(attributes.error))
                attempt.outcome = {"ok": False, "error": error, "finished_at": event.timestamp.isoformat()}
        elif isinstance(attributes, WorkflowExecutionFinishedAttributes):
            record.finished_at = event.timestamp
            if attributes.error is None:
                record.status = "SUCCESSFUL"
                record.return_value = None if attributes.result is None else converter.from_payload(attributes.result)
            else:
                record.status = "FAILED"
                record.final_error = {**engine_error(WorkflowError.from_info(attributes.error)), "type": attributes.error.type}
        elif isinstance(attributes, WorkflowExecutionTerminatedAttributes):
            record.finished_at = event.timestamp
            record.status = "FAILED"
            reason = f": {attributes.reason}" if attributes.reason else ""
            record.final_error = {
                "exception_class_path": "django_workflows.engine.errors.WorkflowTerminated",
                "traceback": f"WorkflowTerminated: task terminated{reason}\n",
            }
    ordered = sorted(attempts.values(), key=lambda a: a.number)
    record.attempts = [attempt.outcome for attempt in ordered if attempt.outcome is not None]
    pending = [attempt for attempt in ordered if attempt.outcome is None]
    if info.state is InstanceState.ACTIVE:
        record.status = "RUNNING" if pending else "READY"
        record.running_since = pending[-1].scheduled_at if pending else None
    elif record.status == "READY":
        record.status = "FAILED"  # finished without a terminal event we know (continued as new)
        record.finished_at = info.completed_at
    return record
