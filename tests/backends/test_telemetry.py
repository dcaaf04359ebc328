"""OpenTelemetry traces and metrics of real workers on the memory, ORM and Redis backends, read
with the SDK's in-memory span exporter and metric reader (docs/observability.md).

Every test runs with the executor cache off, so each workflow task replays the whole history:
the spans that come from events (timers, signals, sub-workflows) and from activity attempts
must still appear once each. The lease-loss warning and counter are for real losses only.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the OpenTelemetry SDK (the test extra)")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from django_workflows import workflow
from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import WorkflowError
from django_workflows.engine.history import EventType
from django_workflows.instrumentation import Instrumentation
from django_workflows.worker import Worker, WorkerOptions
from django_workflows.workflow import ActivityOptions, RetryOptions, SubWorkflowOptions
from tests.conftest import wait_for


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    instrumentation: Instrumentation
    tracer: Any

    def finished(self, name_prefix: str = "") -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name.startswith(name_prefix)]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found.extend(item.data.data_points)
        return found

    def total(self, metric: str, **attributes: str) -> float:
        """Sum of a counter's points (or a histogram's counts) whose attributes include these."""
        total = 0.0
        for point in self.points(metric):
            if all(point.attributes.get(k) == v for k, v in attributes.items()):
                total += getattr(point, "value", None) if hasattr(point, "value") else point.count
        return total


@pytest.fixture
def otel() -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(
        exporter,
        reader,
        Instrumentation(tracer_provider=tracer_provider, meter_provider=meter_provider),
        tracer_provider.get_tracer("tests"),
    )
    meter_provider.shutdown()
    tracer_provider.shutdown()


_attempts: dict[str, int] = {}


def flaky(key: str) -> int:
    """Fails its first attempt."""
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] == 1:
        raise ValueError(f"first attempt of {key} fails")
    return 20


def double(x: int) -> int:
    return 2 * x


class ActivityTimeoutError(Exception):
    """Stands for ``workflow.ActivityTimeoutError``: the failure's type is what is counted."""


def times_out() -> None:
    raise ActivityTimeoutError("start-to-close timeout")


async def child(ctx: workflow.Context, x: int) -> int:
    return await workflow.execute_activity(ctx, ActivityOptions(), double, x)


async def order(ctx: workflow.Context, key: str) -> int:
    a = await workflow.execute_activity(
        ctx, ActivityOptions(retry_options=RetryOptions(max_attempts=2)), flaky, key
    )
    await workflow.schedule_timer(ctx, timedelta(milliseconds=50), name="cool-off")
    extra = await workflow.new_signal_channel(ctx, "go").receive(ctx)
    c = await workflow.create_sub_workflow_instance(ctx, SubWorkflowOptions(), child, a)
    return c + extra


async def broken(ctx: workflow.Context) -> None:
    try:
        await workflow.execute_activity(ctx, ActivityOptions(), times_out)
    except WorkflowError:
        pass
    raise WorkflowError("order rejected", type="Rejected")


