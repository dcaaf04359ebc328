"""What workers and clients tell about their work: log lines always, and OpenTelemetry spans and
metrics when the ``otel`` extra is installed (pure core; docs/observability.md).

``Instrumentation`` is the one object the ``Worker`` and the ``Client`` call, at a few points:
around each workflow task and each activity attempt (``workflow_task``, ``activity_task``: context
managers with a handful of hooks), when a client starts, signals, cancels or terminates a workflow,
and for the propagators the worker hands to its executors. It picks its path once, when it is
built: without OpenTelemetry (or with ``telemetry=False``) the observations only log, and no span,
attribute or metric is built at all.

Spans and metrics are replay-aware by construction: they are made from ``ExecutionResult.executed``
(the events a task recorded for the first time) after the task committed, and from the activity
attempts a worker runs. A replayed history produces none of them again.

Log lines go to ``django_workflows.worker`` with the ``extra`` fields ``instance_id``,
``execution_id``, ``workflow``, ``activity`` and ``attempt`` (None where they do not apply), for
structured handlers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from .engine.backend import ActivityTask, Backend, ExecutionResult, WorkflowTask
from .engine.clock import system_clock
from .engine.core import InstanceState, Metadata, WorkflowInstance
from .engine.executor import HISTORY_WARNING_SHARE
from .engine.history import (
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    Attributes,
    EventType,
    SignalReceivedAttributes,
    SubWorkflowScheduledAttributes,
    TimerFiredAttributes,
)
from .engine.propagation import ContextPropagator
from .telemetry import OTEL_AVAILABLE, Otel, nanoseconds

if OTEL_AVAILABLE:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

logger = logging.getLogger("django_workflows.worker")

#: Error types of ``ActivityFailed`` events that count as timeouts (``workflow.ActivityTimeoutError``).
TIMEOUT_ERROR_TYPES = frozenset({"ActivityTimeoutError"})

_NULL = contextlib.nullcontext()


def _nothing() -> None:
    return None


def _record_error(span: Any, error: BaseException, description: str | None = None) -> None:
    """Mark ``span`` failed with ``error`` (an exception event and the ERROR status)."""
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, str(error) if description is None else description))


def workflow_outcome(result: ExecutionResult) -> str:
    """How the execution a task ended came out: completed, failed, canceled, continued_as_new."""
    if result.state is InstanceState.CONTINUED_AS_NEW:
        return "continued_as_new"
    if result.error is None:
        return "completed"
    return "canceled" if result.error.type == "Canceled" else "failed"


def log_extra(
    instance: WorkflowInstance, workflow: str | None, activity: str | None = None, attempt: int | None = None
) -> dict[str, Any]:
    """The ``extra`` fields of every log line about a workflow or an activity."""
    return {
        "instance_id": instance.instance_id,
        "execution_id": instance.execution_id,
        "workflow": workflow,
        "activity": activity,
        "attempt": attempt,
    }


class Instrumentation:
    """Logs, spans and metrics of one worker or client (see the module docstring).

    ``tracer_provider``/``meter_provider``: OpenTelemetry providers (default: the global ones);
    ``telemetry=False`` keeps the log lines and turns spans and metrics off.
    ``default_instrumentation()`` is the shared one that workers and clients use when given none.
    """

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None, telemetry: bool = True) -> None:
        if not OTEL_AVAILABLE and (tracer_provider is not None or meter_provider is not None):
            raise RuntimeError(
                "OpenTelemetry providers were given, but OpenTelemetry is not installed: "
                "pip install 'django-durable-workflows[otel]'"
            )
        #: The tracer and instruments, or None on the log-only path.
        self.otel: Otel | None = Otel(tracer_provider, meter_provider) if telemetry and OTEL_AVAILABLE else None
        traced = self.otel is not None
        self._workflow_task: type[WorkflowTaskObservation] = TracedWorkflowTask if traced else WorkflowTaskObservation
        self._activity_task: type[ActivityObservation] = TracedActivity if traced else ActivityObservation

    # -- propagation ---------------------------------------------------------------------------

    def propagators(self, configured: Sequence[ContextPropagator]) -> list[ContextPropagator]:
        """The backend's propagators, and the trace-context one when spans are on."""
        return list(configured) if self.otel is None else [*configured, self.otel.propagator]

    # -- clients ---------------------------------------------------------------------------------

    def start_workflow(self, name: str, queue: str, instance: WorkflowInstance, metadata: Metadata) -> Any:
        """Open the span of a start in the caller's trace and put its context into ``metadata``,
        so the workflow's spans continue it; the span (or None) ends in ``writing_start``."""
        otel = self.otel
        if otel is None:
            return None
        span = otel.tracer.start_span(
            f"StartWorkflow {name}",
            kind=SpanKind.PRODUCER,
            attributes={
                "workflows.workflow": name,
                "workflows.queue": queue,
                "workflows.instance_id": instance.instance_id,
                "workflows.execution_id": instance.execution_id,
            },
        )
        otel.propagator.inject_span(metadata, span)
        return span

    def writing_start(self, span: Any) -> contextlib.AbstractContextManager[Any]:
        """Around the write of a prepared start: the start's span is current, records an error
        (an instance that exists already) and ends."""
        if span is None:
            return _NULL
        return otel_trace.use_span(span, end_on_exit=True)

    def client_call(self, operation: str, **attributes: str) -> contextlib.AbstractContextManager[Any]:
        """A span around a client call (``SignalWorkflow``, ``CancelWorkflow``, ``TerminateWorkflow``)."""
        otel = self.otel
        if otel is None:
            return _NULL
        return otel.tracer.start_as_current_span(
            operation, kind=SpanKind.CLIENT, attributes={f"workflows.{key}": value for key, value in attributes.items()}
        )

    def workflow_terminated(self, name: str, queue: str) -> None:
        """Count a termination (no worker sees one: the client ends the execution itself)."""
        if self.otel is not None:
            self.otel.workflows_finished.add(1, {"workflow": name, "queue": queue, "outcome": "terminated"})

    def large_payload(self, kind: str, size: int) -> None:
        """Count a payload above the warning size (``engine.payloads`` has logged it)."""
        if self.otel is not None:
            self.otel.large_payloads.add(1, {"kind": kind})

    # -- workers ---------------------------------------------------------------------------------

    def workflow_task(self, task: WorkflowTask) -> WorkflowTaskObservation:
        """The observation of one workflow task; ``with`` it around the task."""
        return self._workflow_task(self, task)

    def activity_task(self, task: ActivityTask) -> ActivityObservation:
        """The observation of one activity attempt; ``with`` it around the attempt."""
        return self._activity_task(self, task)

    def observe_backlog(self, backend: Backend, queues: Sequence[str]) -> Callable[[], None]:
        """Report ``backend``'s backlog in the queue gauges; call the result to stop."""
        if self.otel is None:
            return _nothing
        return self.otel.backlog.add(backend, queues)


