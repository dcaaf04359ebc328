"""The process that ``manage.py runworkflows`` runs: a ``Worker`` wired to Django.

It checks before starting that the worker can work at all (``prepare``: a known backend alias,
sensible flags, a reachable and migrated store), registers everything the apps' ``workflows``
modules registered, connects the Django signals, turns SIGTERM/SIGINT into a graceful stop (no
new tasks; in-flight ones finish and commit for up to ``WorkerOptions.grace_period``, then the
leases of those still running are released for other workers and the process exits with
``EXIT_GRACE_PERIOD_OVER``), and a second signal into an immediate exit with status 1 (leases
then expire and other workers take over). A worker that gave up on an unreachable store
(``WorkerOptions.max_outage``) makes ``run_worker`` raise ``WorkerFailed``, so the command exits
non-zero and a supervisor restarts it.
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
from .engine.core import validate_id
from .engine.errors import InstanceNotFound
from .registration import registry
from .worker import Worker, WorkerOptions

logger = logging.getLogger("django_workflows.runner")

#: After giving up on the store, how long to wait for running tasks before exiting anyway
#: (they cannot commit their results while the store is down).
OUTAGE_DRAIN_SECONDS = 10.0
#: The exit status of a worker whose grace period ended with tasks still running (their leases
#: released); 1 is for errors (and a second signal), 2 for flags that do not parse.
EXIT_GRACE_PERIOD_OVER = 3
#: Once the grace period is over, how long releasing the leases and tidying up may take before
#: the process exits anyway (a store that does not answer must not keep it alive).
RELEASE_SECONDS = 10.0
#: An instance id no one uses: looking it up tells whether the store answers.
_PROBE_INSTANCE_ID = "__django_workflows_probe__"


class WorkerSetupError(Exception):
    """The worker cannot start; the message names what is wrong and how to fix it (one line)."""


class WorkerFailed(Exception):
    """The worker stopped by itself (the store was unreachable for longer than ``max_outage``)."""


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
    max_outage: float | None = None
    workflow_failure_policy: str | None = None
    workflow_deadlock_timeout: float | None = None
    until_idle: bool = False
    run_scheduler: bool = True
    #: The level of the ``django_workflows`` loggers (None: INFO when this process configures
    #: them, else what the project's ``LOGGING`` says).
    log_level: str | None = None
    app_version: str | None = None
    grace_period: float | None = None
    workflow_executor_cache_size: int | None = None
    workflow_executor_cache_ttl: float | None = None

    def worker_options(self, **extra: Any) -> WorkerOptions:
        chosen = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name in {x.name for x in fields(WorkerOptions)} and getattr(self, f.name) is not None
        }
        return WorkerOptions(workflow_queues=self.queues, activity_queues=self.queues, **chosen, **extra)

    def validate(self) -> WorkerOptions:
        """The worker options these settings make; ``WorkerSetupError`` if they make no sense."""
        for queue in self.queues:
            try:
                validate_id(queue, "queue")
            except ValueError as exc:
                raise WorkerSetupError(f"--queue: {exc}") from None
        try:
            options = self.worker_options()
        except (TypeError, ValueError) as exc:
            raise WorkerSetupError(str(exc)) from None
        workflows = options.run_workflows and options.workflow_pollers > 0
        activities = options.run_activities and options.activity_pollers > 0
        if not workflows and not activities:
            raise WorkerSetupError(
                "this worker would poll for nothing: give --workflow-pollers or --activity-pollers a "
                "positive value (or drop --workflows-only/--activities-only)"
            )
        return options


def backend_for(alias: str) -> Any:
    """The backend of a ``WORKFLOWS`` alias; ``WorkerSetupError`` for an unknown or broken one."""
    from .backends.handler import InvalidWorkflowBackend

    try:
        aliases = list(workflow_backends)
    except InvalidWorkflowBackend as exc:
        raise WorkerSetupError(str(exc)) from None
    if alias not in aliases:
        raise WorkerSetupError(
            f"unknown workflow backend alias {alias!r}; the WORKFLOWS setting has: {', '.join(aliases)}"
        )
    try:
        return workflow_backends[alias]
    except InvalidWorkflowBackend as exc:
        raise WorkerSetupError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - e.g. the ORM backend asks a MySQL server for its version
        raise WorkerSetupError(_unreachable(alias, None, exc)) from None


def check_store(backend: Any, alias: str) -> None:
    """``WorkerSetupError`` unless the backend's store answers and, for the ORM backend, has
    every migration of this app applied on the backend's database."""
    from .backends.orm import OrmBackend

    if isinstance(backend, OrmBackend):
        try:
            unapplied = unapplied_migrations(backend.using)
        except Exception as exc:  # noqa: BLE001 - any failure to read the schema means the same
            raise WorkerSetupError(_unreachable(alias, backend, exc)) from None
        if unapplied:
            database = "" if backend.using == "default" else f" --database {backend.using}"
            raise WorkerSetupError(
                f"the workflow tables are not migrated on database {backend.using!r} (unapplied: "
                f"{', '.join(unapplied)}); run `manage.py migrate{database}` first"
            )
    try:
        backend.get_latest_execution(_PROBE_INSTANCE_ID)
    except InstanceNotFound:
        pass
    except Exception as exc:  # noqa: BLE001 - any failure means the store does not answer
        raise WorkerSetupError(_unreachable(alias, backend, exc)) from None


