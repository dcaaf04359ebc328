"""The migrations match the models (a model change without its migration fails here)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command


def _migrate(target: list[tuple[str, str]] | None = None) -> Any:
    """Migrate the test database to ``target`` (None: the latest migrations) with a fresh
    executor, and return the models as they are there (``apps``)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    target = target or executor.loader.graph.leaf_nodes()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


@pytest.mark.django_db  # makemigrations checks the applied history too
def test_no_missing_migrations():
    try:
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)
    except SystemExit as exc:  # makemigrations --check exits 1 when a migration is missing
        pytest.fail(f"models and migrations differ (makemigrations --check exited {exc.code}); run makemigrations")


@pytest.mark.django_db(transaction=True)
def test_safe_deploys_migration_is_additive():
    """0004 adds the blocked-task columns and two permissions; rows written before keep their data."""
    before, after = [("django_workflows", "0003_schedules")], [("django_workflows", "0004_safe_deploys")]
    row = _migrate(before).get_model("django_workflows", "WorkflowInstance").objects.create(
        instance_id="old-1", execution_id="e-1", active_instance_id="old-1", workflow_name="wf", queue="default",
        created_at="2026-01-01T00:00:00Z",
    )
    new_model = _migrate(after).get_model("django_workflows", "WorkflowInstance")
    migrated = new_model.objects.get(pk=row.pk)
    assert (migrated.instance_id, migrated.workflow_name, migrated.active_instance_id) == ("old-1", "wf", "old-1")
    assert (migrated.blocked_since, migrated.blocked_until, migrated.blocked_error, migrated.blocked_attempts) == (None, None, None, 0)
    # Back and forth again: the migration reverses cleanly, then the suite continues on the latest.
    _migrate(before)
    _migrate()
    new_model.objects.filter(pk=row.pk).delete()


@pytest.mark.django_db(transaction=True)
def test_pending_ready_at_migration_fills_existing_rows():
    """0002 adds the queue and ready time of pending events, filled in for the rows there are:
    an immediate event is ready since it was queued, a timer when it fires."""
    from datetime import UTC, datetime

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("django_workflows", "0001_initial")], [("django_workflows", "0002_pending_ready_at")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    instance = apps.get_model("django_workflows", "WorkflowInstance").objects.create(
        instance_id="old-2", execution_id="e-2", active_instance_id="old-2", workflow_name="wf", queue="reports",
        created_at="2026-01-01T00:00:00Z",
    )
    payload = apps.get_model("django_workflows", "Payload").objects.create(id="p-old", instance=instance, data="{}")
    queued, fires = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    pending = apps.get_model("django_workflows", "PendingEvent")
    pending.objects.create(instance=instance, payload=payload, event_id="now", event_type="SignalReceived", timestamp=queued)
    pending.objects.create(
        instance=instance, payload=payload, event_id="timer", event_type="TimerFired", timestamp=queued, visible_at=fires
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    migrated = executor.loader.project_state(after).apps.get_model("django_workflows", "PendingEvent")
    rows = {row.event_id: (row.queue, row.ready_at) for row in migrated.objects.filter(instance_id=instance.pk)}
    assert rows == {"now": ("reports", queued), "timer": ("reports", fires)}
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    migrated.objects.filter(instance_id=instance.pk).delete()
    apps.get_model("django_workflows", "Payload").objects.filter(pk="p-old").delete()
    apps.get_model("django_workflows", "WorkflowInstance").objects.filter(pk=instance.pk).delete()


@pytest.mark.django_db(transaction=True)
def test_activity_timeouts_migration_is_additive() -> None:
    """Rows written before 0005_activity_timeouts keep working after it: the new columns are
    NULL (no timeout), False (no cancellation) or empty."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    before, after = [("django_workflows", "0004_safe_deploys")], [("django_workflows", "0005_activity_timeouts")]
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


@pytest.mark.django_db(transaction=True)
def test_view_payloads_migration_is_additive() -> None:
    """0007 only adds the view_payloads permission: rows written before keep their data, and it
    reverses cleanly."""
    from django.contrib.auth.models import Permission

    before, after = [("django_workflows", "0006_workers")], [("django_workflows", "0007_view_payloads")]
    row = _migrate(before).get_model("django_workflows", "WorkflowInstance").objects.create(
        instance_id="old-7", execution_id="e-7", active_instance_id="old-7", workflow_name="wf", queue="default",
        created_at="2026-01-01T00:00:00Z",
    )
    new_model = _migrate(after).get_model("django_workflows", "WorkflowInstance")
    assert new_model.objects.filter(pk=row.pk, instance_id="old-7", workflow_name="wf").exists()
    assert ("view_payloads", "Can view workflow payloads (inputs, results, signal values)") in new_model._meta.permissions
    _migrate(before)
    _migrate()
    new_model.objects.filter(pk=row.pk).delete()
    # The permission row itself comes from post_migrate, as for Django's own permissions.
    assert Permission.objects.filter(content_type__app_label="django_workflows", codename="view_payloads").exists()


@pytest.mark.django_db(transaction=True)
def test_pending_new_instance_migration_is_additive() -> None:
    """0009 adds the pending events' ``new_instance`` flag with a database default: rows written
    before it (and rows a worker of the previous version inserts afterwards, without the column)
    read as "part of running work"; it reverses cleanly."""
    from django.db import connection

    before, after = [("django_workflows", "0008_admin_scale")], [("django_workflows", "0009_pending_new_instance")]
    old = _migrate(before)
    execution = old.get_model("django_workflows", "WorkflowInstance").objects.create(
        instance_id="old-9", execution_id="e-9", active_instance_id="old-9", workflow_name="wf", queue="default",
        created_at="2026-01-01T00:00:00Z",
    )
    payload = old.get_model("django_workflows", "Payload").objects.create(id="p-9", instance=execution, data="{}")
    pending = old.get_model("django_workflows", "PendingEvent")
    fields = {"instance": execution, "payload": payload, "event_type": "SignalReceived", "timestamp": "2026-01-01T00:00:00Z",
              "queue": "default", "ready_at": "2026-01-01T00:00:00Z"}
    first = pending.objects.create(event_id="before", **fields)
    new = _migrate(after).get_model("django_workflows", "PendingEvent")
    # The previous version's INSERT names only the columns it knows.
    table = new._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (event_id, event_type, timestamp, schedule_event_id, sequence_id, instance_id, payload_id,"
            " queue, ready_at) VALUES (%s, %s, %s, 0, 0, %s, %s, %s, %s)",
            ["after", "SignalReceived", "2026-01-01 00:00:00", execution.pk, "p-9", "default", "2026-01-01 00:00:00"],
        )
    assert sorted(new.objects.filter(instance_id=execution.pk).values_list("event_id", "new_instance")) == [
        ("after", False), ("before", False)
    ]
    assert new.objects.get(pk=first.pk).event_type == "SignalReceived"
    _migrate(before)
    _migrate()
    new.objects.filter(instance_id=execution.pk).delete()
    new._meta.apps.get_model("django_workflows", "Payload").objects.filter(pk="p-9").delete()
    new._meta.apps.get_model("django_workflows", "WorkflowInstance").objects.filter(pk=execution.pk).delete()