@functools.cache
def default_instrumentation() -> Instrumentation:
    """The process's instrumentation on the global OpenTelemetry providers (made once, so its
    instruments are created once)."""
    return Instrumentation()


# -- workflow tasks ------------------------------------------------------------------------------


class WorkflowTaskObservation:
    """One workflow task as the logs see it. The worker calls ``blocked`` when executing the task
    raised, ``lease_lost`` when its lease went away, ``committed`` once its result is stored."""

    __slots__ = ("task",)

    def __init__(self, instrumentation: Instrumentation, task: WorkflowTask) -> None:
        self.task = task

    def __enter__(self) -> WorkflowTaskObservation:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        return None

    def blocked(self, error: BaseException) -> None:
        task = self.task
        logger.warning(
            "workflow %s of instance %s is blocked: executing its task failed (the task is retried): %s",
            task.workflow_name, task.instance, error,
            exc_info=error, extra=log_extra(task.instance, task.workflow_name),
        )

    def lease_lost(self) -> None:
        return None

    def replaying(self, events: int) -> None:
        """The task found no cached executor: it replays ``events`` stored events first."""
        task = self.task
        logger.debug(
            "workflow %s of instance %s replays %d history events (no cached executor)",
            task.workflow_name, task.instance, events, extra=log_extra(task.instance, task.workflow_name),
        )

    def committed(self, result: ExecutionResult, executor: Any) -> None:
        task = self.task
        name = result.workflow_name or task.workflow_name
        if result.history_warning:
            length = result.executed[-1].sequence_id if result.executed else task.last_sequence_id
            logger.warning(
                "workflow %s of instance %s has %d history events, over %d %% of max_history_size (%d): it fails "
                "at the limit; continue as new (raise workflow.ContinueAsNew(...)) to start a fresh history",
                name, task.instance, length, round(HISTORY_WARNING_SHARE * 100), result.history_warning,
                extra=log_extra(task.instance, name),
            )
        if result.state is not InstanceState.ACTIVE:
            outcome = workflow_outcome(result)
            extra = log_extra(task.instance, name)
            if outcome == "failed":
                error = result.error
                logger.warning(
                    "workflow %s failed: instance %s: %s: %s", name, task.instance,
                    getattr(error, "type", ""), error, extra=extra,
                )
            else:
                logger.info("workflow %s %s: instance %s", name, outcome.replace("_", " "), task.instance, extra=extra)
        if logger.isEnabledFor(logging.INFO):
            for event in result.executed:
                attributes = event.attributes
                if isinstance(attributes, ActivityScheduledAttributes) and attributes.attempt > 0:
                    logger.info(
                        "retrying activity %s of instance %s: attempt %d", attributes.name, task.instance,
                        attributes.attempt + 1, extra=log_extra(task.instance, name, attributes.name, attributes.attempt),
                    )


