"""Workers: poll the backend for workflow and activity tasks and run them (port of go-workflows
``worker/`` and ``internal/worker``).

A worker runs pollers in background threads. Each poller leases one task at a time (bounded by
``max_parallel_*_tasks``) and hands it to a thread pool. While a task runs, a heartbeat thread
extends its lease; if an extension fails the task is abandoned locally: its result is never
committed, because another worker may own the task now. ``stop()`` stops polling and lets the
tasks in flight finish (drain); ``wait_for_completion()`` waits for them.

Workflow tasks go through the executor cache: an instance the worker ran recently continues its
cached executor without replaying history (sticky execution).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Self

from .client import Client, WorkflowInstanceOptions
from .engine.activity_runner import ActivityLeaseLost, ActivityRunner
from .engine.backend import (
    NO_LEASES,
    ActivityTask,
    Backend,
    ExecutionResult,
    Feature,
    LeaseRequest,
    WorkflowTask,
    WorkflowTaskCompletion,
)
from .engine.cache import ExecutorCache
from .engine.clock import system_clock, to_timedelta
from .engine.core import DEFAULT_QUEUE, SYSTEM_QUEUE, InstanceState, WorkflowInstance
from .engine.errors import CompletionRejected, LeaseLost
from .engine.executor import Executor, StaleExecutor
from .engine.expiration import EXPIRATION_ACTIVITY_NAME, EXPIRATION_WORKFLOW_NAME, expire_workflow_instances
from .engine.history import SignalReceivedAttributes, new_event
from .engine.registry import Registry
from .engine.signals import SIGNAL_ACTIVITY_NAME
from .instrumentation import Instrumentation, default_instrumentation
from .presence import WorkerPresence
from .schedules.scheduler import Scheduler, sync_declared

logger = logging.getLogger("django_workflows.worker")

# Longest a poller blocks in the backend; bounds how long stop() waits for pollers.
_POLL_TIMEOUT = 1.0
# Most tasks one poll claims (the free slots bound it too).
_CLAIM_BATCH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """Worker settings, with go-workflows' names. Durations accept seconds or ``timedelta``.

    ``max_parallel_*_tasks`` bound how many tasks run at once (0: no bound). They default to
    finite numbers rather than go-workflows' 0 because each running task holds a thread, and
    with the ORM backend a database connection.
    """

    workflow_pollers: int = 2
    max_parallel_workflow_tasks: int = 8
    workflow_heartbeat_interval: timedelta | float = timedelta(seconds=25)
    workflow_executor_cache_size: int = 128
    workflow_executor_cache_ttl: timedelta | float = timedelta(seconds=10)
    workflow_queues: Sequence[str] = (DEFAULT_QUEUE,)
    activity_pollers: int = 2
    max_parallel_activity_tasks: int = 32
    activity_heartbeat_interval: timedelta | float = timedelta(seconds=25)
    activity_queues: Sequence[str] = (DEFAULT_QUEUE,)
    #: Run workflow tasks, activity tasks, or both.
    run_workflows: bool = True
    run_activities: bool = True
    #: Called around every task with the task; for hooks such as Django signals.
    listeners: Sequence[Any] = field(default=())
    #: Fire due schedules from a thread of this worker, after writing the schedules declared in
    #: code (docs/schedules.md); ignored on a backend without a schedule store.
    run_scheduler: bool = True
    #: How often the scheduler looks for due schedules.
    scheduler_interval: timedelta | float = timedelta(seconds=1)
    #: How often the worker renews its entry in the store's registry of live workers (the
    #: entry expires after three missed heartbeats; 0: do not register). docs/observability.md
    worker_heartbeat_interval: timedelta | float = timedelta(seconds=10)
    #: The version of the project's code this worker runs, shown with the live workers.
    app_version: str = ""

    def __post_init__(self) -> None:
        for name in (
            "workflow_heartbeat_interval",
            "workflow_executor_cache_ttl",
            "activity_heartbeat_interval",
            "scheduler_interval",
            "worker_heartbeat_interval",
        ):
            object.__setattr__(self, name, to_timedelta(getattr(self, name), what=name))
        for name in ("workflow_pollers", "activity_pollers", "max_parallel_workflow_tasks", "max_parallel_activity_tasks"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        for name in ("workflow_queues", "activity_queues"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"{name} must be a sequence of queue names, not a string")
            object.__setattr__(self, name, tuple(value))


class _Slots:
    """A counting semaphore that is unlimited when the bound is 0."""

    def __init__(self, bound: int) -> None:
        self._semaphore = threading.BoundedSemaphore(bound) if bound > 0 else None

    def acquire(self, stop: threading.Event) -> bool:
        if self._semaphore is None:
            return True
        while not stop.is_set():
            if self._semaphore.acquire(timeout=0.1):
                return True
        return False

    def try_acquire(self, count: int) -> int:
        """Take up to ``count`` slots without waiting; return how many were taken."""
        if self._semaphore is None:
            return count
        taken = 0
        while taken < count and self._semaphore.acquire(blocking=False):
            taken += 1
        return taken

    def release(self, count: int = 1) -> None:
        if self._semaphore is not None:
            for _ in range(count):
                self._semaphore.release()


@dataclass(slots=True)
class _Lane:
    """The queues, concurrency slots and thread pool of one kind of task."""

    kind: str
    queues: tuple[str, ...]
    slots: _Slots
    pool: ThreadPoolExecutor
    run: Callable[[Any], None]


class _Lease:
    """A running task whose lease the heartbeat thread keeps alive."""

    def __init__(self, extend: Callable[[], None], interval: float) -> None:
        self._extend = extend
        self.interval = interval
        self.next_at = time.monotonic() + interval
        self.lost = False
        self._lock = threading.Lock()

    def extend(self) -> None:
        with self._lock:
            if self.lost:
                raise LeaseLost()
            try:
                self._extend()
            except LeaseLost:
                self.lost = True
                raise
            self.next_at = time.monotonic() + self.interval


class _Heartbeats:
    def __init__(self) -> None:
        self._leases: set[_Lease] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="workflows-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextmanager
    def track(self, extend: Callable[[], None], interval: float) -> Iterator[_Lease]:
        lease = _Lease(extend, interval)
        with self._lock:
            self._leases.add(lease)
        try:
            yield lease
        finally:
            with self._lock:
                self._leases.discard(lease)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                due = [lease for lease in self._leases if not lease.lost and lease.next_at <= now]
            for lease in due:
                try:
                    lease.extend()
                except LeaseLost:
                    logger.warning("lost the lease of a running task; its result will be discarded")
                except Exception:  # a transient DB error: try again at the next tick
                    logger.exception("extending a task lease failed")


class Worker:
    """Runs workflows and activities from a backend."""

    def __init__(
        self,
        backend: Backend,
        options: WorkerOptions | None = None,
        *,
        registry: Registry | None = None,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        self.backend = backend
        self.options = options or WorkerOptions()
        #: Logs, spans and metrics of the tasks this worker runs (``instrumentation``).
        self.instrumentation = instrumentation or default_instrumentation()
        # A copy: the worker adds its system activities, which must not leak into a registry
        # that several workers (or the project-wide one) share.
        self.registry = Registry()
        if registry is not None:
            self.registry.update(registry)
        self.cache = ExecutorCache(
            self.options.workflow_executor_cache_size,
            self.options.workflow_executor_cache_ttl,
        )
        self._stop = threading.Event()
        self._pollers: list[threading.Thread] = []
        self._lanes: dict[str, _Lane] = {}
        self._heartbeats = _Heartbeats()
        self._started = False
        self._client = Client(backend, registry=self.registry, instrumentation=self.instrumentation)
        self.registry.register_activity(self._deliver_signal, SIGNAL_ACTIVITY_NAME)
        self.registry.register_workflow(expire_workflow_instances, EXPIRATION_WORKFLOW_NAME)
        self.registry.register_activity(self._remove_finished_instances, EXPIRATION_ACTIVITY_NAME)
        backend_options = backend.options
        self._runner = ActivityRunner(self.registry, backend_options.converter, backend_options.context_propagators)
        self._propagators = self.instrumentation.propagators(backend_options.context_propagators)
        self._workflow_heartbeat = _interval(self.options.workflow_heartbeat_interval, backend_options.workflow_lock)
        self._activity_heartbeat = _interval(self.options.activity_heartbeat_interval, backend_options.activity_lock)
        self._in_flight = 0
        self._in_flight_lock = threading.Condition()
        self._lease_on_completion = backend.feature_supported(Feature.LEASE_ON_COMPLETION)
        self._scheduler: Scheduler | None = None
        self._presence = WorkerPresence(
            backend,
            interval=self.options.worker_heartbeat_interval,  # type: ignore[arg-type]
            app_version=self.options.app_version,
            in_flight=lambda: self._in_flight,
        )
        self._stop_observing_backlog: Callable[[], None] | None = None

    # -- registration ------------------------------------------------------------------------

    def register_workflow(self, fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        return self.registry.register_workflow(fn, name)

    def register_activity(self, fn_or_object: Any, name: str | None = None) -> Any:
        return self.registry.register_activity(fn_or_object, name)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start polling in background threads and return."""
        if self._started:
            raise RuntimeError("worker already started")
        self._started = True
        options = self.options
        self._scheduler = self._start_scheduler()
        self._heartbeats.start()
        if options.run_workflows and options.workflow_pollers:
            queues = _with_system_queue(options.workflow_queues)
            self.backend.prepare_workflow_queues(queues)
            lane = self._add_lane("workflow", queues, options.max_parallel_workflow_tasks, self._run_workflow_task)
            self._start_pollers(lane, options.workflow_pollers, self.backend.get_workflow_tasks)
        if options.run_activities and options.activity_pollers:
            queues = _with_system_queue(options.activity_queues)
            self.backend.prepare_activity_queues(queues)
            lane = self._add_lane("activity", queues, options.max_parallel_activity_tasks, self._run_activity_task)
            self._start_pollers(lane, options.activity_pollers, self.backend.get_activity_tasks)
        self._start_observing()

    def _start_observing(self) -> None:
        """Record this worker among the live ones and report the backlog of its queues."""
        workflow_queues, activity_queues = self.workflow_queues, self.activity_queues
        self._presence.start(workflow_queues, activity_queues)
        self._stop_observing_backlog = self.instrumentation.observe_backlog(
            self.backend, sorted(set(workflow_queues) | set(activity_queues))
        )

    def _start_scheduler(self) -> Scheduler | None:
        """Write the declared schedules, then fire due ones from a thread (``schedules``)."""
        if not self.options.run_scheduler or self.backend.schedules is None:
            return None
        scheduler = Scheduler(
            self.backend,
            interval=self.options.scheduler_interval,
            task_scope=self.backend.task_scope,
        )
        sync_declared(scheduler.store, self.registry.schedules(), self.backend.options.converter)
        scheduler.start()
        return scheduler

    def _add_lane(self, kind: str, queues: tuple[str, ...], parallel: int, run: Callable[[Any], None]) -> _Lane:
        pool = ThreadPoolExecutor(max_workers=parallel or 10_000, thread_name_prefix=f"workflows-{kind}-task")
        lane = self._lanes[kind] = _Lane(kind, queues, _Slots(parallel), pool, run)
        return lane

    def _start_pollers(self, lane: _Lane, count: int, poll: Callable[[Sequence[str], float, int], list[Any]]) -> None:
        for index in range(count):
            thread = threading.Thread(
                target=self._poll_loop,
                args=(lane, poll),
                name=f"workflows-{lane.kind}-poller-{index}",
                daemon=True,
            )
            self._pollers.append(thread)
            thread.start()

    def _poll_loop(self, lane: _Lane, poll: Callable[[Sequence[str], float, int], list[Any]]) -> None:
        failures = 0
        while not self._stop.is_set():
            if not lane.slots.acquire(self._stop):
                return
            # Tasks are claimed in batches, as many as there are free slots (bounded).
            slots = 1 + lane.slots.try_acquire(_CLAIM_BATCH - 1)
            try:
                tasks = poll(lane.queues, _POLL_TIMEOUT, slots)
                failures = 0
            except Exception:
                # The backend is unreachable (a restarting database...): back off and retry.
                lane.slots.release(slots)
                failures += 1
                logger.exception("polling for %s tasks failed", lane.kind)
                self._stop.wait(min(0.1 * 2**failures, 5.0))
                continue
            if len(tasks) < slots:
                lane.slots.release(slots - len(tasks))
            for task in tasks:
                self._dispatch(lane, task)

    def _dispatch(self, lane: _Lane, task: Any) -> None:
        """Run a leased task on the lane's pool; the caller holds a slot for it."""
        with self._in_flight_lock:
            self._in_flight += 1
        lane.pool.submit(self._run_and_release, lane, task)

    def _run_and_release(self, lane: _Lane, task: Any) -> None:
        try:
            with self.backend.task_scope():
                lane.run(task)
        except Exception:
            logger.exception("running task %s failed", getattr(task, "id", task))
        finally:
            lane.slots.release()
            with self._in_flight_lock:
                self._in_flight -= 1
                self._in_flight_lock.notify_all()

    def _free_slots(self, kind: str, wanted: int) -> tuple[_Lane | None, int]:
        """Slots for tasks a completion may lease to this worker (none while stopping)."""
        lane = self._lanes.get(kind)
        if lane is None or wanted <= 0 or self._stop.is_set() or not self._lease_on_completion:
            return lane, 0
        return lane, lane.slots.try_acquire(wanted)

    @property
    def in_flight(self) -> int:
        """Tasks leased and not finished yet."""
        return self._in_flight

    @property
    def worker_id(self) -> str:
        """This worker's id among the live workers (``Backend.list_workers``)."""
        return self._presence.worker_id

    @property
    def workflow_queues(self) -> tuple[str, ...]:
        """The queues this worker polls for workflow tasks (empty before ``start``)."""
        lane = self._lanes.get("workflow")
        return lane.queues if lane is not None else ()

    @property
    def activity_queues(self) -> tuple[str, ...]:
        """The queues this worker polls for activity tasks (empty before ``start``)."""
        lane = self._lanes.get("activity")
        return lane.queues if lane is not None else ()

    def stop(self) -> None:
        """Stop polling; tasks already running finish (see ``wait_for_completion``)."""
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.stop()

    def wait_for_completion(self, timeout: float | None = None) -> bool:
        """Wait for the pollers and the tasks in flight; return False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._pollers:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._scheduler is not None:
            self._scheduler.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._in_flight_lock:
            while self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._in_flight_lock.wait(remaining)
        for lane in self._lanes.values():
            lane.pool.shutdown(wait=True)
        self._heartbeats.stop()
        if self._stop_observing_backlog is not None:
            self._stop_observing_backlog()
            self._stop_observing_backlog = None
        self._presence.stop()
        if "workflow" in self._lanes:
            self._hand_back_sticky_instances()
        self.cache.clear()
        self.backend.release_finished_threads()  # e.g. the database connections of pollers and tasks
        return True

    def _hand_back_sticky_instances(self) -> None:
        """Let any worker continue the instances sticky to this one at once: their executors
        die with this worker's cache, and waiting out ``sticky_timeout`` would stall them."""
        try:
            released = self.backend.release_sticky_instances()
        except Exception:
            logger.warning("handing back sticky instances failed; they wait out the sticky timeout", exc_info=True)
            return
        if released:
            logger.info("handed back %d sticky instance(s)", released)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.wait_for_completion()

    # -- workflow tasks ----------------------------------------------------------------------

    def _new_executor(self, task: WorkflowTask) -> Executor:
        options = self.backend.options
        return Executor(
            registry=self.registry,
            history_provider=self.backend,
            instance=task.instance,
            metadata=task.metadata,
            converter=options.converter,
            propagators=self._propagators,
            max_history_size=options.max_history_size,
            clock=system_clock,
        )

    def _run_workflow_task(self, task: WorkflowTask) -> None:
        key = (task.instance.instance_id, task.instance.execution_id)
        with (
            self.instrumentation.workflow_task(task) as observed,
            self._heartbeats.track(lambda: self.backend.extend_workflow_task(task), self._workflow_heartbeat) as lease,
        ):
            executor = self.cache.get(key) or self._new_executor(task)
            try:
                try:
                    result = executor.execute_task(last_sequence_id=task.last_sequence_id, new_events=task.new_events)
                except StaleExecutor:
                    executor.close()
                    executor = self._new_executor(task)
                    result = executor.execute_task(last_sequence_id=task.last_sequence_id, new_events=task.new_events)
            except Exception as exc:
                executor.close()
                observed.blocked(exc)
                self._abandon(self.backend.abandon_workflow_task, task)
                return
            if lease.lost:
                executor.close()
                observed.lease_lost()
                return
            if result.state is InstanceState.ACTIVE:
                # Cached before completing: the completion can hand the instance's next task to
                # another poller of this worker at once, and that one must find the executor.
                self.cache.put(key, executor)
            # The activities this task schedules can be leased to us by the completion itself.
            activities, slots = self._free_slots("activity", len(result.activity_events))
            leased: list[ActivityTask] = []
            try:
                leased = self._complete_workflow_task(task, result, activities, slots)
            except CompletionRejected:
                logger.info("new events arrived for %s while it finished; running it again", task.instance)
                self._discard(key, executor)
                return
            except LeaseLost:
                logger.warning("lost the lease of workflow task %s; discarding its result", task.instance)
                observed.lease_lost()
                self._discard(key, executor)
                return
            except Exception:
                self._discard(key, executor)
                logger.exception("completing workflow task of %s failed", task.instance)
                self._abandon(self.backend.abandon_workflow_task, task)
                return
            finally:
                if activities is not None and slots > len(leased):
                    activities.slots.release(slots - len(leased))
            observed.committed(result, executor)
            for activity_task in leased:
                assert activities is not None
                self._dispatch(activities, activity_task)
        if result.state is not InstanceState.ACTIVE:
            executor.close()
        self._notify("workflow_task_completed", task=task, result=result)

    def _complete_workflow_task(
        self, task: WorkflowTask, result: ExecutionResult, activities: _Lane | None, slots: int
    ) -> list[ActivityTask]:
        leases = NO_LEASES if activities is None or not slots else LeaseRequest(activities.queues, slots)
        return list(self.backend.complete_workflow_task(task, WorkflowTaskCompletion(result, leases)) or ())

    def _discard(self, key: tuple[str, str], executor: Executor) -> None:
        """Drop an executor whose task was not committed (it is ahead of the stored history)."""
        cached = self.cache.get(key)
        if cached is not None and cached is not executor:
            self.cache.put(key, cached)  # another task's executor: keep it
        # Had another poller taken it meanwhile, its newer task would find it stale and replay.
        executor.close()

    # -- activity tasks ----------------------------------------------------------------------

    def _run_activity_task(self, task: ActivityTask) -> None:
        with (
            self.instrumentation.activity_task(task) as observed,
            self._heartbeats.track(lambda: self.backend.extend_activity_task(task), self._activity_heartbeat) as lease,
        ):

            def heartbeat() -> None:
                try:
                    lease.extend()
                except LeaseLost:
                    raise ActivityLeaseLost("the lease of this activity was lost; stop working on it") from None

            attributes = self._runner.run(
                activity_id=task.activity_id,
                instance=task.instance,
                attributes=task.event.attributes,  # type: ignore[arg-type]
                heartbeat=heartbeat,
            )
            observed.finished(attributes)
            if lease.lost:
                logger.warning("lost the lease of activity %s; discarding its result", task.activity_id)
                observed.lease_lost()
                return
            result = new_event(attributes, system_clock.now(), schedule_event_id=task.event.schedule_event_id)
            # The workflow can continue here at once: the completion may lease its next task to us.
            workflows, slots = self._free_slots("workflow", 1)
            next_task: WorkflowTask | None = None
            try:
                if slots:
                    assert workflows is not None
                    next_task = self.backend.complete_activity_task(task, result, workflow_queues=workflows.queues)
                else:
                    self.backend.complete_activity_task(task, result)
            except LeaseLost:
                logger.warning("lost the lease of activity %s; discarding its result", task.activity_id)
                observed.lease_lost()
                return
            finally:
                if slots and next_task is None:
                    assert workflows is not None
                    workflows.slots.release()
            if next_task is not None:
                assert workflows is not None
                self._dispatch(workflows, next_task)
        self._notify("activity_task_completed", task=task, result=result)

    def _deliver_signal(self, instance_id: str, name: str, payload: str) -> None:
        """The system activity behind ``workflow.signal_workflow``."""
        self.backend.signal_workflow(
            instance_id, new_event(SignalReceivedAttributes(name=name, arg=payload), system_clock.now())
        )

    def _remove_finished_instances(self, finished_before: str) -> int:
        """The system activity of auto-expiration (``Client.start_auto_expiration``)."""
        removed = self.backend.remove_workflow_instances(finished_before=datetime.fromisoformat(finished_before))
        if removed:
            logger.info("auto-expiration removed %d finished instance(s)", removed)
        return removed

    # -- helpers -----------------------------------------------------------------------------

    def _abandon(self, abandon: Callable[[Any], None], task: Any) -> None:
        try:
            abandon(task)
        except Exception:
            logger.exception("releasing the lease of %s failed; it expires on its own", task.id)

    def _notify(self, hook: str, **kwargs: Any) -> None:
        for listener in self.options.listeners:
            method = getattr(listener, hook, None)
            if method is None:
                continue
            try:
                method(backend=self.backend, **kwargs)
            except Exception:
                logger.exception("worker listener %r failed in %s", listener, hook)


