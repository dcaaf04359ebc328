"""``manage.py replayworkflows [PATH ...]``: replay recorded histories against the workflow code
registered now and exit non-zero on any mismatch, so a CI job can refuse a deploy that would
block running instances.

Without paths it replays executions from the database of an ORM backend (``--backend``), chosen
with ``--workflow``, ``--state`` (default: running ones), ``--since`` and ``--limit``; with paths
it replays JSON history files, and the ``*.json`` files of directories (``testing.history_files``).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Replay recorded workflow histories against the code deployed now; fail on any mismatch."

    def add_arguments(self, parser: CommandParser) -> None:
        from ...replay import STATES

        parser.add_argument("paths", nargs="*", metavar="PATH", help="JSON history files or directories (default: the database).")
        parser.add_argument("--backend", default="default", metavar="ALIAS", help="Alias in the WORKFLOWS setting.")
        parser.add_argument("--workflow", action="append", default=[], metavar="NAME", help="Only this workflow (repeatable).")
        parser.add_argument("--state", default="running", choices=STATES, help='Which executions (default "running").')
        parser.add_argument("--since", metavar="WHEN", help="Started since an ISO date/date-time, or a duration ago (7d, 12h, 30m).")
        parser.add_argument("--limit", type=int, default=1000, metavar="N", help="At most N executions, newest first (default 1000).")

    def handle(self, *args: Any, **options: Any) -> None:
        from ...backends import workflow_backends
        from ...replay import SelectionError, parse_since, stored_executions
        from ...testing.history_files import HistoryFileError
        from ...testing.replayer import Replayer

        backend = workflow_backends[options["backend"]]
        replayer = Replayer(converter=backend.options.converter, propagators=backend.options.context_propagators)
        try:
            if options["paths"]:
                report = replayer.replay_files(*options["paths"])
            else:
                since = parse_since(options["since"]) if options["since"] else None
                instances = stored_executions(
                    backend, workflows=options["workflow"], state=options["state"], since=since, limit=options["limit"]
                )
                report = replayer.replay_backend(backend, instances)
        except (SelectionError, HistoryFileError) as exc:
            raise CommandError(str(exc)) from None
        for mismatch in report.mismatches:
            self.stderr.write(f"MISMATCH {mismatch}")
            if options["verbosity"] > 1:
                self.stderr.write(f"  {mismatch.message}")
        if not report.ok:
            raise CommandError(
                f"{len(report.mismatches)} of {report.replayed} histories do not replay with the code deployed now"
            )
        self.stdout.write(f"Replayed {report.replayed} histories: all match the code deployed now.")
