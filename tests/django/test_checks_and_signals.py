"""System checks and the Django signals a worker sends."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from django_workflows import signals, workflow
from django_workflows.backends import default_backend, workflow_backends
from django_workflows.backends.memory import MemoryBackend
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.registry import Registry
from django_workflows.signals import DjangoSignalListener
from django_workflows.worker import Worker, WorkerOptions
from tests.conftest import wait_for


def run_check_ids(**kwargs) -> set[str]:
    # Only the tags our checks use: Django 6.1's model checks would query the database.
    tags = [checks.Tags.compatibility] + ([checks.Tags.database] if kwargs.get("databases") else [])
    messages = checks.run_checks(tags=tags, **kwargs)
    return {message.id for message in messages if message.id and message.id.startswith("django_workflows")}


def test_use_tz_off_is_an_error():
    with override_settings(USE_TZ=False):
        assert "django_workflows.E002" in run_check_ids()


def test_unknown_backend_is_an_error():
    with override_settings(WORKFLOWS={"default": {"BACKEND": "no.such.Backend"}}):
        assert "django_workflows.E001" in run_check_ids()
    with override_settings(WORKFLOWS={"default": {"BACKEND": "django_workflows.backends.memory.MemoryBackend", "OPTIONS": {"bogus": 1}}}):
        assert "django_workflows.E001" in run_check_ids()


def test_missing_default_alias_is_an_error():
    with override_settings(WORKFLOWS={"other": {"BACKEND": "django_workflows.backends.memory.MemoryBackend"}}):
        assert "django_workflows.E001" in run_check_ids()


def test_settings_are_read_lazily_and_override_settings_works():
    with override_settings(WORKFLOWS={"default": {"BACKEND": "django_workflows.backends.memory.MemoryBackend"}}):
        assert isinstance(default_backend(), MemoryBackend)
    assert not isinstance(workflow_backends["default"], MemoryBackend)


def test_sqlite_without_immediate_transactions_is_warned(settings):
    from django.db import connections

    using = default_backend().using
    if connections.settings[using]["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("SQLite advice only applies to SQLite databases; this run uses another database")
    original = dict(connections.settings[using]["OPTIONS"])
    connections.settings[using]["OPTIONS"].pop("transaction_mode")
    try:
        assert "django_workflows.W001" in run_check_ids()
    finally:
        connections.settings[using]["OPTIONS"].clear()
        connections.settings[using]["OPTIONS"].update(original)
    assert "django_workflows.W001" not in run_check_ids()


# --- Django signals ------------------------------------------------------------------------


def _fails(x: int) -> int:
    raise ValueError(f"bad {x}")


async def succeeding(ctx: workflow.Context, x: int) -> int:
    return x * 2


async def failing(ctx: workflow.Context) -> None:
    await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, _fails, 3)


async def waits_for_cancel(ctx: workflow.Context) -> None:
    await workflow.sleep(ctx, 3600)


def test_lifecycle_signals_are_sent_once_per_event():
    received: list[tuple[str, dict]] = []

    def receiver(signal_name):
        def receive(sender, **kwargs):
            received.append((signal_name, {"sender": sender, **kwargs}))

        return receive

    handlers = {
        name: receiver(name)
        for name in ("workflow_started", "workflow_completed", "workflow_failed", "workflow_canceled", "activity_failed")
    }
    for name, handler in handlers.items():
        getattr(signals, name).connect(handler)
    try:
        backend = MemoryBackend()
        registry = Registry()
        for fn in (succeeding, failing, waits_for_cancel):
            registry.register_workflow(fn)
        registry.register_activity(_fails)
        # Without the cache every task replays history: signals must still come once.
        options = WorkerOptions(listeners=(DjangoSignalListener(),), workflow_executor_cache_size=0)
        client = Client(backend, registry=registry)
        with Worker(backend, options, registry=registry):
            ok = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="ok"), succeeding, 21)
            bad = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="bad"), failing)
            canceled = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="cx"), waits_for_cancel)
            assert client.get_workflow_result(ok, timeout=30) == 42
            with pytest.raises(workflow.WorkflowError):
                client.get_workflow_result(bad, timeout=30)
            client.cancel_workflow_instance(canceled)
            with pytest.raises(workflow.Canceled):
                client.get_workflow_result(canceled, timeout=30)
    finally:
        for name, handler in handlers.items():
            getattr(signals, name).disconnect(handler)

    by_name: dict[str, list[dict]] = {}
    for name, kwargs in received:
        by_name.setdefault(name, []).append(kwargs)
    assert sorted(k["instance"].instance_id for k in by_name["workflow_started"]) == ["bad", "cx", "ok"]
    [completed] = by_name["workflow_completed"]
    assert completed["sender"] == "succeeding" and completed["result"] == 42
    [failed] = by_name["workflow_failed"]
    assert failed["instance"] == bad and failed["error"].type == "ValueError" and "bad 3" in str(failed["error"])
    [canceled_kwargs] = by_name["workflow_canceled"]
    assert canceled_kwargs["instance"] == canceled
    assert [k["attempt"] for k in by_name["activity_failed"]] == [0, 1, 2]  # three attempts by default
    assert {k["activity_name"] for k in by_name["activity_failed"]} == {"_fails"}


@pytest.mark.django_db(transaction=True)  # the journal mode cannot change inside a transaction
def test_sqlite_outside_wal_mode_is_warned_by_the_database_check():
    from django.db import connections

    using = default_backend().using
    if connections.settings[using]["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("the WAL advice only applies to SQLite databases; this run uses another database")
    assert "django_workflows.W002" not in run_check_ids(databases=[using])
    with connections[using].cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=DELETE")
    try:
        assert "django_workflows.W002" in run_check_ids(databases=[using])
        assert "django_workflows.W002" not in run_check_ids()  # database checks only run when asked
    finally:
        with connections[using].cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")


@pytest.mark.django_db
def test_a_payload_limit_over_mysql_max_allowed_packet_is_warned_by_the_database_check():
    from django.db import connections

    from django_workflows.backends.orm.checks import packet_needed

    using = default_backend().using
    if connections[using].vendor != "mysql":
        pytest.skip("max_allowed_packet is a MySQL/MariaDB setting; this run uses another database")
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT @@SESSION.max_allowed_packet")
        packet = int(cursor.fetchone()[0])
    # The default limit (2 MiB) fits MariaDB's default packet (16 MiB), escaping included.
    assert packet_needed(2 * 1024 * 1024) < packet
    assert "django_workflows.W003" not in run_check_ids(databases=[using])
    too_large = packet // 4  # four times that, once escaped, is the whole packet
    backend = {"BACKEND": "django_workflows.backends.orm.OrmBackend", "OPTIONS": {"using": using, "max_payload_size": too_large}}
    with override_settings(WORKFLOWS={"default": backend}):
        messages = checks.run_checks(tags=[checks.Tags.database], databases=[using])
        assert "django_workflows.W003" not in run_check_ids()  # database checks only run when asked
    (warning,) = [m for m in messages if m.id == "django_workflows.W003"]
    assert f"payloads of {too_large:,} bytes" in warning.msg and f"at most {packet:,} bytes" in warning.msg
    assert f"more than {packet_needed(too_large):,} bytes" in warning.hint


async def broken(ctx: workflow.Context) -> None:
    workflow.not_a_function(ctx)  # type: ignore[attr-defined]  # an AttributeError: the task blocks


def test_workflow_blocked_is_sent_at_every_failed_attempt():
    received: list[dict] = []

    def receive(sender, **kwargs):
        received.append({"sender": sender, **kwargs})

    signals.workflow_blocked.connect(receive)
    try:
        backend = MemoryBackend()
        registry = Registry()
        registry.register_workflow(broken)
        options = WorkerOptions(
            listeners=(DjangoSignalListener(),), blocked_retry_first_interval=0.05, blocked_retry_max_interval=0.1
        )
        client = Client(backend, registry=registry)
        with Worker(backend, options, registry=registry):
            instance = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="broken"), broken)
            wait_for(lambda: len(received) >= 2, timeout=30, what="two blocked attempts")
    finally:
        signals.workflow_blocked.disconnect(receive)
    first, second = received[:2]
    assert first["sender"] == "broken" and first["instance"] == instance and first["workflow_name"] == "broken"
    assert (first["blocked"].attempts, second["blocked"].attempts) == (1, 2)
    assert first["blocked"].error.type == "AttributeError" and "not_a_function" in first["blocked"].error.message
