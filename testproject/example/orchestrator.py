"""The seed's ``WorkflowOrchestrator`` example, runnable:

    python -m testproject.example.orchestrator

Worker and client in one process, on a SQLite file of its own (``simple.sqlite3``, like the
seed's ``simple.sqlite``). Prints ``Workflow completed with result: Processed input-for-workflow
with result 42``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import django


def activity1() -> int:
    return 42


def format_result(input: str, value: int) -> str:
    return f"Processed {input} with result {value}"


async def my_workflow(ctx, input: str) -> str:  # type: ignore[no-untyped-def]
    from django_workflows import workflow

    r1 = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, activity1)
    return await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, format_result, input, r1)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    if os.environ.get("DB", "sqlite") == "sqlite":
        os.environ.setdefault("SQLITE_PATH", str(Path(__file__).resolve().parents[2] / "simple.sqlite3"))
    django.setup()
    from django.core.management import call_command

    from django_workflows.backends.orm import OrmBackend
    from django_workflows.client import WorkflowInstanceOptions
    from django_workflows.worker import WorkflowOrchestrator

    call_command("migrate", verbosity=0)

    # A queue of its own, so workers of the example project never take these tasks.
    queue = "orchestrator-example"
    orchestrator = WorkflowOrchestrator(OrmBackend(), _options(queue))
    orchestrator.register_workflow(my_workflow)
    orchestrator.register_activity(activity1)
    orchestrator.register_activity(format_result)
    orchestrator.start()
    try:
        instance = orchestrator.create_workflow_instance(
            WorkflowInstanceOptions(instance_id=str(uuid.uuid4()), queue=queue), my_workflow, "input-for-workflow"
        )
        result = orchestrator.get_workflow_result(instance, timeout=30)
        print("Workflow completed with result:", result)
    finally:
        orchestrator.stop()
        orchestrator.wait_for_completion()


def _options(queue: str):  # type: ignore[no-untyped-def]
    from django_workflows.worker import WorkerOptions

    return WorkerOptions(workflow_pollers=1, activity_pollers=1, workflow_queues=[queue], activity_queues=[queue])


if __name__ == "__main__":
    main()