def _worker(backend: Any, otel: Otel, queue: str) -> Worker:
    worker = Worker(
        backend,
        WorkerOptions(
            workflow_pollers=1,
            activity_pollers=1,
            workflow_queues=[queue],
            activity_queues=[queue],
            workflow_executor_cache_size=0,  # every task replays the whole history
            run_scheduler=False,
        ),
        instrumentation=otel.instrumentation,
    )
    for fn in (order, child, broken):
        worker.register_workflow(fn)
    for fn in (flaky, double, times_out):
        worker.register_activity(fn)
    return worker


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_a_request_that_starts_a_workflow_links_every_span_of_it(backend_factory: Any, otel: Otel) -> None:
    backend = backend_factory()
    queue = f"q-{uuid.uuid4().hex[:8]}"
    key = uuid.uuid4().hex
    client = Client(backend, instrumentation=otel.instrumentation)
    with _worker(backend, otel, queue) as worker:
        client = Client(backend, registry=worker.registry, instrumentation=otel.instrumentation)
        with otel.tracer.start_as_current_span("GET /orders/new") as request:
            instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), order, key)
        wait_for(
            lambda: any(e.type is EventType.TIMER_FIRED for e in backend.get_workflow_instance_history(instance)),
            30, what="the timer to fire",
        )
        client.signal_workflow(instance.instance_id, "go", 2)
        assert client.get_workflow_result(instance, timeout=30) == 42
    trace_id = request.get_span_context().trace_id

    start = otel.finished("StartWorkflow order")
    assert len(start) == 1 and _parent_id(start[0]) == request.get_span_context().span_id
    assert start[0].kind is SpanKind.PRODUCER
    assert start[0].attributes["workflows.instance_id"] == instance.instance_id
    assert start[0].attributes["workflows.queue"] == queue

    tasks = otel.finished("WorkflowTask order")
    assert len(tasks) >= 4  # start, activity results, timer, signal, child result
    assert {_parent_id(t) for t in tasks} == {start[0].context.span_id}
    for task in tasks:
        assert task.context.trace_id == trace_id
        assert task.attributes["workflows.execution_id"] == instance.execution_id
        assert task.attributes["workflows.queue"] == queue
    task_ids = {t.context.span_id for t in tasks}

    # One span per attempt (not one per replay), each under the task that scheduled it.
    attempts = sorted(otel.finished("Activity flaky"), key=lambda s: s.attributes["workflows.attempt"])
    assert [a.attributes["workflows.attempt"] for a in attempts] == [0, 1]
    assert all(_parent_id(a) in task_ids and a.context.trace_id == trace_id for a in attempts)
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert attempts[0].events[0].attributes["exception.type"] == "ValueError"
    assert attempts[1].status.status_code is StatusCode.UNSET
    assert attempts[1].attributes["workflows.instance_id"] == instance.instance_id

    (timer,) = otel.finished("Timer cool-off")
    assert _parent_id(timer) in task_ids
    assert timer.end_time - timer.start_time >= 40_000_000  # the timer's 50 ms, from scheduling to firing
    (signal,) = otel.finished("Signal go")
    assert _parent_id(signal) in task_ids and signal.attributes["workflows.signal"] == "go"
    (sub,) = otel.finished("SubWorkflow child")
    assert _parent_id(sub) in task_ids
    child_id = sub.attributes["workflows.sub_workflow.instance_id"]

    # The child's spans continue the parent's trace, under the task that started it.
    child_tasks = otel.finished("WorkflowTask child")
    assert child_tasks and all(t.context.trace_id == trace_id for t in child_tasks)
    assert {_parent_id(t) for t in child_tasks} == {_parent_id(sub)}
    assert {t.attributes["workflows.instance_id"] for t in child_tasks} == {child_id}
    (doubled,) = otel.finished("Activity double")
    assert _parent_id(doubled) in {t.context.span_id for t in child_tasks}

    (signal_call,) = otel.finished("SignalWorkflow")
    assert signal_call.attributes["workflows.signal"] == "go"
    assert {t.attributes.get("workflows.outcome") for t in tasks} >= {"completed"}

    # Metrics: counted once, by first execution, whatever the replays.
    assert otel.total("workflows.workflow.started", workflow="order", queue=queue) == 1
    assert otel.total("workflows.workflow.started", workflow="child", queue=queue) == 1
    assert otel.total("workflows.workflow.finished", workflow="order", queue=queue, outcome="completed") == 1
    assert otel.total("workflows.workflow.finished", workflow="child", outcome="completed") == 1
    assert otel.total("workflows.activity.attempts", activity="flaky", queue=queue) == 2
    assert otel.total("workflows.activity.failures", activity="flaky", queue=queue) == 1
    assert otel.total("workflows.activity.retries", activity="flaky") == 1
    assert otel.total("workflows.activity.duration", activity="flaky", outcome="failed") == 1
    assert otel.total("workflows.activity.duration", activity="flaky", outcome="completed") == 1
    assert otel.total("workflows.activity.schedule_to_start", activity="double") == 1
    assert otel.total("workflows.workflow.tasks", workflow="order", queue=queue) == len(tasks)
    assert otel.total("workflows.workflow.task.duration", workflow="order") == len(tasks)
    assert otel.total("workflows.workflow.task.schedule_to_start", workflow="order") == len(tasks)
    # Without a cache every task after the first replays the history stored before it.
    replaying = [t for t in tasks if t.attributes["workflows.history_length"] > 0]
    assert len(replaying) == len(tasks) - 1
    assert otel.total("workflows.executor_cache.misses", workflow="order", queue=queue) == len(replaying)
    assert otel.total("workflows.executor_cache.replayed_events", workflow="order", queue=queue) == sum(
        t.attributes["workflows.history_length"] for t in replaying
    )
    assert all(t.attributes["workflows.replayed_events"] == t.attributes["workflows.history_length"] for t in replaying)


