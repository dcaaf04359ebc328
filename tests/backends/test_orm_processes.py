"""The ORM backend under real concurrency: several OS processes racing for the same activity
tasks on one database, and (SQLite) many writers contending for its single write lock."""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connections

from django_workflows.engine.history import EventType
from django_workflows.models import ActivityTask as ActivityRow
from django_workflows.models import HistoryEvent, PendingEvent
from django_workflows.testing.conformance.support import (
    complete,
    new_instance,
    signal_event,
    started_event,
)

from ..conftest import REPO_ROOT, subprocess_env
from . import test_orm_support
from .test_orm_support import (
    VENDOR,
    BackendMaker,
    row,
    run_in_threads,
    schedule_activities,
)

pytestmark = pytest.mark.django_db(transaction=True)
orm = test_orm_support.orm  # the fixture

#: Activity lease of the racing processes: short, so that dropped tasks come back quickly.
LOCK = 2.0

# One racing process: lease activity tasks until none is left for a while; "crash" on every
# fifth one (never complete it, so its lease must expire before anyone else may take it); log
# "task token claimed_at completed_at outcome" per lease, times from this process's clock.
RACER = """
import json, os, sys, time
import django
django.setup()
from django_workflows.backends.orm import OrmBackend
from django_workflows.engine.clock import utcnow
from django_workflows.engine.errors import LeaseLost
from django_workflows.engine.history import ActivityCompletedAttributes, new_event

backend = OrmBackend(activity_lock_timeout=float(sys.argv[2]), worker_name=f"racer-{os.getpid()}")
leases = 0
idle_since = time.monotonic()
with open(sys.argv[1], "a") as log:
    while time.monotonic() - idle_since < 3 * float(sys.argv[2]):
        task = backend.get_activity_task(["default"], 0.2)
        if task is None:
            continue
        claimed = time.time()
        idle_since = time.monotonic()
        leases += 1
        if leases % 5 == 0:
            log.write(f"{task.id} {task.lease_token} {claimed} - dropped\\n")
            log.flush()
            continue
        time.sleep(0.005)
        result = new_event(ActivityCompletedAttributes(result=json.dumps(task.id)), utcnow(),
                           schedule_event_id=task.event.schedule_event_id)
        try:
            backend.complete_activity_task(task, result)
            outcome = "completed"
        except LeaseLost:
            outcome = "lost"
        log.write(f"{task.id} {task.lease_token} {claimed} {time.time()} {outcome}\\n")
        log.flush()
"""


@pytest.mark.slow
def test_processes_racing_for_activity_tasks(orm: BackendMaker, tmp_path: Path) -> None:
    backend = orm()
    tasks = 60
    instance = schedule_activities(backend, tasks)
    expected = {str(pk) for pk in ActivityRow.objects.values_list("pk", flat=True)}
    logs = [tmp_path / f"racer-{i}.log" for i in range(4)]
    env = subprocess_env()
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, str(log), str(LOCK)], cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE)
        for log in logs
    ]
    for racer in racers:
        _, stderr = racer.communicate(timeout=300)
        assert racer.returncode == 0, stderr.decode(errors="replace")

    leases: dict[str, list[tuple[float, float | None, str, str]]] = collections.defaultdict(list)
    processes_per_task: dict[str, set[int]] = collections.defaultdict(set)
    tokens: list[str] = []
    for number, log in enumerate(logs):
        for line in log.read_text().splitlines():
            task_id, token, claimed, done, outcome = line.split()
            leases[task_id].append((float(claimed), None if done == "-" else float(done), outcome, token))
            processes_per_task[task_id].add(number)
            tokens.append(token)

    assert set(leases) == expected
    assert len(tokens) == len(set(tokens)), "a lease token was handed out twice"
    for task_id, task_leases in leases.items():
        outcomes = [outcome for _, _, outcome, _ in task_leases]
        assert outcomes.count("completed") == 1, (task_id, task_leases)
        claimed, done, _, _ = next(lease for lease in task_leases if lease[2] == "completed")
        # While a lease was held to its successful completion, nobody else was handed the task.
        others = [lease for lease in task_leases if lease[2] != "completed"]
        assert all(not (claimed < other[0] < done) for other in others), (task_id, task_leases)
    assert any(len(task_leases) > 1 for task_leases in leases.values()), "no dropped task was leased again"
    assert len({n for numbers in processes_per_task.values() for n in numbers}) > 1, "one process did all the work"

    assert not ActivityRow.objects.exists()
    results = PendingEvent.objects.filter(instance=row(instance), event_type=EventType.ACTIVITY_COMPLETED.value)
    schedule_ids = list(results.values_list("schedule_event_id", flat=True))
    assert sorted(schedule_ids) == list(range(1, tasks + 1))  # each result delivered exactly once


@pytest.mark.skipif(VENDOR != "sqlite", reason="the single write lock of SQLite is what this test contends for")
def test_sqlite_contention_never_reaches_callers(orm: BackendMaker) -> None:
    """Writers whose busy timeout is 1 ms, some in DEFERRED mode, against a thread that keeps the
    write lock for long stretches: every call still succeeds, through the backend's retries."""
    backend = orm()
    stop = threading.Event()

    def hog() -> None:
        connection = connections["default"]
        try:
            while not stop.is_set():
                with connection.cursor() as cursor:
                    cursor.execute("BEGIN IMMEDIATE")
                    stop.wait(0.03)
                    cursor.execute("COMMIT")
                stop.wait(0.02)
        finally:
            connection.close()

    hogger = threading.Thread(target=hog)
    hogger.start()

    def writer(index: int) -> int:
        connection = connections["default"]
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 1")
        if index % 2:
            connection.transaction_mode = None  # DEFERRED: the write lock is taken on the first write
        done = 0
        for _ in range(3):
            instance = new_instance()
            backend.create_workflow_instance(instance, started_event())
            backend.signal_workflow(instance.instance_id, signal_event())
            task = backend.get_workflow_task(["default"], 5)
            if task is not None:
                complete(backend, task, extra=[], activity_events=[])
                done += 1
        return done

    try:
        outcomes = run_in_threads(6, writer)
    finally:
        stop.set()
        hogger.join()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, errors
    assert sum(outcomes) == 18
    assert backend.retries > 0, "the test did not make the writers contend"
    # Nothing was lost or doubled on the way: every start and signal is stored once, executed
    # (history) or still waiting (inbox).
    for event_type in (EventType.WORKFLOW_EXECUTION_STARTED, EventType.SIGNAL_RECEIVED):
        stored = HistoryEvent.objects.filter(event_type=event_type.value).count()
        stored += PendingEvent.objects.filter(event_type=event_type.value).count()
        assert stored == 18, event_type
