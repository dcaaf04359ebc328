"""``ScheduleDescription``: what ``Client.describe_schedule`` and ``list_schedules`` return
(pure Python)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..engine.backend import Backend
from ..engine.core import WorkflowInstance
from .firing import run_outcome
from .records import RunAction, ScheduleRecord, ScheduleRun
from .spec import OverlapPolicy, ScheduleSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleDescription:
    schedule_id: str
    workflow_name: str
    args: list[Any]
    spec: ScheduleSpec
    queue: str
    overlap: OverlapPolicy
    catchup_window: timedelta
    declared: bool
    paused: bool
    note: str
    created_at: datetime
    updated_at: datetime
    #: The coming fire times (none while paused).
    next_fire_times: list[datetime]
    #: A firing waiting for the previous run to end.
    buffered_at: datetime | None
    #: The newest run started.
    last_instance: WorkflowInstance | None
    #: Recent firings, newest first, with the outcome of the runs they started.
    recent_runs: list[ScheduleRun]

    @property
    def last_run(self) -> ScheduleRun | None:
        """The newest firing that started a run."""
        return next((run for run in self.recent_runs if run.action is RunAction.STARTED), None)


def describe(
    record: ScheduleRecord,
    backend: Backend,
    *,
    next_count: int = 5,
    outcomes: bool | int = True,
) -> ScheduleDescription:
    """Describe ``record``; ``outcomes`` looks up how the started runs ended (``True``: all,
    a number: that many of the newest, ``False``: none)."""
    definition, state = record.definition, record.state
    converter = backend.options.converter
    next_times: list[datetime] = []
    if not state.paused and state.next_fire_at is not None:
        next_times = [state.next_fire_at, *definition.spec.fire_times(state.next_fire_at, next_count - 1)][:next_count]
    runs = list(reversed(state.runs))
    limit = len(runs) if outcomes is True else int(outcomes)
    looked_up = 0
    described: list[ScheduleRun] = []
    for run in runs:
        if run.instance is not None and looked_up < limit:
            run = replace(run, outcome=run_outcome(backend, run.instance))
            looked_up += 1
        described.append(run)
    return ScheduleDescription(
        schedule_id=definition.schedule_id,
        workflow_name=definition.workflow_name,
        args=[converter.from_payload(payload) for payload in definition.inputs],
        spec=definition.spec,
        queue=definition.queue,
        overlap=definition.overlap,
        catchup_window=definition.catchup_window,
        declared=definition.declared,
        paused=state.paused,
        note=state.note,
        created_at=state.created_at,
        updated_at=state.updated_at,
        next_fire_times=next_times,
        buffered_at=state.buffered_at,
        last_instance=state.last_instance,
        recent_runs=described,
    )
