"""Helpers shared by the cases of the backend conformance suite (see ``testing.conformance``).

Two kinds of help: building events and tasks by hand for the backend-level cases, and a
harness that runs a real ``Worker`` and ``Client`` on the backend under test for the end-to-end
cases. Nothing here is specific to one backend.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from ...client import Client, WorkflowInstanceOptions
from ...engine.backend import NO_LEASES, Backend, ExecutionResult, LeaseRequest, WorkflowTask, WorkflowTaskCompletion
from ...engine.clock import utcnow
from ...engine.core import DEFAULT_QUEUE, InstanceState, WorkflowInstance, new_execution_id
from ...engine.history import (
    Event,
    EventType,
    SignalReceivedAttributes,
    WorkflowExecutionCanceledAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    WorkflowTaskStartedAttributes,
    new_event,
)
from ...worker import Worker, WorkerOptions

#: A callable ``**backend_options -> backend``; see the ``backend_factory`` fixture contract.
BackendFactory = Callable[..., Backend]

#: How long a case waits for something that should happen soon. Generous on purpose: CI
#: machines are slow and shared, and a case must fail on a wrong result, not on a slow one.
WAIT = 30.0


def new_instance(instance_id: str | None = None, *, parent: WorkflowInstance | None = None, parent_event_id: int = 0) -> WorkflowInstance:
    return WorkflowInstance(
        instance_id or f"conformance-{uuid.uuid4().hex}",
        new_execution_id(),
        parent=parent,
        parent_event_id=parent_event_id,
    )


def started_event(name: str = "wf", queue: str = DEFAULT_QUEUE, **attributes: Any) -> Event:
    return new_event(WorkflowExecutionStartedAttributes(name=name, queue=queue, **attributes), utcnow())


def task_started_event() -> Event:
    return new_event(WorkflowTaskStartedAttributes(), utcnow())


def finished_event(result: str | None = "null") -> Event:
    return new_event(WorkflowExecutionFinishedAttributes(result=result), utcnow())


def signal_event(name: str = "signal", arg: str | None = '"value"') -> Event:
    return new_event(SignalReceivedAttributes(name=name, arg=arg), utcnow())


def cancel_event() -> Event:
    return new_event(WorkflowExecutionCanceledAttributes(), utcnow())


def numbered(events: Sequence[Event], after: int) -> list[Event]:
    """``events`` with sequence ids following ``after``, as the executor numbers them."""
    return [event.with_sequence_id(after + i) for i, event in enumerate(events, start=1)]


def poll_workflow_task(backend: Backend, queues: Sequence[str] = (DEFAULT_QUEUE,), timeout: float = WAIT) -> WorkflowTask:
    """A workflow task that must come within ``timeout`` seconds."""
    task = backend.get_workflow_task(queues, timeout)
    assert task is not None, f"no workflow task in queues {list(queues)} within {timeout} s"
    return task


def complete(
    backend: Backend,
    task: WorkflowTask,
    *,
    state: InstanceState = InstanceState.ACTIVE,
    extra: Sequence[Event] = (),
    activity_events: Sequence[Event] = (),
    timer_events: Sequence[Event] = (),
    workflow_events: Sequence[Any] = (),
    finish: bool = False,
    leased: list[Any] | None = None,
    lease: LeaseRequest = NO_LEASES,
    lease_workflows: LeaseRequest = NO_LEASES,
) -> list[Event]:
    """Complete ``task`` the way a worker would: a task-started event, the task's new events,
    then ``extra`` (and a finished event when ``finish``), numbered after the history.

    Returns the executed events as stored. ``lease`` (activities) and ``lease_workflows`` (the
    workflow tasks of executions the task delivers to) go to the backend; the tasks it leases
    are appended to ``leased``.
    """
    events = [task_started_event(), *task.new_events, *extra]
    if finish:
        events.append(finished_event())
        state = InstanceState.FINISHED
    executed = numbered(events, task.last_sequence_id)
    result = ExecutionResult(
        state=state,
        executed=executed,
        activity_events=list(activity_events),
        timer_events=list(timer_events),
        workflow_events=list(workflow_events),
    )
    tasks = backend.complete_workflow_task(task, WorkflowTaskCompletion(result, lease, lease_workflows))
    if leased is not None:
        leased.extend(tasks or ())
    return executed


def start_instance(backend: Backend, instance: WorkflowInstance | None = None, **started: Any) -> WorkflowInstance:
    """Create an instance and run its first task (nothing but the start), as go-workflows'
    ``startWorkflow`` test helper does."""
    instance = instance or new_instance()
    backend.create_workflow_instance(instance, started_event(**started))
    task = poll_workflow_task(backend, (started.get("queue", DEFAULT_QUEUE),))
    assert task.instance == instance
    complete(backend, task)
    return instance


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def record_calls(obj: Any, method: str) -> list[str]:
    """Record the outcomes of ``obj.method`` calls from now on ("ok" or the exception's class
    name), calling through to it: to see what a worker asked of a backend."""
    original = getattr(obj, method)
    outcomes: list[str] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        try:
            value = original(*args, **kwargs)
        except Exception as exc:
            outcomes.append(type(exc).__name__)
            raise
        outcomes.append("ok")
        return value

    setattr(obj, method, recording)
    return outcomes


def sleep_until(moment: datetime) -> None:
    """Wait until the wall clock passed ``moment`` (for cases about expiring leases)."""
    while (remaining := (moment - utcnow()).total_seconds()) > 0:
        time.sleep(min(remaining + 0.01, 0.5))


def event_types(events: Iterable[Event]) -> list[EventType]:
    return [event.type for event in events]


def contains_in_order(events: Iterable[Event], *expected: EventType) -> bool:
    """Whether ``expected`` occur in ``events`` in this order (others may come between)."""
    remaining = list(expected)
    for event in events:
        if remaining and event.type is remaining[0]:
            remaining.pop(0)
    return not remaining


# ---------------------------------------------------------------------------------------------
# The end-to-end harness


@dataclass
class Harness:
    """A backend with a running worker and a client, for one end-to-end case."""

    backend: Backend
    worker: Worker
    client: Client
    cache: bool
    _factory: BackendFactory
    _workers: list[Worker] = field(default_factory=list)

    def run(
        self,
        workflow: Callable[..., Any] | str,
        *args: Any,
        instance_id: str | None = None,
        queue: str = DEFAULT_QUEUE,
        **start: Any,
    ) -> WorkflowInstance:
        """Start ``workflow(*args)`` and return its instance; ``start`` holds further
        ``WorkflowInstanceOptions`` (``execution_timeout``, ``start_delay``)."""
        options = WorkflowInstanceOptions(instance_id=instance_id or f"e2e-{uuid.uuid4().hex}", queue=queue, **start)
        return self.client.create_workflow_instance(options, workflow, *args)

    def result(self, workflow: Callable[..., Any] | str, *args: Any, **options: Any) -> Any:
        """Start ``workflow(*args)`` and wait for its result (or its error, raised)."""
        return self.client.get_workflow_result(self.run(workflow, *args, **options), WAIT)

    def wait_result(self, instance: WorkflowInstance | str) -> Any:
        return self.client.get_workflow_result(instance, WAIT)

    def history(self, instance: WorkflowInstance) -> list[Event]:
        return self.backend.get_workflow_instance_history(instance)

    def types(self, instance: WorkflowInstance) -> list[EventType]:
        return event_types(self.history(instance))

    def wait_for_event(self, instance: WorkflowInstance, event_type: EventType, count: int = 1) -> list[Event]:
        """Wait until the history of ``instance`` holds ``count`` events of ``event_type``."""

        def found() -> list[Event] | None:
            events = [e for e in self.history(instance) if e.type is event_type]
            return events if len(events) >= count else None

        return wait_until(found, what=f"{count} {event_type.value} event(s) in the history of {instance}")

    def add_worker(
        self,
        workflows: Iterable[Any] = (),
        activities: Iterable[Any] = (),
        *,
        backend: Backend | None = None,
        **worker_options: Any,
    ) -> Worker:
        """Start another worker (on this backend unless ``backend`` is given); it is stopped
        with the case."""
        worker = Worker(backend or self.backend, _worker_options(self.cache, worker_options))
        for fn in workflows:
            _register(worker.register_workflow, fn)
        for fn in activities:
            _register(worker.register_activity, fn)
        worker.start()
        self._workers.append(worker)
        return worker

    def other_backend(self, **options: Any) -> Backend:
        """Another backend object on this case's storage, as another worker process sees it."""
        return self._factory(**options)

    def stop_worker(self, worker: Worker) -> None:
        worker.stop()
        assert worker.wait_for_completion(WAIT), "worker did not stop in time"
        self._workers.remove(worker)

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        stuck = [w for w in self._workers if not w.wait_for_completion(WAIT)]
        self._workers.clear()
        assert not stuck, "a worker did not finish its tasks in time"


