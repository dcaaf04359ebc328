"""The scheduler loop a worker runs (pure Python): claim the schedules that are due, fire them,
complete the claims; and the sync of the schedules declared in code when a worker starts.

Every worker with the scheduler enabled runs one loop; they share the work through the store's
claims (one claim per schedule at a time), and a firing that two workers handle anyway (a claim
that expired while its worker stalled) starts one run, because the run's instance and execution
ids follow from the schedule id and the fire time and the backend refuses a second start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from ..engine.backend import Backend
from ..engine.clock import to_timedelta
from ..engine.converter import Converter
from ..engine.errors import NotSupported, one_line
from .declarations import Schedule
from .firing import BackendRuntime, Firing, Runtime, apply, fire
from .records import ScheduleDefinition, ScheduleRecord, new_record, redefined
from .spec import OverlapPolicy
from .store import ScheduleClaim, ScheduleStore

logger = logging.getLogger("django_workflows.schedules")

#: Seconds between two looks of an idle scheduler loop for due schedules.
DEFAULT_SCHEDULER_INTERVAL = 1.0
#: How long a claim keeps other schedulers off a schedule while its firing runs.
DEFAULT_CLAIM_LEASE = timedelta(seconds=15)
# Claims one round takes at most before it sleeps again (others may be due meanwhile).
_CLAIMS_PER_ROUND = 100


def schedule_store(backend: Backend) -> ScheduleStore:
    """The backend's schedule store (``backend.schedules``); ``NotSupported`` if it has none."""
    store = backend.schedules
    if store is None:
        raise NotSupported(f"{type(backend).__name__} does not store schedules")
    return store


def fire_claim(
    store: ScheduleStore,
    claim: ScheduleClaim,
    runtime: Runtime,
    *,
    trigger: bool = False,
    trigger_overlap: OverlapPolicy = OverlapPolicy.ALLOW_ALL,
) -> Firing:
    """Fire what ``claim`` holds and complete it. If the firing fails half-way, the claim is
    left to expire: the next claim repeats it, and the runs it started are not started again."""
    firing = fire(claim.record, claim.now, runtime, trigger=trigger, trigger_overlap=trigger_overlap)
    if store.complete(claim, apply(firing, claim.now)) is None:
        logger.warning(
            "the claim on schedule %s was lost before it completed (deleted, or its lease expired and "
            "another scheduler took it); that one records the firing", claim.record.schedule_id,
        )
    return firing


def sync_declared(store: ScheduleStore, declared: Iterable[tuple[str, Schedule]], converter: Converter) -> list[str]:
    """Create or update the schedules declared in code (``(workflow name, Schedule)`` pairs);
    return the ids it wrote. Each is one atomic ``put``, so workers that start together write a
    schedule once, never twice; the pause state and the runs of existing ones are kept."""
    written: list[str] = []
    for workflow_name, declaration in declared:
        definition = declaration.definition(workflow_name, converter)
        wrote: list[bool] = []

        def change(current: ScheduleRecord | None, definition: ScheduleDefinition = definition, wrote: list[bool] = wrote) -> ScheduleRecord:
            wrote[:] = [False]
            now = store.now()
            if current is None:
                record = new_record(definition, now)
            elif current.definition.same_as(definition):
                return current
            else:
                record = redefined(current, definition, now)
            wrote[:] = [True]
            return record

        store.put(definition.schedule_id, change)
        if wrote == [True]:
            written.append(definition.schedule_id)
            logger.info("schedule %s (workflow %s, %s) written from its declaration in code",
                        definition.schedule_id, workflow_name, definition.spec.describe())
    return written


class Scheduler:
    """Fires due schedules of a backend from a thread of its own (``Worker`` starts one)."""

    def __init__(
        self,
        backend: Backend,
        *,
        interval: float | timedelta = DEFAULT_SCHEDULER_INTERVAL,
        lease: float | timedelta = DEFAULT_CLAIM_LEASE,
        task_scope: Any = None,
    ) -> None:
        self.store = schedule_store(backend)
        self.runtime = BackendRuntime(backend)
        self.interval = to_timedelta(interval, what="scheduler interval").total_seconds()
        if self.interval <= 0:
            raise ValueError(f"the scheduler interval must be positive, got {interval!r}")
        self.lease = to_timedelta(lease, what="claim lease")
        self._task_scope = task_scope
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Firings this scheduler handled (a metric, and what tests wait on).
        self.firings = 0

    def run_once(self) -> int:
        """Fire every schedule that is due now; return how many claims were fired."""
        fired = 0
        while fired < _CLAIMS_PER_ROUND and not self._stop.is_set():
            claim = self.store.claim(self.lease)
            if claim is None:
                break
            fire_claim(self.store, claim, self.runtime)
            fired += 1
            self.firings += 1
        return fired

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="workflows-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                scope = self._task_scope() if self._task_scope is not None else None
                if scope is not None:
                    with scope:
                        self.run_once()
                else:
                    self.run_once()
                if failures:
                    logger.info("the scheduler fires schedules again after %d failed round(s)", failures)
                failures = 0
            except Exception as exc:
                # The store is unreachable (a restarting database...) or a firing failed: its
                # claim expires and is retried; back off meanwhile, with one line per backoff
                # step (the traceback at DEBUG: during an outage the pollers report it too).
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                if delay < 5.0 or failures % 12 == 0:
                    logger.warning(
                        "the scheduler failed to fire due schedules (%s); retrying in %.1f s",
                        one_line(exc),
                        delay,
                    )
                logger.debug("the scheduler's failure", exc_info=True)
                self._stop.wait(delay)
                continue
            self._stop.wait(self.interval)

