"""When a schedule fires: ``ScheduleSpec`` (a cron expression in a time zone, or a fixed interval)
and what it does when the previous run is still going (``OverlapPolicy``). Pure Python.

Cron expressions are parsed and evaluated by ``cronsim`` (a dependency: one pure-Python module),
which follows Debian's cron, daylight-saving quirks included:

- a job at a fixed time (both the minute and the hour fields are not ``*``), e.g. ``30 2 * * *``:
  when the clocks jump forward over its time it fires right after the jump (03:00); when they go
  back and the time happens twice it fires once, at the first of the two;
- a job that runs more often (``*/15 * * * *``, ``0 * * * *``) follows real time: it fires every
  15 minutes (every hour) through the change, twice in the repeated hour and not at all in the
  skipped one.

Intervals (``every=``) are aligned to the Unix epoch in UTC plus ``offset`` (``every=1 day,
offset=3 hours`` fires at 03:00 UTC each day), so every worker computes the same fire times
without any state, and time zones do not apply to them.

Fire times are whole seconds: an instance started for a firing is named after it to the second.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..engine.clock import to_timedelta

#: How far back a firing missed while no worker ran is still made up for (see the guide).
DEFAULT_CATCHUP_WINDOW = timedelta(minutes=1)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """A schedule's definition is not valid (the message says which part and why)."""


class OverlapPolicy(str, enum.Enum):
    """What a firing does while the schedule's previous run is still going (Temporal's names)."""

    #: Do not start; the firing is recorded as skipped (the default).
    SKIP = "skip"
    #: Start it once the previous run has finished; while one firing waits, later ones are skipped.
    BUFFER_ONE = "buffer_one"
    #: Start it anyway; runs may overlap.
    ALLOW_ALL = "allow_all"
    #: Cancel the previous run and start this one when it has finished (a newer firing replaces a
    #: waiting one).
    CANCEL_OTHER = "cancel_other"
    #: Terminate the previous run and start this one at once.
    TERMINATE_OTHER = "terminate_other"

    @classmethod
    def parse(cls, value: OverlapPolicy | str) -> OverlapPolicy:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(policy.value for policy in cls)
            raise ScheduleError(f"unknown overlap policy {value!r}; choose one of {choices}") from None


def _cronsim() -> Any:
    try:
        import cronsim
    except ImportError:  # pragma: no cover - the extra is installed wherever the tests run
        raise ScheduleError(
            "cron schedules need the cronsim package (a dependency of django-workflows): pip install cronsim"
        ) from None
    return cronsim


