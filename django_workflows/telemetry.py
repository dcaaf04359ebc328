"""OpenTelemetry for django_workflows: the tracer, the metric instruments and the trace-context
propagator (pure core; the optional ``otel`` extra, ``opentelemetry-api``).

Whether OpenTelemetry is there is decided once, when this module is imported
(``OTEL_AVAILABLE``); ``instrumentation.Instrumentation`` then picks its OpenTelemetry or its
log-only path once, when it is built. Nothing here is called per task without OpenTelemetry.

Spans and instruments come from the providers given to ``Otel`` or, by default, from the global
ones (``opentelemetry.trace.set_tracer_provider``...): with only the API installed they are the
API's no-op ones until the application configures an SDK. docs/observability.md lists the span
and metric names.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .engine.core import Metadata

if TYPE_CHECKING:
    from .engine.backend import Backend, QueueBacklog
    from .engine.context import Context

try:  # the optional extra; without it the instrumentation takes its log-only path
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
    from opentelemetry.metrics import Observation
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - tests/test_telemetry.py runs this path in a subprocess
    OTEL_AVAILABLE = False
else:
    OTEL_AVAILABLE = True

logger = logging.getLogger("django_workflows.telemetry")

#: The instrumentation scope of every span and instrument.
SCOPE = "django_workflows"

#: Histogram buckets in seconds, from a millisecond to an hour (the API's default buckets are
#: made for milliseconds).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0, 300.0, 600.0, 1800.0, 3600.0)

#: How long one reading of the backlog serves the gauges (both gauges read it in one collection).
BACKLOG_CACHE_SECONDS = 1.0


def library_version() -> str:
    """django_workflows' version (read from the package, which imports no Django)."""
    return str(getattr(sys.modules.get("django_workflows"), "__version__", ""))


def nanoseconds(moment: datetime) -> int:
    """A span time (nanoseconds since the epoch) from an aware datetime."""
    return int(moment.timestamp() * 1_000_000_000)


class TraceContextPropagator:
    """Carries the W3C trace context (``traceparent``, ``tracestate``) in workflow metadata, the
    route go-workflows' tracing propagator takes (``engine.propagation``).

    The client injects the span that starts a workflow into the instance's metadata; a workflow
    injects the span of the task being executed into the metadata of the activities,
    sub-workflows and continued executions it schedules. The worker then opens each task's span
    as the child of the context it finds there, on whichever machine it runs. Nothing is written
    while no span is recording (no SDK configured). ``extract`` does nothing: the worker opens the
    activity's span itself before the activity runs, so that the activity's own spans nest in it.
    """

    def __init__(self) -> None:
        self._w3c = TraceContextTextMapPropagator()

    def inject(self, metadata: Metadata) -> None:
        self._w3c.inject(metadata)

    def extract(self, metadata: Metadata) -> None:
        return None

    def inject_from_workflow(self, ctx: Context, metadata: Metadata) -> None:
        # The executing task's span is the current context: the workflow's coroutines run in the
        # worker thread that executes the task. A replay's commands are matched against history,
        # never written, so their metadata never reaches the store.
        self._w3c.inject(metadata)

    def extract_to_workflow(self, ctx: Context, metadata: Metadata) -> Context:
        return ctx

    def inject_span(self, metadata: Metadata, span: Any) -> None:
        """Put the context of ``span`` (rather than the current one) into ``metadata``."""
        self._w3c.inject(metadata, context=otel_trace.set_span_in_context(span))

    def context(self, metadata: Metadata) -> Any:
        """The OpenTelemetry context stored in ``metadata`` (an empty one if none is)."""
        return self._w3c.extract(metadata)


class BacklogGauges:
    """The sources of the backlog gauges: the backends of the running workers of this process,
    each read at most once per collection (``BACKLOG_CACHE_SECONDS``), with zeros for the
    queues they poll when nothing waits there."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id(backend) -> [backend, {queue: number of workers polling it}]
        self._sources: dict[int, list[Any]] = {}
        self._cache: tuple[float, list[tuple[str, str, float, float | None]]] | None = None
        self._failing_since: float | None = None

    def add(self, backend: Backend, queues: Iterable[str]) -> Callable[[], None]:
        """Observe ``backend``'s backlog (``queues`` at least) until the returned function is called."""
        key = id(backend)
        queues = tuple(queues)
        with self._lock:
            source = self._sources.setdefault(key, [backend, {}])
            for queue in queues:
                source[1][queue] = source[1].get(queue, 0) + 1
            self._cache = None

        def remove() -> None:
            with self._lock:
                entry = self._sources.get(key)
                if entry is None:
                    return
                for queue in queues:
                    entry[1][queue] -= 1
                    if entry[1][queue] <= 0:
                        del entry[1][queue]
                if not entry[1]:
                    del self._sources[key]
                self._cache = None

        return remove

    def rows(self) -> list[tuple[str, str, float, float | None]]:
        """(queue, kind, ready tasks, oldest age or None) over every source."""
        with self._lock:
            cached = self._cache
            if cached is not None and time.monotonic() - cached[0] < BACKLOG_CACHE_SECONDS:
                return cached[1]
            sources = [(entry[0], tuple(entry[1])) for entry in self._sources.values()]
        rows: dict[tuple[str, str], tuple[float, float | None]] = {}
        for backend, queues in sources:
            for queue in queues:
                rows[(queue, "workflow")] = rows[(queue, "activity")] = (0, None)
            for backlog in self._read(backend):
                rows[(backlog.queue, "workflow")] = (backlog.ready_workflow_tasks, backlog.oldest_workflow_task_age)
                rows[(backlog.queue, "activity")] = (backlog.ready_activity_tasks, backlog.oldest_activity_task_age)
        result = [(queue, kind, count, age) for (queue, kind), (count, age) in sorted(rows.items())]
        with self._lock:
            self._cache = (time.monotonic(), result)
        return result

    def _read(self, backend: Backend) -> Sequence[QueueBacklog]:
        try:
            # The reader's thread (a periodic exporter, a Prometheus scrape) is not a task thread:
            # the ORM backend's task scope closes its stale database connection.
            with backend.task_scope():
                backlog = backend.get_backlog()
        except Exception:
            now = time.monotonic()
            if self._failing_since is None or now - self._failing_since > 60:
                logger.warning("reading the backlog for the queue gauges failed", exc_info=True)
                self._failing_since = now
            return ()
        self._failing_since = None
        return backlog

    def observe_ready(self, options: Any) -> Iterable[Any]:
        for queue, kind, count, _age in self.rows():
            yield Observation(count, {"queue": queue, "kind": kind})

    def observe_oldest_age(self, options: Any) -> Iterable[Any]:
        for queue, kind, _count, age in self.rows():
            yield Observation(age or 0.0, {"queue": queue, "kind": kind})


