"""``python -m tests.soak``: the flags of a soak (``run.SoakConfig``); exit status 0 when every
invariant holds, 1 when one does not, 2 for bad flags. Run it from the repository root."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.soak.run import SoakConfig, run_soak
from tests.soak.stores import BACKENDS, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--backend", choices=BACKENDS, required=True, help="The store (a private server of the soak's own).")
    parser.add_argument("--workflows", type=int, default=100, metavar="N", help="Workflows to run (each starts a sub-workflow).")
    parser.add_argument("--workers", type=int, default=3, metavar="W", help="runworkflows processes kept running.")
    parser.add_argument("--kills", type=int, default=3, metavar="K", help="SIGKILLs of random workers, spread over the run.")
    parser.add_argument("--restart", action="store_true", help="Restart the store's server once (at a third of the work).")
    parser.add_argument("--lease", type=float, default=4.0, metavar="SECONDS", help="Workflow and activity lease timeouts.")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS", help="Longest wait for the instances to finish.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the choice of workers to kill.")
    parser.add_argument("--workdir", type=Path, help="Directory for logs and the ledger (kept).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory even when the run is clean.")
    parser.add_argument("--json", type=Path, metavar="PATH", help="Write the report as JSON there too.")
    args = parser.parse_args(argv)
    reason = missing(args.backend)
    if reason:
        parser.error(f"cannot soak on {args.backend}: {reason}")
    try:
        config = SoakConfig(
            backend=args.backend, workflows=args.workflows, workers=args.workers, kills=args.kills,
            restart=args.restart, lease_seconds=args.lease, timeout=args.timeout, seed=args.seed,
            workdir=args.workdir, keep=args.keep,
        )
    except ValueError as exc:
        parser.error(str(exc))
    report = run_soak(config)
    print(report.summary())
    if args.json is not None:
        args.json.write_text(report.to_json())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
