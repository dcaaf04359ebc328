"""Without OpenTelemetry installed everything works: the instrumentation takes its log-only path
(chosen once, when it is built) and a worker runs workflows as before (docs/observability.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT

# Runs in a fresh interpreter in which every ``opentelemetry`` import fails, as on a machine
# without the ``otel`` extra.
_WITHOUT_OTEL = r"""
import importlib.abc, json, sys

class NoOpenTelemetry(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoOpenTelemetry())

from django_workflows import health, telemetry, workflow
from django_workflows.backends.memory import MemoryBackend
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.instrumentation import Instrumentation, WorkflowTaskObservation, default_instrumentation
from django_workflows.worker import Worker, WorkerOptions

def add(a, b):
    return a + b

async def adder(ctx, a, b):
    return await workflow.execute_activity(ctx, workflow.ActivityOptions(), add, a, b)

backend = MemoryBackend()
worker = Worker(backend, WorkerOptions(workflow_pollers=1, activity_pollers=1, run_scheduler=False))
worker.register_workflow(adder)
worker.register_activity(add)
try:
    Instrumentation(tracer_provider=object())
    providers_refused = ""
except RuntimeError as exc:
    providers_refused = str(exc)
with worker:
    client = Client(backend, registry=worker.registry)
    instance = client.create_workflow_instance(WorkflowInstanceOptions(), adder, 2, 3)
    result = client.get_workflow_result(instance, timeout=30)
    workers = [w.worker_id for w in backend.list_workers()]
    _, code = health.status(backend, ["default"])
print(json.dumps({
    "available": telemetry.OTEL_AVAILABLE,
    "otel": default_instrumentation().otel is not None,
    "log_only": default_instrumentation()._workflow_task is WorkflowTaskObservation,
    "propagators": len(default_instrumentation().propagators(())),
    "result": result,
    "metadata": backend.get_workflow_instance_info(instance).metadata,
    "registered": worker.worker_id in workers,
    "health": code,
    "refused": providers_refused,
    "loaded": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
}))
"""


def test_without_opentelemetry_workflows_run_on_the_log_only_path() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_OTEL], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["available"] is False and report["otel"] is False
    assert report["log_only"] is True and report["propagators"] == 0
    assert report["result"] == 5 and report["metadata"] == {}
    assert report["registered"] is True and report["health"] == 0
    assert "pip install 'django-durable-workflows[otel]'" in report["refused"]
    assert report["loaded"] == []
