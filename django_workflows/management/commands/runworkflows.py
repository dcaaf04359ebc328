"""``manage.py runworkflows``: run a workflow worker until SIGTERM or SIGINT.

This command only parses flags; ``django_workflows.runner.run_worker`` does the work. Problems
that keep the worker from working (an unknown backend alias, flags out of range, an unmigrated
or unreachable store) end it at once with a one-line error and exit status 1 (2 for flags that
do not parse); a store that stays unreachable for ``--max-outage`` seconds while it runs ends
it with status 1 too, so a supervisor restarts it. After SIGTERM/SIGINT, tasks still running
when ``--grace-period`` ends have their leases released, and the process exits with status 3.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value < 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a non-negative number of seconds, got {text}")
    return value


class Command(BaseCommand):
    help = "Run workflows and activities from the configured backend until SIGTERM/SIGINT (drains in-flight tasks)."
    # The system checks run in handle(), after the store check: with the database down they
    # would fail first, with a traceback instead of the one-line error.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue", action="append", dest="queues", metavar="QUEUE",
            help='Queue to poll (repeat for several; default "default"). The system queue is always polled.',
        )
        only = parser.add_mutually_exclusive_group()
        only.add_argument("--workflows-only", action="store_true", help="Run workflow tasks only.")
        only.add_argument("--activities-only", action="store_true", help="Run activity tasks only.")
        parser.add_argument("--workflow-pollers", type=non_negative_int, metavar="N", help="Workflow pollers (default 2).")
        parser.add_argument("--activity-pollers", type=non_negative_int, metavar="N", help="Activity pollers (default 2).")
        parser.add_argument(
            "--max-parallel-workflow-tasks", type=non_negative_int, metavar="N",
            help="Workflow tasks run at once (default 8; 0 = no limit).",
        )
        parser.add_argument(
            "--max-parallel-activity-tasks", type=non_negative_int, metavar="N",
            help="Activity tasks run at once (default 32; 0 = no limit).",
        )
        parser.add_argument(
            "--no-scheduler", action="store_true",
            help="Do not fire schedules from this worker (nor write the schedules declared in code).",
        )
        parser.add_argument(
            "--failure-policy", choices=("block", "fail"), dest="workflow_failure_policy",
            help="A workflow task the code cannot run (non-determinism, a bug, a deadlock): block the instance "
            "and retry until fixed code is deployed (default), or fail the workflow at once.",
        )
        parser.add_argument(
            "--deadlock-timeout", type=float, dest="workflow_deadlock_timeout", metavar="SECONDS",
            help="Workflow code that does not yield for this long is deadlocked (default 10; 0 = off).",
        )
        parser.add_argument("--backend", default="default", metavar="ALIAS", help="Alias in the WORKFLOWS setting.")
        parser.add_argument(
            "--max-outage", type=non_negative_seconds, metavar="SECONDS",
            help="Exit with status 1 once the store has been unreachable this long (default 300; 0 = retry forever).",
        )
        parser.add_argument(
            "--grace-period", type=non_negative_seconds, metavar="SECONDS",
            help="After SIGTERM/SIGINT, how long running tasks may finish; then their leases are released "
            "for other workers and the process exits with status 3 (default 30; 0 = release at once).",
        )
        parser.add_argument(
            "--executor-cache-size", type=non_negative_int, dest="workflow_executor_cache_size", metavar="N",
            help="Workflow executors kept in memory to continue without replaying history (default 128; 0 = none).",
        )
        parser.add_argument(
            "--executor-cache-ttl", type=non_negative_seconds, dest="workflow_executor_cache_ttl", metavar="SECONDS",
            help="How long an unused executor stays cached (default 10).",
        )
        parser.add_argument(
            "--until-idle", action="store_true",
            help="Exit once nothing is ready to run now (instances waiting for timers or signals do not count).",
        )
        parser.add_argument(
            "--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"], metavar="LEVEL",
            help="Level of the django_workflows loggers: DEBUG, INFO, WARNING or ERROR. Without LOGGING for "
            "them the worker logs to the console at this level (default INFO).",
        )
        parser.add_argument(
            "--app-version", default="", metavar="VERSION",
            help="Version of your code this worker runs (a release tag, a commit), shown with the live workers.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from ...runner import WorkerFailed, WorkerSettings, WorkerSetupError, prepare, run_worker

        settings = WorkerSettings(
            backend_alias=options["backend"],
            queues=tuple(options["queues"] or ("default",)),
            run_workflows=not options["activities_only"],
            run_activities=not options["workflows_only"],
            workflow_pollers=options["workflow_pollers"],
            activity_pollers=options["activity_pollers"],
            max_parallel_workflow_tasks=options["max_parallel_workflow_tasks"],
            max_parallel_activity_tasks=options["max_parallel_activity_tasks"],
            max_outage=options["max_outage"],
            workflow_failure_policy=options["workflow_failure_policy"],
            workflow_deadlock_timeout=options["workflow_deadlock_timeout"],
            until_idle=options["until_idle"],
            run_scheduler=not options["no_scheduler"],
            log_level=options["log_level"],
            app_version=options["app_version"] or None,
            grace_period=options["grace_period"],
            workflow_executor_cache_size=options["workflow_executor_cache_size"],
            workflow_executor_cache_ttl=options["workflow_executor_cache_ttl"],
        )
        try:
            backend = prepare(settings)
            if not options.get("skip_checks"):
                self.check()
            run_worker(settings, stdout=self.stdout, backend=backend)
        except (WorkerSetupError, WorkerFailed) as exc:
            raise CommandError(str(exc)) from None
