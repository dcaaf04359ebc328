"""Schedules on every backend (memory, ORM on the test database, Redis): the store contract
(atomic put, exclusive and fenced claims), and real workers firing real schedules: three workers
on an every-second schedule, pause and unpause, trigger, overlap policies, catch-up after
downtime, a crashed scheduler, declared schedules synced by workers that start together.

Each backend object the factory makes stands for another process on the same storage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from django_workflows import workflow
from django_workflows.client import Client
from django_workflows.engine.core import InstanceState
from django_workflows.engine.registry import Registry
from django_workflows.schedules import (
    OverlapPolicy,
    RunAction,
    Schedule,
    ScheduleNotFound,
    Scheduler,
    run_instance,
    sync_declared,
)
from django_workflows.schedules.firing import BackendRuntime, fire
from django_workflows.schedules.records import due_at
from django_workflows.testing.conformance.support import wait_until
from django_workflows.worker import Worker, WorkerOptions

pytestmark = pytest.mark.slow

Factory = Callable[..., Any]


async def quick(ctx: workflow.Context, label: str) -> str:
    return label


async def gated(ctx: workflow.Context, label: str) -> str:
    """Runs until it gets the signal "go", or is canceled (then it ends as canceled)."""
    result = await workflow.select(
        ctx,
        workflow.on_receive(workflow.new_signal_channel(ctx, "go"), lambda value, ok: f"{label} {value}"),
        workflow.on_receive(ctx.done(), lambda value, ok: ""),
    )
    if ctx.err() is not None:
        raise ctx.err()
    return result


def registry() -> Registry:
    registry = Registry()
    registry.register_workflow(quick)
    registry.register_workflow(gated)
    return registry


@contextmanager
def workers(factory: Factory, count: int = 1, **options: Any) -> Iterator[list[Worker]]:
    started = [
        Worker(factory(), WorkerOptions(scheduler_interval=0.1, **options), registry=registry()) for _ in range(count)
    ]
    for worker in started:
        worker.start()
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()
        for worker in started:
            worker.wait_for_completion(timeout=30)


def started_runs(client: Client, schedule_id: str) -> list[Any]:
    return [run for run in reversed(client.describe_schedule(schedule_id).recent_runs) if run.action is RunAction.STARTED]


# -- the store contract --------------------------------------------------------------------------


def test_store_put_get_list_delete(backend_factory: Factory) -> None:
    backend = backend_factory()
    client = Client(backend, registry=registry())
    client.create_schedule("b", timedelta(hours=1), quick, "b")
    client.create_schedule("a", "0 3 * * *", quick, "a", paused=True, note="later")
    store = backend.schedules
    assert [record.schedule_id for record in store.list()] == ["a", "b"]
    a = store.get("a")
    assert a.state.paused and a.state.note == "later" and a.state.due_at is None
    assert a.definition.spec.cron == "0 3 * * *" and a.definition.inputs == ('"a"',)
    other = backend_factory().schedules  # another process sees the same records
    assert other.get("b") == store.get("b")
    store.delete("a")
    with pytest.raises(ScheduleNotFound):
        other.get("a")
    with pytest.raises(ScheduleNotFound):
        store.delete("a")


def test_claims_are_exclusive_fenced_and_expire(backend_factory: Factory) -> None:
    backend = backend_factory()
    client = Client(backend, registry=registry())
    client.create_schedule("s", timedelta(seconds=1), quick, "s")
    store = backend.schedules
    wait_until(lambda: store.get("s").state.due_at <= store.now(), what="the schedule to be due")
    first = store.claim(timedelta(seconds=1))
    assert first is not None and first.record.schedule_id == "s"
    assert backend_factory().schedules.claim(timedelta(seconds=1)) is None  # held
    assert backend_factory().schedules.claim(timedelta(seconds=1), "s") is None
    time.sleep(1.2)  # the lease ends (store clock): another scheduler takes it over
    second = backend_factory().schedules.claim(timedelta(seconds=30))
    assert second is not None and second.token != first.token
    assert store.complete(first, lambda record: record) is None  # fenced: the old claim is lost
    written = store.complete(second, lambda record: replace(record, state=replace(record.state, note="done")))
    assert written is not None and store.get("s").state.note == "done"
    third = store.claim(timedelta(seconds=30), "s")  # by id: due or not
    assert third is not None
    store.release(third)
    assert store.claim(timedelta(seconds=30), "s") is not None


def test_concurrent_puts_of_a_new_schedule_write_it_once(backend_factory: Factory) -> None:
    stores = [backend_factory().schedules for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    written: list[list[str]] = []
    errors: list[BaseException] = []
    converter = backend_factory().options.converter

    def sync(store: Any) -> None:
        try:
            barrier.wait()
            written.append(sync_declared(store, [("quick", Schedule("0 3 * * *", "nightly"))], converter))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sync, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(written) == [[]] * 3 + [["quick"]]
    assert [record.schedule_id for record in stores[0].list()] == ["quick"]


# -- workers firing --------------------------------------------------------------------------------


def test_three_workers_fire_an_every_second_schedule_once_per_second(backend_factory: Factory) -> None:
    backend = backend_factory()
    client = Client(backend, registry=registry())
    client.create_schedule("tick", timedelta(seconds=1), quick, "tick", overlap="allow_all")
    with workers(backend_factory, 3) as running:
        wait_until(lambda: len(started_runs(client, "tick")) >= 5, timeout=60, what="five firings")
        client.pause_schedule("tick")
    runs = started_runs(client, "tick")
    times = [run.fire_time for run in runs]
    assert times == sorted(set(times)), "a fire time was started twice"
    assert [(b - a) for a, b in zip(times, times[1:], strict=False)] == [timedelta(seconds=1)] * (len(times) - 1), "a gap"
    assert not [run for run in client.describe_schedule("tick").recent_runs if run.action is RunAction.SKIPPED]
    for run in runs:
        assert run.instance == run_instance("tick", run.fire_time)
        # One execution per fire time: the newest is the only one.
        assert backend.get_latest_execution(run.instance.instance_id) == run.instance
        assert client.get_workflow_result(run.instance, timeout=30) == "tick"
    assert sum(worker._scheduler.firings for worker in running) >= len(runs) - 1


def test_pause_unpause_and_trigger(backend_factory: Factory) -> None:
    backend = backend_factory()
    client = Client(backend, registry=registry())
    client.create_schedule("p", timedelta(seconds=1), quick, "p", paused=True)
    with workers(backend_factory, 1):
        time.sleep(2.5)
        assert started_runs(client, "p") == []  # paused: nothing fires
        triggered = client.trigger_schedule("p")  # a trigger runs anyway
        assert triggered is not None and "@trigger-" in triggered.instance_id
        assert client.get_workflow_result(triggered, timeout=30) == "p"
        assert client.describe_schedule("p").recent_runs[0].triggered
        client.unpause_schedule("p")
        wait_until(lambda: len(started_runs(client, "p")) >= 3, timeout=60, what="firings after unpausing")
        client.pause_schedule("p", "enough")
        count = len(started_runs(client, "p"))
        time.sleep(2.5)
        # A firing claimed before the pause committed may still land; nothing after it.
        settled = len(started_runs(client, "p"))
        assert settled <= count + 1
        time.sleep(2.5)
        described = client.describe_schedule("p")
        assert len(started_runs(client, "p")) == settled and described.paused and described.note == "enough"
    assert {run.outcome for run in client.describe_schedule("p").recent_runs} == {"completed"}


@pytest.mark.parametrize("policy", [p.value for p in OverlapPolicy if p is not OverlapPolicy.ALLOW_ALL])
def test_overlap_policies(backend_factory: Factory, policy: str) -> None:
    backend = backend_factory()
    client = Client(backend, registry=registry())
    client.create_schedule("o", timedelta(seconds=1), gated, "o", overlap=policy)

    def outcome_of_first() -> str:
        return client.describe_schedule("o").recent_runs[-1].outcome

    with workers(backend_factory, 1):
        first = wait_until(lambda: started_runs(client, "o"), timeout=60, what="the first run")[0]
        wait_until(lambda: len(client.describe_schedule("o").recent_runs) >= 3, timeout=60, what="firings meanwhile")
        if policy == "skip":
            client.pause_schedule("o")
            actions = [run.action for run in client.describe_schedule("o").recent_runs]
            assert RunAction.SKIPPED in actions and actions.count(RunAction.STARTED) == 1
            assert outcome_of_first() == "running"
            client.signal_workflow(first.instance.instance_id, "go", "now")
            assert client.get_workflow_result(first.instance, timeout=30) == "o now"
        elif policy == "buffer_one":
            actions = [run.action for run in client.describe_schedule("o").recent_runs]
            assert actions.count(RunAction.BUFFERED) >= 1 and actions.count(RunAction.STARTED) == 1
            client.signal_workflow(first.instance.instance_id, "go", 1)  # the buffered firing starts when it ends
            second = wait_until(lambda: started_runs(client, "o")[1:], timeout=60, what="the buffered run")[0]
            client.pause_schedule("o")
            assert second.fire_time > first.fire_time and second.at > first.at
            assert client.get_workflow_result(first.instance, timeout=30) == "o 1"
        elif policy == "cancel_other":
            # The first is canceled, and the newest firing starts once it has ended.
            wait_until(lambda: outcome_of_first() == "canceled", timeout=60, what="the first run to be canceled")
            wait_until(lambda: started_runs(client, "o")[1:], timeout=60, what="the run after the cancel")
            client.pause_schedule("o")
        else:  # terminate_other: each firing terminates the run before it
            wait_until(lambda: len(started_runs(client, "o")) >= 2, timeout=60, what="a second run")
            client.pause_schedule("o")
            assert outcome_of_first() == "terminated"
    for run in started_runs(client, "o"):
        if client.get_workflow_instance_state(run.instance) is InstanceState.ACTIVE:
            client.terminate_workflow_instance(run.instance)


def test_catch_up_after_downtime(backend_factory: Factory) -> None:
    backend = backend_factory()
    client = Client(backend, registry=registry())
    client.create_schedule("c", timedelta(seconds=1), quick, "c", overlap="allow_all", catchup_window=4)
    store = backend.schedules
    now = store.now()
    # As if no worker had run for 20 seconds: the schedule's next fire time is 20 s ago.
    behind = now.replace(microsecond=0) - timedelta(seconds=20)

    def back_in_time(record: Any) -> Any:
        state = replace(record.state, next_fire_at=behind)
        return replace(record, state=replace(state, due_at=due_at(state, now)))

    store.put("c", back_in_time)
    scheduler = Scheduler(backend_factory())
    assert scheduler.run_once() >= 1  # more if the next second came while it fired
    runs = list(reversed(client.describe_schedule("c").recent_runs))
    skipped, *made_up = runs
    assert skipped.action is RunAction.SKIPPED and skipped.fire_time == behind and skipped.count >= 15
    assert skipped.reason.startswith("missed")
    # The firings of the last 4 seconds (the window) are made up for, one after the other.
    assert len(made_up) >= 3 and all(run.action is RunAction.STARTED for run in made_up)
    times = [run.fire_time for run in made_up]
    assert times[0] == skipped.last_fire_time + timedelta(seconds=1) and times[0] >= now - timedelta(seconds=5)
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [timedelta(seconds=1)] * (len(times) - 1)


def test_a_scheduler_that_died_mid_firing_is_taken_over_without_a_second_start(backend_factory: Factory) -> None:
    backend = backend_factory()
    client = Client(backend, registry=registry())
    client.create_schedule("d", timedelta(seconds=1), quick, "d")
    store = backend.schedules
    wait_until(lambda: store.get("d").state.due_at <= store.now(), what="the schedule to be due")
    claim = store.claim(timedelta(seconds=1))
    assert claim is not None
    # The dying scheduler started the run, and never completed its claim.
    died = fire(claim.record, claim.now, BackendRuntime(backend))
    (started,) = died.started
    time.sleep(1.2)
    survivor = Scheduler(backend_factory())
    assert survivor.run_once() >= 1
    runs = list(reversed(client.describe_schedule("d").recent_runs))
    assert runs[0].instance == started and runs[0].reason == "started before"
    assert backend.get_latest_execution(started.instance_id) == started  # one execution only


def test_workers_that_start_together_sync_declared_schedules_and_fire_them(backend_factory: Factory) -> None:
    declared = registry()
    declared.register_schedule("quick", Schedule(timedelta(seconds=1), "declared", schedule_id="from-code", overlap="allow_all"))
    backends = [backend_factory() for _ in range(3)]
    barrier = threading.Barrier(len(backends))
    started: list[Worker] = []
    errors: list[BaseException] = []

    def start(backend: Any) -> None:
        worker = Worker(backend, WorkerOptions(scheduler_interval=0.1), registry=declared)
        try:
            barrier.wait()
            worker.start()
            started.append(worker)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(backend,)) for backend in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    client = Client(backends[0], registry=declared)
    try:
        assert errors == []
        assert [d.schedule_id for d in client.list_schedules()] == ["from-code"]
        assert client.describe_schedule("from-code").declared
        wait_until(lambda: len(started_runs(client, "from-code")) >= 2, timeout=60, what="firings")
        client.pause_schedule("from-code")
    finally:
        for worker in started:
            worker.stop()
        for worker in started:
            worker.wait_for_completion(timeout=30)
    times = [run.fire_time for run in started_runs(client, "from-code")]
    assert times == sorted(set(times))


def test_a_worker_with_the_scheduler_off_fires_nothing(backend_factory: Factory) -> None:
    backend = backend_factory()
    client = Client(backend, registry=registry())
    client.create_schedule("off", timedelta(seconds=1), quick, "off")
    with workers(backend_factory, 1, run_scheduler=False) as running:
        time.sleep(2.5)
        assert running[0]._scheduler is None
    assert client.describe_schedule("off").recent_runs == []
