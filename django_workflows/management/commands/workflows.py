"""``manage.py workflows list|show|history|signal|cancel|terminate|remove|status``: operate workflow
instances from the command line, on any backend.

A flag parser around ``django_workflows.operations``. ``--json`` (list, show, history, status)
prints machine-readable output; ``history --json`` prints the history export format
(``engine.history_export``). Exit status: 0 done, 1 not found or not allowed (a finished
instance, a running one to remove, an unreachable or unmigrated store), 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from .runworkflows import non_negative_int

#: Seconds between two progress lines of ``remove --finished-before`` (every batch at -v 2).
PROGRESS_SECONDS = 2.0


def _positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class Command(BaseCommand):
    help = "Operate workflow instances: list, show, history, signal, cancel, terminate, remove, status."
    # Output must be only what was asked for (JSON on stdout); `manage.py check` runs the checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backend", default="default", metavar="ALIAS", help="Alias in the WORKFLOWS setting.")
        commands = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

        def command(name: str, help: str, *, json_output: bool = False) -> Any:
            sub = commands.add_parser(name, help=help, description=help)
            if json_output:
                sub.add_argument("--json", action="store_true", help="Print JSON.")
            return sub

        def execution(sub: Any) -> None:
            sub.add_argument("--execution", metavar="EXECUTION_ID", help="An execution of the instance (default: the newest).")

        listing = command("list", "List executions, newest first.", json_output=True)
        listing.add_argument("--state", help="active, finished or continued_as_new.")
        listing.add_argument("--workflow", metavar="NAME", help="Workflow name.")
        listing.add_argument("--queue", help="Queue.")
        listing.add_argument("--since", metavar="WHEN", help="Created at or after WHEN: ISO date/time or 90m, 12h, 7d.")
        listing.add_argument("--prefix", metavar="ID_PREFIX", help="Instance id starts with this.")
        listing.add_argument("--limit", type=_positive_int, default=50, help="Executions per page (default 50, at most 1000).")
        listing.add_argument("--cursor", help="Continue after the page that printed this cursor.")

        show = command("show", "State, input, result or error, parent, children and pending work.", json_output=True)
        show.add_argument("instance_id", metavar="ID")
        execution(show)

        history = command("history", "History events, decoded (--json: the history export format).", json_output=True)
        history.add_argument("instance_id", metavar="ID")
        execution(history)

        signal = command("signal", "Send a signal to the running execution of an instance.")
        signal.add_argument("instance_id", metavar="ID")
        signal.add_argument("name", metavar="NAME")
        signal.add_argument("value", metavar="JSON", nargs="?", default="null", help="The signal's value as JSON (default null).")

        cancel = command("cancel", "Ask a running execution to cancel.")
        cancel.add_argument("instance_id", metavar="ID")
        execution(cancel)

        terminate = command("terminate", "End a running execution at once, without running its code.")
        terminate.add_argument("instance_id", metavar="ID")
        terminate.add_argument("--reason", required=True, help="Stored in the history.")
        execution(terminate)

        remove = command("remove", "Delete one finished execution, or all that finished before a date.")
        remove.add_argument("instance_id", metavar="ID", nargs="?")
        execution(remove)
        remove.add_argument("--finished-before", metavar="WHEN", help="ISO date/time or 30d, 12h...")
        remove.add_argument("--batch-size", type=_positive_int, default=100, help="Executions per batch (default 100).")

        status = command(
            "status",
            "Live workers, ready tasks per queue and their oldest age; exits 1 when a queue has work "
            "(or, with --queue, at all) but no live worker polls it: a health check.",
            json_output=True,
        )
        status.add_argument(
            "--queue", action="append", dest="queues", default=[], metavar="QUEUE",
            help="A queue that must have a live worker (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from ...client import Client
        from ...operations import OperationError, Operations
        from ...runner import WorkerSetupError, backend_for, check_store

        try:
            backend = backend_for(options["backend"])
            check_store(backend, options["backend"])
        except WorkerSetupError as exc:
            raise CommandError(str(exc), returncode=1) from None
        operations = Operations(Client(backend))
        try:
            getattr(self, f"do_{options['subcommand']}")(operations, options)
        except OperationError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from None

    def _print(self, options: dict[str, Any], data: Any, text: Any) -> None:
        """``data`` as JSON with ``--json``, else ``text()`` for people."""
        if options.get("json"):
            self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=repr))
        else:
            self.stdout.write(text())

    def do_list(self, operations: Any, options: dict[str, Any]) -> None:
        from ...engine.listing import InstanceFilter
        from ...operations import list_text, parse_moment, parse_state

        filter = InstanceFilter(
            state=parse_state(options["state"]) if options["state"] else None,
            workflow_name=options["workflow"],
            queue=options["queue"],
            created_after=parse_moment(options["since"]) if options["since"] else None,
            instance_id_prefix=options["prefix"],
        )
        data = operations.list_instances(filter, limit=options["limit"], cursor=options["cursor"])
        self._print(options, data, lambda: list_text(data))

    def do_show(self, operations: Any, options: dict[str, Any]) -> None:
        from ...operations import show_text

        data = operations.show(options["instance_id"], options["execution"])
        self._print(options, data, lambda: show_text(data))

    def do_history(self, operations: Any, options: dict[str, Any]) -> None:
        from ...operations import history_text

        document, decoded = operations.history(options["instance_id"], options["execution"])
        self._print(options, document, lambda: history_text(decoded))

    def do_signal(self, operations: Any, options: dict[str, Any]) -> None:
        from ...operations import parse_json

        value = parse_json(options["value"], "the signal value")
        operations.signal(options["instance_id"], options["name"], value)
        self.stdout.write(f"Signal {options['name']} sent to {options['instance_id']}.")

    def do_cancel(self, operations: Any, options: dict[str, Any]) -> None:
        instance = operations.cancel(options["instance_id"], options["execution"])
        self.stdout.write(f"Cancellation of {instance} requested; the workflow decides how it ends.")

    def do_terminate(self, operations: Any, options: dict[str, Any]) -> None:
        instance = operations.terminate(options["instance_id"], options["reason"], options["execution"])
        self.stdout.write(f"Terminated {instance}.")

    def do_remove(self, operations: Any, options: dict[str, Any]) -> None:
        from ...operations import UsageError, parse_moment

        if (options["instance_id"] is None) == (options["finished_before"] is None):
            raise UsageError("remove needs either an instance ID or --finished-before WHEN (not both)")
        if options["instance_id"] is not None:
            instance = operations.remove(options["instance_id"], options["execution"])
            self.stdout.write(f"Removed {instance}.")
            return
        before = parse_moment(options["finished_before"])
        removed = operations.remove_finished(before, options["batch_size"], self._removal_progress(options["verbosity"]))
        self.stdout.write(f"Removed {removed} execution(s) that finished before {before.isoformat()}.")

    def _removal_progress(self, verbosity: int) -> Callable[[int, int], None]:
        """Progress of a batch removal on stderr (stdout keeps the one result line): every
        batch with --verbosity 2, else at most every PROGRESS_SECONDS; nothing with 0."""
        started = last = time.monotonic()

        def report(batch: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if verbosity == 0 or not batch or (verbosity < 2 and now - last < PROGRESS_SECONDS):
                return
            last = now
            rate = total / max(now - started, 1e-6)
            self.stderr.write(f"removed {total} so far ({batch} in the last batch, {rate:.0f}/s)")

        return report

    def do_status(self, operations: Any, options: dict[str, Any]) -> None:
        from ... import health

        text, code = health.status(operations.client.backend, options["queues"], as_json=options["json"])
        self.stdout.write(text)
        if code:
            sys.exit(code)
