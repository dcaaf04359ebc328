"""Deadlock detection: workflow code that does not yield back to the engine (port of
go-workflows' coroutine timeout in ``internal/sync/coroutine.go``, which panics after 40 s;
Temporal fails the workflow task after 2 s).

Workflow code runs between two awaits of the workflow API in one "step" of the coroutine
scheduler (``coroutines.Scheduler``); a step that sleeps, blocks on I/O or computes for long
holds its worker's task. ``CodeThreads`` runs workflow code on daemon threads of its own while
the calling task thread watches the scheduler's current step: one that runs longer than the
timeout is a deadlock. The task thread then gets ``WorkflowCodeHung`` with a
``DeadlockDetected`` error naming the workflow and the stack of the stuck code, and goes on
(its worker blocks the instance and releases the concurrency slot).

A Python thread cannot be killed. The stuck thread is abandoned: an exception is raised in it
(``PyThreadState_SetAsyncExc``, as Temporal's Python SDK does), which ends a pure-Python loop at
its next bytecode, while a ``time.sleep`` or a blocking call only notices once it returns. When
the thread gets back, it drops what it computed, closes its executor (``on_abandoned``) and
exits; the next workflow task gets a new thread. The threads are daemon threads, so a process
stopping (``SIGTERM``) never waits for a stuck one.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from . import coroutines
from .coroutines import Scheduler
from .errors import DeadlockDetected

T = TypeVar("T")

logger = logging.getLogger("django_workflows.worker")


class DeadlockInterrupt(BaseException):
    """Raised inside abandoned workflow code to stop it (a ``BaseException``, so that an
    ``except Exception`` in workflow code does not swallow it)."""


class WorkflowCodeHung(Exception):
    """The workflow code of a task did not yield within the timeout; ``error`` says where."""

    def __init__(self, error: DeadlockDetected) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Job(Generic[T]):
    fn: Callable[[], T]
    on_abandoned: Callable[[], None] | None
    # SimpleQueues (C) for the hand-offs: several times cheaper than Events, and a workflow task
    # makes two of them.
    done: queue.SimpleQueue[bool] = field(default_factory=queue.SimpleQueue)
    result: Any = None
    error: BaseException | None = None
    finished: bool = False


class _CodeThread:
    """One daemon thread that runs jobs handed to it, one at a time."""

    def __init__(self, owner: CodeThreads, name: str) -> None:
        self._owner = owner
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.abandoned = False
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def submit(self, job: _Job[Any]) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        self._jobs.put(None)

    def abandon(self, job: _Job[Any]) -> bool:
        """Give the thread up while it runs ``job``; False if the job finished meanwhile."""
        with self._lock:
            if job.finished:
                return False
            self.abandoned = True
            return True

    def _loop(self) -> None:
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                try:
                    job.result = job.fn()
                except BaseException as exc:  # handed to the waiting task thread
                    job.error = exc
                with self._lock:
                    job.finished = True
                    abandoned = self.abandoned
                job.done.put(True)
                if abandoned:
                    logger.warning("abandoned workflow code returned; its result is discarded")
                    if job.on_abandoned is not None:
                        job.on_abandoned()
                    return
                if not self._owner._idle_again(self):
                    return
        except BaseException:  # noqa: BLE001 - a late DeadlockInterrupt on the way out
            return


class CodeThreads:
    """Runs workflow code on daemon threads and watches it for deadlocks (see the module)."""

    def __init__(self, timeout: float, *, name: str = "workflows-code") -> None:
        if timeout <= 0:
            raise ValueError(f"the deadlock timeout must be positive, got {timeout!r}")
        self.timeout = timeout
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[_CodeThread] = []
        self._count = 0
        self._closed = False
        #: Threads abandoned to stuck code so far.
        self.abandoned = 0

    def run(self, fn: Callable[[], T], scheduler: Scheduler, *, on_abandoned: Callable[[], None] | None = None, describe: Callable[[], str] = lambda: "workflow code") -> T:
        """Run ``fn`` (which drives ``scheduler``) on a code thread and return its result (or
        raise its error). Raises ``WorkflowCodeHung`` if one step of ``scheduler`` runs longer
        than the timeout; ``on_abandoned`` then runs on the stuck thread if it ever returns."""
        job: _Job[T] = _Job(fn, on_abandoned)
        worker = self._take()
        worker.submit(job)
        interval = min(0.25, self.timeout / 4)
        while True:
            try:
                job.done.get(timeout=interval)
                break
            except queue.Empty:
                pass
            started = scheduler.step_started
            if not started or time.monotonic() - started <= self.timeout:
                continue
            current = scheduler.current
            stack = _stack_of(worker.thread)
            if not worker.abandon(job):
                break  # it finished just now
            with self._lock:
                self.abandoned += 1
            _interrupt(worker.thread)
            raise WorkflowCodeHung(_deadlock_error(describe(), current.name if current else "?", self.timeout, stack))
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        """Let idle threads end (stuck ones are daemon threads and end with the process)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def _take(self) -> _CodeThread:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self._count += 1
            number = self._count
        return _CodeThread(self, f"{self._name}-{number}")

    def _idle_again(self, worker: _CodeThread) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._idle.append(worker)
            return True


def _stack_of(thread: threading.Thread) -> list[traceback.FrameSummary]:
    """The stack of the workflow code running in ``thread``, from the coroutine step inwards."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return []
    stack = traceback.extract_stack(frame)
    engine_file = coroutines.__file__
    steps = [index for index, summary in enumerate(stack) if summary.filename == engine_file]
    return stack[steps[-1] + 1 :] if steps else list(stack)


def _libraries() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib") if name in paths})


def _culprit(stack: list[traceback.FrameSummary]) -> traceback.FrameSummary:
    """The innermost frame of the application's own code (not Python's library, not an
    installed package): where the workflow called what hung; else the innermost frame."""
    libraries = _libraries()
    for summary in reversed(stack):
        if not summary.filename.startswith(libraries):
            return summary
    return stack[-1]


def _deadlock_error(workflow: str, coroutine: str, timeout: float, stack: list[traceback.FrameSummary]) -> DeadlockDetected:
    where = ""
    if stack:
        culprit = _culprit(stack)
        where = f" It was at {culprit.filename}:{culprit.lineno} in {culprit.name}: {(culprit.line or '').strip()}"
    message = (
        f"potential deadlock: {workflow} did not yield back to the engine within {timeout:g} s (coroutine "
        f"{coroutine}).{where} Workflow code must not sleep, block on I/O or compute for long: use "
        "workflow.sleep, or an activity."
    )
    trace = "Stack of the workflow code when the deadlock was detected:\n" + "".join(traceback.format_list(stack))
    return DeadlockDetected(message, stacktrace=trace)


def _interrupt(thread: threading.Thread) -> None:
    """Raise ``DeadlockInterrupt`` in ``thread`` at its next bytecode (CPython only)."""
    ident = thread.ident
    api = getattr(ctypes, "pythonapi", None)
    if ident is None or api is None or not hasattr(api, "PyThreadState_SetAsyncExc"):
        return
    api.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(DeadlockInterrupt))