def test_errors_are_recorded_on_spans_and_counted(backend_factory: Any, otel: Otel) -> None:
    backend = backend_factory()
    queue = f"q-{uuid.uuid4().hex[:8]}"
    with _worker(backend, otel, queue) as worker:
        client = Client(backend, registry=worker.registry, instrumentation=otel.instrumentation)
        instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), broken)
        with pytest.raises(WorkflowError, match="order rejected"):
            client.get_workflow_result(instance, timeout=30)
    (attempt,) = otel.finished("Activity times_out")
    assert attempt.status.status_code is StatusCode.ERROR
    assert "start-to-close timeout" in attempt.status.description
    last = max(otel.finished("WorkflowTask broken"), key=lambda s: s.end_time)
    assert last.attributes["workflows.outcome"] == "failed"
    assert last.status.status_code is StatusCode.ERROR
    assert last.events[0].name == "exception" and last.events[0].attributes["exception.message"] == "order rejected"
    assert otel.total("workflows.workflow.finished", workflow="broken", outcome="failed") == 1
    assert otel.total("workflows.activity.timeouts", activity="times_out") == 1


def test_a_task_that_cannot_run_is_blocked_then_retried(backend_factory: Any, otel: Otel, caplog: Any) -> None:
    backend = backend_factory()
    queue = f"q-{uuid.uuid4().hex[:8]}"
    real = backend.get_workflow_instance_history
    failures = []

    def flaky_history(instance: Any, last_sequence_id: int | None = None) -> Any:
        # The store fails once while the worker replays (a dropped connection, say).
        if not failures and last_sequence_id is None:
            failures.append(instance)
            raise ConnectionError("the store went away")
        return real(instance, last_sequence_id)

    backend.get_workflow_instance_history = flaky_history
    with caplog.at_level(logging.INFO, logger="django_workflows.worker"), _worker(backend, otel, queue) as worker:
        client = Client(backend, registry=worker.registry, instrumentation=otel.instrumentation)
        instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), child, 4)
        assert client.get_workflow_result(instance, timeout=30) == 8
    assert failures
    assert otel.total("workflows.workflow.blocked", workflow="child", queue=queue) == 1
    blocked = [s for s in otel.finished("WorkflowTask child") if s.attributes.get("workflows.blocked")]
    assert len(blocked) == 1 and blocked[0].status.status_code is StatusCode.ERROR
    assert blocked[0].events[0].attributes["exception.type"] == "ConnectionError"
    (line,) = [r for r in caplog.records if "is blocked" in r.getMessage()]
    assert line.levelno == logging.WARNING and line.instance_id == instance.instance_id
    assert line.workflow == "child" and line.exc_info is not None


