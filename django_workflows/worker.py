"""Workers: poll the backend for workflow and activity tasks and run them (port of go-workflows
``worker/`` and ``internal/worker``).

A worker runs pollers in background threads. Each poller leases one task at a time (bounded by
``max_parallel_*_tasks``) and hands it to a thread pool. While a task runs, a heartbeat thread
extends its lease; if an extension fails the task is abandoned locally: its result is never
committed, because another worker may own the task now. ``stop()`` stops polling and lets the
tasks in flight finish (drain); ``wait_for_completion()`` waits for them. ``shutdown()`` waits up
to ``grace_period``, then releases the leases of the tasks still running for other workers.
A completion that fails for a passing reason is retried while its lease holds (``completions``).

Workflow tasks go through the executor cache: an instance the worker ran recently continues its
cached executor without replaying history (sticky execution).

A workflow task the code cannot run (its replay disagrees with the history, the code raises a
bug-class error or is not registered, or it hangs past ``workflow_deadlock_timeout``) is by
default *blocked*: nothing is committed, and the backend keeps the instance away from workers
for a backoff that doubles up to ``blocked_retry_max_interval``, so a deploy of fixed code
continues it. ``workflow_failure_policy="fail"`` fails such workflows at once instead.

Activities run on threads of their own lane (``_TaskThreads``). ``activity.heartbeat()`` calls
are throttled and written by ``_ActivityAttempt``, which also learns of cancellation requests.
The backend enforces an attempt's timeouts; the worker stops extending the lease of an attempt
whose deadline passed and no longer waits for it: its slot is freed at once, ``stop()`` does not
wait for it, and its late result is discarded. A sweeper thread asks the backend to fail the
attempts (and end the executions) whose timeouts passed, whoever runs them.
"""

from __future__ import annotations

import contextvars
import dataclasses
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Self

from .client import Client, WorkflowInstanceOptions
from .completions import commit
from .engine.activity_runner import ActivityCanceled, ActivityLeaseLost, ActivityRunner
from .engine.backend import (
    NO_LEASES,
    ActivityTask,
    Backend,
    BlockBackoff,
    ExecutionResult,
    Feature,
    LeaseRequest,
    WorkflowTask,
    WorkflowTaskCompletion,
)
from .engine.cache import ExecutorCache
from .engine.clock import system_clock, to_timedelta
from .engine.converter import Payload
from .engine.core import DEFAULT_QUEUE, SYSTEM_QUEUE, InstanceState, WorkflowInstance
from .engine.deadlock import CodeThreads, WorkflowCodeHung
from .engine.errors import CompletionRejected, InstanceNotFound, LeaseLost, NotSupported, WorkflowError, one_line
from .engine.executor import Executor, StaleExecutor, failed_task_result
from .engine.expiration import EXPIRATION_ACTIVITY_NAME, EXPIRATION_WORKFLOW_NAME, expire_workflow_instances
from .engine.history import (
    ActivityFailedAttributes,
    ActivityScheduledAttributes,
    EventType,
    SignalReceivedAttributes,
    new_event,
)
from .engine.registry import Registry
from .engine.signals import SIGNAL_ACTIVITY_NAME
from .instrumentation import ActivityObservation, Instrumentation, WorkflowTaskObservation, default_instrumentation
from .presence import WorkerPresence
from .schedules.scheduler import Scheduler, sync_declared

logger = logging.getLogger("django_workflows.worker")

# Longest a poller blocks in the backend; bounds how long stop() waits for pollers.
_POLL_TIMEOUT = 1.0
# Most tasks one poll claims (the free slots bound it too).
_CLAIM_BATCH = 8
# While the store is unreachable, pollers wait this long before the first retry, then twice as
# long after every further failure, up to the cap.
_OUTAGE_FIRST_DELAY = 0.5
_OUTAGE_MAX_DELAY = 30.0
# A heartbeat that failed for a transient reason is tried again after this many seconds.
_HEARTBEAT_RETRY = 1.0

#: What a workflow task the code cannot run does (``WorkerOptions.workflow_failure_policy``).
FAILURE_POLICIES = ("block", "fail")
# How often the sweeper asks the backend to enforce activity and execution timeouts.
_SWEEP_INTERVAL = 0.5
# Longest time between two writes of an activity's heartbeats (a third of its heartbeat timeout
# if that is shorter): calls in between only update the details the next write stores.
_HEARTBEAT_WRITE_INTERVAL = 1.0
# After the worker's own estimate of an attempt's deadline, it asks the backend this often.
_DEADLINE_RECHECK = 0.5
# A lease found gone this close to the worker's estimate of the deadline was a timeout (the
# store's clock decides it), not a loss to another worker.
_DEADLINE_SLACK = 1.0


