"""What the worker's instrumentation costs per task, without a database or a worker around it.

    python -m bench.instrumentation_overhead [--tasks N]

Times the hooks a worker calls around one workflow task and one activity attempt
(``instrumentation.Instrumentation``) on each path: log-only (OpenTelemetry not installed, or
``telemetry=False``: the same classes), OpenTelemetry's API with no SDK configured (its no-op
tracer and meter), and the SDK recording into in-memory exporters. A workflow task costs about a
millisecond of CPU on the fastest store (bench/RESULTS.md), so microseconds here are the
fraction of that to compare with. Single process, a second or two of CPU: not the bench run.
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import UTC, datetime
from typing import Any

from django_workflows.engine.backend import ActivityTask, ExecutionResult, WorkflowTask
from django_workflows.engine.core import InstanceState, WorkflowInstance
from django_workflows.engine.history import (
    ActivityCompletedAttributes,
    ActivityScheduledAttributes,
    WorkflowTaskStartedAttributes,
    new_event,
)
from django_workflows.instrumentation import Instrumentation


def _fixtures() -> tuple[WorkflowTask, ExecutionResult, ActivityTask, Any]:
    now = datetime.now(UTC)
    instance = WorkflowInstance("bench-1", "e" * 32)
    scheduled = new_event(ActivityScheduledAttributes(name="charge", queue="default"), now, schedule_event_id=1)
    task = WorkflowTask(
        id="bench-1", queue="default", instance=instance, state=InstanceState.ACTIVE, metadata={},
        last_sequence_id=3, new_events=[new_event(ActivityCompletedAttributes(result="1"), now)],
        lease_token="t", workflow_name="order",
    )
    result = ExecutionResult(
        state=InstanceState.ACTIVE, executed=[new_event(WorkflowTaskStartedAttributes(), now), scheduled],
        workflow_name="order",
    )
    activity = ActivityTask(id="a", activity_id="a", queue="default", instance=instance, event=scheduled, lease_token="t")
    return task, result, activity, ActivityCompletedAttributes(result="2")


def per_task_microseconds(instrumentation: Instrumentation, tasks: int) -> float:
    """CPU time of the hooks around one workflow task plus one activity attempt."""
    task, result, activity, completed = _fixtures()
    started = time.process_time()
    for _ in range(tasks):
        with instrumentation.workflow_task(task) as observed:
            observed.committed(result, None)
        with instrumentation.activity_task(activity) as attempt:
            attempt.finished(completed)
    return (time.process_time() - started) / tasks * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    args = parser.parse_args()
    logging.getLogger("django_workflows").setLevel(logging.WARNING)  # as a worker logs by default: no per-task line
    rows = [("log-only (no OpenTelemetry)", Instrumentation(telemetry=False))]
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        pass
    else:
        rows.append(("OpenTelemetry API, no SDK", Instrumentation()))
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        rows.append(("OpenTelemetry SDK, recording", Instrumentation(tracer_provider=tracer_provider, meter_provider=meter_provider)))
    for label, instrumentation in rows:
        tasks = args.tasks if "SDK," not in label else max(1, args.tasks // 10)
        print(f"{label:32} {per_task_microseconds(instrumentation, tasks):8.2f} µs per workflow task + activity attempt")


if __name__ == "__main__":
    main()
