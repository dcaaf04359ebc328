"""Records the corpus that ``tests/test_replayer.py`` replays: histories of the example project's
workflows (``testproject/example``), run by a real worker on the memory backend. Activities are
replaced by stand-ins registered under the same names, so no database is needed; the workflow
code is the example's own.

Run it from the repository root when the example workflows change on purpose (a change that
needs this is exactly what the replayer tests exist to catch, so say why in the commit)::

    DJANGO_SETTINGS_MODULE=testproject.settings python tests/histories/record.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import django
from django.conf import settings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
# Reminders every 0.2 s instead of 30, so the rejected order is recorded quickly.
settings.EXAMPLE_REMINDER_SECONDS = 0.2
django.setup()

from django_workflows.backends.memory import MemoryBackend  # noqa: E402
from django_workflows.client import Client, WorkflowInstanceOptions  # noqa: E402
from django_workflows.engine.core import WorkflowInstance  # noqa: E402
from django_workflows.engine.history import EventType  # noqa: E402
from django_workflows.registration import registry  # noqa: E402
from django_workflows.testing.history_files import WorkflowHistory, write_history  # noqa: E402
from django_workflows.worker import Worker, WorkerOptions  # noqa: E402
from testproject.example import orders  # noqa: E402


def set_order_status(order_id: int, status: str) -> str:
    return status


def send_reminder(order_id: int) -> int:
    return 1


def book_shipment(order_id: int) -> str:
    return f"TRACK-{order_id:06d}"


def main() -> None:
    backend = MemoryBackend()
    worker = Worker(backend, WorkerOptions(workflow_pollers=1, activity_pollers=1))
    for name in ("Workflow1", "order_workflow", "ship_order"):
        worker.register_workflow(registry.get_workflow(name), name)
    worker.register_activity(registry.get_activity("Activity1"), "Activity1")
    worker.register_activity(registry.get_activity("Activity2"), "Activity2")
    for stand_in in (set_order_status, send_reminder, book_shipment):
        worker.register_activity(stand_in)
    client = Client(backend, registry=worker.registry)

    def start(instance_id: str, name: str, *args: object) -> WorkflowInstance:
        return client.create_workflow_instance(WorkflowInstanceOptions(instance_id=instance_id), name, *args)

    def has(instance: WorkflowInstance, event_type: EventType, count: int = 1) -> None:
        deadline = time.monotonic() + 30
        while sum(e.type is event_type for e in backend.get_workflow_instance_history(instance)) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"{instance}: no {count} {event_type.value} event(s) in time")
            time.sleep(0.01)

    worker.start()
    try:
        quickstart = start("quickstart-1", "Workflow1", "input-for-workflow")
        approved = start("order-1", "order_workflow", 1)
        rejected = start("order-2", "order_workflow", 2)
        client.get_workflow_result(quickstart, 30)
        has(approved, EventType.ACTIVITY_COMPLETED)
        has(approved, EventType.WORKFLOW_TASK_STARTED, 2)
        client.signal_workflow("order-1", "approval", {"approved": True, "by": "ann"})
        client.get_workflow_result(approved, 30)
        client.get_workflow_result(rejected, 30)
        # A running instance: waiting for a decision, its reminder an hour away (the workflow
        # reads the module's REMINDER_SECONDS when it schedules the timer).
        orders.REMINDER_SECONDS = 3600
        waiting = start("order-3", "order_workflow", 3)
        has(waiting, EventType.TIMER_SCHEDULED)
    finally:
        worker.stop()
        worker.wait_for_completion(30)
    shipping = backend.get_latest_execution("shipping-1")
    for file, instance in (
        ("workflow1-completed.json", quickstart),
        ("order-approved-and-shipped.json", approved),
        ("ship-order-child.json", shipping),
        ("order-rejected-after-reminders.json", rejected),
        ("order-waiting-for-approval.json", waiting),
    ):
        events = backend.get_workflow_instance_history(instance)
        # The instance as stored (a child keeps its parent link).
        stored = backend.get_workflow_instance_info(instance).instance
        write_history(WorkflowHistory.of(stored, events), HERE / file)
        print(f"{file}: {len(events)} events")


if __name__ == "__main__":
    main()
