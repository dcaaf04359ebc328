"""``start_workflow`` and friends: atomic with the caller's transaction, idempotent with an id.

Every test runs twice (``store``): on the ORM backend in the test database, where the start is
written inside the caller's transaction, and on Redis, where it waits for the commit.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction

from django_workflows import acancel_workflow, asignal_workflow, astart_workflow, cancel_workflow, signal_workflow, start_workflow
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import InstanceAlreadyExists, InstanceFinished, InstanceNotFound, WorkflowError
from django_workflows.engine.registry import ArgumentMismatch
from django_workflows.testing.conformance.support import WAIT, wait_until
from django_workflows.worker import Worker
from testproject.example.workflows import workflow1
from testproject.testapp.workflows import collect_signals

from ..conftest import REPO_ROOT, subprocess_env
from .stores import Store

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


def state(instance_id: str) -> InstanceState | None:
    client = Client()
    try:
        return client.get_workflow_instance_state(instance_id)
    except InstanceNotFound:
        return None


def test_start_outside_a_transaction_starts_at_once(store: Store) -> None:
    instance = start_workflow(workflow1, "x", instance_id="now-1")
    assert Client().get_workflow_instance_state(instance) is InstanceState.ACTIVE


def test_a_committed_transaction_starts_the_workflow(store: Store) -> None:
    with transaction.atomic():
        instance = start_workflow(workflow1, "x", instance_id="committed-1")
        # On the caller's database the start is part of the transaction; elsewhere it waits.
        assert state("committed-1") is (InstanceState.ACTIVE if store.in_transaction else None)
    assert Client().get_workflow_instance_state(instance) is InstanceState.ACTIVE
    assert Client().backend.get_latest_execution("committed-1") == instance


def test_a_rolled_back_transaction_starts_nothing(store: Store) -> None:
    with pytest.raises(Boom):
        with transaction.atomic():
            start_workflow(workflow1, "x", instance_id="rolled-back")
            raise Boom
    assert state("rolled-back") is None


def test_a_rolled_back_savepoint_starts_nothing_and_the_outer_transaction_goes_on(store: Store) -> None:
    with transaction.atomic():
        with pytest.raises(Boom):
            with transaction.atomic():
                start_workflow(workflow1, "x", instance_id="inner")
                raise Boom
        start_workflow(workflow1, "x", instance_id="outer")
    assert state("inner") is None
    assert state("outer") is InstanceState.ACTIVE


def test_bad_input_fails_in_the_view_before_anything_is_written(store: Store) -> None:
    with transaction.atomic():
        with pytest.raises(ArgumentMismatch, match="mismatched argument count: expected 1, got 2"):
            start_workflow(workflow1, "x", "y", instance_id="bad")
        with pytest.raises(TypeError, match="mismatched argument type: expected str, got set"):
            start_workflow(workflow1, {1, 2}, instance_id="bad")
        # By name there is no signature to check, but the value still cannot be stored.
        with pytest.raises(TypeError, match="value of type set is not JSON serializable"):
            start_workflow("Workflow1", {1, 2}, instance_id="bad")
        for bad_id in ("", "a:b", "x" * 129, "tab\there"):
            with pytest.raises(ValueError, match="instance id"):
                start_workflow(workflow1, "x", instance_id=bad_id)
    assert state("bad") is None


def test_empty_and_invalid_instance_ids_are_rejected_alike_by_the_client_and_the_shortcut(store: Store) -> None:
    client = Client()
    for bad_id in ("", "a{b}", "x" * 129, "new\nline"):
        with pytest.raises(ValueError) as from_client:
            client.create_workflow_instance(WorkflowInstanceOptions(instance_id=bad_id), workflow1, "x")
        with pytest.raises(ValueError) as from_shortcut:
            start_workflow(workflow1, "x", instance_id=bad_id)
        assert str(from_client.value) == str(from_shortcut.value)
    assert client.get_stats().active_workflow_instances == 0


def test_an_existing_instance_id_gives_the_existing_execution_inside_and_outside_a_transaction(store: Store) -> None:
    first = start_workflow(workflow1, "x", instance_id="order-7")
    assert start_workflow(workflow1, "x", instance_id="order-7") == first
    with transaction.atomic():
        assert start_workflow(workflow1, "x", instance_id="order-7") == first
    assert async_to_sync(astart_workflow)(workflow1, "x", instance_id="order-7") == first
    with transaction.atomic():
        # The async twin runs in this thread (thread-sensitive), so in this transaction.
        assert async_to_sync(astart_workflow)(workflow1, "x", instance_id="order-7") == first
    assert Client().backend.get_latest_execution("order-7") == first
    assert Client().get_workflow_instance_state(first) is InstanceState.ACTIVE


def test_a_start_and_a_duplicate_in_the_same_transaction_give_one_execution(store: Store) -> None:
    with transaction.atomic():
        first = start_workflow(workflow1, "x", instance_id="twice")
        again = start_workflow(workflow1, "x", instance_id="twice")
    if store.in_transaction:
        assert again == first  # the second call sees the first one's row
    assert Client().backend.get_latest_execution("twice") == first
    assert Client().get_workflow_instance_state(first) is InstanceState.ACTIVE


def test_concurrent_transactions_starting_one_id_get_one_execution(store: Store) -> None:
    # The second transaction's look-up does not see the first's uncommitted row; on PostgreSQL
    # and MariaDB its insert then waits on the unique index and fails once the first commits,
    # its savepoint is rolled back and it returns the winner (SQLite: it waits at BEGIN).
    first_started, handles = threading.Event(), {}

    def second() -> None:
        try:
            first_started.wait(WAIT)
            with transaction.atomic():
                handles["second"] = start_workflow(workflow1, "x", instance_id="race-1")
                handles["second-sees"] = state("race-1")
        finally:
            connection.close()

    thread = threading.Thread(target=second)
    with transaction.atomic():
        handles["first"] = start_workflow(workflow1, "x", instance_id="race-1")
        thread.start()
        first_started.set()
        time.sleep(0.5)  # let the second transaction reach its insert (or BEGIN) and wait
    thread.join(WAIT)
    assert not thread.is_alive()
    latest = Client().backend.get_latest_execution("race-1")
    if store.in_transaction:
        assert latest == handles["first"] == handles["second"]
        assert handles["second-sees"] is InstanceState.ACTIVE
    else:
        # Each start waited for its own commit, and the later hook found the earlier one's
        # execution and started nothing: its handle names an execution that never started
        # (the documented limit of a store outside the database, docs/guide.md).
        # (On SQLite the second transaction waits at BEGIN, after the first hook: then it finds
        # the execution at its call and returns it.)
        assert latest in (handles["first"], handles["second"])
        loser = handles["second"] if latest == handles["first"] else handles["first"]
        if loser != latest:
            with pytest.raises(InstanceNotFound):
                Client().get_workflow_instance_state(loser)


def test_a_refused_start_inside_a_transaction_is_not_retried_and_the_transaction_goes_on(store: Store) -> None:
    client = Client()
    retries = getattr(client.backend, "retries", 0)
    with transaction.atomic():
        client.create_workflow_instance(WorkflowInstanceOptions(instance_id="dup-1"), workflow1, "x")
        with pytest.raises(InstanceAlreadyExists):
            client.create_workflow_instance(WorkflowInstanceOptions(instance_id="dup-1"), workflow1, "x")
        client.create_workflow_instance(WorkflowInstanceOptions(instance_id="dup-2"), workflow1, "x")
    assert getattr(client.backend, "retries", 0) == retries
    assert state("dup-1") is InstanceState.ACTIVE and state("dup-2") is InstanceState.ACTIVE


def test_signals_are_atomic_with_the_transaction(store: Store, worker: Worker) -> None:
    instance = start_workflow(collect_signals, 2, instance_id="signals-1")
    with pytest.raises(Boom):
        with transaction.atomic():
            signal_workflow("signals-1", "note", "rolled back")
            raise Boom
    with transaction.atomic():
        signal_workflow("signals-1", "note", "committed")
    signal_workflow("signals-1", "note", "outside")
    assert Client().get_workflow_result(instance, timeout=WAIT) == ["committed", "outside"]


def test_a_signal_to_no_active_execution_fails_in_the_view(store: Store, worker: Worker) -> None:
    for inside in (False, True):
        with transaction.atomic() if inside else contextlib.nullcontext():
            with pytest.raises(InstanceNotFound):
                signal_workflow("nobody", "note")
    instance = start_workflow(collect_signals, 1, instance_id="done-1")
    signal_workflow("done-1", "note", 1)
    assert Client().get_workflow_result(instance, timeout=WAIT) == [1]
    for inside in (False, True):
        with transaction.atomic() if inside else contextlib.nullcontext():
            with pytest.raises(InstanceFinished):
                signal_workflow("done-1", "note")


BAD_IDS = (("", "non-empty"), ("x" * 129, "at most 128"), ("a:b", "control character, '{', '}' or ':'"), ("bell\a", "control character"))


@pytest.mark.parametrize(("bad", "message"), BAD_IDS)
def test_instance_ids_are_refused_alike_by_the_shortcut_and_the_client(store: Store, bad: str, message: str) -> None:
    # One rule (engine.core.validate_id): an empty id is an error, never a random id in its place.
    with pytest.raises(ValueError, match=message) as by_shortcut:
        start_workflow(collect_signals, 1, instance_id=bad)
    with pytest.raises(ValueError, match=message) as by_client:
        Client().create_workflow_instance(WorkflowInstanceOptions(instance_id=bad), collect_signals, 1)
    assert str(by_shortcut.value) == str(by_client.value)
    with pytest.raises(ValueError, match=message):
        signal_workflow(bad, "note")
    with pytest.raises(ValueError, match=message):
        Client().signal_workflow(bad, "note")


def test_signal_names_are_validated_before_anything_is_sent(store: Store) -> None:
    start_workflow(collect_signals, 1, instance_id="names-1")
    for bad, message in (
        ("", "non-empty"), (" ", "must not be blank"), ("x" * 256, "at most 255"), ("bell\a", "control character"),
        (7, "non-empty string"),
    ):
        with pytest.raises(ValueError, match=message):
            signal_workflow("names-1", bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=message):
            Client().signal_workflow("names-1", bad)  # type: ignore[arg-type]


def test_cancellation_is_atomic_with_the_transaction(store: Store, worker: Worker) -> None:
    kept = start_workflow(collect_signals, 1, instance_id="cancel-kept")
    with pytest.raises(Boom):
        with transaction.atomic():
            cancel_workflow("cancel-kept")
            raise Boom
    signal_workflow("cancel-kept", "note", "still running")
    assert Client().get_workflow_result(kept, timeout=WAIT) == ["still running"]

    canceled = start_workflow(collect_signals, 1, instance_id="cancel-done")
    with transaction.atomic():
        cancel_workflow(canceled)
    with pytest.raises(WorkflowError, match="canceled"):
        Client().get_workflow_result(canceled, timeout=WAIT)


def test_async_twins(store: Store, worker: Worker) -> None:
    async def run() -> tuple[object, object]:
        instance = await astart_workflow(collect_signals, 1, instance_id="async-1")
        await asignal_workflow("async-1", "note", 1)
        other = await astart_workflow(collect_signals, 1, instance_id="async-2")
        await acancel_workflow(other)
        return instance, other

    # async_to_sync, as Django runs async views: the thread-sensitive twins run in this thread,
    # on its database connection (asyncio.run would leave one open in a helper thread).
    instance, other = async_to_sync(run)()
    assert Client().get_workflow_result(instance, timeout=WAIT) == [1]
    with pytest.raises(WorkflowError, match="canceled"):
        Client().get_workflow_result(other, timeout=WAIT)


def test_starts_in_transactions_beside_a_busy_worker(store: Store, worker: Worker) -> None:
    # On SQLite the worker's writers queue for the write lock while each of these transactions
    # holds it (IMMEDIATE); the start inside the transaction must not wait for that queue.
    instances = []
    for n in range(15):
        with transaction.atomic():
            instances.append(start_workflow(workflow1, "x", instance_id=f"busy-{n}"))
    client = Client()
    assert [client.get_workflow_result(instance, timeout=WAIT) for instance in instances] == [59] * 15


# -- a process killed right after the commit ----------------------------------------------

_COMMIT_AND_DIE = textwrap.dedent(
    """
    import os, sys
    import django
    django.setup()
    from django.db import connections, transaction
    from django_workflows import start_workflow

    def die():
        # Closing the sockets first only spares PostgreSQL a session that lingers past the
        # test (it would block dropping the test database); the commit is done either way.
        connections.close_all()
        os._exit(0)

    instance_id, when = sys.argv[1], sys.argv[2]
    with transaction.atomic():
        if when == "first-hook":
            # Runs right after COMMIT, before any on_commit hook registered later.
            transaction.on_commit(die)
        start_workflow("Workflow1", "x", instance_id=instance_id)
    die()  # "after-block": the atomic block returned, nothing else runs
    """
)


def _commit_and_die(store: Store, instance_id: str, when: str) -> None:
    env = subprocess_env(store.options, DJANGO_SETTINGS_MODULE="testproject.settings", **store.env)
    completed = subprocess.run(
        [sys.executable, "-c", _COMMIT_AND_DIE, instance_id, when],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr


def test_a_process_killed_right_after_the_commit_keeps_the_start(store: Store, worker: Worker) -> None:
    # On the caller's database the start was committed with the transaction, so even a process
    # that dies before its first on_commit hook has started it. A store outside the database
    # is written by an on_commit hook, which has run once the atomic block returned.
    when = "first-hook" if store.in_transaction else "after-block"
    _commit_and_die(store, "killed-1", when)
    client = Client()
    instance = wait_until(lambda: client.backend.get_latest_execution("killed-1"), what="the start")
    assert client.get_workflow_result(instance, timeout=WAIT) == 59


def test_on_commit_has_a_window_that_writing_in_the_transaction_closes(store: Store) -> None:
    # The process dies after COMMIT and before the hooks registered after its first one.
    _commit_and_die(store, "window-1", "first-hook")
    assert (state("window-1") is not None) is store.in_transaction
