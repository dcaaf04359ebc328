"""The worker's outage handling without a server: a memory backend whose polls fail while a switch
is on. The real outages (MariaDB, PostgreSQL, Redis servers stopped under a running worker) are
in ``tests/django/test_worker_outage.py``; these check the schedule and the log lines exactly."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from django_workflows.backends.memory import MemoryBackend
from django_workflows.worker import StoreUnavailable, Worker, WorkerOptions
from tests.conftest import wait_for


class FlakyBackend(MemoryBackend):
    """Polls raise ``ConnectionError`` while ``down`` is set, and count how often they were tried."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.down = threading.Event()
        self.polls = 0
        self._count = threading.Lock()

    def _maybe_fail(self) -> None:
        with self._count:
            self.polls += 1
        if self.down.is_set():
            raise ConnectionError("server closed the connection\n\thint on a second line")

    def get_workflow_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[Any]:
        self._maybe_fail()
        return super().get_workflow_tasks(queues, min(timeout, 0.05), max_tasks)

    def get_activity_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[Any]:
        self._maybe_fail()
        return super().get_activity_tasks(queues, min(timeout, 0.05), max_tasks)


def _steps(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("store unreachable")]


def test_outage_longer_than_max_outage_stops_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    backend = FlakyBackend()
    backend.down.set()
    worker = Worker(backend, WorkerOptions(workflow_pollers=3, activity_pollers=3, max_outage=2.5))
    with caplog.at_level(logging.DEBUG, logger="django_workflows.worker"):
        worker.start()
        wait_for(lambda: worker.failure is not None, timeout=60, what="the worker to give up")
        assert worker.wait_for_completion(30)
    assert isinstance(worker.failure, StoreUnavailable)
    assert re.search(r"unreachable for (2\.[5-9]|[3-9]\.\d) s \(max_outage 2\.5 s\)", str(worker.failure))
    assert "ConnectionError: server closed the connection hint on a second line" in str(worker.failure)
    steps = _steps(caplog)
    # Per kind of poller: steps at 0, 0.5, 1.5 s (then the 2.5 s limit): three lines each,
    # however many of its three pollers failed.
    for kind in ("workflow", "activity"):
        assert len([line for line in steps if f"next {kind} poll" in line]) == 3, steps
    assert all("\n" not in line for line in steps)
    assert backend.polls < 40, "pollers back off instead of polling in a loop"


def test_a_short_outage_is_ridden_out(caplog: pytest.LogCaptureFixture) -> None:
    backend = FlakyBackend()
    worker = Worker(backend, WorkerOptions(workflow_pollers=2, activity_pollers=2, max_outage=0))
    with caplog.at_level(logging.INFO, logger="django_workflows.worker"):
        worker.start()
        try:
            backend.down.set()
            wait_for(lambda: len(_steps(caplog)) >= 4, timeout=60, what="two backoff steps per kind")
            backend.down.clear()
            messages = lambda: [r.getMessage() for r in caplog.records]  # noqa: E731
            wait_for(lambda: sum("store reachable again" in m for m in messages()) == 2, timeout=60, what="recovery")
        finally:
            worker.stop()
            worker.wait_for_completion(30)
    assert worker.failure is None
    assert all("retrying forever" in line for line in _steps(caplog))


def test_max_outage_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_outage must not be negative"):
        WorkerOptions(max_outage=-1)
