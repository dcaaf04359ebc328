"""Tell the bench driver when a ``runworkflows`` worker starts polling.

``django_workflows.runner`` logs "worker ... started" just before it starts its pollers; this
logging handler (configured in ``bench.settings``) then writes the wall-clock time to the file
named by ``BENCH_READY_FILE``. The driver times a run from the first worker that is ready, so
interpreter and Django start-up are not counted as workflow throughput (the same rule applies
to the DBOS workers, which write the file after ``DBOS.launch()``). The file's second field is
the process's CPU time at that moment, so that the driver can tell the CPU the run itself cost
from the start-up's.
"""

from __future__ import annotations

import logging
import os
import time

READY_FILE_ENV = "BENCH_READY_FILE"


def mark_ready() -> None:
    path = os.environ.get(READY_FILE_ENV)
    if path:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{time.time()!r} {time.process_time()!r}")
        os.replace(tmp, path)


class ReadyFileHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("worker %s started"):
            mark_ready()