def _register(register: Callable[..., Any], fn: Any) -> None:
    # (fn, "name") registers under another name.
    if isinstance(fn, tuple):
        register(fn[0], fn[1])
    else:
        register(fn)


def _worker_options(cache: bool, overrides: dict[str, Any]) -> WorkerOptions:
    options: dict[str, Any] = {}
    if not cache:
        options["workflow_executor_cache_size"] = 0
    options.update(overrides)
    return WorkerOptions(**options)


class HarnessFactory:
    """What the ``e2e`` fixture hands to a case: call it to get a running ``Harness``."""

    def __init__(self, backend_factory: BackendFactory, cache: bool) -> None:
        self._backend_factory = backend_factory
        self.cache = cache
        self._harnesses: list[Harness] = []

    def __call__(
        self,
        workflows: Iterable[Any] = (),
        activities: Iterable[Any] = (),
        *,
        backend: dict[str, Any] | None = None,
        worker: dict[str, Any] | None = None,
        start: bool = True,
    ) -> Harness:
        backend_obj = self._backend_factory(**(backend or {}))
        worker_obj = Worker(backend_obj, _worker_options(self.cache, worker or {}))
        for fn in workflows:
            _register(worker_obj.register_workflow, fn)
        for fn in activities:
            _register(worker_obj.register_activity, fn)
        harness = Harness(
            backend=backend_obj,
            worker=worker_obj,
            client=Client(backend_obj, registry=worker_obj.registry),
            cache=self.cache,
            _factory=self._backend_factory,
        )
        if start:
            worker_obj.start()
            harness._workers.append(worker_obj)
        self._harnesses.append(harness)
        return harness

    def close(self) -> None:
        errors = []
        for harness in self._harnesses:
            try:
                harness.close()
            except AssertionError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


class EndToEndFixtures:
    """The fixtures of the end-to-end cases: every case runs with and without the executor cache."""

    @pytest.fixture(params=[True, False], ids=["cache", "no_cache"])
    def executor_cache(self, request: pytest.FixtureRequest) -> bool:
        return bool(request.param)

    @pytest.fixture
    def e2e(self, backend_factory: BackendFactory, executor_cache: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
        from ... import worker as worker_module

        # Pollers block in the backend for this long; stopping a worker waits for them. The
        # production value (1 s) would make every case's teardown that slow.
        monkeypatch.setattr(worker_module, "_POLL_TIMEOUT", 0.05)
        factory = HarnessFactory(backend_factory, executor_cache)
        yield factory
        factory.close()
