"""How a Django task is run: attempts, the wait between them, a timeout per attempt.

One ``RunOptions`` comes from the backend's ``OPTIONS`` (the defaults of every task of that
``TASKS`` alias), and a task can override each field with the keyword arguments of
``@task(...)`` (Django 6.1) or ``WorkflowsTask(...)``. The values travel to the worker inside the
task's start event, so a change of settings never alters a task already enqueued.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..engine.clock import to_timedelta

#: A task runs once unless told otherwise, as with Django's other backends; retries are opt-in.
DEFAULT_MAX_ATTEMPTS = 1
DEFAULT_RETRY_INTERVAL = 1.0
DEFAULT_BACKOFF_COEFFICIENT = 2.0
DEFAULT_MAX_RETRY_INTERVAL = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """``max_attempts`` counts the first attempt; retry n (from 1) waits ``retry_interval *
    backoff_coefficient ** (n - 1)``, at most ``max_retry_interval`` (0: no cap); ``timeout``
    (seconds, ``None`` = none) bounds each attempt. Durations are seconds or ``timedelta``."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_interval: float = DEFAULT_RETRY_INTERVAL
    backoff_coefficient: float = DEFAULT_BACKOFF_COEFFICIENT
    max_retry_interval: float = DEFAULT_MAX_RETRY_INTERVAL
    timeout: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be a whole number of at least 1, got {self.max_attempts!r}")
        for name in ("retry_interval", "max_retry_interval"):
            object.__setattr__(self, name, _seconds(name, getattr(self, name), allow_zero=True))
        if self.timeout is not None:
            object.__setattr__(self, "timeout", _seconds("timeout", self.timeout, allow_zero=False))
        coefficient = self.backoff_coefficient
        if isinstance(coefficient, bool) or not isinstance(coefficient, (int, float)) or coefficient < 1:
            raise ValueError(f"backoff_coefficient must be a number of at least 1, got {coefficient!r}")
        object.__setattr__(self, "backoff_coefficient", float(coefficient))

    @classmethod
    def from_mapping(cls, values: dict[str, Any], *, where: str) -> RunOptions:
        """Options from a settings mapping; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown option(s) {', '.join(unknown)}; known are {', '.join(sorted(known))}")
        return cls(**values)

    def override(self, **values: Any) -> RunOptions:
        """These options with the fields given (not ``None``) replaced."""
        chosen = {name: value for name, value in values.items() if value is not None}
        return RunOptions(**{**asdict(self), **chosen}) if chosen else self

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...)."""
        delay = self.retry_interval * self.backoff_coefficient ** (retry - 1)
        return min(delay, self.max_retry_interval) if self.max_retry_interval else delay

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seconds(name: str, value: Any, *, allow_zero: bool) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be seconds or a timedelta, got {value!r}")
    try:
        seconds = to_timedelta(value, what=name).total_seconds()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be seconds or a timedelta, got {value!r}") from exc
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'at least 0' if allow_zero else 'positive'}, got {value!r}")
    return seconds


__all__ = ["RunOptions"]