class TracedWorkflowTask(WorkflowTaskObservation):
    """A workflow task with its span (current while the task executes, so the activities and
    sub-workflows it schedules carry its context) and its metrics."""

    __slots__ = ("otel", "span", "token", "started", "labels")

    def __init__(self, instrumentation: Instrumentation, task: WorkflowTask) -> None:
        super().__init__(instrumentation, task)
        assert instrumentation.otel is not None
        self.otel: Otel = instrumentation.otel

    def __enter__(self) -> TracedWorkflowTask:
        otel, task = self.otel, self.task
        self.started = time.monotonic()
        self.labels = {"workflow": task.workflow_name, "queue": task.queue}
        # Time in the queue: since the oldest event became visible (a timer: since it fired).
        ready = min((event.visible_at or event.timestamp for event in task.new_events), default=None)
        if ready is not None:
            otel.workflow_task_latency.record(max(0.0, (system_clock.now() - ready).total_seconds()), self.labels)
        self.span = otel.tracer.start_span(
            f"WorkflowTask {task.workflow_name}",
            context=otel.propagator.context(task.metadata),
            kind=SpanKind.CONSUMER,
            attributes={
                "workflows.workflow": task.workflow_name,
                "workflows.queue": task.queue,
                "workflows.instance_id": task.instance.instance_id,
                "workflows.execution_id": task.instance.execution_id,
                "workflows.new_events": len(task.new_events),
                "workflows.history_length": task.last_sequence_id,
            },
        )
        self.token = otel_context.attach(otel_trace.set_span_in_context(self.span))
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        otel_context.detach(self.token)
        if error is not None:
            _record_error(self.span, error)
        self.span.end()
        self.otel.workflow_task_duration.record(time.monotonic() - self.started, self.labels)
        self.otel.workflow_tasks.add(1, self.labels)

    def blocked(self, error: BaseException) -> None:
        super().blocked(error)
        _record_error(self.span, error, f"blocked: {error}")
        self.span.set_attribute("workflows.blocked", True)
        self.otel.workflows_blocked.add(1, self.labels)

    def lease_lost(self) -> None:
        self.span.set_attribute("workflows.lease_lost", True)
        self.otel.leases_lost.add(1, {"kind": "workflow", "queue": self.task.queue})

    def replaying(self, events: int) -> None:
        super().replaying(events)
        self.span.set_attribute("workflows.replayed_events", events)
        self.otel.executor_cache_misses.add(1, self.labels)
        self.otel.replayed_events.add(events, self.labels)

    def committed(self, result: ExecutionResult, executor: Any) -> None:
        super().committed(result, executor)
        otel, task, span = self.otel, self.task, self.span
        labels = self.labels
        if result.workflow_name and result.workflow_name != labels["workflow"]:
            labels["workflow"] = result.workflow_name
        if result.history_warning:
            otel.history_near_limit.add(1, labels)
        parent = otel_trace.set_span_in_context(span)
        base = {
            "workflows.workflow": labels["workflow"],
            "workflows.instance_id": task.instance.instance_id,
            "workflows.execution_id": task.instance.execution_id,
        }
        now = time.time_ns()
        # Only what this task recorded for the first time; the history it replayed is not here.
        for event in result.executed:
            attributes = event.attributes
            kind = event.type
            if kind is EventType.WORKFLOW_EXECUTION_STARTED:
                otel.workflows_started.add(1, labels)
            elif isinstance(attributes, TimerFiredAttributes):
                # From when the timer was scheduled to when it fired.
                start = nanoseconds(attributes.scheduled_at)
                timer = otel.tracer.start_span(
                    f"Timer {attributes.name}" if attributes.name else "Timer", context=parent, start_time=start,
                    attributes={**base, "workflows.timer": attributes.name, "workflows.timer.fire_at": attributes.at.isoformat()},
                )
                timer.end(end_time=max(start, nanoseconds(attributes.at)))
            elif isinstance(attributes, SignalReceivedAttributes):
                # From when it was sent to when the workflow received it.
                start = nanoseconds(event.timestamp)
                signal = otel.tracer.start_span(
                    f"Signal {attributes.name}", context=parent, start_time=start,
                    attributes={**base, "workflows.signal": attributes.name},
                )
                signal.end(end_time=max(start, now))
            elif isinstance(attributes, SubWorkflowScheduledAttributes):
                child = attributes.sub_workflow_instance
                otel.tracer.start_span(
                    f"SubWorkflow {attributes.name}", context=parent,
                    attributes={
                        **base,
                        "workflows.sub_workflow": attributes.name,
                        "workflows.sub_workflow.instance_id": child.instance_id,
                        "workflows.sub_workflow.execution_id": child.execution_id,
                        "workflows.sub_workflow.queue": attributes.sub_workflow_queue,
                    },
                ).end()
            elif isinstance(attributes, ActivityScheduledAttributes) and attributes.attempt > 0:
                otel.activity_retries.add(1, {"activity": attributes.name, "queue": attributes.queue or task.queue})
            elif isinstance(attributes, ActivityFailedAttributes) and attributes.error.type in TIMEOUT_ERROR_TYPES:
                otel.activity_timeouts.add(1, {"activity": _activity_name(executor, event.schedule_event_id)})
        if result.state is not InstanceState.ACTIVE:
            outcome = workflow_outcome(result)
            span.set_attribute("workflows.outcome", outcome)
            otel.workflows_finished.add(1, {**labels, "outcome": outcome})
            error = result.error
            if outcome == "failed" and error is not None:
                span.record_exception(error, attributes={"exception.stacktrace": error.stacktrace or str(error)})
                span.set_status(Status(StatusCode.ERROR, f"{error.type}: {error}"))