class Otel:
    """The tracer and the instruments on one pair of providers (None: the global ones).

    Build one per pair of providers and keep it: instruments are created here, once.
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        if not OTEL_AVAILABLE:
            raise RuntimeError(
                "OpenTelemetry is not installed: pip install 'django-durable-workflows[otel]' (opentelemetry-api)"
            )
        version = library_version()
        self.tracer = otel_trace.get_tracer(SCOPE, version, tracer_provider=tracer_provider)
        meter = otel_metrics.get_meter(SCOPE, version, meter_provider=meter_provider)
        self.propagator = TraceContextPropagator()

        def counter(name: str, unit: str, description: str) -> Any:
            return meter.create_counter(name, unit=unit, description=description)

        def histogram(name: str, description: str) -> Any:
            return meter.create_histogram(
                name, unit="s", description=description, explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS)
            )

        self.workflows_started = counter(
            "workflows.workflow.started", "{workflow}", "Executions whose first workflow task ran."
        )
        self.workflows_finished = counter(
            "workflows.workflow.finished", "{workflow}",
            "Executions that ended, by outcome: completed, failed, canceled, terminated, continued_as_new.",
        )
        self.workflows_blocked = counter(
            "workflows.workflow.blocked", "{task}", "Workflow tasks that could not run (the task is abandoned and retried)."
        )
        self.workflow_tasks = counter("workflows.workflow.tasks", "{task}", "Workflow tasks executed.")
        self.activity_attempts = counter("workflows.activity.attempts", "{attempt}", "Activity attempts started.")
        self.activity_failures = counter("workflows.activity.failures", "{attempt}", "Activity attempts that failed.")
        self.activity_retries = counter(
            "workflows.activity.retries", "{attempt}", "Activity attempts scheduled again after a failure."
        )
        self.activity_timeouts = counter(
            "workflows.activity.timeouts", "{attempt}", "Activity attempts that failed with a timeout."
        )
        self.leases_lost = counter(
            "workflows.lease.lost", "{lease}", "Task leases lost while running (the result is discarded)."
        )
        self.large_payloads = counter(
            "workflows.payload.large", "{payload}", "Payloads above the warning size (payload_warn_size), by kind."
        )
        self.history_near_limit = counter(
            "workflows.history.near_limit", "{execution}",
            "Executions whose history passed 80 % of max_history_size (continue as new before the limit).",
        )
        self.executor_cache_misses = counter(
            "workflows.executor_cache.misses", "{task}",
            "Workflow tasks that found no cached executor and replayed their instance's history first.",
        )
        self.replayed_events = counter(
            "workflows.executor_cache.replayed_events", "{event}",
            "History events replayed by those tasks (their cost grows with the history: continue as new).",
        )
        self.workflow_task_duration = histogram("workflows.workflow.task.duration", "Time to execute and commit a workflow task.")
        self.workflow_task_latency = histogram(
            "workflows.workflow.task.schedule_to_start", "Time a workflow task waited in its queue (from its oldest event)."
        )
        self.activity_duration = histogram("workflows.activity.duration", "Time an activity attempt ran.")
        self.activity_latency = histogram(
            "workflows.activity.schedule_to_start", "Time an activity attempt waited in its queue."
        )
        self.backlog = BacklogGauges()
        meter.create_observable_gauge(
            "workflows.queue.ready", callbacks=[self.backlog.observe_ready], unit="{task}",
            description="Tasks ready to run, by queue and kind (workflow or activity).",
        )
        meter.create_observable_gauge(
            "workflows.queue.oldest_ready_age", callbacks=[self.backlog.observe_oldest_age], unit="s",
            description="How long the oldest ready task has waited, by queue and kind.",
        )


__all__ = ["OTEL_AVAILABLE", "Otel", "TraceContextPropagator", "BacklogGauges"]
