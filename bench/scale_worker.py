"""A ``runworkflows`` worker for the scale bench that publishes its live counters.

    BENCH_SCALE_LIVE_FILE=/tmp/live.json python -m bench.scale_worker [runworkflows flags]

The bench's own counters (``bench.counting``) are written when a worker exits; the idle
measurement of ``bench.scale`` needs them over a window while the worker runs, so this process
writes them every ``LIVE_INTERVAL`` seconds to ``BENCH_SCALE_LIVE_FILE`` as JSON, with the
wall-clock time and the process's CPU time. Counted here:

- ``statements``: every statement the worker sends to the database, on any connection. The ORM
  backend runs its statements on the driver's cursors (not through Django's ``execute_wrapper``),
  so the drivers are counted: psycopg's and MySQLdb's ``Cursor.execute``/``executemany``
  (patched in this process), SQLite through ``bench.counting``'s trace callback
  (``sqlite_statements``, transaction control excluded; ``BENCH_COUNT_FILE`` switches it on).
- Redis: ``redis_round_trips`` (``bench.counting``), a pipeline or script call being one.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from bench import counting

LIVE_FILE_ENV = "BENCH_SCALE_LIVE_FILE"
LIVE_INTERVAL = 0.25


def count_driver_cursors() -> None:
    """Count ``execute``/``executemany`` of the server drivers' cursors in this process."""

    def patch(cls: Any) -> None:
        for name in ("execute", "executemany"):
            original = getattr(cls, name, None)
            if original is None or getattr(original, "_scale_counted", False):
                continue

            def counted(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
                counting.bump("statements")
                return __original(self, *args, **kwargs)

            counted._scale_counted = True  # type: ignore[attr-defined]
            setattr(cls, name, counted)

    try:
        import psycopg

        patch(psycopg.Cursor)
    except ImportError:
        pass
    try:
        from MySQLdb import cursors

        patch(cursors.BaseCursor)
    except ImportError:
        pass


def publish(path: str) -> None:
    while True:
        times = os.times()
        snapshot = counting.snapshot()
        snapshot["statements"] = snapshot.get("statements", 0) + snapshot.get("sqlite_statements", 0)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"time": time.time(), "cpu_s": times.user + times.system, "counts": snapshot}, f)
        os.replace(tmp, path)
        time.sleep(LIVE_INTERVAL)


def read_live(path: str) -> dict[str, Any]:
    """The latest counters a worker published (the driver's side)."""
    with open(path, encoding="utf-8") as f:
        live: dict[str, Any] = json.load(f)
    return live


def main(argv: list[str]) -> None:
    count_driver_cursors()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django
    from django.core.management import call_command

    django.setup()
    path = os.environ.get(LIVE_FILE_ENV)
    if path:
        threading.Thread(target=publish, args=(path,), name="scale-live-counters", daemon=True).start()
    call_command("runworkflows", *argv)


if __name__ == "__main__":
    main(sys.argv[1:])