def _activity_name(executor: Any, schedule_event_id: int) -> str:
    """The name of the activity a result event answers (its command in the executor)."""
    commands = getattr(getattr(executor, "state", None), "commands", {})
    return str(getattr(commands.get(schedule_event_id), "name", ""))


# -- activity attempts ---------------------------------------------------------------------------


class ActivityObservation:
    """One activity attempt as the logs see it: ``finished`` with the attempt's result event
    attributes, ``lease_lost`` when its lease went away."""

    __slots__ = ("task", "scheduled")

    def __init__(self, instrumentation: Instrumentation, task: ActivityTask) -> None:
        self.task = task
        attributes = task.event.attributes
        assert isinstance(attributes, ActivityScheduledAttributes)
        self.scheduled = attributes

    def __enter__(self) -> ActivityObservation:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        return None

    def finished(self, result: Attributes) -> None:
        if not isinstance(result, ActivityFailedAttributes):
            return
        scheduled, task, error = self.scheduled, self.task, result.error
        retry = "not retried: the error is permanent" if error.permanent else "the workflow's retry policy decides on a retry"
        logger.warning(
            "activity %s (attempt %d) of instance %s failed: %s: %s; %s",
            scheduled.name, scheduled.attempt + 1, task.instance, error.type, error.message, retry,
            extra=log_extra(task.instance, None, scheduled.name, scheduled.attempt),
        )

    def lease_lost(self) -> None:
        return None


