"""Activity attempts in ``WorkflowTester``: their timeouts in workflow time, heartbeats with
details, and cancellation (the tester's side of what a backend and a worker do for them).

Each attempt the tester starts (a real activity on its thread, or a mock) gets an ``Attempt``.
Its timeouts are tester timers: start-to-close and schedule-to-close from the start (the tester
starts activities at once, so schedule-to-start never fires unless a mock asks for it with
``times_out``), heartbeat from the start and from each ``activity.heartbeat()``. When one fires
the attempt is over: the workflow receives ``ActivityTimeoutError``, the activity's heartbeats
raise ``ActivityLeaseLost`` and its late result is discarded. A cancellation request reaches a
real activity at its next heartbeat; a mock that hangs answers ``Canceled`` at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..engine.activity_runner import ActivityCanceled, ActivityLeaseLost
from ..engine.converter import Payload
from ..engine.core import WorkflowInstance
from ..engine.errors import TimeoutType
from ..engine.history import ActivityScheduledAttributes, Event


def timeout_of(attributes: ActivityScheduledAttributes, kind: TimeoutType) -> timedelta | None:
    """The duration of one timeout of an attempt, None if it has none."""
    seconds = {
        TimeoutType.START_TO_CLOSE: attributes.start_to_close_timeout,
        TimeoutType.SCHEDULE_TO_CLOSE: attributes.schedule_to_close_timeout,
        TimeoutType.SCHEDULE_TO_START: attributes.schedule_to_start_timeout,
        TimeoutType.HEARTBEAT: attributes.heartbeat_timeout,
    }[kind]
    return None if seconds is None else timedelta(seconds=seconds)


@dataclass(eq=False)
class Attempt:
    """One running attempt. ``arm(kind, at)`` is the tester's way to add a timer that calls
    ``fire(kind)``; it returns a function that disarms it."""

    instance: WorkflowInstance
    scheduled: Event
    #: A mock that never answers (``hangs``/``times_out``), not a real activity.
    mocked: bool
    arm: Callable[[TimeoutType, datetime], Callable[[], None]]
    details: Payload | None = None
    canceled: bool = False
    over: bool = False
    _disarm: dict[TimeoutType, Callable[[], None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def attributes(self) -> ActivityScheduledAttributes:
        attributes = self.scheduled.attributes
        assert isinstance(attributes, ActivityScheduledAttributes)
        return attributes

    def start(self, now: datetime, only: TimeoutType | None = None) -> None:
        """Arm the timeouts that run from the start (or just ``only``, for ``times_out``)."""
        self.details = self.attributes.heartbeat_details
        kinds = [only] if only is not None else [TimeoutType.START_TO_CLOSE, TimeoutType.SCHEDULE_TO_CLOSE, TimeoutType.HEARTBEAT]
        for kind in kinds:
            duration = timeout_of(self.attributes, kind)
            if duration is not None:
                self._set(kind, now + duration)

    def _set(self, kind: TimeoutType, at: datetime) -> None:
        previous = self._disarm.pop(kind, None)
        if previous is not None:
            previous()
        self._disarm[kind] = self.arm(kind, at)

    def end(self) -> bool:
        """The attempt is over (finished, timed out, its workflow ended); False if it already was."""
        with self._lock:
            if self.over:
                return False
            self.over = True
            disarm, self._disarm = list(self._disarm.values()), {}
        for cancel in disarm:
            cancel()
        return True

    # -- called from a real activity's thread ----------------------------------------------------

    def heartbeat(self, details: Payload | None, now: datetime) -> None:
        with self._lock:
            if self.over:
                raise ActivityLeaseLost("this attempt is over (it timed out, or its workflow ended)")
            if self.canceled:
                raise ActivityCanceled("the workflow canceled this activity")
            if details is not None:
                self.details = details
            duration = timeout_of(self.attributes, TimeoutType.HEARTBEAT)
            if duration is not None:
                self._set(TimeoutType.HEARTBEAT, now + duration)

    def is_canceled(self) -> bool:
        return self.canceled or self.over


def describe(kind: TimeoutType, attempt: Any) -> str:
    return f"{kind.value} timeout of activity {attempt.attributes.name} ({attempt.instance.instance_id})"