class ReplayCount:
    """How many workflow tasks replayed history for want of a cached executor, and how many
    events they replayed (thread-safe: every workflow poller and task thread adds to it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tasks = 0
        self.events = 0

    def add(self, events: int) -> None:
        with self._lock:
            self.tasks += 1
            self.events += events


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
    #: Executors kept for sticky execution, and how long one may sit idle; None: the backend's
    #: ``executor_cache_size`` / ``executor_cache_ttl`` options (256 and 10 s by default).
    workflow_executor_cache_size: int | None = None
    workflow_executor_cache_ttl: timedelta | float | None = None
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
    #: How long the store may stay unreachable (every poll failing) before the worker gives up
    #: and stops by itself (``Worker.failure`` says why); 0 retries forever.
    max_outage: timedelta | float = timedelta(minutes=5)
    #: A workflow task the code cannot run (replay disagrees with history, a bug-class error,
    #: an unregistered workflow, a deadlock): "block" leaves the history alone and retries the
    #: task with backoff until fixed code is deployed; "fail" fails the workflow at once.
    workflow_failure_policy: str = "block"
    #: The policy of particular workflows, by name (the others follow the one above).
    workflow_failure_policies: Mapping[str, str] = field(default_factory=dict)
    #: First wait before a blocked task is tried again; it doubles up to the maximum.
    blocked_retry_first_interval: timedelta | float = timedelta(seconds=1)
    blocked_retry_max_interval: timedelta | float = timedelta(minutes=5)
    #: Workflow code that does not yield back to the engine for this long (between two awaits
    #: of the workflow API) is deadlocked; 0 turns detection off (the code then runs on the
    #: task's own thread).
    workflow_deadlock_timeout: timedelta | float = timedelta(seconds=10)
    #: How often the worker renews its entry in the store's registry of live workers (the
    #: entry expires after three missed heartbeats; 0: do not register). docs/observability.md
    worker_heartbeat_interval: timedelta | float = timedelta(seconds=10)
    #: The version of the project's code this worker runs, shown with the live workers.
    app_version: str = ""
    #: How long ``shutdown`` lets running tasks finish before it releases their leases, so that
    #: other workers take them at once (0: release at once). docs/reliability.md
    grace_period: timedelta | float = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if self.workflow_executor_cache_ttl is not None:
            ttl = to_timedelta(self.workflow_executor_cache_ttl, what="workflow_executor_cache_ttl")
            object.__setattr__(self, "workflow_executor_cache_ttl", ttl)
        if self.workflow_executor_cache_size is not None and self.workflow_executor_cache_size < 0:
            raise ValueError(
                f"workflow_executor_cache_size must not be negative (0 caches nothing), got {self.workflow_executor_cache_size!r}"
            )
        for name in (
            "workflow_heartbeat_interval",
            "activity_heartbeat_interval",
            "scheduler_interval",
            "max_outage",
            "blocked_retry_first_interval",
            "blocked_retry_max_interval",
            "workflow_deadlock_timeout",
            "worker_heartbeat_interval",
            "grace_period",
        ):
            object.__setattr__(self, name, to_timedelta(getattr(self, name), what=name))
        if self.max_outage < timedelta(0):  # type: ignore[operator]
            raise ValueError(f"max_outage must not be negative (0 retries forever), got {self.max_outage!r}")
        if self.grace_period < timedelta(0):  # type: ignore[operator]
            raise ValueError(f"grace_period must not be negative (0 releases at once), got {self.grace_period!r}")
        policies = dict(self.workflow_failure_policies)
        named = [(f"workflow_failure_policies[{name!r}]", policy) for name, policy in policies.items()]
        for where, policy in [("workflow_failure_policy", self.workflow_failure_policy), *named]:
            if policy not in FAILURE_POLICIES:
                raise ValueError(f"{where}: the failure policy must be 'block' or 'fail', got {policy!r}")
        object.__setattr__(self, "workflow_failure_policies", policies)
        first, longest = to_timedelta(self.blocked_retry_first_interval), to_timedelta(self.blocked_retry_max_interval)
        if first <= timedelta(0) or longest < first:
            raise ValueError("blocked_retry_first_interval must be positive and at most blocked_retry_max_interval")
        if to_timedelta(self.workflow_deadlock_timeout) < timedelta(0):
            raise ValueError("workflow_deadlock_timeout must not be negative")
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


class _TaskThreads:
    """The activity lane's threads: daemon threads, reused, one per task running at once (the
    lane's slots bound how many). Python cannot stop a thread, so an activity that never
    returns keeps its thread; the worker gives up on it once its attempt is over, a new thread
    takes the next task, and ``shutdown`` joins only the threads that are free."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._cond = threading.Condition()
        self._work: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._idle = 0
        self._busy: dict[threading.Thread, bool] = {}
        self._closed = False
        self._names = itertools.count()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the worker's activity threads are shut down")
            self._work.append((fn, args))
            if self._idle >= len(self._work):
                self._cond.notify()
                return
            thread = threading.Thread(target=self._serve, name=f"{self._prefix}_{next(self._names)}", daemon=True)
            self._busy[thread] = False
        thread.start()

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._work and not self._closed:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                if not self._work:
                    del self._busy[me]
                    return
                fn, args = self._work.popleft()
                self._busy[me] = True
            try:
                fn(*args)
            except Exception:  # fn reports its own errors; this keeps the thread serving
                logger.exception("an activity thread's task failed")
            with self._cond:
                self._busy[me] = False

    def shutdown(self, wait: bool = True) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            free = [thread for thread, busy in self._busy.items() if not busy]
        if wait:
            for thread in free:
                thread.join()


@dataclass(slots=True)
class _Lane:
    """The queues, concurrency slots and thread pool of one kind of task."""

    kind: str
    queues: tuple[str, ...]
    slots: _Slots
    pool: ThreadPoolExecutor | _TaskThreads
    run: Callable[..., None]
    outage: _Outage
    #: ``run`` takes the task's ``_Release`` too, to free its slot before it returns.
    detachable: bool = False
    #: Most tasks one poll claims: the lane's slots shared among its pollers (at most
    #: _CLAIM_BATCH), so that one poller holding every free slot does not leave the others idle.
    batch: int = _CLAIM_BATCH