def _whole_seconds(value: timedelta | float | int, what: str) -> timedelta:
    delta = to_timedelta(value, what=what)
    if delta.microseconds:
        raise ScheduleError(f"{what} must be a whole number of seconds, got {delta}")
    return delta


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSpec:
    """``ScheduleSpec(cron="0 3 * * *", time_zone="Europe/Berlin")`` or
    ``ScheduleSpec(every=timedelta(hours=1), offset=timedelta(minutes=5))``.

    ``cron`` takes five fields (minute hour day-of-month month day-of-week) or six with seconds
    first, names (``MON``, ``JAN``), ``L``, ``LW`` and ``MON#2``; ``time_zone`` is an IANA name.
    ``every`` is at least one second; ``offset`` shifts the epoch-aligned interval (``0 <= offset
    < every``). Durations accept seconds or ``timedelta``.
    """

    cron: str | None = None
    time_zone: str = "UTC"
    every: timedelta | float | None = None
    offset: timedelta | float = timedelta(0)

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise ScheduleError("a schedule needs exactly one of cron= or every=")
        if self.cron is not None:
            if not isinstance(self.cron, str) or not self.cron.strip():
                raise ScheduleError(f"cron must be a non-empty string, got {self.cron!r}")
            object.__setattr__(self, "cron", " ".join(self.cron.split()))
            if not isinstance(self.time_zone, str) or not self.time_zone:
                raise ScheduleError(f"time_zone must be an IANA time zone name, got {self.time_zone!r}")
            try:
                zone = ZoneInfo(self.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ScheduleError(f"unknown time zone {self.time_zone!r} (expected an IANA name such as 'Europe/Berlin')") from None
            cronsim = _cronsim()
            try:
                cronsim.CronSim(self.cron, datetime(2000, 1, 1, tzinfo=zone))
            except cronsim.CronSimError as exc:
                raise ScheduleError(f"invalid cron expression {self.cron!r}: {exc}") from None
            if to_timedelta(self.offset, what="offset"):
                raise ScheduleError("offset= applies to every= schedules, not to cron ones")
            object.__setattr__(self, "offset", timedelta(0))
        else:
            every = _whole_seconds(self.every, "every")  # type: ignore[arg-type]
            if every < timedelta(seconds=1):
                raise ScheduleError(f"every must be at least one second, got {every}")
            offset = _whole_seconds(self.offset, "offset")
            if not timedelta(0) <= offset < every:
                raise ScheduleError(f"offset must be at least 0 and less than every ({every}), got {offset}")
            if self.time_zone != "UTC":
                raise ScheduleError("time_zone= applies to cron schedules; every= intervals are aligned to UTC")
            object.__setattr__(self, "every", every)
            object.__setattr__(self, "offset", offset)

    # -- fire times --------------------------------------------------------------------------

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after ``moment`` (aware), in UTC; None if there is none
        (a cron expression that matches no date in the next 50 years)."""
        if moment.utcoffset() is None:
            raise ValueError(f"moment must be timezone-aware, got {moment!r}")
        moment = moment.astimezone(UTC)
        if self.every is not None:
            every = int(self.interval.total_seconds())
            offset = int(self.offset_delta.total_seconds())
            elapsed = (moment - _EPOCH).total_seconds() - offset
            steps = math.floor(elapsed / every) + 1
            candidate = _EPOCH + timedelta(seconds=steps * every + offset)
            while candidate <= moment:  # float rounding at the boundary
                candidate += self.interval
            return candidate
        cronsim = _cronsim()
        iterator = cronsim.CronSim(self.cron, moment.astimezone(ZoneInfo(self.time_zone)))
        # cronsim evaluates fixed-time jobs in wall-clock time, where the hour repeated when the
        # clocks go back can yield a time before ``moment``: step past it, so fire times only
        # ever move forward.
        for _ in range(10_000):
            try:
                candidate = next(iterator).astimezone(UTC)
            except StopIteration:
                return None
            if candidate > moment:
                return candidate
        return None  # pragma: no cover - cronsim always moves forward within a few steps

    def fire_times(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times after ``after``."""
        times: list[datetime] = []
        moment: datetime | None = after
        while len(times) < count and moment is not None:
            moment = self.next_after(moment)
            if moment is not None:
                times.append(moment)
        return times

    @property
    def interval(self) -> timedelta:
        assert isinstance(self.every, timedelta)
        return self.every

    @property
    def offset_delta(self) -> timedelta:
        assert isinstance(self.offset, timedelta)
        return self.offset

    # -- forms -------------------------------------------------------------------------------

    def describe(self) -> str:
        """Short human form: ``cron 0 3 * * * (Europe/Berlin)``, ``every 3600s (+300s)``."""
        if self.cron is not None:
            return f"cron {self.cron} ({self.time_zone})"
        text = f"every {_seconds(self.interval)}"
        if self.offset_delta:
            text += f" (+{_seconds(self.offset_delta)})"
        return text

    def to_json(self) -> dict[str, Any]:
        if self.cron is not None:
            return {"cron": self.cron, "time_zone": self.time_zone}
        return {"every": self.interval.total_seconds(), "offset": self.offset_delta.total_seconds()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleSpec:
        if "cron" in data:
            return cls(cron=data["cron"], time_zone=data.get("time_zone", "UTC"))
        return cls(every=timedelta(seconds=data["every"]), offset=timedelta(seconds=data.get("offset", 0)))

    @classmethod
    def coerce(cls, value: ScheduleSpec | str | timedelta) -> ScheduleSpec:
        """A spec from its short forms: a cron string (UTC) or a ``timedelta`` interval."""
        if isinstance(value, ScheduleSpec):
            return value
        if isinstance(value, str):
            return cls(cron=value)
        if isinstance(value, timedelta):
            return cls(every=value)
        raise ScheduleError(f"a schedule is a ScheduleSpec, a cron string or a timedelta, got {value!r}")


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g}s"


# -- instance ids of firings --------------------------------------------------------------------

#: Longest schedule id: room for the ``@<time>`` suffix within the 128 characters of an instance id.
MAX_SCHEDULE_ID_LENGTH = 96


def run_instance_id(schedule_id: str, fire_time: datetime, *, triggered: bool = False) -> str:
    """``nightly@20250330T010000Z`` for the firing of 01:00 UTC; a run started by
    ``trigger_schedule`` is ``nightly@trigger-20250330T010203.456789Z`` (to the microsecond, so
    two triggers in one second are two runs)."""
    moment = fire_time.astimezone(UTC)
    if triggered:
        return f"{schedule_id}@trigger-{moment:%Y%m%dT%H%M%S.%f}Z"
    return f"{schedule_id}@{moment:%Y%m%dT%H%M%S}Z"
