"""Django signals for workflow lifecycle events.

Each is sent by the worker process once, after the task that recorded the event committed (a
replay or a task whose commit failed sends nothing). The sender is the workflow's registered
name (a string). Receivers run in the worker's task thread; keep them short, and remember
that they are not part of the workflow's history.

``workflow_started(sender, instance, workflow_name, queue)``
    The workflow's first task ran.
``workflow_completed(sender, instance, workflow_name, result)``
    It finished successfully; ``result`` is the decoded return value.
``workflow_failed(sender, instance, workflow_name, error)``
    It finished with ``error`` (a ``WorkflowError``), other than a cancellation.
``workflow_canceled(sender, instance, workflow_name, error)``
    It finished with a ``Canceled`` error after a cancellation request.
``activity_failed(sender, instance, activity_name, attempt, error)``
    An activity attempt failed (the workflow may still retry it); sender is the activity name.
``workflow_blocked(sender, instance, workflow_name, blocked)``
    The code could not run a workflow task (non-determinism, a bug-class error, a deadlock...),
    so the instance is blocked until fixed code is deployed; ``blocked`` is the
    ``engine.backend.BlockedInfo`` (error, since, attempts, retry time). Sent at every failed
    attempt: alert on ``blocked.attempts == 1``.

Not to be confused with workflow *signals* (``Client.signal_workflow``), messages sent to a
running workflow.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

from .engine.backend import ActivityTask, BlockedInfo, WorkflowTask
from .engine.core import InstanceState
from .engine.errors import Canceled, WorkflowError
from .engine.executor import ExecutionResult
from .engine.history import (
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Event,
    EventType,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
)

workflow_started = Signal()
workflow_completed = Signal()
workflow_failed = Signal()
workflow_canceled = Signal()
activity_failed = Signal()
workflow_blocked = Signal()

logger = logging.getLogger("django_workflows.signals")


class DjangoSignalListener:
    """Worker listener that turns committed task results into the signals above."""

    def workflow_task_completed(self, *, backend: Any, task: WorkflowTask, result: ExecutionResult) -> None:
        name = result.workflow_name or task.workflow_name
        for event in result.executed:
            attributes = event.attributes
            if isinstance(attributes, WorkflowExecutionStartedAttributes):
                workflow_started.send(sender=name, instance=task.instance, workflow_name=name, queue=attributes.queue)
            elif isinstance(attributes, WorkflowExecutionFinishedAttributes):
                self._finished(backend, task, name, attributes)
        if result.state is InstanceState.FINISHED and not any(
            e.type is EventType.WORKFLOW_EXECUTION_FINISHED for e in result.executed
        ):  # pragma: no cover - every finishing task records its Finished event
            logger.warning("instance %s finished without a Finished event", task.instance)

    def _finished(
        self, backend: Any, task: WorkflowTask, name: str, attributes: WorkflowExecutionFinishedAttributes
    ) -> None:
        if attributes.error is None:
            value = None if attributes.result is None else backend.options.converter.from_payload(attributes.result)
            workflow_completed.send(sender=name, instance=task.instance, workflow_name=name, result=value)
            return
        error = WorkflowError.from_info(attributes.error)
        signal = workflow_canceled if isinstance(error, Canceled) else workflow_failed
        signal.send(sender=name, instance=task.instance, workflow_name=name, error=error)

    def workflow_task_blocked(self, *, backend: Any, task: WorkflowTask, blocked: BlockedInfo) -> None:
        name = task.workflow_name
        workflow_blocked.send(sender=name, instance=task.instance, workflow_name=name, blocked=blocked)

    def activity_task_completed(self, *, backend: Any, task: ActivityTask, result: Event) -> None:
        if not isinstance(result.attributes, ActivityFailedAttributes):
            return
        scheduled = task.event.attributes
        assert isinstance(scheduled, ActivityScheduledAttributes)
        activity_failed.send(
            sender=scheduled.name,
            instance=task.instance,
            activity_name=scheduled.name,
            attempt=scheduled.attempt,
            error=WorkflowError.from_info(result.attributes.error),
        )
