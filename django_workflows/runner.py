"""The process that ``manage.py runworkflows`` runs: a ``Worker`` wired to Django.

It registers everything the apps' ``workflows`` modules registered, connects the Django
signals, turns SIGTERM/SIGINT into a graceful stop (no new tasks; in-flight ones finish and
commit), and a second signal into an immediate exit (leases then expire and other workers take
over).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, fields
from typing import Any, TextIO

from .backends import workflow_backends
from .registration import registry
from .worker import Worker, WorkerOptions

logger = logging.getLogger("django_workflows.runner")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """What the command line chose; ``None`` means the ``WorkerOptions`` default."""

    backend_alias: str = "default"
    queues: tuple[str, ...] = ("default",)
    run_workflows: bool = True
    run_activities: bool = True
    workflow_pollers: int | None = None
    activity_pollers: int | None = None
    max_parallel_workflow_tasks: int | None = None
    max_parallel_activity_tasks: int | None = None
    until_idle: bool = False
    run_scheduler: bool = True
    #: The level of the ``django_workflows`` loggers (None: INFO when this process configures
    #: them, else what the project's ``LOGGING`` says).
    log_level: str | None = None
    app_version: str | None = None

    def worker_options(self, **extra: Any) -> WorkerOptions:
        chosen = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name in {x.name for x in fields(WorkerOptions)} and getattr(self, f.name) is not None
        }
        return WorkerOptions(workflow_queues=self.queues, activity_queues=self.queues, **chosen, **extra)


def build_worker(settings: WorkerSettings) -> Worker:
    from .signals import DjangoSignalListener

    backend = workflow_backends[settings.backend_alias]
    return Worker(backend, settings.worker_options(listeners=(DjangoSignalListener(),)), registry=registry)


#: The format of the console handler ``console_logging`` adds.
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def console_logging(level: str | None) -> tuple[logging.Handler | None, int]:
    """Let a project that configured no logging see what its worker does: a console handler on
    the ``django_workflows`` logger at ``level`` (default INFO). A project whose ``LOGGING`` (or
    root logger) has handlers keeps them; ``level``, if given, is set on the logger.

    Returns the handler added (or None) and the logger's previous level, for ``restore_logging``.
    """
    package_logger = logging.getLogger("django_workflows")
    previous = package_logger.level
    numeric = logging.INFO if level is None else logging.getLevelNamesMapping()[level.upper()]
    if package_logger.hasHandlers():
        if level is not None:
            package_logger.setLevel(numeric)
        return None, previous
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    package_logger.addHandler(handler)
    package_logger.setLevel(numeric)
    return handler, previous


def restore_logging(handler: logging.Handler | None, previous_level: int) -> None:
    package_logger = logging.getLogger("django_workflows")
    if handler is not None:
        package_logger.removeHandler(handler)
    package_logger.setLevel(previous_level)


def run_worker(settings: WorkerSettings, stdout: TextIO | None = None) -> None:
    handler, previous_level = console_logging(settings.log_level)
    try:
        _run_worker(settings)
    finally:
        restore_logging(handler, previous_level)


def _run_worker(settings: WorkerSettings) -> None:
    worker = build_worker(settings)
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stop_requested.is_set():
            logger.warning("second %s: exiting without waiting for running tasks", signal.Signals(signum).name)
            os._exit(1)
        logger.info("%s received: finishing running tasks, then exiting", signal.Signals(signum).name)
        stop_requested.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    workflows = sorted(name for name, _ in worker.registry.workflows())
    activities = sorted(name for name, _ in worker.registry.activities())
    worker.start()
    lanes = [
        f"{kind} tasks from {', '.join(queues)}"
        for kind, queues in (("workflow", worker.workflow_queues), ("activity", worker.activity_queues))
        if queues
    ]
    logger.info(
        "worker %s started (pid %d%s): %s; %d workflows (%s), %d activities",
        worker.worker_id,
        os.getpid(),
        f", app version {settings.app_version}" if settings.app_version else "",
        "; ".join(lanes) or "polling nothing",
        len(workflows),
        ", ".join(workflows),
        len(activities),
    )
    try:
        while not stop_requested.wait(0.5):
            if settings.until_idle and _idle(worker):
                logger.info("no active instances and no pending tasks: exiting")
                break
    finally:
        worker.stop()
        worker.wait_for_completion()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logger.info("worker stopped: %s", worker.worker_id)


def _idle(worker: Worker) -> bool:
    # Two readings a moment apart, so work that is being handed over between a task and the
    # next one is not mistaken for idleness.
    for attempt in range(2):
        if attempt:
            time.sleep(0.3)
        stats = worker.backend.get_stats()
        if (
            stats.active_workflow_instances
            or any(stats.pending_workflow_tasks.values())
            or any(stats.pending_activity_tasks.values())
            or worker.in_flight
        ):
            return False
    return True
