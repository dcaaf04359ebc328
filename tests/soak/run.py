"""The soak driver: a store of its own, ``manage.py runworkflows`` worker processes of the
testproject, N ``soak_workflow`` instances started and signaled through the Client, SIGKILLs of
random workers (each replaced at once) and optionally one restart of the store's server, spread
over the run by its progress; then every worker stopped with SIGTERM and the invariant check
(``check``) over the store and the activity ledger.

``python -m tests.soak`` parses the flags (``__main__``); ``run_soak`` does the rest and returns
a ``SoakReport``. Django is set up here, after the store exists, because the settings read the
store's address from the environment (the modules imported before need no settings).
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from django_workflows.client import Client, InstanceAlreadyExists, InstanceFinished, WorkflowInstanceOptions
from testproject.testapp.soak import SIGNAL, STEPS
from tests.conftest import ManageProcess, wait_for
from tests.django.private_servers import manage_env
from tests.soak.check import RunRecord, check_ledger, check_store, instance_id, ledger_progress, running_activities
from tests.soak.leftovers import leftovers
from tests.soak.stores import SoakStore

T = TypeVar("T")

#: The restart waits until this many activities run (started, not ended) and keeps the server
#: down longer than an activity takes (``ACTIVITY_SECONDS``): their results arrive while it is away.
RESTART_AMID_ACTIVITIES = 3
RESTART_DOWN_SECONDS = 1.0


@dataclass(frozen=True)
class SoakConfig:
    backend: str
    workflows: int = 100
    workers: int = 3
    kills: int = 3
    restart: bool = False
    #: Lease timeouts of the workers' backend: how long the work of a killed worker waits.
    lease_seconds: float = 4.0
    sticky_seconds: float = 2.0
    #: Gives up waiting for the instances to finish after this long (they are then reported).
    timeout: float = 600.0
    seed: int = 0
    #: Where the logs and the ledger go (a new temporary directory by default; kept when the
    #: run fails or ``keep`` is set).
    workdir: Path | None = None
    keep: bool = False

    def __post_init__(self) -> None:
        if self.workflows < 1 or self.workers < 1 or self.kills < 0:
            raise ValueError("--workflows and --workers must be at least 1, --kills at least 0")
        if self.restart and self.backend == "sqlite":
            raise ValueError("--restart needs a server (mysql, postgres or redis): SQLite has none to restart")


@dataclass
class SoakReport:
    config: dict[str, Any]
    violations: list[str] = field(default_factory=list)
    #: Re-executions of activities whose result the store's restart lost although their lease
    #: outlasted the outage (``LedgerCheck.after_restart``).
    after_restart: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    workdir: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations and not self.after_restart

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def summary(self) -> str:
        f = self.figures
        lines = [
            f"soak on {self.config['backend']}: {self.config['workflows']} workflows, {self.config['workers']} workers, "
            f"{f.get('kills', 0)} kills, {len(f.get('restarts', []))} restarts, {f.get('duration_s')} s",
            f"  throughput: {f.get('workflows_per_s')} workflows/s ({f.get('activities_per_s')} activities/s, "
            "sub-workflows counted)",
            f"  activity executions: {f.get('activity_executions')}, re-executions: {f.get('reexecutions')} "
            f"(after kills: {f.get('reexecutions_after_kills')}, after the restart: {f.get('reexecutions_after_restart')}, "
            f"{f.get('reexecutions_after_restart_beyond_lease')} of them after an outage the lease could not outlast)",
        ]
        if "recovery_after_kill_s" in f:
            lines.append(f"  killed work taken over after: {f['recovery_after_kill_s']} s")
        for restart in f.get("restarts", []):
            lines.append(
                f"  restart amid {restart['activities_running']} running activities: store away {restart['outage_s']} s, "
                f"next activity {restart['first_activity_after_s']} s later"
            )
        lines.append(f"  worker log lines: {f.get('log_lines')}")
        broken = self.violations + self.after_restart
        lines.append("  invariants: " + ("all hold" if self.ok else f"{len(broken)} violations"))
        lines += [f"    {line}" for line in broken[:50]]
        if len(broken) > 50:
            lines.append(f"    ... and {len(broken) - 50} more (see the JSON report)")
        if self.workdir:
            lines.append(f"  logs and ledger: {self.workdir}")
        return "\n".join(lines)


class Workers:
    """The ``runworkflows`` processes: a fixed number kept alive, SIGKILLed and replaced on demand."""

    def __init__(self, env: dict[str, str], log_dir: Path, count: int, rng: random.Random) -> None:
        self.env, self.log_dir, self.count, self.rng = env, log_dir, count, rng
        self.running: list[ManageProcess] = []
        self.all: list[ManageProcess] = []
        self.killed: dict[int, float] = {}
        #: Workers that exited without being killed or stopped, or never started (violations).
        self.died: list[str] = []

    def start(self) -> None:
        while len(self.running) < self.count:
            log = self.log_dir / f"worker-{len(self.all)}.log"
            process = ManageProcess(["runworkflows", "--no-scheduler"], self.env, log)
            self.running.append(process)
            self.all.append(process)

    def kill_one(self) -> int:
        victim = self.rng.choice(self.running)
        victim.send(signal.SIGKILL)
        victim.wait(30)
        self.killed[victim.pid] = time.time()
        self.running.remove(victim)
        self.start()
        return victim.pid

    def replace_dead(self) -> None:
        for process in list(self.running):
            code = process.proc.poll()
            if code is not None:
                self.died.append(f"worker pid {process.pid} exited by itself with status {code} ({process.log_path})")
                self.running.remove(process)
        self.start()

    def wait_started(self, timeout: float = 60) -> list[str]:
        """Wait until every running worker has logged its start; the problems of those that did not."""
        problems = []
        for process in self.running:
            try:
                wait_for(lambda p=process: " started (pid " in p.output(), timeout=timeout, what=f"worker {process.pid} to start")
            except AssertionError as exc:
                problems.append(str(exc))
        return problems

    def stop(self, timeout: float = 90) -> list[str]:
        """SIGTERM every running worker; the problems of those that do not stop cleanly."""
        # A replacement still setting Django up has no SIGTERM handler yet: SIGTERM would kill
        # it rather than stop it, which says nothing about the engine.
        problems = self.wait_started()
        for process in self.running:
            process.send(signal.SIGTERM)
        for process in self.running:
            try:
                code: int | None = process.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
            if code != 0:
                problems.append(f"worker pid {process.pid} exited with {code} after SIGTERM ({process.log_path})")
        for process in self.all:
            process.close()
        return problems

    def close(self) -> None:
        """SIGKILL whatever still runs (after a failure of the driver itself)."""
        for process in self.all:
            process.close()

    def log_lines(self) -> dict[str, int]:
        """Counts of the worker log lines worth a look (warnings, errors, tracebacks)."""
        counts = {"WARNING": 0, "ERROR": 0, "Traceback": 0}
        for process in self.all:
            for line in process.log_path.read_text(errors="replace").splitlines():
                for word in counts:
                    if word in line:
                        counts[word] += 1
        return counts


def run_soak(config: SoakConfig) -> SoakReport:
    """Run one soak and check it; never raises for a broken invariant (the report lists it)."""
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix=f"wf-soak-{config.backend}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = SoakReport(config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()})
    store = SoakStore(config.backend, workdir / "store")
    try:
        store.start()
        _drive(config, store, workdir, report)
    finally:
        store.close()
    if report.ok and not config.keep and config.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        report.workdir = str(workdir)
    return report


def _drive(config: SoakConfig, store: SoakStore, workdir: Path, report: SoakReport) -> None:
    options = {
        "workflow_lock_timeout": config.lease_seconds,
        "activity_lock_timeout": config.lease_seconds,
        "sticky_timeout": config.sticky_seconds,
    }
    env = manage_env(store.env, options)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "testproject.settings"
    import django

    django.setup()
    from django.core.management import call_command

    if store.uses_orm:
        call_command("migrate", verbosity=0)
    soak = Soak(config, store, Workers(env, workdir, config.workers, random.Random(config.seed)), workdir)
    try:
        soak.run()
    finally:
        soak.workers.close()
    record, workers = soak.record, soak.workers
    if soak.timed_out:
        report.violations.append(f"the instances did not all finish within {config.timeout} s")
    report.violations += workers.died + soak.stop_problems
    report.violations += check_store(soak.client, record)
    report.violations += leftovers(soak.client.backend)
    ledger = check_ledger(record)
    report.violations += ledger.problems
    report.after_restart = ledger.after_restart
    duration = record.finished_at - record.started_at
    report.figures.update(
        duration_s=round(duration, 1),
        kills=len(record.killed),
        workflows_per_s=round(2 * config.workflows / duration, 1),
        activities_per_s=round(soak.total / duration, 1),
        log_lines=workers.log_lines(),
        **ledger.figures,
    )


class Soak:
    """The workload and the faults of one run (Django is set up: the Client needs the settings)."""

    def __init__(self, config: SoakConfig, store: SoakStore, workers: Workers, workdir: Path) -> None:
        self.config, self.store, self.workers = config, store, workers
        self.client = Client()
        self.record = RunRecord(workflows=config.workflows, ledger=workdir / "ledger.jsonl", lease_seconds=config.lease_seconds)
        #: Activity executions a clean run has.
        self.total = config.workflows * len(STEPS)
        # Faults at fixed shares of the activity executions done, so they land while work is
        # in flight whatever the machine's speed: the kills spread over 10-85 %, the restart at 35 %.
        faults = [(0.1 + 0.75 * (k + 0.5) / config.kills, "kill") for k in range(config.kills)]
        if config.restart:
            faults.append((0.35, "restart"))
        self.faults = sorted(faults)
        self.next_fault_at = 0.0
        self.timed_out = False
        self.stop_problems: list[str] = []

    def run(self) -> None:
        self.workers.start()
        self.record.started_at = time.time()
        for index in range(self.config.workflows):
            _retrying(functools.partial(self.start, index))
            if index % 10 == 0:
                self.tick()
        for index in range(self.config.workflows):
            self.send_signal(index)
            if index % 10 == 0:
                self.tick()
        deadline = time.monotonic() + self.config.timeout
        while not self.finished():
            if time.monotonic() > deadline:
                self.timed_out = True
                break
            self.tick()
            time.sleep(0.5)
        self.record.finished_at = time.time()
        self.record.killed = dict(self.workers.killed)
        self.stop_problems = self.workers.stop()

    def finished(self) -> bool:
        return not self.faults and _retrying(self.client.get_stats).active_workflow_instances == 0

    def tick(self) -> None:
        """Replace workers that died, and inject the faults whose share of progress is reached."""
        self.workers.replace_dead()
        while (
            self.faults
            and time.monotonic() >= self.next_fault_at
            and ledger_progress(self.record.ledger) >= self.faults[0][0] * self.total
        ):
            _, kind = self.faults.pop(0)
            if kind == "kill":
                self.workers.kill_one()
            else:
                # A worker that starts while the store is away exits at once by design (its
                # supervisor starts it again): restart only once every replacement is up.
                self.workers.died += self.workers.wait_started()
                # And while activities run, so that results are on their way when the store
                # goes (the moment a restart can lose something), whatever the timing.
                running = _count_at_least(lambda: running_activities(self.record.ledger, self.workers.killed), RESTART_AMID_ACTIVITIES)
                down = time.time()
                self.store.restart(down_for=RESTART_DOWN_SECONDS)
                self.record.restarts.append((down, time.time()))
                self.record.running_at_restart.append(running)
                _reconnect()
                # No kill within a lease after the restart: the check could not tell which of
                # the two made an activity run again (it would blame the kill).
                self.next_fault_at = time.monotonic() + self.config.lease_seconds + 1

    def start(self, index: int) -> None:
        try:
            self.client.create_workflow_instance(
                WorkflowInstanceOptions(instance_id=instance_id(index)), "soak_workflow", str(self.record.ledger), index
            )
        except InstanceAlreadyExists:
            pass  # an earlier try whose reply was lost did create it

    def send_signal(self, index: int) -> None:
        """Signal the workflow with a new token per try: a try that raised may still have got
        there (``RunRecord.uncertain``)."""
        name = instance_id(index)
        for attempt in range(1000):
            token = f"{name}#{attempt}"
            try:
                self.client.signal_workflow(name, SIGNAL, token)
            except InstanceFinished:
                return  # a token whose call failed got there after all, and the workflow ended
            except Exception:
                self.record.uncertain[name].append(token)
                _pause_after_failure()
                continue
            self.record.accepted[name].append(token)
            return


def _count_at_least(count: Callable[[], int], wanted: int, timeout: float = 30) -> int:
    """Poll ``count()`` until it reaches ``wanted`` (or ``timeout`` passes); its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = count()
        if value >= wanted or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def _reconnect() -> None:
    # The driver's own database connections died with the server.
    from django.db import connections

    connections.close_all()


def _pause_after_failure() -> None:
    _reconnect()
    time.sleep(0.2)


def _retrying(call: Callable[[], T], timeout: float = 180) -> T:
    """``call()``, tried again while the store is away (during a restart), up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except Exception:
            if time.monotonic() > deadline:
                raise
            _pause_after_failure()
