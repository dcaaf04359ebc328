"""``manage.py runworkflows``: run a workflow worker until SIGTERM or SIGINT.

This command only parses flags; ``django_workflows.runner.run_worker`` does the work.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run workflows and activities from the configured backend until SIGTERM/SIGINT (drains in-flight tasks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue", action="append", dest="queues", metavar="QUEUE",
            help='Queue to poll (repeat for several; default "default"). The system queue is always polled.',
        )
        only = parser.add_mutually_exclusive_group()
        only.add_argument("--workflows-only", action="store_true", help="Run workflow tasks only.")
        only.add_argument("--activities-only", action="store_true", help="Run activity tasks only.")
        parser.add_argument("--workflow-pollers", type=int, metavar="N", help="Workflow pollers (default 2).")
        parser.add_argument("--activity-pollers", type=int, metavar="N", help="Activity pollers (default 2).")
        parser.add_argument(
            "--max-parallel-workflow-tasks", type=int, metavar="N",
            help="Workflow tasks run at once (default 8; 0 = no limit).",
        )
        parser.add_argument(
            "--max-parallel-activity-tasks", type=int, metavar="N",
            help="Activity tasks run at once (default 32; 0 = no limit).",
        )
        parser.add_argument(
            "--no-scheduler", action="store_true",
            help="Do not fire schedules from this worker (nor write the schedules declared in code).",
        )
        parser.add_argument("--backend", default="default", metavar="ALIAS", help="Alias in the WORKFLOWS setting.")
        parser.add_argument(
            "--until-idle", action="store_true",
            help="Exit once no workflow instance is active and no task is pending or running.",
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
        from ...runner import WorkerSettings, run_worker

        settings = WorkerSettings(
            backend_alias=options["backend"],
            queues=tuple(options["queues"] or ("default",)),
            run_workflows=not options["activities_only"],
            run_activities=not options["workflows_only"],
            workflow_pollers=options["workflow_pollers"],
            activity_pollers=options["activity_pollers"],
            max_parallel_workflow_tasks=options["max_parallel_workflow_tasks"],
            max_parallel_activity_tasks=options["max_parallel_activity_tasks"],
            until_idle=options["until_idle"],
            run_scheduler=not options["no_scheduler"],
            log_level=options["log_level"],
            app_version=options["app_version"] or None,
        )
        run_worker(settings, stdout=self.stdout)
