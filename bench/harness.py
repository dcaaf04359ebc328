"""What both engines' drivers share: worker processes, waiting, peak memory and the summary.

Timing rule (the same for both engines): every workflow is created before any worker starts;
the clock starts when the first worker process reports that it polls (``bench.readiness``),
and stops at the latest completion time the store recorded for a root workflow. Interpreter and
framework start-up are therefore not counted, and neither is the delay of our own polling for
completion. ``startup_s`` reports the start-up separately.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH-RESULT "
# Our logging format ("... ERROR django_workflows...") and DBOS's ("[   ERROR] ...").
_ERROR_LINE = re.compile(r"(?:^|\s|\[)\s*(?:ERROR|CRITICAL)[\s\]]")


@dataclass
class WorkerProcess:
    index: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    count_file: Path
    ready_file: Path
    started_at: float
    log_offset: int = 0

    def ready_time(self) -> float | None:
        return self._ready_field(0)

    def ready_cpu_seconds(self) -> float | None:
        """The process's CPU time when it became ready (its start-up's)."""
        return self._ready_field(1)

    def _ready_field(self, index: int) -> float | None:
        try:
            return float(self.ready_file.read_text().split()[index])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def peak_rss_mb(self) -> float:
        """The process's peak resident set size so far (``VmHWM``)."""
        try:
            with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except FileNotFoundError:
            pass
        return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        from bench.stores import process_cpu_seconds

        cpu = process_cpu_seconds(self.proc.pid)
        return float("nan") if cpu is None else cpu

    def new_errors(self) -> list[str]:
        """ERROR lines the worker logged since the last call: a worker that logs errors while
        it stays alive (a failing poll, a failing task) would otherwise just stall the run."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        # Only whole lines: a line still being written is read next time.
        end = chunk.rfind(b"\n") + 1
        self.log_offset += end
        return [line for line in chunk[:end].decode(errors="replace").splitlines() if _ERROR_LINE.search(line)]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def start_workers(commands: Sequence[list[str]], env: dict[str, str], run_dir: Path) -> list[WorkerProcess]:
    workers = []
    for index, command in enumerate(commands):
        log_path = run_dir / f"worker-{index}.log"
        count_file = run_dir / f"worker-{index}.counts.json"
        ready_file = run_dir / f"worker-{index}.ready"
        for stale in (count_file, ready_file):
            stale.unlink(missing_ok=True)
        worker_env = {
            **env,
            "BENCH_COUNT_FILE": str(count_file),
            "BENCH_READY_FILE": str(ready_file),
            "PYTHONUNBUFFERED": "1",
        }
        started_at = time.time()
        with open(log_path, "wb") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(command, cwd=REPO_ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT)
        workers.append(WorkerProcess(index, proc, log_path, count_file, ready_file, started_at))
    return workers


class RunFailed(RuntimeError):
    pass


def wait_until_done(
    workers: Sequence[WorkerProcess],
    done: Callable[[], bool],
    timeout: float,
    interval: float = 0.2,
    on_poll: Callable[[], None] | None = None,
) -> int:
    """Poll ``done`` until it is true; fail if a worker exits or logs an error, or ``timeout``
    passes. Returns the number of polls (each poll is a query the store counts too).
    ``on_poll`` runs before each poll (the server-CPU sampler)."""
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        for worker in workers:
            if worker.proc.poll() is not None:
                raise RunFailed(
                    f"worker {worker.index} exited with {worker.proc.returncode} before the run finished:\n"
                    + worker.log_tail()
                )
            errors = worker.new_errors()
            if errors:
                raise RunFailed(f"worker {worker.index} logged an error:\n{errors[0]}\n...\n" + worker.log_tail())
        if on_poll is not None:
            on_poll()
        polls += 1
        if done():
            return polls
        if time.monotonic() > deadline:
            raise RunFailed(f"the run did not finish within {timeout:.0f} s")
        time.sleep(interval)


def stop_workers(workers: Sequence[WorkerProcess], timeout: float = 60) -> list[int]:
    """SIGTERM every worker (they drain and exit); SIGKILL what is left after ``timeout``.

    A worker that is still starting has no SIGTERM handler yet (a short run can finish before
    the last worker is up): wait until each one is ready first, so that it exits cleanly and
    writes its counters."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
        w.ready_time() is None and w.proc.poll() is None for w in workers
    ):
        time.sleep(0.02)
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    codes = []
    deadline = time.monotonic() + timeout
    for worker in workers:
        try:
            codes.append(worker.proc.wait(max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            codes.append(worker.proc.wait())
    return codes


def kill_workers(workers: Sequence[WorkerProcess]) -> None:
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait()


def machine_load() -> dict[str, float]:
    """The 1-minute load average and the share of the last 10 s in which some runnable task
    waited for a CPU (Linux PSI): a busy machine makes every number of a run smaller."""
    load: dict[str, float] = {}
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            load["loadavg_1m"] = float(f.read().split()[0])
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as f:
            some = f.readline().split()
        load["cpu_pressure_10s"] = float(some[1].split("=")[1])
    except (OSError, ValueError, IndexError):
        pass
    return load


@dataclass
class Measured:
    workers: list[WorkerProcess]
    polls: int
    peak_rss_mb: list[float]
    cpu_s: list[float]
    #: PostgreSQL only: CPU time of the server's backends serving the bench database.
    server_cpu_s: float | None
    server_counters: dict[str, int]
    client_counters: dict[str, int]
    load_before: dict[str, float]
    load_after: dict[str, float]


def measure_run(
    *,
    store: str,
    db_name: str,
    commands: Sequence[list[str]],
    env: dict[str, str],
    run_dir: Path,
    done: Callable[[], bool],
    timeout: float,
    before_stop: Callable[[], None] | None = None,
) -> Measured:
    """Start the workers, wait until ``done``, stop them; with the store's counter deltas."""
    from bench import counting, stores

    server_before = stores.read_server_counters(store, db_name)
    server_cpu = stores.PgServerCpu(db_name) if store == "postgres" else None
    if server_cpu is not None:
        server_cpu.sample()
    load_before = machine_load()
    workers = start_workers(commands, env, run_dir)
    try:
        polls = wait_until_done(workers, done, timeout, on_poll=server_cpu and server_cpu.sample)
        if server_cpu is not None:
            server_cpu.sample()
        load_after = machine_load()
        peak_rss = [w.peak_rss_mb() for w in workers]
        cpu = [w.cpu_seconds() for w in workers]
        if before_stop is not None:
            before_stop()
        codes = stop_workers(workers)
    finally:
        kill_workers(workers)
        if server_cpu is not None:
            server_cpu.close()
    if any(codes):
        raise RunFailed(f"workers exited with {codes}:\n" + "\n".join(w.log_tail() for w in workers))
    if store == "postgres":
        stores.wait_for_pg_backends(db_name)
    server = stores.counter_delta(server_before, stores.read_server_counters(store, db_name))
    counted = [str(w.count_file) for w in workers]
    server_cpu_s = None if server_cpu is None else server_cpu.seconds()
    return Measured(workers, polls, peak_rss, cpu, server_cpu_s, server, counting.read_count_files(counted), load_before, load_after)


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of a non-empty sequence."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summarize(
    *,
    engine: str,
    store: str,
    workload: Any,
    measured: Measured,
    roots: Sequence[tuple[float, float]],
    activities: int,
    workflows: int,
    transactions: int | None,
    transactions_what: str,
    first_work: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One result row. ``roots`` holds (created, completed) wall-clock times of root workflows;
    ``first_work`` is when the store says the first workflow started, for an engine whose
    workers may start working before they can report that they are ready."""
    workers = measured.workers
    ready = [t for t in (w.ready_time() for w in workers) if t is not None]
    if first_work is not None:
        ready.append(first_work)
    if not ready:
        raise RunFailed("no worker reported that it was ready")
    start = min(ready)
    end = max(completed for _, completed in roots)
    duration = end - start
    if duration <= 0:
        raise RunFailed(f"the run finished before its first worker was ready ({duration:.3f} s)")
    from_start = [completed - start for _, completed in roots]
    from_created = [completed - created for created, completed in roots]
    result = {
        "engine": engine,
        "store": store,
        "workload": workload.name,
        "label": workload.label(),
        "workers": len(workers),
        "roots": len(roots),
        "workflows": workflows,
        "activities": activities,
        "expected_activities": workload.expected_activities,
        "expected_workflows": workload.expected_workflows,
        "duration_s": duration,
        "startup_s": start - min(w.started_at for w in workers),
        "steps_per_s": activities / duration,
        "workflows_per_s": workflows / duration,
        "p50_s": percentile(from_start, 50),
        "p95_s": percentile(from_start, 95),
        "p50_since_created_s": percentile(from_created, 50),
        "p95_since_created_s": percentile(from_created, 95),
        "peak_rss_mb": max(measured.peak_rss_mb),
        "peak_rss_mb_each": measured.peak_rss_mb,
        # Worker CPU time (start-up included) per completed activity, in milliseconds.
        "cpu_ms_per_activity": 1000 * sum(measured.cpu_s) / activities if activities else None,
        "cpu_s_each": measured.cpu_s,
        # The same without the workers' start-up (their CPU time until they were ready).
        "run_cpu_ms_per_activity": _run_cpu_ms(measured, activities),
        # PostgreSQL: CPU time of the server's backends serving the run, per completed activity.
        "server_cpu_ms_per_activity": (
            None if measured.server_cpu_s is None or not activities else 1000 * measured.server_cpu_s / activities
        ),
        "transactions": transactions,
        "transactions_what": transactions_what,
        "tx_per_activity": None if transactions is None or not activities else transactions / activities,
        "server_counters": measured.server_counters,
        "client_counters": measured.client_counters,
        "completion_polls": measured.polls,
        "load_before": measured.load_before,
        "load_after": measured.load_after,
    }
    if extra:
        result.update(extra)
    return result


def _run_cpu_ms(measured: Measured, activities: int) -> float | None:
    startup = [w.ready_cpu_seconds() for w in measured.workers]
    if not activities or any(s is None for s in startup):
        return None
    return 1000 * (sum(measured.cpu_s) - sum(s for s in startup if s is not None)) / activities


def emit(result: dict[str, Any]) -> None:
    """Print a driver's result on one line the coordinator can find among log output."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def run_driver(command: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run a driver process and return its result; its output is kept in the error if it fails."""
    proc = subprocess.run(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False
    )
    output = proc.stdout.decode(errors="replace")
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
            return result
    raise RunFailed(f"{' '.join(command[-6:])} failed (exit {proc.returncode}):\n{output[-4000:]}")


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env
