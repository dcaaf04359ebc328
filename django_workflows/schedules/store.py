"""The storage contract of schedules: ``ScheduleStore``, a small protocol each backend implements
next to its workflow storage and exposes as ``backend.schedules`` (memory: ``backends.memory``,
ORM: ``backends.orm.schedules``, Redis: ``backends.redis.schedules``). Pure Python.

A store keeps ``ScheduleRecord`` objects by schedule id and offers two atomic operations:

- ``put(schedule_id, change)``: read the record (``None`` if there is none), let ``change``
  compute the new one, write it, all in one atomic step (a transaction with the row locked, a
  Redis ``WATCH``, a lock); ``change`` may run more than once when the step is retried;
- ``claim(lease)`` and ``complete(claim, change)``: a scheduler *claims* a schedule that is due
  (its ``due_at`` has passed on the store's clock) under a lease no other claim can take while it
  lasts, does the firing, and *completes* the claim, which applies ``change`` only if the claim
  still holds (fenced by its token). A claim whose worker died expires and is taken again; the
  run instance ids (``records.run_instance``) make the repeated firing start nothing new.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from .records import ScheduleRecord


class ScheduleNotFound(LookupError):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule {schedule_id!r} not found")
        self.schedule_id = schedule_id


class ScheduleAlreadyExists(ValueError):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule {schedule_id!r} already exists")
        self.schedule_id = schedule_id


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleClaim:
    """A schedule claimed for firing, as it was when claimed."""

    record: ScheduleRecord
    token: str
    #: The store's clock at the claim (the database's or Redis's, not this process's).
    now: datetime


#: Computes a new record from the current one (``None``: there is none yet).
Change = Callable[[ScheduleRecord | None], ScheduleRecord]


@runtime_checkable
class ScheduleStore(Protocol):
    def now(self) -> datetime:
        """The store's clock (aware, UTC)."""

    def get(self, schedule_id: str) -> ScheduleRecord:
        """The record, or ``ScheduleNotFound``."""

    def list(self) -> list[ScheduleRecord]:
        """Every record, by schedule id."""

    def put(self, schedule_id: str, change: Change) -> ScheduleRecord:
        """Atomically replace the record by ``change(current)``; when ``change`` returns
        ``current`` itself nothing is written. Exceptions from ``change`` abort and propagate."""

    def delete(self, schedule_id: str) -> None:
        """Remove the record (``ScheduleNotFound`` if absent); a claim on it is lost."""

    def claim(self, lease: timedelta, schedule_id: str | None = None) -> ScheduleClaim | None:
        """Claim the schedule due first (or ``schedule_id``, due or not) unless another claim on
        it holds; None when there is none to claim."""

    def complete(self, claim: ScheduleClaim, change: Callable[[ScheduleRecord], ScheduleRecord]) -> ScheduleRecord | None:
        """If ``claim`` still holds, apply ``change`` to the current record and release the
        claim, atomically; None (nothing written) when the claim was lost."""

    def release(self, claim: ScheduleClaim) -> None:
        """Give up ``claim`` without changing the record (another claim may take it at once)."""