class TracedActivity(ActivityObservation):
    """An activity attempt with its span (current while the activity runs, so the activity's
    own spans nest in it) and its metrics."""

    __slots__ = ("otel", "span", "token", "started", "labels", "outcome")

    def __init__(self, instrumentation: Instrumentation, task: ActivityTask) -> None:
        super().__init__(instrumentation, task)
        assert instrumentation.otel is not None
        self.otel: Otel = instrumentation.otel

    def __enter__(self) -> TracedActivity:
        otel, task, scheduled = self.otel, self.task, self.scheduled
        self.started = time.monotonic()
        self.outcome = "abandoned"
        self.labels = {"activity": scheduled.name, "queue": task.queue}
        otel.activity_latency.record(max(0.0, (system_clock.now() - task.event.timestamp).total_seconds()), self.labels)
        otel.activity_attempts.add(1, self.labels)
        self.span = otel.tracer.start_span(
            f"Activity {scheduled.name}",
            context=otel.propagator.context(scheduled.metadata),
            kind=SpanKind.CONSUMER,
            attributes={
                "workflows.activity": scheduled.name,
                "workflows.activity_id": task.activity_id,
                "workflows.attempt": scheduled.attempt,
                "workflows.queue": task.queue,
                "workflows.instance_id": task.instance.instance_id,
                "workflows.execution_id": task.instance.execution_id,
                "workflows.lease_count": task.lease_count,
            },
        )
        self.token = otel_context.attach(otel_trace.set_span_in_context(self.span))
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        otel_context.detach(self.token)
        if error is not None:
            _record_error(self.span, error)
        self.span.set_attribute("workflows.outcome", self.outcome)
        self.span.end()
        self.otel.activity_duration.record(time.monotonic() - self.started, {**self.labels, "outcome": self.outcome})

    def finished(self, result: Attributes) -> None:
        super().finished(result)
        lost = self.outcome == "lease_lost"  # found while it ran: its result is discarded
        if not isinstance(result, ActivityFailedAttributes):
            self.outcome = "lease_lost" if lost else "completed"
            return
        self.outcome = "lease_lost" if lost else "failed"
        error = result.error
        self.span.add_event(
            "exception",
            {"exception.type": error.type, "exception.message": error.message, "exception.stacktrace": error.stacktrace},
        )
        self.span.set_status(Status(StatusCode.ERROR, f"{error.type}: {error.message}"))
        self.otel.activity_failures.add(1, self.labels)

    def lease_lost(self) -> None:
        self.outcome = "lease_lost"
        self.span.set_attribute("workflows.lease_lost", True)
        self.otel.leases_lost.add(1, {"kind": "activity", "queue": self.task.queue})


__all__ = [
    "ActivityObservation",
    "Instrumentation",
    "TIMEOUT_ERROR_TYPES",
    "WorkflowTaskObservation",
    "default_instrumentation",
    "workflow_outcome",
]
