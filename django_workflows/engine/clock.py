"""Clocks. The engine reads time only through a ``Clock`` so tests can control it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


system_clock = SystemClock()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_timedelta(value: float | int | timedelta | None, *, what: str = "duration") -> timedelta:
    """Accept seconds or a ``timedelta``, as every public timeout and delay does."""
    if value is None:
        return timedelta(0)
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be seconds (int or float) or a timedelta, got {type(value).__name__}")
    return timedelta(seconds=value)


def format_duration(delta: timedelta) -> str:
    """Short human form of a duration: ``2s``, ``1.5s``, ``3600s``."""
    seconds = delta.total_seconds()
    return f"{seconds:g}s"