class _Release:
    """Frees a dispatched task's slot and in-flight count, once: when its run returns, or
    earlier, when the worker gives up on a task that may never return."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()


class _Lease:
    """A running task whose lease the heartbeat thread keeps alive.

    Once the task starts committing (``finishing``), a failed extension is no news: the
    completion releases the lease itself, so a heartbeat that lands just after it finds the
    lease gone, and a real loss shows in the completion's own answer. Only a loss while the
    task still runs is reported (``on_lost``)."""

    def __init__(self, extend: Callable[[], None], interval: float, lock: float | None = None) -> None:
        self._extend = extend
        self.interval = interval
        #: How long the store grants the lease for (at least three intervals: ``_interval``).
        self.lock = 3 * interval if lock is None else lock
        self.next_at = time.monotonic() + interval
        #: When the lease runs out unless extended (``time.monotonic()``; the store's clock decides).
        self.valid_until = time.monotonic() + self.lock
        self.lost = False
        #: The task is committing, blocking or giving up its result: its lease ends with that.
        self.finishing = False
        #: The worker released the lease at shutdown (``Worker.shutdown``): not a loss.
        self.released = False
        #: Extensions that failed in a row for a transient reason (a store outage).
        self.failures = 0
        self._lock = threading.Lock()
        # Guards next_at alone: poke() must not wait for an extension in progress.
        self._next_lock = threading.Lock()
        #: Called (once, without locks held) when the lease is found lost while the task runs.
        self.on_lost: Callable[[], None] | None = None
        #: Gives the lease back to the store (``Backend.abandon_*_task``), for ``Worker.shutdown``.
        self.release: Callable[[], None] | None = None

    def extend(self) -> None:
        with self._lock:
            if self.lost:
                raise LeaseLost()
            started = time.monotonic()
            with self._next_lock:
                previous, self.next_at = self.next_at, started + self.interval
            try:
                self._extend()  # may pull next_at earlier (poke)
            except LeaseLost:
                self.lost = True
                report = not self.finishing and not self.released
            except BaseException:
                with self._next_lock:  # a transient error: try again at the next tick
                    self.next_at = min(self.next_at, previous)
                raise
            else:
                self.valid_until = started + self.lock
                report = False
        if self.lost:
            if not report:
                logger.debug("a heartbeat found the lease of a finishing task gone (its completion ended it)")
            elif self.on_lost is not None:
                self.on_lost()
            raise LeaseLost()

    def poke(self, at: float) -> None:
        """Extend no later than ``at`` (monotonic time)."""
        with self._next_lock:
            self.next_at = min(self.next_at, at)


class _Heartbeats:
    def __init__(self) -> None:
        self._leases: set[_Lease] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set by ``release_all`` (the grace period is over): new leases are given back at once.
        self.releasing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="workflows-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextmanager
    def track(self, lease: _Lease) -> Iterator[_Lease]:
        """Keep ``lease`` alive while the task runs. Once ``release_all`` ran, the lease is
        given back at once instead (the task then sees ``lease.released`` and stops)."""
        with self._lock:
            releasing = self.releasing
            if not releasing:
                self._leases.add(lease)
        if releasing:
            _give_back(lease)
        try:
            yield lease
        finally:
            lease.finishing = True  # an extension still under way finds the lease gone: no news
            with self._lock:
                self._leases.discard(lease)

    def release_all(self) -> int:
        """Give back the leases of the running tasks (and, from now on, of tasks that start);
        return how many were given back."""
        with self._lock:
            self.releasing = True
            held = [lease for lease in self._leases if not lease.lost]
        return sum(_give_back(lease) for lease in held)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                due = [lease for lease in self._leases if not lease.lost and lease.next_at <= now]
            for lease in due:
                try:
                    lease.extend()
                    lease.failures = 0
                except LeaseLost:  # reported by the lease's on_lost if the task still runs
                    pass
                except Exception as exc:  # a transient store error: try again soon
                    # One line per outage and lease, not one every tick while the store is down.
                    if not lease.failures:
                        logger.warning("extending a task lease failed (%s); retrying", one_line(exc))
                    lease.failures += 1
                    lease.next_at = time.monotonic() + min(_HEARTBEAT_RETRY, lease.interval)


def _give_back(lease: _Lease) -> bool:
    """Release ``lease`` to the store for other workers (no more extensions, nor a commit)."""
    lease.released = lease.lost = True
    if lease.release is None:
        return False
    try:
        lease.release()
    except Exception as exc:  # the store is down: the lease expires by itself
        logger.warning("releasing a task lease failed (%s); it expires by itself", one_line(exc))
        return False
    return True


class StoreUnavailable(Exception):
    """The backend stayed unreachable for longer than ``WorkerOptions.max_outage``."""


class _Outage:
    """The store's health as the pollers of one lane see it, shared by all of them.

    While polls fail, the pollers retry on one schedule (capped exponential backoff), and the
    log gets one line per backoff step however many pollers fail, instead of one per poll.
    After ``max_outage`` seconds of failures (0: never) ``failed`` returns None: give up. One
    per lane: a store that still answers the activity pollers' reads while it refuses every
    workflow claim (a lock held elsewhere, a read-only failover) is out for the workflow lane.
    """

    def __init__(self, kind: str, max_outage: float) -> None:
        self.kind = kind
        self.max_outage = max_outage
        self._lock = threading.Lock()
        self._started_at: float | None = None
        self._delay = 0.0
        self._retry_at = 0.0
        self.last_error = ""

    def failed(self, exc: BaseException) -> float | None:
        """Record a failed poll; seconds to wait before polling again, or None to give up."""
        with self._lock:
            now = time.monotonic()
            self.last_error = one_line(exc)
            if self._started_at is None:
                self._started_at, self._delay, self._retry_at = now, 0.0, now
                logger.debug("polling for %s tasks failed", self.kind, exc_info=exc)
            elapsed = now - self._started_at
            if self.max_outage and elapsed >= self.max_outage:
                return None
            if now >= self._retry_at:  # the next backoff step
                self._delay = min(max(self._delay * 2, _OUTAGE_FIRST_DELAY), _OUTAGE_MAX_DELAY)
                self._retry_at = now + self._delay
                if self.max_outage:
                    self._retry_at = min(self._retry_at, self._started_at + self.max_outage)
                limit = f"giving up after {self.max_outage:g} s" if self.max_outage else "retrying forever"
                logger.warning(
                    "store unreachable for %.1f s (%s); next %s poll in %.1f s, %s",
                    elapsed, self.last_error, self.kind, self._retry_at - now, limit,
                )
            return max(0.0, self._retry_at - now)

    def succeeded(self, polled_at: float) -> None:
        """Record a poll that began at ``polled_at`` (``time.monotonic()``) and worked; one that
        began before the outage did says nothing about the store now."""
        if self._started_at is None:  # the common case, without taking the lock
            return
        with self._lock:
            if self._started_at is not None and polled_at >= self._started_at:
                logger.warning(
                    "store reachable again for %s polls after %.1f s", self.kind, time.monotonic() - self._started_at
                )
                self._started_at = None

    @property
    def duration(self) -> float:
        started = self._started_at
        return 0.0 if started is None else time.monotonic() - started


class _ActivityAttempt:
    """The worker's side of one running activity: its lease, its heartbeats and what they
    learned (cancellation), and the worker's own estimate of when the attempt's time is up.

    ``heartbeat`` runs in the activity's thread; ``sync`` runs under the lease's lock, from the
    heartbeat thread (the lease's periodic extension) or from ``heartbeat`` when a write is due.
    A user heartbeat writes through ``Backend.heartbeat_activity_task``; the periodic extension
    through ``extend_activity_task``, which does not count as a heartbeat.
    """

    def __init__(self, backend: Backend, task: ActivityTask, lease_interval: float) -> None:
        self.backend = backend
        self.task = task
        attributes = task.event.attributes
        assert isinstance(attributes, ActivityScheduledAttributes)
        self._heartbeat_timeout = attributes.heartbeat_timeout
        self._start_to_close = attributes.start_to_close_timeout
        self._throttle = min(_HEARTBEAT_WRITE_INTERVAL, lease_interval)
        if self._heartbeat_timeout is not None:
            self._throttle = min(self._throttle, self._heartbeat_timeout / 3)
        self.lease = _Lease(self.sync, lease_interval, backend.options.activity_lock.total_seconds())
        self._lock = threading.Lock()
        self._details: Payload | None = task.heartbeat_details or attributes.heartbeat_details
        self._unsent: Payload | None = None
        self._beat_pending = False
        self._last_write = float("-inf")
        self._last_beat = time.monotonic()
        self._started = time.monotonic()
        self.canceled = False

    def start(self) -> None:
        self._started = self._last_beat = time.monotonic()
        self._poke_deadline()

    def deadline(self) -> float | None:
        """When this worker expects the attempt's time to be up (monotonic); the backend's own
        deadline, on its clock, decides (its schedule-to-close part is not known here)."""
        candidates = []
        if self._start_to_close is not None:
            candidates.append(self._started + self._start_to_close)
        if self._heartbeat_timeout is not None:
            candidates.append(self._last_beat + self._heartbeat_timeout)
        return min(candidates) if candidates else None

    def timed_out(self) -> bool:
        """Whether the attempt's time is up by this worker's estimate (``deadline``)."""
        deadline = self.deadline()
        return deadline is not None and time.monotonic() >= deadline - _DEADLINE_SLACK

    def _poke_deadline(self) -> None:
        deadline = self.deadline()
        if deadline is not None:
            now = time.monotonic()
            self.lease.poke(deadline if deadline > now else now + _DEADLINE_RECHECK)

    def is_canceled(self) -> bool:
        return self.canceled or self.lease.lost

    def last_details(self) -> Payload | None:
        with self._lock:
            return self._details

    def heartbeat(self, details: Payload | None) -> None:
        """``activity.heartbeat(details)``, in the activity's thread."""
        self._raise_if_over()
        now = time.monotonic()
        with self._lock:
            if details is not None:
                self._details = self._unsent = details
            self._beat_pending = True
            self._last_beat = now
            due = now >= self._last_write + self._throttle
        if not due:
            self.lease.poke(self._last_write + self._throttle)
            return
        try:
            self.lease.extend()
        except LeaseLost:
            pass
        except Exception:
            # The backend is unreachable for a moment: the heartbeat thread writes it later.
            logger.warning("writing a heartbeat of activity %s failed; retrying", self.task.activity_id, exc_info=True)
        self._raise_if_over()

    def _raise_if_over(self) -> None:
        if self.lease.lost:
            raise ActivityLeaseLost("this attempt is over for this worker (its lease was lost or it timed out); stop working on it")
        if self.canceled:
            raise ActivityCanceled("the workflow canceled this activity")

    def sync(self) -> None:
        """Write what is due: the pending heartbeat (with new details), else extend the lease."""
        with self._lock:
            beat, details = self._beat_pending, self._unsent
            self._beat_pending, self._unsent = False, None
        if not beat:
            self.backend.extend_activity_task(self.task)
            self._poke_deadline()
            return
        try:
            stop = self.backend.heartbeat_activity_task(self.task, details)
        except LeaseLost:
            raise
        except BaseException:
            with self._lock:  # not written: the next sync tries again
                self._beat_pending = True
                if self._unsent is None:
                    self._unsent = details
            raise
        self._last_write = time.monotonic()
        if stop:
            self.canceled = True
        self._poke_deadline()


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
        backend_options = backend.options
        size, ttl = self.options.workflow_executor_cache_size, self.options.workflow_executor_cache_ttl
        self.cache = ExecutorCache(
            backend_options.executor_cache_size if size is None else size,
            backend_options.executor_cache_ttl if ttl is None else ttl,
        )
        #: Workflow tasks that replayed their history because the cache had no executor for them.
        self.replays = ReplayCount()
        self._stop = threading.Event()
        self._pollers: list[threading.Thread] = []
        self._lanes: dict[str, _Lane] = {}
        self._heartbeats = _Heartbeats()
        self._started = False
        self._client = Client(backend, registry=self.registry, instrumentation=self.instrumentation)
        self.registry.register_activity(self._deliver_signal, SIGNAL_ACTIVITY_NAME)
        self.registry.register_workflow(expire_workflow_instances, EXPIRATION_WORKFLOW_NAME)
        self.registry.register_activity(self._remove_finished_instances, EXPIRATION_ACTIVITY_NAME)
        self._payload_limits = backend_options.payload_limits(self.instrumentation.large_payload)
        self._runner = ActivityRunner(
            self.registry, backend_options.converter, backend_options.context_propagators,
            payload_limits=self._payload_limits,
        )
        self._propagators = self.instrumentation.propagators(backend_options.context_propagators)
        self._workflow_heartbeat = _interval(self.options.workflow_heartbeat_interval, backend_options.workflow_lock)
        self._activity_heartbeat = _interval(self.options.activity_heartbeat_interval, backend_options.activity_lock)
        self._in_flight = 0
        self._in_flight_lock = threading.Condition()
        self._lease_on_completion = backend.feature_supported(Feature.LEASE_ON_COMPLETION)
        self._scheduler: Scheduler | None = None
        self._failure: StoreUnavailable | None = None
        self._backoff = BlockBackoff(
            to_timedelta(self.options.blocked_retry_first_interval), to_timedelta(self.options.blocked_retry_max_interval)
        )
        deadlock_timeout = to_timedelta(self.options.workflow_deadlock_timeout).total_seconds()
        #: Where workflow code runs, watched for deadlocks (None: on the task's thread, unwatched).
        self._code = CodeThreads(deadlock_timeout) if deadlock_timeout > 0 else None
        self._sweeper: threading.Thread | None = None
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
        self._sweeper = threading.Thread(target=self._sweep_timeouts, name="workflows-timeouts", daemon=True)
        self._sweeper.start()
        if options.run_workflows and options.workflow_pollers:
            queues = _with_system_queue(options.workflow_queues)
            self.backend.prepare_workflow_queues(queues)
            lane = self._add_lane(
                "workflow", queues, options.max_parallel_workflow_tasks, options.workflow_pollers, self._run_workflow_tasks
            )
            self._start_pollers(lane, options.workflow_pollers, self.backend.get_workflow_tasks)
        if options.run_activities and options.activity_pollers:
            queues = _with_system_queue(options.activity_queues)
            self.backend.prepare_activity_queues(queues)
            lane = self._add_lane(
                "activity", queues, options.max_parallel_activity_tasks, options.activity_pollers, self._run_activity_task
            )
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

    def _add_lane(
        self, kind: str, queues: tuple[str, ...], parallel: int, pollers: int, run: Callable[..., None]
    ) -> _Lane:
        prefix = f"workflows-{kind}-task"
        outage = _Outage(kind, to_timedelta(self.options.max_outage).total_seconds())
        batch = max(1, min(_CLAIM_BATCH, parallel // max(1, pollers))) if parallel else _CLAIM_BATCH
        pool: ThreadPoolExecutor | _TaskThreads
        if kind == "activity":
            # Activities may hang; the worker must be able to give up on one (see _TaskThreads).
            pool = _TaskThreads(prefix)
        else:
            pool = ThreadPoolExecutor(max_workers=parallel or 10_000, thread_name_prefix=prefix)
        lane = self._lanes[kind] = _Lane(
            kind, queues, _Slots(parallel), pool, run, outage, detachable=kind == "activity", batch=batch
        )
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
        while not self._stop.is_set():
            if not lane.slots.acquire(self._stop):
                return
            # Tasks are claimed in batches, as many as there are free slots (up to this poller's share).
            slots = 1 + lane.slots.try_acquire(lane.batch - 1)
            polled_at = time.monotonic()
            try:
                tasks = poll(lane.queues, _POLL_TIMEOUT, slots)
            except Exception as exc:
                # The store is unreachable (a restarting database...): back off and retry, and
                # give up after max_outage so that a supervisor restarts the process.
                lane.slots.release(slots)
                delay = lane.outage.failed(exc)
                if delay is None:
                    self._give_up(lane.outage)
                    return
                self._stop.wait(delay)
                continue
            lane.outage.succeeded(polled_at)
            if len(tasks) < slots:
                lane.slots.release(slots - len(tasks))
            if self._heartbeats.releasing and tasks:
                # Claimed after the grace period: hand them to other workers rather than start them.
                lane.slots.release(len(tasks))
                for task in tasks:
                    self._abandon(self._abandon_of(lane), task)
                return
            for task in tasks:
                self._dispatch(lane, task)

    def _abandon_of(self, lane: _Lane) -> Callable[[Any], None]:
        if lane.kind == "workflow":
            return self.backend.abandon_workflow_task
        return self.backend.abandon_activity_task

    def _dispatch(self, lane: _Lane, task: Any) -> None:
        """Run a leased task on the lane's pool; the caller holds a slot for it."""
        with self._in_flight_lock:
            self._in_flight += 1
        lane.pool.submit(self._run_and_release, lane, task)

    def _run_and_release(self, lane: _Lane, task: Any) -> None:
        def release() -> None:
            lane.slots.release()
            with self._in_flight_lock:
                self._in_flight -= 1
                self._in_flight_lock.notify_all()

        done = _Release(release)
        try:
            with self.backend.task_scope():
                if lane.detachable:
                    lane.run(task, done)
                else:
                    lane.run(task)
        except Exception:
            logger.exception("running task %s failed", getattr(task, "id", task))
        finally:
            done()

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
    def failure(self) -> StoreUnavailable | None:
        """Why the worker stopped by itself (the store was unreachable too long), else None."""
        return self._failure

    def _give_up(self, outage: _Outage) -> None:
        with self._in_flight_lock:
            if self._failure is None:
                self._failure = StoreUnavailable(
                    f"the workflow store was unreachable for {outage.duration:.1f} s "
                    f"(max_outage {outage.max_outage:g} s); last error: {outage.last_error}"
                )
                logger.error("%s; stopping the worker", self._failure)
        self._stop.set()

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
        self._close(wait=True)
        return True

    def shutdown(self, grace_period: float | timedelta | None = None) -> bool:
        """Stop gracefully: stop polling, let the running tasks finish and commit for up to
        ``grace_period`` (default ``WorkerOptions.grace_period``), then release the leases of
        those still running, so that other workers take them at once (a released activity
        does not count against ``max_activity_leases``). Returns True if every task finished.

        Python cannot stop a thread: code that is stuck keeps its thread, and its late result
        is refused by the store. A process whose tasks did not all finish should exit with
        ``os._exit`` (``runworkflows`` does, with status 3) rather than wait for them."""
        self.stop()
        grace = to_timedelta(self.options.grace_period if grace_period is None else grace_period, what="grace_period")
        if self.wait_for_completion(grace.total_seconds()):
            return True
        # A poll under way would claim and hand back tasks; let it end before releasing.
        for thread in self._pollers:
            thread.join(_POLL_TIMEOUT + 5)
        released = self.release_running_tasks()
        logger.warning(
            "grace period of %g s over: released the leases of %d running task(s) for other workers",
            grace.total_seconds(), released,
        )
        self._close(wait=False)
        return False

    def release_running_tasks(self) -> int:
        """Give the leases of the running tasks back to the store (``Backend.abandon_*_task``),
        and those of tasks that start from now on, so that other workers take them at once;
        return how many were running. Their results, if they come, are discarded."""
        return self._heartbeats.release_all()

    def _close(self, *, wait: bool) -> None:
        """Tidy up after the tasks (``wait``: they all ended; else some are stuck)."""
        for lane in self._lanes.values():
            lane.pool.shutdown(wait=wait)
        if self._code is not None:
            self._code.close()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        self._heartbeats.stop()
        if self._stop_observing_backlog is not None:
            self._stop_observing_backlog()
            self._stop_observing_backlog = None
        # After an outage the worker gave up on, the store is not there to tidy: the registry
        # entry expires and the stickiness runs out by themselves (waiting on a locked or gone
        # store here would only delay the exit a supervisor is waiting for).
        reachable = self._failure is None
        self._presence.stop(unregister=reachable)
        if "workflow" in self._lanes and reachable:
            self._hand_back_sticky_instances()
        if self.replays.tasks:
            logger.info(
                "%d workflow task(s) replayed their history (%d events) for want of a cached executor; "
                "see docs/settings.md, The executor cache", self.replays.tasks, self.replays.events,
            )
        self.cache.clear()
        self.backend.release_finished_threads()  # e.g. the database connections of pollers and tasks

    def _hand_back_sticky_instances(self) -> None:
        """Let any worker continue the instances sticky to this one at once: their executors
        die with this worker's cache, and waiting out ``sticky_timeout`` would stall them."""
        try:
            released = self.backend.release_sticky_instances()
        except Exception as exc:  # the store is down (maybe why the worker stops): nothing lost
            logger.warning(
                "handing back sticky instances failed (%s: %s); they wait out the sticky timeout", type(exc).__name__, exc
            )
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
            payload_limits=self._payload_limits,
            clock=system_clock,
        )

    def _replaying(self, task: WorkflowTask, observed: WorkflowTaskObservation) -> Executor:
        """A new executor for a task whose instance has no (current) executor in the cache: it
        replays the whole stored history first, which the metrics count as a cache miss."""
        if task.last_sequence_id > 0:
            self.replays.add(task.last_sequence_id)
            observed.replaying(task.last_sequence_id)
        return self._new_executor(task)

    def _run_workflow_tasks(self, task: WorkflowTask) -> None:
        """Run a workflow task, then, on its slot, the follow-up task its completion handed to
        this worker (``_run_workflow_task``), and so on."""
        follow_up: WorkflowTask | None = task
        while follow_up is not None:
            follow_up = self._run_workflow_task(follow_up)

    def _run_workflow_task(self, task: WorkflowTask) -> WorkflowTask | None:
        """Run one workflow task; return a task of another execution that its completion leased
        to this worker to run next on the same slot, if any."""
        follow_up: WorkflowTask | None = None
        key = (task.instance.instance_id, task.instance.execution_id)
        lease = _Lease(
            lambda: self.backend.extend_workflow_task(task),
            self._workflow_heartbeat,
            self.backend.options.workflow_lock.total_seconds(),
        )
        lease.release = lambda: self.backend.abandon_workflow_task(task)
        what = f"workflow task of {task.instance}"
        with self.instrumentation.workflow_task(task) as observed, self._heartbeats.track(lease):
            if lease.released:  # the worker is giving up on its tasks: another one runs it
                return None
            lease.on_lost = lambda: self._report_lost(observed, what)
            running = self.cache.get(key) or self._replaying(task, observed)
            executor: Executor | None = running
            result: ExecutionResult | None = None
            failure: WorkflowError | None
            try:
                try:
                    result = self._execute(running, task)
                except StaleExecutor:
                    running.close()
                    executor = running = self._replaying(task, observed)
                    result = self._execute(running, task)
                failure = running.task_failure
            except WorkflowCodeHung as hung:
                # The executor stays with its stuck thread, which discards it if it ever returns.
                executor, failure = None, hung.error
            except Exception as exc:
                lease.finishing = True
                running.close()
                observed.blocked(exc)
                self._abandon(self.backend.abandon_workflow_task, task)
                return None
            if lease.lost:
                _discarding(lease, what)
                if executor is not None:
                    executor.close()
                return None
            # From here the task ends its lease itself (blocked or completed).
            lease.finishing = True
            if failure is not None:
                if self._failure_policy(task) == "block":
                    if executor is not None:
                        executor.close()  # a later attempt replays from the untouched history
                    if self._block(task, failure):
                        observed.blocked(failure)
                        return None
                logger.error("workflow %s (instance %s) fails: %s: %s", task.workflow_name, task.instance, failure.type, failure.message)
                if result is None:  # hung: no executor can finish this task
                    result = failed_task_result(
                        instance=task.instance,
                        workflow_name=task.workflow_name,
                        last_sequence_id=task.last_sequence_id,
                        new_events=task.new_events,
                        error=failure,
                    )
            assert result is not None
            if result.state is InstanceState.ACTIVE and executor is not None:
                # Cached before completing: the completion can hand the instance's next task to
                # another poller of this worker at once, and that one must find the executor.
                self.cache.put(key, executor)
            # The activities this task schedules, and the first workflow tasks of the executions
            # it starts (sub-workflows, a continue-as-new's next one), can be leased to us by the
            # completion itself.
            activities, slots = self._free_slots("activity", len(result.activity_events))
            # One of those workflow tasks can run next on this task's own slot: idle pollers
            # hold the free slots while they wait, so there rarely is another.
            starts = _starts(result)
            own_slot = 1 if starts and self._lease_on_completion and not self._stop.is_set() else 0
            workflows, workflow_slots = self._free_slots("workflow", starts - own_slot)
            leased: list[ActivityTask] = []
            leased_workflows: list[WorkflowTask] = []
            try:
                leased, leased_workflows = self._complete_workflow_task(
                    task, result, (activities, slots), (workflows, workflow_slots + own_slot), lease
                )
            except CompletionRejected:
                logger.info("new events arrived for %s while it finished; running it again", task.instance)
                self._discard(key, executor)
                return None
            except LeaseLost:
                if lease.released:
                    _discarding(lease, what)
                else:
                    self._report_lost(observed, what)
                self._discard(key, executor)
                return None
            except Exception:
                self._discard(key, executor)
                logger.exception("completing workflow task of %s failed", task.instance)
                self._abandon(self.backend.abandon_workflow_task, task)
                return None
            finally:
                if activities is not None and slots > len(leased):
                    activities.slots.release(slots - len(leased))
                dispatched = max(0, len(leased_workflows) - own_slot)
                if workflows is not None and workflow_slots > dispatched:
                    workflows.slots.release(workflow_slots - dispatched)
            observed.committed(result, executor)
            for activity_task in leased:
                assert activities is not None
                self._dispatch(activities, activity_task)
            if own_slot and leased_workflows:
                follow_up = leased_workflows.pop(0)
            for workflow_task in leased_workflows:
                assert workflows is not None
                self._dispatch(workflows, workflow_task)
        if result.state is not InstanceState.ACTIVE and executor is not None:
            executor.close()
        self._notify("workflow_task_completed", task=task, result=result)
        return follow_up

    def _execute(self, executor: Executor, task: WorkflowTask) -> ExecutionResult:
        """Run the task's workflow code, on a watched code thread unless deadlock detection is
        off. History is read here, on the task's thread: only the code runs on the other one,
        so the deadlock watch times code, not the database."""
        history = None
        if executor.needs_history(task.last_sequence_id):
            history = self.backend.get_workflow_instance_history(task.instance, executor.last_sequence_id or None)

        # The code thread runs in this thread's context (contextvars: the task's trace span, so
        # that what the workflow schedules continues its trace).
        context = contextvars.copy_context()

        def run() -> ExecutionResult:
            return context.run(
                executor.execute_task, last_sequence_id=task.last_sequence_id, new_events=task.new_events, history=history
            )

        if self._code is None:
            return run()
        name = task.workflow_name or executor.state.name or "?"
        return self._code.run(
            run,
            executor.state.scheduler,
            on_abandoned=executor.close,
            describe=lambda: f"workflow {name} (instance {task.instance.instance_id}, execution {task.instance.execution_id})",
        )

    def _failure_policy(self, task: WorkflowTask) -> str:
        options = self.options
        return options.workflow_failure_policies.get(task.workflow_name, options.workflow_failure_policy)

    def _block(self, task: WorkflowTask, failure: WorkflowError) -> bool:
        """Block the task (see the module docstring); False if the backend cannot, so the
        workflow fails instead. A lost lease or a backend error leaves the task to others."""
        try:
            blocked = self.backend.block_workflow_task(task, failure.to_info(), self._backoff)
        except NotSupported:
            logger.warning("%s cannot block workflow tasks: failing %s instead", type(self.backend).__name__, task.instance)
            return False
        except LeaseLost:
            logger.warning("lost the lease of workflow task %s before blocking it", task.instance)
            return True
        except Exception:
            logger.exception("blocking the workflow task of %s failed", task.instance)
            self._abandon(self.backend.abandon_workflow_task, task)
            return True
        logger.error(
            "workflow %s (instance %s) is blocked since %s, attempt %d, next try at %s: %s: %s",
            task.workflow_name,
            task.instance,
            blocked.since.isoformat(),
            blocked.attempts,
            blocked.retry_at.isoformat(),
            failure.type,
            failure.message,
        )
        self._notify("workflow_task_blocked", task=task, blocked=blocked)
        return True

    def _complete_workflow_task(
        self,
        task: WorkflowTask,
        result: ExecutionResult,
        activities: tuple[_Lane | None, int],
        workflows: tuple[_Lane | None, int],
        lease: _Lease,
    ) -> tuple[list[ActivityTask], list[WorkflowTask]]:
        """Commit the task's result, through transient store errors (``completions``); return
        the tasks the completion leased to this worker, for the (lane, free slots) given."""

        def request(lane: _Lane | None, slots: int) -> LeaseRequest:
            return NO_LEASES if lane is None or not slots else LeaseRequest(lane.queues, slots)

        completion = WorkflowTaskCompletion(result, request(*activities), request(*workflows))
        # The task's own WorkflowTaskStarted event, new in every run of a task: in the history,
        # it says this completion committed (and not another worker's run of the same events).
        marker = result.executed[0].id if result.executed else None

        def committed() -> bool:
            if marker is None:
                return False
            try:
                return self.backend.has_event(task.instance, marker, task.last_sequence_id)
            except InstanceNotFound:  # a continue-as-new that removed the execution's rows
                return completion.finishing

        done = commit(
            lambda: self.backend.complete_workflow_task(task, completion),
            committed=committed,
            lease_valid_until=lambda: lease.valid_until,
            what=f"workflow task of {task.instance}",
        )
        leased = list(done.value or ())
        return (
            [t for t in leased if isinstance(t, ActivityTask)],
            [t for t in leased if isinstance(t, WorkflowTask)],
        )

    def _discard(self, key: tuple[str, str], executor: Executor | None) -> None:
        """Drop an executor whose task was not committed (it is ahead of the stored history)."""
        cached = self.cache.get(key)
        if cached is not None and cached is not executor:
            self.cache.put(key, cached)  # another task's executor: keep it
        # Had another poller taken it meanwhile, its newer task would find it stale and replay.
        if executor is not None:
            executor.close()

    # -- activity tasks ----------------------------------------------------------------------

    def _run_activity_task(self, task: ActivityTask, release: Callable[[], None]) -> None:
        attempt = _ActivityAttempt(self.backend, task, self._activity_heartbeat)
        lease = attempt.lease
        lease.release = lambda: self.backend.abandon_activity_task(task)
        what = f"activity {task.activity_id}"
        with self.instrumentation.activity_task(task) as observed, self._heartbeats.track(lease):

            def lost() -> None:
                if attempt.timed_out():
                    logger.warning("%s timed out on this worker; discarding its result", what)
                else:
                    self._report_lost(observed, what)

            def give_up() -> None:
                # The attempt is over (lease lost, a timeout passed): stop counting it, so that its
                # slot serves other tasks and stop() does not wait for code that may never return.
                lost()
                logger.info("%s is over for this worker; not waiting for it", what)
                release()

            lease.on_lost = give_up
            if lease.released:  # the worker is giving up on its tasks: another one runs it
                return
            attempt.start()
            attributes = self._runner.run(
                activity_id=task.activity_id,
                instance=task.instance,
                attributes=task.event.attributes,  # type: ignore[arg-type]
                heartbeat=attempt.heartbeat,
                is_canceled=attempt.is_canceled,
                heartbeat_details=task.heartbeat_details,
            )
            observed.finished(attributes)
            if lease.lost:
                _discarding(lease, what)
                return
            lease.finishing = True
            if isinstance(attributes, ActivityFailedAttributes):
                # The next attempt resumes from the last details this one reported.
                attributes = dataclasses.replace(attributes, heartbeat_details=attempt.last_details())
            result = new_event(attributes, system_clock.now(), schedule_event_id=task.event.schedule_event_id)
            # The workflow can continue here at once: the completion may lease its next task to us.
            workflows, slots = self._free_slots("workflow", 1)
            next_task: WorkflowTask | None = None

            def write() -> WorkflowTask | None:
                if slots:
                    assert workflows is not None
                    return self.backend.complete_activity_task(task, result, workflow_queues=workflows.queues)
                self.backend.complete_activity_task(task, result)
                return None

            def committed() -> bool:
                try:
                    return self.backend.has_event(task.instance, result.id)
                except InstanceNotFound:
                    return False

            try:
                next_task = commit(
                    write, committed=committed, lease_valid_until=lambda: lease.valid_until, what=f"the result of {what}"
                ).value
            except LeaseLost:
                if lease.released:
                    _discarding(lease, what)
                else:
                    lost()
                return
            finally:
                if slots and next_task is None:
                    assert workflows is not None
                    workflows.slots.release()
            if next_task is not None:
                assert workflows is not None
                self._dispatch(workflows, next_task)
        self._notify("activity_task_completed", task=task, result=result)

    def _sweep_timeouts(self) -> None:
        """The sweeper thread: fail the activity attempts and end the executions whose timeouts
        passed, on any worker; the backend fences each so that one sweeper records it."""
        failing_since: float | None = None
        while not self._stop.wait(_SWEEP_INTERVAL):
            # Executors idle past their TTL release their memory now, not at the next put.
            self.cache.expire()
            try:
                self.backend.time_out_activity_tasks()
                self.backend.time_out_workflow_instances()
                failing_since = None
            except Exception as exc:
                # The backend is unreachable: say so in a line once, then again every minute (the
                # pollers report the outage too; the traceback at DEBUG).
                now = time.monotonic()
                if failing_since is None or now - failing_since > 60:
                    logger.warning("enforcing timeouts failed (%s); retrying", one_line(exc))
                    failing_since = now
                logger.debug("enforcing timeouts failed", exc_info=True)

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

    def _report_lost(self, observed: WorkflowTaskObservation | ActivityObservation, what: str) -> None:
        """A real loss: the task still ran when another worker took its lease (or it expired)."""
        logger.warning("lost the lease of %s while it ran (another worker has it now); discarding its result", what)
        observed.lease_lost()

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


def _discarding(lease: _Lease, what: str) -> None:
    """Say why a task that ran to its end commits nothing (its loss was reported when found)."""
    why = "its lease was released at shutdown" if lease.released else "its lease is gone"
    logger.info("%s: %s; discarding its result", what, why)


def _starts(result: ExecutionResult) -> int:
    """How many executions the task's completion starts: the most workflow tasks it could
    lease to this worker."""
    return sum(1 for e in result.workflow_events if e.event.type is EventType.WORKFLOW_EXECUTION_STARTED)


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


__all__ = ["ExecutionResult", "StoreUnavailable", "Worker", "WorkerOptions", "WorkflowOrchestrator"]
