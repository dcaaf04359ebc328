"""The scale bench of issue 21: idle cost, throughput and bulk creation against the backlog, and
cross-process wake-up latency, per store, in one command.

    python -m bench.scale --stores sqlite,postgres --sizes 100,10000,100000
    python -m bench.scale --quick                       # a smoke run of a few seconds per store
    python -m bench.scale --stores postgres --json > scale.json

Each store runs in its own process (``bench.scale_store``, whose docstring says exactly what is
measured and how), on throw-away databases: ``BENCH_SCALE_PG_DB`` / ``BENCH_SCALE_MYSQL_DB``
(default ``wfscale``, dropped and created), ``BENCH_SCALE_REDIS_URL`` (default Redis database
14, flushed) and a SQLite file under ``--data-dir``. Then one table per measurement, the sizes
side by side, with the ratios the issue asks for (largest size over smallest, same run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import harness, stores

QUICK = {"sizes": "20,200", "drain": 200, "warmup": 1.0, "window": 2.0, "latency_runs": 5}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite,postgres", help="of sqlite,mysql,postgres,redis")
    parser.add_argument("--sizes", default="100,10000,100000", help="waiting (idle) and ready (throughput) instances")
    parser.add_argument("--throughput-sizes", default="", help="sizes of the throughput part (default: --sizes)")
    parser.add_argument("--parts", default="idle,throughput,latency")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of the throughput part")
    parser.add_argument("--drain", type=int, default=2000, help="completions timed per throughput size")
    parser.add_argument("--warmup", type=float, default=3.0, help="idle seconds before the idle window")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of the idle window")
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--latency-gap", default="0.5,1.5", help="idle seconds between latency runs (uniform)")
    parser.add_argument("--worker-args", default="", help="extra runworkflows flags")
    parser.add_argument("--templates", type=int, default=100, help="waiting instances a worker runs to their timer (the rest are copies)")
    parser.add_argument("--quick", action="store_true", help=f"smoke sizes: {QUICK}")
    parser.add_argument("--data-dir", type=Path, default=harness.REPO_ROOT / "bench" / ".data" / "scale")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per store")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--from-json", type=Path, help="print the tables of a saved --json run")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    for store in args.stores.split(","):
        if store not in stores.STORES:
            parser.error(f"unknown store {store!r}")
    return args


def run_store(store: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.scale_store", "--store", store, "--sizes", args.sizes,
        "--throughput-sizes", args.throughput_sizes or args.sizes, "--parts", args.parts,
        "--workers", str(args.workers), "--drain", str(args.drain), "--warmup", str(args.warmup),
        "--window", str(args.window), "--latency-runs", str(args.latency_runs), "--latency-gap", args.latency_gap,
        "--worker-args", args.worker_args, "--run-dir", str(args.data_dir), "--templates", str(args.templates),
    ]
    return harness.run_driver(command, harness.base_env(), args.timeout)


def _commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=harness.REPO_ROOT, capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "unknown"


def _uptime() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return "load average " + ", ".join(f.read().split()[:3])
    except OSError:
        return "load unknown"


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ratio(rows: list[dict[str, Any]], key: str) -> str:
    values = [r.get(key) for r in rows if r.get(key) is not None]
    if len(values) < 2 or not values[0]:
        return "-"
    return f"{values[-1] / values[0]:.2f}x"


def uses_ready_index(plan: list[str] | None) -> bool | None:
    """Whether the look-up's plan reads the pending events through their ready index only (the
    claim index since migration 0009, the (queue, ready_at) one before)."""
    if not plan:
        return None
    text = "\n".join(plan)
    ready = "dj_wf_pending_claim_idx" in text or "dj_wf_pending_ready_idx" in text
    return ready and "Seq Scan on django_workflows_pendingevent" not in text


def tables(report: dict[str, Any]) -> str:
    out = [
        f"commit {report['commit']}; {report['load_start']} at the start, {report['load_end']} at the end "
        f"(2 cores shared with other work: figures are ratios within one run)",
    ]
    results = report["stores"]
    idle_rows = [(s, r) for s, res in results.items() for r in res.get("idle", [])]
    if idle_rows:
        out += [
            "",
            "Idle worker with N instances waiting on a one-hour timer (or a signal): per second over the window",
            f"{'store':<9}{'N':>9}{'stmts/s':>9}{'worker CPU%':>12}{'store CPU%':>11}{'rows read/s':>12}"
            f"{'look-up ms':>11}{'uses ready_at index':>21}{'history written':>16}{'signal wakes':>13}",
        ]
        for store, r in idle_rows:
            rows_read = r.get("pg_rows_read_per_s", r.get("mysql_rows_read_per_s"))
            index = uses_ready_index(r.get("lookup_plan"))
            lookup = r.get("lookup_ms", r.get("lookup_client_ms"))
            out.append(
                f"{store:<9}{r['size']:>9,}{_fmt(r['statements_per_s']):>9}{_fmt(r['worker_cpu_pct'], 2):>12}"
                f"{_fmt(r.get('store_cpu_pct'), 2):>11}{_fmt(rows_read):>12}{_fmt(lookup, 3):>11}"
                f"{_fmt('yes' if index else ('-' if index is None else 'NO')):>21}{_fmt(r.get('history_written')):>16}"
                f"{_fmt(r.get('woken_result')):>13}"
            )
        for store, res in results.items():
            rows = res.get("idle", [])
            if len(rows) > 1:
                out.append(
                    f"{store}: largest/smallest N: statements/s {_ratio(rows, 'statements_per_s')}, worker CPU "
                    f"{_ratio(rows, 'worker_cpu_pct')}, store CPU {_ratio(rows, 'store_cpu_pct')}"
                )
    tp_rows = [(s, r) for s, res in results.items() for r in res.get("throughput", [])]
    if tp_rows:
        out += [
            "",
            "Throughput: N ready one-activity workflows created up front, then the workers start",
            f"{'store':<9}{'N':>9}{'created/s':>11}{'timed':>7}{'completed wf/s':>16}",
        ]
        for store, r in tp_rows:
            out.append(
                f"{store:<9}{r['size']:>9,}{_fmt(r['created_per_s'], 0):>11}{r['completed_measured']:>7,}"
                f"{_fmt(r['completed_per_s']):>16}"
            )
        for store, res in results.items():
            rows = res.get("throughput", [])
            if len(rows) > 1:
                out.append(f"{store}: completion rate largest/smallest N {_ratio(rows, 'completed_per_s')} (target >= 0.80x)")
    for store, res in results.items():
        if "error" in res:
            out.append(f"{store}: FAILED: {res['error'].splitlines()[-1] if res['error'] else ''}")
    lat = [(s, res["latency"]) for s, res in results.items() if "latency" in res]
    if lat:
        out += [
            "",
            "Wake-up latency: one activity, created in this process, run by an idle worker in another",
            f"{'store':<9}{'runs':>5}{'p50 ms':>8}{'p95 ms':>8}{'client-seen p50/p95 ms':>24}",
        ]
        for store, r in lat:
            out.append(
                f"{store:<9}{r['runs']:>5}{_fmt(r['p50_ms']):>8}{_fmt(r['p95_ms']):>8}"
                f"{_fmt(r['client_p50_ms']) + ' / ' + _fmt(r['client_p95_ms']):>24}"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.from_json:
        print(tables(json.loads(args.from_json.read_text())))
        return
    args.data_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"commit": _commit(), "load_start": _uptime(), "args": vars(args) | {"data_dir": str(args.data_dir)}}
    report["stores"] = {}
    for store in args.stores.split(","):
        print(f"scale bench: {store} ...", file=sys.stderr, flush=True)
        try:
            report["stores"][store] = run_store(store, args)
        except (harness.RunFailed, subprocess.TimeoutExpired) as exc:
            # One store failing does not lose the others' figures; the error is in the report.
            print(f"scale bench: {store} failed: {exc}", file=sys.stderr, flush=True)
            report["stores"][store] = {"error": str(exc)[-2000:]}
    report["load_end"] = _uptime()
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(tables(report))


if __name__ == "__main__":
    main()
