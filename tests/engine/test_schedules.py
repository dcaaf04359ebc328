"""Schedules without a database: fire times (cron in a time zone across DST changes, intervals),
the decisions of one firing (overlap policies, catch-up), the tester's ``run_schedule`` in
workflow time, declared schedules, and the Client's schedule methods on the memory backend with
a clock the test moves.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from django_workflows import workflow
from django_workflows.backends.memory import MemoryBackend
from django_workflows.client import Client
from django_workflows.engine.core import InstanceState, WorkflowInstance
from django_workflows.engine.errors import NotSupported
from django_workflows.engine.registry import ArgumentMismatch, RegistrationError, Registry
from django_workflows.schedules import (
    OverlapPolicy,
    RunAction,
    Schedule,
    ScheduleAlreadyExists,
    ScheduleError,
    ScheduleNotFound,
    Scheduler,
    ScheduleSpec,
    run_instance,
    sync_declared,
)
from django_workflows.schedules.firing import apply, fire
from django_workflows.schedules.records import ScheduleDefinition, ScheduleRecord, new_record
from django_workflows.testing import WorkflowTester

BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- specs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of cron= or every="),
        ({"cron": "0 3 * * *", "every": 60}, "exactly one of cron= or every="),
        ({"cron": "0 25 * * *"}, "invalid cron expression '0 25 \\* \\* \\*': Bad hour"),
        ({"cron": "0 3 * *"}, "Wrong number of fields"),
        ({"cron": "0 3 * * *", "time_zone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"cron": "0 3 * * *", "offset": 5}, "offset= applies to every= schedules"),
        ({"every": 0.5}, "whole number of seconds"),
        ({"every": 0}, "at least one second"),
        ({"every": 60, "offset": 60}, "offset must be at least 0 and less than every"),
        ({"every": 60, "time_zone": BERLIN}, "aligned to UTC"),
        ({"every": "60"}, "seconds \\(int or float\\) or a timedelta"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(kwargs: dict, message: str) -> None:
    with pytest.raises((ScheduleError, TypeError), match=message):
        ScheduleSpec(**kwargs)


def test_intervals_are_aligned_to_the_epoch_plus_offset() -> None:
    spec = ScheduleSpec(every=timedelta(hours=1), offset=timedelta(minutes=5))
    assert spec.fire_times(utc(2025, 1, 1, 0, 5), 3) == [utc(2025, 1, 1, 1, 5), utc(2025, 1, 1, 2, 5), utc(2025, 1, 1, 3, 5)]
    assert spec.next_after(utc(2025, 1, 1, 0, 4, 59, 999999)) == utc(2025, 1, 1, 0, 5)
    every_second = ScheduleSpec(every=1)
    assert every_second.next_after(utc(2025, 1, 1, 0, 0, 0, 500000)) == utc(2025, 1, 1, 0, 0, 1)
    assert spec.describe() == "every 3600s (+300s)"
    assert ScheduleSpec.from_json(spec.to_json()) == spec


def test_a_fixed_time_cron_job_fires_once_a_day_across_both_dst_changes() -> None:
    spec = ScheduleSpec(cron="30 2 * * *", time_zone=BERLIN)
    # Spring forward (30 March 2025, 02:00 CET -> 03:00 CEST): 02:30 does not exist, it fires at 03:00.
    assert spec.fire_times(utc(2025, 3, 28), 4) == [
        utc(2025, 3, 28, 1, 30),  # 02:30 CET
        utc(2025, 3, 29, 1, 30),
        utc(2025, 3, 30, 1, 0),  # 03:00 CEST, right after the jump
        utc(2025, 3, 31, 0, 30),  # 02:30 CEST
    ]
    # Fall back (26 October 2025, 03:00 CEST -> 02:00 CET): 02:30 happens twice, it fires once.
    assert spec.fire_times(utc(2025, 10, 25), 3) == [
        utc(2025, 10, 25, 0, 30),
        utc(2025, 10, 26, 0, 30),  # the first 02:30 (CEST)
        utc(2025, 10, 27, 1, 30),  # 02:30 CET
    ]
    # Asked from inside the repeated hour (after the first 02:30), it does not go back to it.
    assert spec.next_after(utc(2025, 10, 26, 1, 15)) == utc(2025, 10, 27, 1, 30)


def test_an_hourly_cron_job_follows_real_time_through_the_dst_changes() -> None:
    spec = ScheduleSpec(cron="0 * * * *", time_zone=BERLIN)
    fall_back = spec.fire_times(utc(2025, 10, 25, 22), 24 + 1)
    assert fall_back == [utc(2025, 10, 25, 23) + timedelta(hours=n) for n in range(25)]  # 25 hours that day
    spring = spec.fire_times(utc(2025, 3, 29, 23) - timedelta(seconds=1), 3)
    assert spring == [utc(2025, 3, 29, 23), utc(2025, 3, 30, 0), utc(2025, 3, 30, 1)]  # 01:00 CET, 03:00 CEST


def test_seconds_cron_and_short_forms() -> None:
    assert ScheduleSpec.coerce("*/10 * * * * *").next_after(utc(2025, 1, 1, 0, 0, 1)) == utc(2025, 1, 1, 0, 0, 10)
    assert ScheduleSpec.coerce(timedelta(minutes=5)) == ScheduleSpec(every=300)
    assert ScheduleSpec(cron="0  3 * * *").cron == "0 3 * * *"
    with pytest.raises(ScheduleError, match="a ScheduleSpec, a cron string or a timedelta"):
        ScheduleSpec.coerce(5)  # type: ignore[arg-type]


def test_run_ids_follow_from_the_schedule_and_the_fire_time() -> None:
    run = run_instance("nightly", utc(2025, 3, 30, 1, 0))
    assert run.instance_id == "nightly@20250330T010000Z"
    assert run == run_instance("nightly", datetime(2025, 3, 30, 3, 0, tzinfo=__import__("zoneinfo").ZoneInfo(BERLIN)))
    assert run.execution_id != run_instance("nightly", utc(2025, 3, 30, 1, 0, 1)).execution_id
    assert len(run.execution_id) == 32
    triggered = run_instance("nightly", utc(2025, 3, 30, 1, 0, 0, 123456), triggered=True)
    assert triggered.instance_id == "nightly@trigger-20250330T010000.123456Z"
    with pytest.raises(ScheduleError, match="at most 96 characters"):
        ScheduleDefinition(schedule_id="x" * 97, workflow_name="wf", spec=ScheduleSpec(every=60))
    with pytest.raises(ValueError, match="contains a control character"):
        ScheduleDefinition(schedule_id="a:b", workflow_name="wf", spec=ScheduleSpec(every=60))


# -- one firing, through a fake runtime ----------------------------------------------------------


class FakeRuntime:
    """Runs that exist only as states the test sets."""

    def __init__(self) -> None:
        self.states: dict[WorkflowInstance, InstanceState] = {}
        self.log: list[tuple[str, str]] = []

    def state_of(self, instance: WorkflowInstance) -> InstanceState | None:
        return self.states.get(instance)

    def start(self, instance: WorkflowInstance, definition: ScheduleDefinition, fire_time: datetime) -> bool:
        if instance in self.states:
            return False
        self.states[instance] = InstanceState.ACTIVE
        self.log.append(("start", instance.instance_id))
        return True

    def cancel(self, instance: WorkflowInstance) -> None:
        self.log.append(("cancel", instance.instance_id))

    def terminate(self, instance: WorkflowInstance, reason: str) -> None:
        self.states[instance] = InstanceState.FINISHED
        self.log.append(("terminate", instance.instance_id))

    def finish_all(self) -> None:
        for instance in self.states:
            self.states[instance] = InstanceState.FINISHED


def minutely(overlap: OverlapPolicy = OverlapPolicy.SKIP, catchup: timedelta = timedelta(minutes=1)) -> ScheduleRecord:
    definition = ScheduleDefinition(
        schedule_id="s", workflow_name="wf", spec=ScheduleSpec(every=60), overlap=overlap, catchup_window=catchup
    )
    return new_record(definition, utc(2025, 1, 1, 0, 0, 30))  # first fire time 00:01


def step(record: ScheduleRecord, now: datetime, runtime: FakeRuntime) -> tuple[ScheduleRecord, list]:
    firing = fire(record, now, runtime)
    return apply(firing, now)(record), firing.runs


def test_nothing_fires_before_the_fire_time_and_a_run_starts_at_it() -> None:
    runtime, record = FakeRuntime(), minutely()
    assert record.state.due_at == utc(2025, 1, 1, 0, 1)
    record, runs = step(record, utc(2025, 1, 1, 0, 0, 59), runtime)
    assert runs == [] and runtime.log == []
    record, runs = step(record, utc(2025, 1, 1, 0, 1, 0, 200000), runtime)
    assert [(run.action, run.instance.instance_id) for run in runs] == [(RunAction.STARTED, "s@20250101T000100Z")]
    assert record.state.next_fire_at == record.state.due_at == utc(2025, 1, 1, 0, 2)
    assert record.state.last_instance == runs[0].instance


@pytest.mark.parametrize(
    ("policy", "actions", "log"),
    [
        (OverlapPolicy.SKIP, ["skipped"], []),
        (OverlapPolicy.ALLOW_ALL, ["started"], [("start", "s@20250101T000200Z")]),
        (OverlapPolicy.BUFFER_ONE, ["buffered"], []),
        (OverlapPolicy.CANCEL_OTHER, ["buffered"], [("cancel", "s@20250101T000100Z")]),
        (
            OverlapPolicy.TERMINATE_OTHER,
            ["started"],
            [("terminate", "s@20250101T000100Z"), ("start", "s@20250101T000200Z")],
        ),
    ],
)
def test_overlap_policies_while_the_previous_run_goes_on(policy: OverlapPolicy, actions: list, log: list) -> None:
    runtime, record = FakeRuntime(), minutely(policy)
    record, _ = step(record, utc(2025, 1, 1, 0, 1), runtime)
    runtime.log.clear()
    record, runs = step(record, utc(2025, 1, 1, 0, 2), runtime)  # the 00:01 run still goes on
    assert [run.action.value for run in runs] == actions
    assert runtime.log == log
    if policy in (OverlapPolicy.BUFFER_ONE, OverlapPolicy.CANCEL_OTHER):
        assert record.state.buffered_at == utc(2025, 1, 1, 0, 2)
        assert record.state.due_at == utc(2025, 1, 1, 0, 2, 1)  # looks again soon
        record, runs = step(record, utc(2025, 1, 1, 0, 2, 1), runtime)
        assert runs == []  # still running: it keeps waiting
        runtime.finish_all()
        record, runs = step(record, utc(2025, 1, 1, 0, 2, 2), runtime)
        assert [(run.action, run.fire_time) for run in runs] == [(RunAction.STARTED, utc(2025, 1, 1, 0, 2))]
        assert record.state.buffered_at is None and record.state.due_at == utc(2025, 1, 1, 0, 3)


def test_buffer_one_skips_a_third_firing_and_cancel_other_replaces_the_waiting_one() -> None:
    for policy, expected in (
        (OverlapPolicy.BUFFER_ONE, [("skipped", utc(2025, 1, 1, 0, 3))]),
        (OverlapPolicy.CANCEL_OTHER, [("skipped", utc(2025, 1, 1, 0, 2)), ("buffered", utc(2025, 1, 1, 0, 3))]),
    ):
        runtime, record = FakeRuntime(), minutely(policy)
        record, _ = step(record, utc(2025, 1, 1, 0, 1), runtime)
        record, _ = step(record, utc(2025, 1, 1, 0, 2), runtime)
        record, runs = step(record, utc(2025, 1, 1, 0, 3), runtime)
        assert [(run.action.value, run.fire_time) for run in runs] == expected, policy


def test_missed_firings_within_the_window_are_made_up_for_and_older_ones_skipped_as_one_record() -> None:
    runtime, record = FakeRuntime(), minutely(OverlapPolicy.ALLOW_ALL, catchup=timedelta(minutes=3))
    # No scheduler ran from before 00:01 until 01:00:30: 60 firings are due.
    record, runs = step(record, utc(2025, 1, 1, 1, 0, 30), runtime)
    skipped, *made_up = runs
    assert skipped.action is RunAction.SKIPPED and skipped.reason.startswith("missed")
    assert (skipped.fire_time, skipped.last_fire_time, skipped.count) == (utc(2025, 1, 1, 0, 1), utc(2025, 1, 1, 0, 57), 57)
    assert [run.fire_time for run in made_up] == [utc(2025, 1, 1, 0, 58), utc(2025, 1, 1, 0, 59), utc(2025, 1, 1, 1, 0)]
    assert all(run.action is RunAction.STARTED for run in made_up)
    assert record.state.next_fire_at == utc(2025, 1, 1, 1, 1)


def test_a_far_behind_cron_schedule_is_summed_up_not_counted_forever() -> None:
    definition = ScheduleDefinition(schedule_id="s", workflow_name="wf", spec=ScheduleSpec(cron="* * * * * *"))
    record = new_record(definition, utc(2025, 1, 1))
    record, runs = step(record, utc(2025, 1, 2), FakeRuntime())  # a day of every-second firings
    assert runs[0].reason == "missed: no scheduler ran (at least 10000 firings)"
    assert record.state.next_fire_at == utc(2025, 1, 2, 0, 0, 1)
    assert [run.fire_time for run in runs[1:]][:1] == [utc(2025, 1, 1, 23, 59)]  # the window's first


def test_a_firing_started_by_a_worker_that_died_is_not_started_again() -> None:
    runtime, record = FakeRuntime(), minutely()
    first = fire(record, utc(2025, 1, 1, 0, 1), runtime)  # started, then the worker died: not applied
    assert len(first.started) == 1
    runtime.finish_all()  # it even finished meanwhile
    record, runs = step(record, utc(2025, 1, 1, 0, 1, 20), runtime)
    assert [(run.action, run.reason) for run in runs] == [(RunAction.STARTED, "started before")]
    assert [entry for entry in runtime.log if entry[0] == "start"] == [("start", "s@20250101T000100Z")]


def test_a_change_made_during_a_firing_keeps_its_timing() -> None:
    runtime, record = FakeRuntime(), minutely()
    firing = fire(record, utc(2025, 1, 1, 0, 1), runtime)
    changed = replace(record, state=replace(record.state, revision=1, next_fire_at=utc(2025, 1, 1, 5), due_at=utc(2025, 1, 1, 5)))
    written = apply(firing, utc(2025, 1, 1, 0, 1))(changed)
    assert written.state.next_fire_at == written.state.due_at == utc(2025, 1, 1, 5)
    assert [run.action for run in written.state.runs] == [RunAction.STARTED]


def test_a_paused_schedule_fires_nothing_but_a_trigger() -> None:
    runtime, record = FakeRuntime(), minutely()
    record = replace(record, state=replace(record.state, paused=True))
    assert fire(record, utc(2025, 1, 1, 0, 5), runtime).runs == []
    triggered = fire(record, utc(2025, 1, 1, 0, 5), runtime, trigger=True)
    assert [(run.action, run.triggered) for run in triggered.runs] == [(RunAction.STARTED, True)]


# -- the tester: schedules in workflow time ------------------------------------------------------


async def report(ctx: workflow.Context, fmt: str) -> str:
    await workflow.sleep(ctx, timedelta(minutes=90))
    return f"{fmt} at {workflow.now(ctx).isoformat()}"


def test_the_tester_fires_a_dst_crossing_cron_schedule_in_workflow_time() -> None:
    tester = WorkflowTester(report, initial_time=utc(2025, 3, 28))
    runs = tester.run_schedule(ScheduleSpec(cron="30 2 * * *", time_zone=BERLIN), "pdf", until=timedelta(days=4))
    assert [run.fire_time for run in runs] == [utc(2025, 3, 28, 1, 30), utc(2025, 3, 29, 1, 30), utc(2025, 3, 30, 1), utc(2025, 3, 31, 0, 30)]
    assert {run.outcome for run in runs} == {"completed"}
    assert tester.run_result(runs[2].instance) == "pdf at 2025-03-30T02:30:00+00:00"  # 90 minutes after 03:00 CEST


def test_the_tester_applies_overlap_policies() -> None:
    tester = WorkflowTester(report, initial_time=utc(2025, 1, 1))
    runs = tester.run_schedule(Schedule(timedelta(hours=1), "x", overlap="skip"), until=timedelta(hours=4))
    assert [(run.action.value, run.fire_time.hour) for run in runs] == [
        ("started", 1), ("skipped", 2), ("started", 3), ("skipped", 4),
    ]

    tester = WorkflowTester(report, initial_time=utc(2025, 1, 1))
    runs = tester.run_schedule(timedelta(hours=1), "x", until=timedelta(hours=3), overlap=OverlapPolicy.TERMINATE_OTHER)
    assert [(run.fire_time.hour, run.outcome) for run in runs] == [(1, "terminated"), (2, "terminated"), (3, "completed")]
    assert tester.run_result(runs[2].instance) == "x at 2025-01-01T04:30:00+00:00"
    with pytest.raises(Exception, match="ended without a result"):
        tester.run_result(runs[0].instance)


def test_the_tester_checks_the_arguments_of_a_schedule() -> None:
    with pytest.raises(ArgumentMismatch, match="expected 1, got 0"):
        WorkflowTester(report).run_schedule(timedelta(hours=1), until=timedelta(hours=2))


# -- declared schedules ----------------------------------------------------------------------------


def test_declared_schedules_are_checked_at_registration() -> None:
    from django_workflows import registration

    registry = Registry()
    original = registration.registry
    registration.registry = registry
    try:
        registration.register_workflow(report, schedule=[Schedule("0 3 * * *", "pdf"), Schedule(timedelta(hours=1), "csv", schedule_id="hourly")])
        assert [(name, declaration.schedule_id) for name, declaration in registry.schedules()] == [("report", "hourly"), ("report", None)]
        with pytest.raises(ArgumentMismatch):
            registration.register_workflow(report, schedule=Schedule("0 4 * * *"))
        with pytest.raises(RegistrationError, match='schedule with id "hourly" already declared'):
            registration.register_workflow(report, schedule=Schedule(timedelta(hours=2), "csv", schedule_id="hourly"))
    finally:
        registration.registry = original
    copy = Registry()
    copy.update(registry)
    assert copy.schedules() == registry.schedules()


def test_declared_schedules_sync_once_and_keep_their_pause() -> None:
    backend = MemoryBackend()
    declared = [("report", Schedule("0 3 * * *", "pdf"))]
    converter = backend.options.converter
    assert sync_declared(backend.schedules, declared, converter) == ["report"]
    assert sync_declared(backend.schedules, declared, converter) == []  # the same: nothing written
    Client(backend).pause_schedule("report", "maintenance")
    changed = [("report", Schedule("0 4 * * *", "pdf"))]
    assert sync_declared(backend.schedules, changed, converter) == ["report"]
    record = backend.schedules.get("report")
    assert record.definition.spec.cron == "0 4 * * *" and record.definition.declared
    assert record.state.paused and record.state.note == "maintenance"


def test_concurrent_syncs_write_one_schedule() -> None:
    backend = MemoryBackend()
    barrier = threading.Barrier(8)
    written: list[list[str]] = []

    def sync() -> None:
        barrier.wait()
        written.append(sync_declared(backend.schedules, [("report", Schedule("0 3 * * *", "pdf"))], backend.options.converter))

    threads = [threading.Thread(target=sync) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(written) == [[]] * 7 + [["report"]]
    assert [record.schedule_id for record in backend.schedules.list()] == ["report"]


# -- the Client and a scheduler on the memory backend, with a clock the test moves -----------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment


async def greet(ctx: workflow.Context, name: str) -> str:
    return f"hello {name}"


def test_client_schedule_methods_and_a_scheduler_across_a_dst_change() -> None:
    clock = Clock(utc(2025, 3, 29, 23, 30))
    backend = MemoryBackend(clock=clock)
    registry = Registry()
    registry.register_workflow(greet)
    client = Client(backend, registry=registry)

    created = client.create_schedule("nightly", ScheduleSpec(cron="30 2 * * *", time_zone=BERLIN), greet, "Ada")
    assert created.next_fire_times[:2] == [utc(2025, 3, 30, 1), utc(2025, 3, 31, 0, 30)]
    assert created.args == ["Ada"] and created.overlap is OverlapPolicy.SKIP
    with pytest.raises(ScheduleAlreadyExists):
        client.create_schedule("nightly", "0 3 * * *", greet, "Ada")
    with pytest.raises(ArgumentMismatch):
        client.create_schedule("bad", "0 3 * * *", greet)

    scheduler = Scheduler(backend)
    clock.moment = utc(2025, 3, 30, 0, 59, 59)
    assert scheduler.run_once() == 0
    clock.moment = utc(2025, 3, 30, 1, 0, 0, 300000)  # 03:00 CEST, right after the jump
    assert scheduler.run_once() == 1
    described = client.describe_schedule("nightly")
    (run,) = described.recent_runs
    assert run.instance.instance_id == "nightly@20250330T010000Z" and run.outcome == "running"
    assert described.next_fire_times[0] == utc(2025, 3, 31, 0, 30)

    client.pause_schedule("nightly", "until the migration is done")
    clock.moment = utc(2025, 4, 2)
    assert scheduler.run_once() == 0
    assert client.describe_schedule("nightly").next_fire_times == []
    triggered = client.trigger_schedule("nightly")  # runs though paused
    assert triggered is not None and triggered.instance_id.startswith("nightly@trigger-20250402T000000")
    client.unpause_schedule("nightly")
    described = client.describe_schedule("nightly")
    assert not described.paused and described.next_fire_times[0] == utc(2025, 4, 2, 0, 30)  # 31 March and 1 April are not made up for

    updated = client.update_schedule("nightly", spec=timedelta(hours=6), args=["Grace"], overlap="allow_all")
    assert updated.spec == ScheduleSpec(every=6 * 3600) and updated.args == ["Grace"]
    assert updated.next_fire_times[0] == utc(2025, 4, 2, 6)
    with pytest.raises(ScheduleError, match="unknown overlap policy 'sometimes'"):
        client.update_schedule("nightly", overlap="sometimes")
    with pytest.raises(ScheduleError, match="starts now or not at all"):
        client.trigger_schedule("nightly", overlap="buffer_one")

    assert [d.schedule_id for d in client.list_schedules()] == ["nightly"]
    client.delete_schedule("nightly")
    for call in (client.delete_schedule, client.describe_schedule, client.pause_schedule, client.trigger_schedule):
        with pytest.raises(ScheduleNotFound, match="schedule 'nightly' not found"):
            call("nightly")


def test_async_twins() -> None:
    backend = MemoryBackend()
    registry = Registry()
    registry.register_workflow(greet)
    client = Client(backend, registry=registry)

    async def scenario() -> None:
        await client.acreate_schedule("s", timedelta(hours=1), greet, "Ada", paused=True)
        await client.aunpause_schedule("s")
        await client.apause_schedule("s")
        instance = await client.atrigger_schedule("s")
        assert instance is not None
        assert (await client.adescribe_schedule("s")).recent_runs[0].instance == instance
        await client.aupdate_schedule("s", queue="reports")
        assert [d.queue for d in await client.alist_schedules()] == ["reports"]
        await client.adelete_schedule("s")

    asyncio.run(scenario())


def test_a_backend_without_a_schedule_store_says_so() -> None:
    backend = MemoryBackend()
    backend.schedules = None  # as Backend.schedules is for a backend that keeps no schedules

    with pytest.raises(NotSupported, match="does not store schedules"):
        Client(backend).list_schedules()