def unapplied_migrations(using: str) -> list[str]:
    """This app's migrations not applied on database ``using`` (its dependencies included)."""
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[using])
    targets = [node for node in executor.loader.graph.leaf_nodes() if node[0] == "django_workflows"]
    return [f"{migration.app_label}.{migration.name}" for migration, backwards in executor.migration_plan(targets) if not backwards]


def _unreachable(alias: str, backend: Any, exc: BaseException) -> str:
    where = f" (database {backend.using!r})" if backend is not None and hasattr(backend, "using") else ""
    message = " ".join(str(exc).split())
    return (
        f"cannot reach the store of workflow backend {alias!r}{where}: {type(exc).__name__}: {message}; "
        "is the server running and are the connection settings right?"
    )


def prepare(settings: WorkerSettings) -> Any:
    """The backend of a worker, after checking the settings and the store; ``WorkerSetupError``
    names what is wrong."""
    settings.validate()
    backend = backend_for(settings.backend_alias)
    check_store(backend, settings.backend_alias)
    return backend


def build_worker(settings: WorkerSettings, backend: Any = None) -> Worker:
    """A worker for ``settings``, on ``backend`` if it was prepared already."""
    from .signals import DjangoSignalListener

    if backend is None:
        backend = prepare(settings)
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


def run_worker(settings: WorkerSettings, stdout: TextIO | None = None, *, backend: Any = None) -> None:
    """Run a worker until a signal, until idle (``until_idle``) or until it gives up on the store
    (then ``WorkerFailed``). ``backend``: the one ``prepare`` returned, if it was called."""
    handler, previous_level = console_logging(settings.log_level)
    try:
        _run_worker(settings, backend)
    finally:
        restore_logging(handler, previous_level)


def _run_worker(settings: WorkerSettings, backend: Any) -> None:
    worker = build_worker(settings, backend)
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
            if worker.failure is not None:
                break
            if settings.until_idle and _idle(worker):
                logger.info("nothing is ready to run: exiting (--until-idle)")
                break
    finally:
        worker.stop()
        failure = worker.failure
        if failure is not None:
            # Not cancelled: whatever still waits on the dead store (a thread the interpreter
            # joins at exit included) must not keep the process from the supervisor's restart.
            _watchdog(OUTAGE_DRAIN_SECONDS + RELEASE_SECONDS, 1)
            drained = worker.wait_for_completion(OUTAGE_DRAIN_SECONDS)
        else:
            drained = _shut_down(worker)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if failure is not None and not drained:
            # Task threads are stuck on the dead store; the interpreter would wait for them at exit.
            logger.error("%s; exiting without waiting for %d running task(s)", failure, worker.in_flight)
            _exit(1)
        if not drained:
            # Their threads are stuck in code Python cannot stop; the interpreter would wait.
            logger.error(
                "worker %s exits with status %d: tasks still ran when the grace period ended (their leases are released)",
                worker.worker_id, EXIT_GRACE_PERIOD_OVER,
            )
            _exit(EXIT_GRACE_PERIOD_OVER)
        logger.info("worker stopped: %s", worker.worker_id)
    if failure is not None:
        raise WorkerFailed(f"{failure}; exiting so that a supervisor can restart the worker")


def _shut_down(worker: Worker) -> bool:
    """``Worker.shutdown`` within a bound: past the grace period and ``RELEASE_SECONDS``, a
    watchdog ends the process (releasing the leases may wait on a store that does not answer)."""
    grace = worker.options.grace_period.total_seconds()  # type: ignore[union-attr]
    watchdog = _watchdog(grace + RELEASE_SECONDS, EXIT_GRACE_PERIOD_OVER)
    try:
        return worker.shutdown()
    finally:
        watchdog.cancel()


def _watchdog(seconds: float, status: int) -> threading.Timer:
    """A daemon timer that ends the process with ``status`` after ``seconds`` (cancel it if
    the process gets there by itself)."""

    def overdue() -> None:
        logger.error("stopping took longer than %g s; exiting with status %d", seconds, status)
        _exit(status)

    timer = threading.Timer(seconds, overdue)
    timer.daemon = True
    timer.start()
    return timer


def _exit(status: int) -> None:
    """Exit now, without waiting for threads (they are stuck); the log lines go out first."""
    logging.shutdown()
    os._exit(status)


def _idle(worker: Worker) -> bool:
    """Nothing is ready to run now: no workflow task with visible events, no activity task, nothing
    running here. Instances that wait for a timer or a signal do not count: ``--until-idle`` is
    for CI jobs that run what can run and go on."""
    # Two readings a moment apart, so work that is being handed over between a task and the
    # next one is not mistaken for idleness.
    for attempt in range(2):
        if attempt:
            time.sleep(0.3)
        try:
            stats = worker.backend.get_stats()
        except Exception:  # noqa: BLE001 - the store is down: not idle (the pollers handle the outage)
            return False
        if any(stats.pending_workflow_tasks.values()) or any(stats.pending_activity_tasks.values()) or worker.in_flight:
            return False
    return True