def _with_system_queue(queues: Sequence[str]) -> tuple[str, ...]:
    return tuple(queues) + (() if SYSTEM_QUEUE in queues else (SYSTEM_QUEUE,))


def _interval(configured: Any, lock_timeout: timedelta) -> float:
    # A heartbeat slower than the lease would let the lease expire while the task still runs.
    return min(to_timedelta(configured).total_seconds(), lock_timeout.total_seconds() / 3)


class WorkflowOrchestrator:
    """A worker and a client in one object, for programs that start and run workflows in one
    process (go-workflows ``WorkflowOrchestrator``)."""

    def __init__(self, backend: Backend, options: WorkerOptions | None = None) -> None:
        options = options or WorkerOptions(workflow_pollers=1, activity_pollers=1)
        self.worker = Worker(backend, options)
        self.client = Client(backend, registry=self.worker.registry)

    @property
    def backend(self) -> Backend:
        return self.worker.backend

    def register_workflow(self, fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        return self.worker.register_workflow(fn, name)

    def register_activity(self, fn_or_object: Any, name: str | None = None) -> Any:
        return self.worker.register_activity(fn_or_object, name)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def wait_for_completion(self, timeout: float | None = None) -> bool:
        return self.worker.wait_for_completion(timeout)

    def create_workflow_instance(
        self, options: WorkflowInstanceOptions | None, workflow: Callable[..., Any] | str, *args: Any
    ) -> WorkflowInstance:
        return self.client.create_workflow_instance(options, workflow, *args)

    def get_workflow_result(self, instance: WorkflowInstance | str, timeout: float | timedelta | None = None) -> Any:
        return self.client.get_workflow_result(instance, timeout)

    def wait_for_workflow_instance(self, instance: WorkflowInstance | str, timeout: float | timedelta | None = None) -> None:
        self.client.wait_for_workflow_instance(instance, timeout)

    def signal_workflow(self, instance_id: str, name: str, arg: Any = None) -> None:
        self.client.signal_workflow(instance_id, name, arg)

    def cancel_workflow_instance(self, instance: WorkflowInstance | str) -> None:
        self.client.cancel_workflow_instance(instance)

    def remove_workflow_instance(self, instance: WorkflowInstance | str) -> None:
        self.client.remove_workflow_instance(instance)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.wait_for_completion()


__all__ = ["ExecutionResult", "Worker", "WorkerOptions", "WorkflowOrchestrator"]
