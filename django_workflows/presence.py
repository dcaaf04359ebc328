"""A worker's entry in the store's registry of live workers (pure core; docs/observability.md).

``WorkerPresence`` registers the worker when it starts (id, host, pid, queues, the project's
``app_version``, django_workflows' version, start time), renews the entry from a thread every
``interval`` seconds with the number of tasks in flight, and removes it on a clean stop. The
entry lives ``TTL_HEARTBEATS`` intervals: a worker that dies without stopping disappears from
the list after that, by the store's clock. A store that is unreachable for a while costs a few
warnings, never the worker: the entry is registered again once the store answers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta

from .engine.backend import Backend, Feature, WorkerInfo
from .engine.clock import system_clock
from .telemetry import library_version

logger = logging.getLogger("django_workflows.worker")

#: An entry expires after this many missed heartbeats.
TTL_HEARTBEATS = 3


def new_worker_id() -> str:
    """A worker id that names the machine and the process, unique among restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class WorkerPresence:
    def __init__(
        self, backend: Backend, *, interval: timedelta, app_version: str, in_flight: Callable[[], int]
    ) -> None:
        self.backend = backend
        self.worker_id = new_worker_id()
        self.interval = interval.total_seconds()
        self.ttl = interval * TTL_HEARTBEATS
        self._app_version = app_version
        self._in_flight = in_flight
        self._info: WorkerInfo | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered = False
        self._failing = False
        self.enabled = backend.feature_supported(Feature.WORKER_REGISTRY) and self.interval > 0

    def start(self, workflow_queues: Sequence[str], activity_queues: Sequence[str]) -> None:
        if not self.enabled:
            return
        self._info = WorkerInfo(
            worker_id=self.worker_id,
            name=self.backend.options.worker_name,
            host=socket.gethostname(),
            pid=os.getpid(),
            workflow_queues=tuple(workflow_queues),
            activity_queues=tuple(activity_queues),
            app_version=self._app_version,
            library_version=library_version(),
            started_at=system_clock.now(),
        )
        self._beat()
        self._thread = threading.Thread(target=self._run, name="workflows-presence", daemon=True)
        self._thread.start()

    def stop(self, *, unregister: bool = True) -> None:
        """Stop heartbeating and remove the entry (a worker that stops cleanly is gone at once;
        without ``unregister`` it expires by itself)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._thread = None
        if not unregister:
            return
        try:
            self.backend.unregister_worker(self.worker_id)
        except Exception as exc:  # the store is down (maybe why the worker stops)
            logger.warning(
                "removing worker %s from the registry failed (%s: %s); it expires on its own",
                self.worker_id, type(exc).__name__, exc,
            )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def _beat(self) -> None:
        assert self._info is not None
        try:
            if not self._registered or not self.backend.heartbeat_worker(self.worker_id, self._in_flight(), self.ttl):
                # First time, or the entry expired (the store was away longer than the TTL).
                self.backend.register_worker(self._info, self.ttl)
                self._registered = True
        except Exception as exc:
            if not self._failing:
                logger.warning(
                    "recording worker %s in the registry failed (%s: %s); retrying", self.worker_id, type(exc).__name__, exc
                )
            self._failing = True
            self._registered = False
            return
        if self._failing:
            logger.info("worker %s is in the registry again", self.worker_id)
        self._failing = False
