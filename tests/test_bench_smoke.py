"""The bench command at smoke size, through its real entry point: it must run and count right.

No timing is asserted: CI machines are too noisy for that, and speed is what ``bench/RESULTS.md``
reports, not what a test decides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.harness import REPO_ROOT, base_env
from bench.workloads import get_workload

pytestmark = pytest.mark.slow


def _run_bench(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--scale", "smoke", "--repeat", "1", "--workers", "1",
         "--raw-seconds", "0.2", "--timeout", "50", "--data-dir", str(tmp_path), "--json", *args],
        cwd=REPO_ROOT, env={**base_env(), **(env or {})}, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_w1_on_sqlite_runs_every_activity_once_and_reports_its_numbers(tmp_path: Path) -> None:
    report = _run_bench(tmp_path, "--backends", "sqlite", "--workloads", "W1")

    expected = get_workload("W1", "smoke")
    store = report["stores"]["sqlite"]
    assert store["raw_commit_per_s"] > 0
    run = store["workloads"]["W1"]["ours"]
    assert run is not None, store["workloads"]["W1"]["ours_runs"]
    assert run["activities"] == expected.expected_activities == expected.count * expected.steps
    assert run["workflows"] == run["roots"] == expected.count
    assert run["counts_ok"] and run["runs_failed"] == 0
    # Derived numbers are present and consistent with the counts, whatever the speed was.
    assert run["duration_s"] > 0
    assert run["steps_per_s"] == pytest.approx(run["activities"] / run["duration_s"])
    assert 0 < run["p50_s"] <= run["p95_s"] <= run["duration_s"] + 1e-6
    assert run["peak_rss_mb"] > 10
    # The SQLite counter ran in the worker: at least one transaction per completed activity.
    assert run["client_counters"]["sqlite_commits"] >= run["activities"]
    assert run["tx_per_activity"] >= 1
    assert report["environment"]["cores"] >= 1 and report["environment"]["servers"]["sqlite"]


@pytest.mark.skipif(os.environ.get("DB") != "postgres", reason="the PostgreSQL server runs in the DB=postgres environments")
def test_w1_on_postgres_reports_the_servers_cpu_per_activity(tmp_path: Path) -> None:
    # A database name of this test environment's own (the bench takes it from the environment),
    # so that it cannot drop another bench's or test run's database.
    name = "wfbench_smoke_" + "".join(c for c in os.environ.get("TOX_ENV_NAME", "local") if c.isalnum())
    report = _run_bench(tmp_path, "--backends", "postgres", "--workloads", "W1",
                        env={"BENCH_PG_DB": name, "BENCH_PG_RAW_DB": name + "_raw"})

    run = report["stores"]["postgres"]["workloads"]["W1"]["ours"]
    assert run is not None, report["stores"]["postgres"]["workloads"]["W1"]["ours_runs"]
    assert run["counts_ok"] and run["activities"] == get_workload("W1", "smoke").expected_activities
    # The workers' statements ran in backends of that database, whose CPU was sampled.
    assert run["server_cpu_ms_per_activity"] > 0
    assert run["transactions"] >= run["activities"]
    assert report["stores"]["postgres"]["raw_commit_per_s"] > 0


def _run_scale_on_sqlite(tmp_path: Path, *extra: str, timeout: float) -> dict[str, Any]:
    """``bench.scale`` on SQLite at sizes 5 and 20, with short windows; its JSON report."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--stores", "sqlite", "--sizes", "5,20", *extra,
         "--drain", "20", "--warmup", "0.3", "--window", "1", "--latency-runs", "3", "--latency-gap", "0.1,0.2",
         "--data-dir", str(tmp_path), "--json"],
        cwd=REPO_ROOT, env=base_env(), capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def test_the_scale_bench_on_sqlite_measures_waiting_copies_that_really_wait(tmp_path: Path) -> None:
    """``bench.scale`` at a tiny size: 5 instances run to their timer, 15 copied from the first."""
    result = _run_scale_on_sqlite(tmp_path, "--templates", "5", timeout=180)["stores"]["sqlite"]
    assert "error" not in result, result
    idle = result["idle"]
    assert [row["size"] for row in idle] == [5, 20]
    assert "clone_s" in idle[1] and "clone_s" not in idle[0]
    for row in idle:
        # The idle worker wrote no history, and a signal woke the newest instance (a copy at 20).
        assert row["history_written"] == 0 and row["woken_result"] == "signal", row
        assert row["statements_per_s"] > 0 and row["window_s"] > 0.5
        assert any("dj_wf_pending_claim_idx" in line for line in row["lookup_plan"]), row["lookup_plan"]
    for row in result["throughput"]:
        assert row["completed_measured"] == 20 and row["completed_per_s"] > 0 and row["created_per_s"] > 0
    assert result["throughput"][0]["topped_up"]
    latency = result["latency"]
    assert latency["runs"] == 3 and 0 < latency["p50_ms"] <= latency["p95_ms"]


