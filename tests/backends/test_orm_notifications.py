"""Cross-process wake-ups of the ORM backend on PostgreSQL (LISTEN/NOTIFY) and the adaptive poll
elsewhere: an idle worker in another process learns of new work from a notification, not from its
next poll."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_workflows.backends.orm import OrmBackend
from django_workflows.backends.orm.store import FAST_POLL_INTERVAL
from django_workflows.testing.conformance.support import complete, new_instance, poll_workflow_task, started_event

from ..conftest import REPO_ROOT, subprocess_env
from . import test_orm_support
from .test_orm_support import VENDOR, BackendMaker, activity_event

pytestmark = pytest.mark.django_db(transaction=True)
orm = test_orm_support.orm  # the fixture

postgres_only = pytest.mark.skipif(VENDOR != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")

# Waits for one activity task with a poll interval far longer than its wait, so that only a
# notification can wake it; prints READY once listening, then how long the task took to arrive.
_IDLE_WORKER = textwrap.dedent(
    """
    import sys, time
    import django
    django.setup()
    from django_workflows.backends.orm import OrmBackend
    from django_workflows.backends.orm.notifications import listener_for

    backend = OrmBackend(poll_interval=600, worker_name="idle-elsewhere")
    backend.get_activity_task(["default"], 0)  # starts the listener
    assert listener_for(backend.using, backend.store.waker).listening.wait(30)
    print("READY", flush=True)
    sys.stdin.readline()  # the parent is about to create the task
    started = time.monotonic()
    task = backend.get_activity_task(["default"], 60)
    print("GOT" if task is not None else "NONE", round(time.monotonic() - started, 3), flush=True)
    backend.close()
    """
)


@postgres_only
def test_an_idle_worker_in_another_process_is_woken_by_a_notification(orm: BackendMaker) -> None:
    backend = orm(notifications=True)
    child = subprocess.Popen(
        [sys.executable, "-c", _IDLE_WORKER],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "READY"
        child.stdin.write("go\n")
        child.stdin.flush()
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        task = poll_workflow_task(backend)
        activity = activity_event(1)
        complete(backend, task, extra=[activity], activity_events=[activity])
        outcome, elapsed = child.stdout.readline().split()
        # The child's poll interval is 600 s and it waited at most 60: only the notification
        # that came with the commit can have woken it.
        assert outcome == "GOT", f"the idle worker was not woken ({outcome} after {elapsed} s)"
        print(f"activity reached the idle worker in another process after {elapsed} s")
    finally:
        child.wait(timeout=60)


@postgres_only
def test_one_notification_per_kind_and_transaction(orm: BackendMaker) -> None:
    backend = orm(notifications=True)
    store = backend.store

    def notifies(queries: Any) -> int:
        return sum("pg_notify" in q["sql"] for q in queries.captured_queries)

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        store.notify_on_commit("workflow")
        store.notify_on_commit("workflow")
        store.notify_on_commit("activity")
    assert notifies(queries) == 2
    # A rolled-back transaction does not make the next one skip its notification.
    with pytest.raises(RuntimeError), transaction.atomic():
        store.notify_on_commit("workflow")
        raise RuntimeError("rolled back")
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        store.notify_on_commit("workflow")
    assert notifies(queries) == 1
    # Work another process cannot take (a task's own timers, sticky to this worker) sends none.
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        store.notify_on_commit("workflow", other_processes=False)
    assert notifies(queries) == 0


def test_notifications_are_postgresql_only(orm: BackendMaker) -> None:
    if VENDOR == "postgresql":
        assert orm().store.notifier is not None
        assert orm(notifications=False).store.notifier is None
    else:
        assert orm().store.notifier is None
        with pytest.raises(Exception, match="notifications need PostgreSQL"):
            OrmBackend(notifications=True)


def test_an_idle_poller_looks_less_often_until_it_finds_work(orm: BackendMaker, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = orm(poll_interval=0.2, notifications=False)
    store = backend.store
    waits: list[float] = []
    # Record how long each empty look lets the poller sleep (the sleep itself is skipped).
    monkeypatch.setattr(store.waker, "wait", lambda kind, seen, timeout: waits.append(round(timeout, 6)))
    looks = iter([[]] * 8 + [["task"]])
    assert store.poll("activity", lambda: next(looks), 60.0) == ["task"]
    # From the fast interval, doubling on every empty look, up to the poll interval.
    assert waits == [0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2, 0.2]
    # Right after work it looks again at the fast interval.
    assert store._intervals.activity == FAST_POLL_INTERVAL
