"""Schedules declared in code: ``@register_workflow(schedule=...)`` (pure Python).

    @register_workflow(schedule=Schedule(ScheduleSpec(cron="0 3 * * *", time_zone="Europe/Berlin"), "pdf"))
    async def nightly_report(ctx, fmt): ...

Every worker that starts with its scheduler enabled writes the declared schedules into the
backend's store (``scheduler.sync_declared``): new ones are created, changed ones updated, the
same ones left alone. The code is the source of truth for what a declared schedule starts and
when; whether it is paused is the operators' (a restart does not unpause it). Removing a
declaration does not delete the stored schedule: delete it with ``Client.delete_schedule`` or in
the admin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..engine.clock import to_timedelta
from ..engine.converter import Converter
from ..engine.core import DEFAULT_QUEUE
from .records import ScheduleDefinition, validate_schedule_id
from .spec import DEFAULT_CATCHUP_WINDOW, OverlapPolicy, ScheduleError, ScheduleSpec


@dataclass(frozen=True, init=False)
class Schedule:
    """``Schedule(spec, *args, schedule_id=None, queue="default", overlap="skip",
    catchup_window=60)``: start the workflow with ``args`` on ``spec`` (a ``ScheduleSpec``, a cron
    string in UTC, or a ``timedelta`` interval). ``schedule_id`` defaults to the workflow's name."""

    spec: ScheduleSpec
    args: tuple[Any, ...] = field(default=())
    schedule_id: str | None = None
    queue: str = DEFAULT_QUEUE
    overlap: OverlapPolicy = OverlapPolicy.SKIP
    catchup_window: timedelta = DEFAULT_CATCHUP_WINDOW

    def __init__(
        self,
        spec: ScheduleSpec | str | timedelta,
        *args: Any,
        schedule_id: str | None = None,
        queue: str = DEFAULT_QUEUE,
        overlap: OverlapPolicy | str = OverlapPolicy.SKIP,
        catchup_window: timedelta | float = DEFAULT_CATCHUP_WINDOW,
    ) -> None:
        object.__setattr__(self, "spec", ScheduleSpec.coerce(spec))
        object.__setattr__(self, "args", tuple(args))
        if schedule_id is not None:
            validate_schedule_id(schedule_id)
        object.__setattr__(self, "schedule_id", schedule_id)
        object.__setattr__(self, "queue", queue)
        object.__setattr__(self, "overlap", OverlapPolicy.parse(overlap))
        window = to_timedelta(catchup_window, what="catchup_window")
        if window < timedelta(0):
            raise ScheduleError(f"catchup_window must not be negative, got {catchup_window!r}")
        object.__setattr__(self, "catchup_window", window)

    @classmethod
    def coerce(cls, value: Schedule | ScheduleSpec | str | timedelta) -> Schedule:
        return value if isinstance(value, Schedule) else cls(value)

    def definition(self, workflow_name: str, converter: Converter) -> ScheduleDefinition:
        return ScheduleDefinition(
            schedule_id=self.schedule_id or workflow_name,
            workflow_name=workflow_name,
            inputs=tuple(converter.to_payload(arg) for arg in self.args),
            spec=self.spec,
            queue=self.queue,
            overlap=self.overlap,
            catchup_window=self.catchup_window,
            declared=True,
        )
