"""The migrations match the models (a model change without its migration fails here)."""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.mark.django_db  # makemigrations checks the applied history too
def test_no_missing_migrations():
    try:
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)
    except SystemExit as exc:  # makemigrations --check exits 1 when a migration is missing
        pytest.fail(f"models and migrations differ (makemigrations --check exited {exc.code}); run makemigrations")


@pytest.mark.django_db(transaction=True)
def test_activity_timeouts_migration_is_additive() -> None:
    """Rows written before 0002_activity_timeouts keep working after it: the new columns are
    NULL (no timeout), False (no cancellation) or empty."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    before, after = [("django_workflows", "0001_initial")], [("django_workflows", "0002_activity_timeouts")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        Instance, Payload, Task = (old.get_model("django_workflows", m) for m in ("WorkflowInstance", "Payload", "ActivityTask"))
        row = Instance.objects.create(
            instance_id="old", execution_id="e", workflow_name="wf", queue="default", created_at=timezone.now()
        )
        payload = Payload.objects.create(id="p", instance=row, data='{"name":"charge"}')
        Task.objects.create(
            event_id="a", event_type="ActivityScheduled", timestamp=timezone.now(), instance=row, payload=payload, queue="default"
        )
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        task = new.get_model("django_workflows", "ActivityTask").objects.get(event_id="a")
        assert (task.deadline, task.start_by, task.close_by, task.run_by, task.heartbeat_by) == (None,) * 5
        assert (task.heartbeat_details, task.cancel_requested) == (None, False)
        assert new.get_model("django_workflows", "WorkflowInstance").objects.get(pk=row.pk).timeout_at is None
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
