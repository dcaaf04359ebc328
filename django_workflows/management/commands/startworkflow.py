"""``manage.py startworkflow NAME [ARG ...]``: start a registered workflow from the command line.

Arguments are JSON values (``42``, ``'"text"'``, ``'{"a": 1}'``); anything that is not valid JSON
is taken as a string, so ``startworkflow Workflow1 input-for-workflow`` works, and the command
says for each argument which it used (``'"42"'`` passes the string "42"). With ``--wait`` the
command waits for the result, which a worker in another process produces.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Start a registered workflow; optionally wait for its result."
    # Run after the store check (see handle): with the database down they would fail first.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workflow", help="Registered workflow name.")
        parser.add_argument("arguments", nargs="*", metavar="ARG", help="Arguments as JSON (bare words are strings).")
        parser.add_argument("--instance-id", help="Instance id (default: a random UUID).")
        parser.add_argument("--queue", default="default", help='Queue (default "default").')
        parser.add_argument("--backend", default="default", metavar="ALIAS", help="Alias in the WORKFLOWS setting.")
        parser.add_argument(
            "--wait", type=float, metavar="SECONDS", help="Wait up to SECONDS for the result and print it."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from ...client import Client, WorkflowInstanceOptions
        from ...engine.errors import BackendError, WorkflowError, WorkflowTimeout
        from ...registration import registry
        from ...runner import WorkerSetupError, backend_for, check_store

        name = options["workflow"]
        try:
            workflow = registry.get_workflow(name)
        except LookupError:
            known = ", ".join(sorted(n for n, _ in registry.workflows())) or "none"
            raise CommandError(f"workflow {name} not found; registered workflows: {known}") from None
        values = []
        for position, arg in enumerate(options["arguments"], start=1):
            value, is_json = _parse(arg)
            how = "JSON" if is_json else "not JSON, so a string"
            self.stdout.write(f"Argument {position}: {json.dumps(value, ensure_ascii=False)} ({how})")
            values.append(value)
        try:
            backend = backend_for(options["backend"])
            check_store(backend, options["backend"])
        except WorkerSetupError as exc:
            raise CommandError(str(exc)) from None
        if not options.get("skip_checks"):
            self.check()
        client = Client(backend)
        try:
            instance = client.create_workflow_instance(
                WorkflowInstanceOptions(instance_id=options["instance_id"], queue=options["queue"]), workflow, *values
            )
        except (TypeError, ValueError, BackendError) as exc:
            raise CommandError(f"could not start {name}: {exc}") from exc
        self.stdout.write(f"Started {name} as instance {instance.instance_id} (execution {instance.execution_id})")
        if options["wait"] is None:
            return
        try:
            result = client.get_workflow_result(instance, options["wait"])
        except WorkflowTimeout:
            raise CommandError(f"{name} did not finish within {options['wait']:g} s; is `manage.py runworkflows` running?") from None
        except WorkflowError as exc:
            raise CommandError(f"{name} failed: {exc.type + ': ' if exc.type else ''}{exc}") from None
        self.stdout.write(f"Workflow completed with result: {result}")


def _parse(text: str) -> tuple[Any, bool]:
    """``(value, True)`` for JSON text (NaN and Infinity are not JSON), else ``(text, False)``."""
    try:
        return json.loads(text, parse_constant=_no_constants), True
    except ValueError:
        return text, False


def _no_constants(name: str) -> Any:
    raise ValueError(name)
