"""The scale bench of issue 21: idle cost, throughput and bulk creation against the backlog, and
cross-process wake-up latency, per store, in one command.

    python -m bench.scale --stores sqlite,postgres --sizes 100,10000,100000
    python -m bench.scale --quick                       # a smoke run of a few seconds per store
    python -m bench.scale --stores postgres --json > scale.json

Each store runs in its own process (``bench.scale_store``, whose docstring says exactly what is
measured and how), on throw-away databases: ``BENCH_SCALE_PG_DB`` / ``BENCH_SCALE_MYSQL_DB``
(default ``wfscale``, dropped and created), ``BENCH_SCALE_REDIS_URL`` (default Redis database
14, flushed) and a SQLite file under ``--data-dir``. With ``--dbos``, DBOS Transact runs the
same operations after ours on SQLite and PostgreSQL (``bench.dbos_scale``; its PostgreSQL
database ``BENCH_SCALE_PG_DBOS_DB``, default ``wfscale_dbos``), and its rows are printed under
ours in the same tables. Then one table per measurement, the sizes side by side, with the
ratios the issue asks for (largest size over smallest, same run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
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
    parser.add_argument("--dbos", action="store_true", help="also run DBOS Transact (sqlite and postgres only)")
    parser.add_argument("--dbos-wait", default="recv", choices=("recv", "sleep"),
                        help="DBOS's idle workflows: recv a message with a one-hour timeout (as ours), or sleep an hour")
    parser.add_argument("--dbos-idle-sizes", default="", help="sizes of DBOS's idle part (default: --sizes)")
    parser.add_argument("--dbos-polling", type=float, default=0.1, help="DBOS queue polling_interval_sec (DBOS's default: 1)")
    parser.add_argument("--dbos-concurrency", type=int, default=100,
                        help="DBOS queue worker_concurrency of the throughput part (0: no limit)")
    parser.add_argument("--dbos-only", action="store_true", help="with --dbos: skip ours")
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
    command = [sys.executable, "-m", "bench.scale_store", *_driver_args(store, args),
               "--worker-args", args.worker_args, "--templates", str(args.templates)]
    return harness.run_driver(command, harness.base_env(), args.timeout)


def run_dbos(store: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.dbos_scale", *_driver_args(store, args),
        "--idle-sizes", args.dbos_idle_sizes or args.sizes, "--wait", args.dbos_wait,
        "--polling-interval", str(args.dbos_polling), "--worker-concurrency", str(args.dbos_concurrency),
    ]
    return harness.run_driver(command, harness.base_env(), args.timeout)


def _driver_args(store: str, args: argparse.Namespace) -> list[str]:
    """The options both engines' drivers take, from this command's."""
    return [
        "--store", store, "--sizes", args.sizes,
        "--throughput-sizes", args.throughput_sizes or args.sizes, "--parts", args.parts,
        "--workers", str(args.workers), "--drain", str(args.drain), "--warmup", str(args.warmup),
        "--window", str(args.window), "--latency-runs", str(args.latency_runs), "--latency-gap", args.latency_gap,
        "--run-dir", str(args.data_dir),
    ]


def _run_each(names: list[str], run: Callable[[str, argparse.Namespace], dict[str, Any]], args: argparse.Namespace,
              label: str) -> dict[str, Any]:
    """Each store's result from ``run``, or its error."""
    results: dict[str, Any] = {}
    for store in names:
        print(f"scale bench: {store}{label} ...", file=sys.stderr, flush=True)
        try:
            results[store] = run(store, args)
        except (harness.RunFailed, subprocess.TimeoutExpired) as exc:
            # One store failing does not lose the others' figures; the error is in the report.
            print(f"scale bench: {store}{label} failed: {exc}", file=sys.stderr, flush=True)
            results[store] = {"error": str(exc)[-2000:]}
    return results


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


