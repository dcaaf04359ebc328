"""The trace context travels through the store: a workflow started in this process (inside a
"request" span) runs in a worker *process* that reads the instance from the database, and that
worker's spans continue this process's trace (docs/observability.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the OpenTelemetry SDK (the test extra)")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from django_workflows import workflow
from django_workflows.backends import default_backend
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.instrumentation import Instrumentation
from tests.conftest import REPO_ROOT, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def greet(name: str) -> str:
    return f"hello {name}"


async def greeting(ctx: workflow.Context, name: str) -> str:
    return await workflow.execute_activity(ctx, workflow.ActivityOptions(), greet, name)


# The worker process: the project's settings and database, an SDK that writes every finished
# span as one JSON line, and a worker that runs until the instance has finished.
_WORKER = r"""
import sys
import django

django.setup()
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from django_workflows.backends import default_backend
from django_workflows.client import Client
from django_workflows.instrumentation import Instrumentation
from django_workflows.worker import Worker, WorkerOptions
from tests.django.test_trace_across_processes import greet, greeting

queue, instance_id, spans_path = sys.argv[1:4]
out = open(spans_path, "w")
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=lambda s: s.to_json(indent=None) + "\n")))
backend = default_backend()
worker = Worker(
    backend,
    WorkerOptions(workflow_queues=[queue], activity_queues=[queue], run_scheduler=False),
    instrumentation=Instrumentation(tracer_provider=provider),
)
worker.register_workflow(greeting)
worker.register_activity(greet)
with worker:
    print(Client(backend).get_workflow_result(instance_id, timeout=60), flush=True)
provider.shutdown()
out.close()
"""


def test_a_worker_process_continues_the_trace_of_the_process_that_started_the_workflow(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = Client(default_backend(), instrumentation=Instrumentation(tracer_provider=provider))
    queue = f"far-{uuid.uuid4().hex[:8]}"
    with provider.get_tracer("tests").start_as_current_span("POST /greetings") as request:
        instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), "greeting", "world")
    (start,) = [s for s in exporter.get_finished_spans() if s.name == "StartWorkflow greeting"]

    spans_path = tmp_path / "worker-spans.jsonl"
    env = subprocess_env({}, DJANGO_SETTINGS_MODULE="testproject.settings")
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, queue, instance.instance_id, str(spans_path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "hello world"

    spans: list[dict[str, Any]] = [json.loads(line) for line in spans_path.read_text().splitlines() if line]
    trace_id = f"0x{request.get_span_context().trace_id:032x}"
    tasks = [s for s in spans if s["name"] == "WorkflowTask greeting"]
    (attempt,) = [s for s in spans if s["name"] == "Activity greet"]
    assert tasks and all(s["context"]["trace_id"] == trace_id for s in [*tasks, attempt])
    assert {s["parent_id"] for s in tasks} == {f"0x{start.context.span_id:016x}"}
    assert attempt["parent_id"] in {s["context"]["span_id"] for s in tasks}
    assert attempt["attributes"]["workflows.instance_id"] == instance.instance_id