def test_backlog_gauges_show_ready_work_and_its_age(backend_factory: Any, otel: Otel) -> None:
    backend = backend_factory()
    queue = f"idle-{uuid.uuid4().hex[:8]}"
    stop = otel.instrumentation.observe_backlog(backend, [queue])
    try:
        ready = {p.attributes["kind"]: p.value for p in otel.points("workflows.queue.ready") if p.attributes["queue"] == queue}
        assert ready == {"workflow": 0, "activity": 0}  # polled queues are reported, empty or not
        client = Client(backend, instrumentation=otel.instrumentation)
        client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), "order", "k")
        time.sleep(1.1)  # past the gauges' one-second cache, and an age to see

        def reading() -> dict[str, float]:
            return {
                p.attributes["kind"]: p.value
                for p in otel.points("workflows.queue.oldest_ready_age")
                if p.attributes["queue"] == queue
            }

        ages = reading()
        assert ages["workflow"] >= 0.5 and ages["activity"] == 0
        ready = {p.attributes["kind"]: p.value for p in otel.points("workflows.queue.ready") if p.attributes["queue"] == queue}
        assert ready == {"workflow": 1, "activity": 0}
    finally:
        stop()
    time.sleep(1.1)
    assert not [p for p in otel.points("workflows.queue.ready") if p.attributes["queue"] == queue]


def test_no_trace_context_is_stored_while_no_span_records(backend_factory: Any) -> None:
    # The default instrumentation on the global providers, which no test configures: nothing
    # records, so nothing is added to the metadata that users see.
    backend = backend_factory()
    client = Client(backend)
    instance = client.create_workflow_instance(WorkflowInstanceOptions(), "order", "k")
    assert backend.get_workflow_instance_info(instance).metadata == {}
    assert backend.get_workflow_instance_state(instance) is InstanceState.ACTIVE


def slow_step() -> str:
    time.sleep(1.0)
    return "done"


async def one_step(ctx: workflow.Context) -> str:
    return await workflow.execute_activity(ctx, ActivityOptions(), slow_step)


def test_a_lost_lease_is_counted_and_marked_on_the_attempt(backend_factory: Any, otel: Otel) -> None:
    from django_workflows.engine.errors import LeaseLost

    backend = backend_factory(activity_lock_timeout=1)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    real = backend.extend_activity_task
    lost: list[Any] = []

    def extend_once_lost(task: Any) -> None:
        # Another worker took the task over (its lease ran out): the first extension fails.
        if not lost:
            lost.append(task)
            raise LeaseLost()
        real(task)

    backend.extend_activity_task = extend_once_lost
    worker = _worker(backend, otel, queue)
    worker.register_workflow(one_step)
    worker.register_activity(slow_step)
    with worker:
        client = Client(backend, registry=worker.registry, instrumentation=otel.instrumentation)
        instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), one_step)
        assert client.get_workflow_result(instance, timeout=60) == "done"
    assert otel.total("workflows.lease.lost", kind="activity", queue=queue) == 1
    attempts = otel.finished("Activity slow_step")
    assert len(attempts) == 2  # the lost one and the one that committed
    lost_attempt = next(a for a in attempts if a.attributes.get("workflows.lease_lost"))
    assert lost_attempt.attributes["workflows.outcome"] == "lease_lost"
    assert otel.total("workflows.activity.duration", activity="slow_step", outcome="lease_lost") == 1


def echo(value: str) -> str:
    return value


async def long_history(ctx: workflow.Context, value: str) -> int:
    for _ in range(14):  # 3 events each: past 80 % of max_history_size 50
        await workflow.execute_activity(ctx, ActivityOptions(), echo, "")
    return len(await workflow.execute_activity(ctx, ActivityOptions(), echo, value))


def test_large_payloads_and_a_history_near_its_limit_are_counted(backend_factory: Any, otel: Otel) -> None:
    backend = backend_factory(payload_warn_size=1_000, max_payload_size=10_000, max_history_size=50)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    worker = _worker(backend, otel, queue)
    worker.register_workflow(long_history)
    worker.register_activity(echo)
    with worker:
        client = Client(backend, registry=worker.registry, instrumentation=otel.instrumentation)
        instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), long_history, "x" * 2_000)
        assert client.get_workflow_result(instance, timeout=30) == 2_000
    # The start's input (counted by the client), the activity's input and its result (the worker).
    for kind in ("workflow input", "activity input", "activity result"):
        assert otel.total("workflows.payload.large", kind=kind) == 1, kind
    assert otel.total("workflows.history.near_limit", workflow="long_history") == 1