def _dbos_scale_report() -> dict:
    """A ``bench.scale --dbos --json`` report as the drivers write it, two sizes per engine."""
    idle = [{"size": n, "window_s": 10.0, "statements_per_s": 12.0 + i, "worker_cpu_pct": 1.0, "store_cpu_pct": 0.5,
             "pg_xacts_per_s": 6.0, "pg_rows_read_per_s": 400.0, "history_written": 0, "woken_result": "signal"}
            for i, n in enumerate((100, 10000))]
    throughput = [{"size": n, "created_per_s": 900.0, "completed_measured": 2000, "completed_per_s": 50.0 + i}
                  for i, n in enumerate((100, 10000))]
    latency = {"runs": 50, "p50_ms": 20.0, "p95_ms": 40.0, "client_p50_ms": 25.0, "client_p95_ms": 45.0}
    ours = {"idle": idle, "throughput": throughput, "latency": latency}
    dbos_idle = [{**row, "wait": "recv", "run_to_wait_s": 3.0, "statements_per_s": 100.0 * (i + 1)}
                 for i, row in enumerate(idle)]
    dbos = {"polling_interval": 0.1, "idle": dbos_idle, "latency": latency,
            "throughput": [{**row, "worker_concurrency": 100} for row in throughput]}
    return {"commit": "abc", "load_start": "load average 1", "load_end": "load average 2",
            "stores": {"postgres": ours}, "dbos": {"postgres": dbos}}


def test_the_scale_tables_print_dbos_rows_under_ours_with_the_same_columns() -> None:
    from bench.scale import tables

    lines = tables(_dbos_scale_report()).splitlines()
    for title, expect in (("Idle worker", 4), ("Throughput", 4), ("Wake-up latency", 2)):
        start = next(i for i, line in enumerate(lines) if line.startswith(title))
        header, rows = lines[start + 1], lines[start + 2:start + 2 + expect]
        labels = [row.split()[0] for row in rows]
        # Ours first, DBOS's right under it, in the same columns as ours.
        assert labels == ["postgres"] * (expect // 2) + ["postgres/DBOS"] * (expect // 2), (title, rows)
        assert all(len(row.split()) == len(rows[0].split()) for row in rows), rows
        assert header.split()[0] == "store"
    idle_dbos = [line for line in lines if line.startswith("postgres/DBOS") and "10,000" in line and "signal" in line]
    assert idle_dbos and "200.0" in idle_dbos[0]
    assert any(line.startswith("postgres/DBOS: largest/smallest N: statements/s 2.00x") for line in lines)
    assert any(line.startswith("postgres/DBOS: workflows wait in DBOS.recv_async") for line in lines)


@pytest.mark.skipif(not (REPO_ROOT / "bench" / ".venv-dbos" / "bin" / "python").exists(),
                    reason="DBOS's side needs bench/.venv-dbos (python -m bench.run --dbos creates it; no download here)")
def test_the_scale_bench_runs_dbos_on_sqlite(tmp_path: Path) -> None:
    """``bench.scale --dbos --dbos-only`` at a tiny size: DBOS's workflows wait, one is woken."""
    result = _run_scale_on_sqlite(tmp_path, "--dbos", "--dbos-only", timeout=300)["dbos"]["sqlite"]
    assert "error" not in result, result
    assert [row["size"] for row in result["idle"]] == [5, 20]
    for row in result["idle"]:
        assert row["history_written"] == 0 and row["woken_result"] == "signal", row
        assert row["statements_per_s"] > 0 and row["worker_cpu_pct"] > 0
    for row in result["throughput"]:
        assert row["completed_measured"] == 20 and row["completed_per_s"] > 0 and row["created_per_s"] > 0
    latency = result["latency"]
    assert latency["runs"] == 3 and 0 < latency["p50_ms"] <= latency["p95_ms"]