def _engines(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every (engine, store) result by the label its rows carry: ours by store name, DBOS's
    as ``<store>/DBOS``."""
    dbos = report.get("dbos", {})
    results: dict[str, dict[str, Any]] = {}
    for store in dict.fromkeys([*report["stores"], *dbos]):
        if store in report["stores"]:
            results[store] = report["stores"][store]
        if store in dbos:
            results[f"{store}/DBOS"] = dbos[store]
    return results


def tables(report: dict[str, Any]) -> str:
    out = [
        f"commit {report['commit']}; {report['load_start']} at the start, {report['load_end']} at the end "
        f"(2 cores shared with other work: figures are ratios within one run)",
    ]
    results = _engines(report)
    idle_rows = [(s, r) for s, res in results.items() for r in res.get("idle", [])]
    if idle_rows:
        out += [
            "",
            "Idle worker with N instances waiting on a one-hour timer (or a signal): per second over the window",
            f"{'store':<14}{'N':>9}{'stmts/s':>9}{'worker CPU%':>12}{'store CPU%':>11}{'xacts/s':>9}{'rows read/s':>12}"
            f"{'look-up ms':>11}{'uses ready_at index':>21}{'history written':>16}{'signal wakes':>13}",
        ]
        for store, r in idle_rows:
            rows_read = r.get("pg_rows_read_per_s", r.get("mysql_rows_read_per_s"))
            index = uses_ready_index(r.get("lookup_plan"))
            lookup = r.get("lookup_ms", r.get("lookup_client_ms"))
            out.append(
                f"{store:<14}{r['size']:>9,}{_fmt(r['statements_per_s']):>9}{_fmt(r['worker_cpu_pct'], 2):>12}"
                f"{_fmt(r.get('store_cpu_pct'), 2):>11}{_fmt(r.get('pg_xacts_per_s')):>9}{_fmt(rows_read):>12}{_fmt(lookup, 3):>11}"
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
    out += _dbos_notes(report, "idle")
    tp_rows = [(s, r) for s, res in results.items() for r in res.get("throughput", [])]
    if tp_rows:
        out += [
            "",
            "Throughput: N ready one-activity workflows created up front, then the workers start",
            f"{'store':<14}{'N':>9}{'created/s':>11}{'timed':>7}{'completed wf/s':>16}",
        ]
        for store, r in tp_rows:
            out.append(
                f"{store:<14}{r['size']:>9,}{_fmt(r['created_per_s'], 0):>11}{r['completed_measured']:>7,}"
                f"{_fmt(r['completed_per_s']):>16}"
            )
        for store, res in results.items():
            rows = res.get("throughput", [])
            if len(rows) > 1:
                out.append(f"{store}: completion rate largest/smallest N {_ratio(rows, 'completed_per_s')} (target >= 0.80x)")
    out += _dbos_notes(report, "throughput")
    for store, res in results.items():
        if "error" in res:
            out.append(f"{store}: FAILED: {res['error'].splitlines()[-1] if res['error'] else ''}")
    lat = [(s, res["latency"]) for s, res in results.items() if "latency" in res]
    if lat:
        out += [
            "",
            "Wake-up latency: one activity, created in this process, run by an idle worker in another",
            f"{'store':<14}{'runs':>5}{'p50 ms':>8}{'p95 ms':>8}{'client-seen p50/p95 ms':>24}",
        ]
        for store, r in lat:
            out.append(
                f"{store:<14}{r['runs']:>5}{_fmt(r['p50_ms']):>8}{_fmt(r['p95_ms']):>8}"
                f"{_fmt(r['client_p50_ms']) + ' / ' + _fmt(r['client_p95_ms']):>24}"
            )
    out += _dbos_notes(report, "latency")
    return "\n".join(out)


def _dbos_notes(report: dict[str, Any], part: str) -> list[str]:
    """What DBOS's rows of ``part`` were run with, and how long populating them took."""
    notes = []
    for store, res in report.get("dbos", {}).items():
        if part == "idle" and res.get("idle"):
            r0 = res["idle"][0]
            runs = ", ".join(f"{r['size']:,} in {r['run_to_wait_s']:.0f} s" for r in res["idle"])
            notes.append(f"{store}/DBOS: workflows wait in DBOS.{r0['wait']}_async (one hour); run through DBOS to their "
                         f"wait (cumulative): {runs}; history written = operation_outputs rows")
        elif part == "throughput" and res.get("throughput"):
            r0 = res["throughput"][0]
            notes.append(f"{store}/DBOS: created = DBOSClient.enqueue_in_transaction, 5,000 per transaction; queue "
                         f"worker_concurrency {r0.get('worker_concurrency') or 'unlimited'}, polling_interval_sec "
                         f"{res.get('polling_interval')}")
        elif part == "latency" and res.get("latency"):
            notes.append(f"{store}/DBOS: queue polling_interval_sec {res.get('polling_interval')} (DBOS's default 1); "
                         "from just before the enqueue; the client's get_result polls once a second")
    return notes


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.from_json:
        print(tables(json.loads(args.from_json.read_text())))
        return
    args.data_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"commit": _commit(), "load_start": _uptime(), "args": vars(args) | {"data_dir": str(args.data_dir)}}
    names = args.stores.split(",")
    report["stores"] = _run_each([] if args.dbos_only else names, run_store, args, "")
    if args.dbos:
        report["dbos"] = _run_each([s for s in names if s in stores.DBOS_STORES], run_dbos, args, " with DBOS")
    report["load_end"] = _uptime()
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(tables(report))


if __name__ == "__main__":
    main()
