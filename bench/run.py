"""The bench command: W1, W2, W3 and go-workflows' tree on every store, DBOS side by side.

    python -m bench.run [--backends sqlite,mysql,postgres,redis] [--workloads W1,W2,W3,tree]
                        [--dbos] [--repeat 3] [--scale smoke|full] [--workers N] [--json]

For each store it measures the raw commit rate (the physical limit), then runs every workload
``--repeat`` times with our engine (``bench.ours``) and, with ``--dbos``, with DBOS Transact on
the stores DBOS supports (``bench.dbos_side``), alternating the two so both see the same
machine conditions. Each run is a fresh process with a fresh database. It prints one table per
store with the medians, or with ``--json`` one JSON document with every run. See
``bench/README.md`` for what each column means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Any

from bench import harness, stores
from bench.workloads import DBOS_WORKLOADS, WORKLOADS, get_workload

DEFAULT_DATA_DIR = harness.REPO_ROOT / "bench" / ".data"
METRICS = (
    "steps_per_s", "workflows_per_s", "p50_s", "p95_s", "peak_rss_mb", "tx_per_activity", "duration_s",
    "cpu_ms_per_activity", "run_cpu_ms_per_activity", "server_cpu_ms_per_activity",
)

#: go-workflows' own figures on the same workloads, from issue 20 (go-workflows 8ef4f86, one
#: process, default options, a 2-core machine of ours under load, medians of 3): steps/s and
#: worker CPU ms per activity. It cannot run beside ours here, so the tables print these as
#: reference rows, with where they come from, instead of a measurement.
GO_WORKFLOWS_PROVENANCE = "go-workflows 8ef4f86, measured by issue 20, not run here"
GO_WORKFLOWS_REFERENCE: dict[str, dict[str, tuple[float, float]]] = {
    "sqlite": {"W1": (707, 1.2), "W2": (900, 0.87), "W3": (1096, 0.72), "tree": (787, 1.04)},
    "mysql": {"W1": (240, 2.05), "W2": (313, 1.64), "W3": (491, 1.11), "tree": (307, 1.46)},
    "redis": {"W1": (1331, 0.50), "W2": (1691, 0.38), "W3": (2918, 0.26), "tree": (1723, 0.35)},
}


def _csv(allowed: tuple[str, ...], what: str) -> Any:
    def parse(value: str) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [v for v in items if v not in allowed]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"{what} must be a comma-separated subset of {','.join(allowed)}")
        return items

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", type=_csv(stores.STORES, "--backends"), default=list(stores.STORES))
    parser.add_argument("--workloads", type=_csv(WORKLOADS, "--workloads"), default=list(WORKLOADS))
    parser.add_argument("--dbos", action="store_true", help="also run W1-W3 on DBOS (SQLite and PostgreSQL)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per workload; the table shows medians")
    parser.add_argument("--scale", choices=("smoke", "full"), default="full")
    parser.add_argument("--workers", type=int, default=2, help="runworkflows processes (and DBOS processes)")
    parser.add_argument("--worker-args", default="", help="extra runworkflows flags, e.g. '--workflow-pollers 4'")
    parser.add_argument("--dbos-workers", type=int, default=None, help="DBOS processes (default: --workers)")
    parser.add_argument("--dbos-polling", type=float, default=0.1,
                        help="DBOS queue polling_interval_sec (DBOS's default 1.0 idles up to a second per poll)")
    parser.add_argument("--dbos-w3", type=_csv(("queue", "async"), "--dbos-w3"), default=["queue", "async"],
                        help="DBOS fan-out styles to run for W3; the ratio uses the faster one")
    parser.add_argument("--raw-seconds", type=float, default=stores.RAW_COMMIT_SECONDS)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one run may take")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument("--from-json", type=Path, metavar="FILE", help="print the tables of a saved --json run and exit")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.workers < 1:
        parser.error("--repeat and --workers must be at least 1")
    return args


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_ours(args: argparse.Namespace, store: str, workload: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.ours", "--store", store, "--workload", workload, "--scale", args.scale,
               "--workers", str(args.workers), "--worker-args", args.worker_args,
               "--run-dir", str(args.data_dir / "ours"), "--timeout", str(args.timeout)]
    return harness.run_driver(command, harness.base_env(), args.timeout + 300)


def _run_dbos(args: argparse.Namespace, store: str, workload: str, w3: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.dbos_side", "--store", store, "--workload", workload, "--scale", args.scale,
               "--workers", str(args.dbos_workers or args.workers), "--w3", w3,
               "--polling-interval", str(args.dbos_polling),
               "--run-dir", str(args.data_dir / "dbos"), "--timeout", str(args.timeout)]
    return harness.run_driver(command, harness.base_env(), args.timeout + 300)


def _attempt(kind: str, run: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = run()
    except Exception as exc:  # noqa: BLE001 - one failed run must not lose the rest of a long bench
        _progress(f"  {kind}: FAILED: {exc}")
        return {"error": str(exc)}
    _progress(
        f"  {kind}: {result['activities']}/{result['expected_activities']} activities in {result['duration_s']:.2f} s"
        f" = {result['steps_per_s']:.0f} steps/s"
    )
    return result


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return None
    row = dict(ok[0])
    for metric in METRICS:
        values = [r[metric] for r in ok if r.get(metric) is not None]
        row[metric] = statistics.median(values) if values else None
    row["runs_ok"] = len(ok)
    row["runs_failed"] = len(runs) - len(ok)
    row["counts_ok"] = all(
        r["activities"] == r["expected_activities"] and r["workflows"] >= r["roots"] for r in ok
    )
    return row


def summarize_rows(report: dict[str, Any]) -> dict[str, Any]:
    """(Re)compute the medians and ratios of every row from its runs."""
    for entry in report["stores"].values():
        for row in entry["workloads"].values():
            row["ours"] = median_row(row["ours_runs"])
            if "dbos_runs" in row:
                medians = {style: median_row(runs) for style, runs in row["dbos_runs"].items()}
                best = max((m for m in medians.values() if m), key=lambda m: m["steps_per_s"], default=None)
                row.update(dbos=best, dbos_styles=medians)
                row.pop("ratio", None)
                if best and row["ours"]:
                    row["ratio"] = row["ours"]["steps_per_s"] / best["steps_per_s"]
    return report


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    args.data_dir = args.data_dir.resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "environment": environment(args),
        "stores": {},
        "go_workflows_reference": {
            "provenance": GO_WORKFLOWS_PROVENANCE,
            "steps_per_s_and_cpu_ms_per_activity": GO_WORKFLOWS_REFERENCE,
        },
    }
    if args.dbos:
        from bench import dbos_side

        _progress("DBOS: checking bench/.venv-dbos")
        dbos_side.ensure_venv()
        report["environment"]["dbos"] = dbos_side.dbos_version()
    for store in args.backends:
        _progress(f"== {store}: raw commit rate")
        entry: dict[str, Any] = {"raw_commit_per_s": None, "workloads": {}}
        try:
            entry["raw_commit_per_s"] = stores.raw_commit_rate(store, args.data_dir, args.raw_seconds)
        except Exception as exc:  # noqa: BLE001 - a store that is down fails its runs, not the bench
            _progress(f"  raw commit rate: FAILED: {exc}")
            entry["raw_commit_error"] = str(exc)
        report["stores"][store] = entry
        for name in args.workloads:
            workload = get_workload(name, args.scale)
            with_dbos = args.dbos and store in stores.DBOS_STORES and name in DBOS_WORKLOADS
            styles = args.dbos_w3 if name == "W3" else ["chain"]
            ours: list[dict[str, Any]] = []
            dbos: dict[str, list[dict[str, Any]]] = {style: [] for style in styles} if with_dbos else {}
            for repetition in range(1, args.repeat + 1):
                _progress(f"== {store} {workload.label()} run {repetition}/{args.repeat}")
                ours.append(_attempt("ours", partial(_run_ours, args, store, name)))
                for style, runs in dbos.items():
                    runs.append(_attempt(f"DBOS ({style})", partial(_run_dbos, args, store, name, style if name == "W3" else "queue")))
            row: dict[str, Any] = {"label": workload.label(), "ours_runs": ours}
            if with_dbos:
                row["dbos_runs"] = dbos
            entry["workloads"][name] = row
    return summarize_rows(report)


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import django

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            ram_gb = int(f.readline().split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        ram_gb = float("nan")
    return {
        "command": "python -m bench.run " + " ".join(sys.argv[1:]),
        "commit": _git_commit(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(ram_gb, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "servers": stores.server_versions(),
        "scale": args.scale,
        "workers": args.workers,
        "worker_args": args.worker_args,
        "repeat": args.repeat,
        "dbos_polling_interval": args.dbos_polling,
    }


def _git_commit() -> str:
    """HEAD, marked "+changes" when the package has uncommitted changes (what was measured)."""
    import subprocess

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=harness.REPO_ROOT, capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--", "django_workflows") else "")


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        f"machine: {env['cpu']}, {env['cores']} cores, {env['ram_gb']} GB RAM, Linux {env['kernel']}",
        f"versions: Python {env['python']}, Django {env['django']}, "
        + ", ".join(f"{k} {v}" for k, v in env["servers"].items())
        + (f", dbos {env['dbos']}" if "dbos" in env else ""),
        (
            f"commit {env.get('commit', '?')}, scale {env['scale']}, {env['workers']} worker processes"
            f" {env['worker_args']}, medians of {env['repeat']}"
        ),
    ]
    loads = [r.get("load_before", {}) for entry in report["stores"].values() for row in entry["workloads"].values()
             for r in row["ours_runs"] + [x for runs in row.get("dbos_runs", {}).values() for x in runs]]
    pressure = [x["cpu_pressure_10s"] for x in loads if "cpu_pressure_10s" in x]
    load1 = [x["loadavg_1m"] for x in loads if "loadavg_1m" in x]
    if load1:
        lines.append(
            f"machine load before runs: load average {min(load1):.1f}-{max(load1):.1f}"
            + (f", CPU pressure {min(pressure):.0f}-{max(pressure):.0f}%" if pressure else "")
            + " (this run's own workers included; other work on the machine lowers every number)"
        )
    header = ("workload", "ours st/s", "DBOS st/s", "ours/DBOS", "wf/s", "p50/p95 s", "peak MB", "tx/act (DBOS)",
              "CPU ms/act (DBOS)", "run CPU (DBOS)")
    for store, entry in report["stores"].items():
        raw = entry["raw_commit_per_s"]
        raw_text = "FAILED" if raw is None else f"{raw:,.0f}/s"
        lines += ["", f"{store}: raw commit rate {raw_text} (one connection, tiny INSERT+COMMIT)"]
        # PostgreSQL's server runs beside the workers here and its CPU per activity is sampled.
        server_cpu = store == "postgres"
        rows = [header + (("server CPU ms/act (DBOS)",) if server_cpu else ())]
        for row in entry["workloads"].values():
            ours, dbos = row["ours"], row.get("dbos")
            if ours is None:
                rows.append((row["label"], "FAILED", *["-"] * (len(rows[0]) - 2)))
                continue
            warn = "" if ours["counts_ok"] else " (COUNT MISMATCH)"
            rows.append((
                row["label"] + warn,
                _fmt(ours["steps_per_s"], ",.0f"),
                _fmt(dbos and dbos["steps_per_s"], ",.0f") + (f" ({dbos['dbos_w3']})" if dbos and row["label"].startswith("W3") else ""),
                _fmt(row.get("ratio"), ".2f") + ("x" if row.get("ratio") else ""),
                _fmt(ours["workflows_per_s"], ",.1f"),
                f"{ours['p50_s']:.2f}/{ours['p95_s']:.2f}",
                _fmt(ours["peak_rss_mb"], ".0f"),
                _fmt(ours["tx_per_activity"], ".2f") + (f" ({_fmt(dbos['tx_per_activity'], '.2f')})" if dbos else ""),
                _fmt(ours.get("cpu_ms_per_activity"), ".1f")
                + (f" ({_fmt(dbos.get('cpu_ms_per_activity'), '.1f')})" if dbos else ""),
                _fmt(ours.get("run_cpu_ms_per_activity"), ".2f")
                + (f" ({_fmt(dbos.get('run_cpu_ms_per_activity'), '.2f')})" if dbos else ""),
                *((
                    _fmt(ours.get("server_cpu_ms_per_activity"), ".2f")
                    + (f" ({_fmt(dbos.get('server_cpu_ms_per_activity'), '.2f')})" if dbos else ""),
                ) if server_cpu else ()),
            ))
        # The full-size workloads only: the reference figures are of those sizes.
        reference = GO_WORKFLOWS_REFERENCE.get(store, {}) if env["scale"] == "full" else {}
        for name in entry["workloads"]:
            if name in reference:
                steps, cpu = reference[name]
                rows.append((f"{name} go-workflows (reference*)", f"{steps:,.0f}", *["-"] * 6, f"{cpu:.2f}", "-",
                             *(("-",) if server_cpu else ())))
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            lines.append("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        for row in entry["workloads"].values():
            styles = {k: v for k, v in (row.get("dbos_styles") or {}).items() if v}
            if row["ours"] and len(styles) > 1:
                lines.append(
                    f"{row['label']}: ours/DBOS per fan-out style: "
                    + ", ".join(
                        f"{style} {m['steps_per_s']:,.0f} st/s = {row['ours']['steps_per_s'] / m['steps_per_s']:.2f}x"
                        for style, m in styles.items()
                    )
                )
        if any(name in reference for name in entry["workloads"]):
            lines.append(f"* {GO_WORKFLOWS_PROVENANCE}: its steps/s and worker CPU ms/act")
        what = next((row["ours"]["transactions_what"] for row in entry["workloads"].values() if row["ours"]), "")
        lines.append(f"tx/act: {what} per completed activity; CPU: worker processes' CPU time per activity"
                     " (run CPU: without their start-up)"
                     + ("; server CPU: the PostgreSQL backends serving the run (/proc), per activity" if server_cpu else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.from_json:
        print(render(summarize_rows(json.loads(args.from_json.read_text()))))
        return
    report = run_bench(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))


if __name__ == "__main__":
    main()