# -- lease losses: only real ones are reported (a heartbeat racing its own completion is not) --

_started = threading.Event()


def lease_step(seconds: float) -> str:
    _started.set()
    time.sleep(seconds)
    return "done"


async def one_lease_step(ctx: workflow.Context, seconds: float) -> str:
    options = ActivityOptions(retry_options=RetryOptions(max_attempts=1))
    return await workflow.execute_activity(ctx, options, lease_step, seconds)


def _lease_worker(backend: Any, otel: Otel, queue: str, **options: Any) -> Worker:
    worker = Worker(
        backend,
        WorkerOptions(workflow_queues=[queue], activity_queues=[queue], run_scheduler=False, **options),
        instrumentation=otel.instrumentation,
    )
    worker.register_workflow(one_lease_step)
    worker.register_activity(lease_step)
    return worker


def _lost_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "lost the lease" in r.getMessage()]


def test_a_heartbeat_racing_its_own_completion_is_not_a_loss(
    backend_factory: Any, otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    backend = backend_factory()
    queue = f"q-{uuid.uuid4().hex[:8]}"
    races: list[str] = []

    def committing_slowly(method: str) -> None:
        real = getattr(backend, method)

        def complete(*args: Any, **kwargs: Any) -> Any:
            value = real(*args, **kwargs)
            # The lease is gone now; heartbeats due in the meantime find it so.
            time.sleep(1.0)
            races.append(method)
            return value

        setattr(backend, method, complete)

    committing_slowly("complete_activity_task")
    committing_slowly("complete_workflow_task")
    # Heartbeats every 0.1 s: several land between each commit and the end of its call.
    worker = _lease_worker(backend, otel, queue, workflow_heartbeat_interval=0.1, activity_heartbeat_interval=0.1)
    with caplog.at_level(logging.DEBUG, logger="django_workflows"), worker:
        client = Client(backend, registry=worker.registry)
        instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), one_lease_step, 0.5)
        assert client.get_workflow_result(instance, timeout=60) == "done"
    assert "complete_activity_task" in races and "complete_workflow_task" in races
    assert any("finishing task gone" in r.getMessage() for r in caplog.records), "no heartbeat raced a completion"
    assert _lost_lines(caplog) == []
    assert otel.total("workflows.lease.lost") == 0


def test_a_running_task_whose_lease_another_worker_took_is_reported_once(
    backend_factory: Any, otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    backend = backend_factory(activity_lock_timeout=1)
    other = backend_factory(activity_lock_timeout=60)  # another worker's handle on the store
    queue = f"q-{uuid.uuid4().hex[:8]}"
    # The worker's extensions fail (its store connection is down) until another worker took
    # the expired lease.
    outage = threading.Event()
    real_extend = backend.extend_activity_task

    def extend(task: Any) -> None:
        if outage.is_set():
            raise ConnectionError("connection reset by peer")
        real_extend(task)

    backend.extend_activity_task = extend
    _started.clear()
    # One activity slot, held by the running attempt: this worker cannot take the task again.
    worker = _lease_worker(backend, otel, queue, max_parallel_activity_tasks=1)
    with caplog.at_level(logging.INFO, logger="django_workflows"), worker:
        client = Client(backend, registry=worker.registry)
        instance = client.create_workflow_instance(WorkflowInstanceOptions(queue=queue), one_lease_step, 4.0)
        assert _started.wait(30)
        outage.set()
        taken = wait_for(lambda: other.get_activity_task([queue], 0.2), timeout=30, what="the expired lease to be taken")
        outage.clear()
        wait_for(lambda: _lost_lines(caplog), timeout=30, what="the loss to be reported")
        other.abandon_activity_task(taken)  # the worker runs it again and completes it
        assert client.get_workflow_result(instance, timeout=60) == "done"
    assert len(_lost_lines(caplog)) == 1
    assert otel.total("workflows.lease.lost", kind="activity", queue=queue) == 1
