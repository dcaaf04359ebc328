"""What a schedule store keeps: a schedule's definition, its state, and the record of its recent
firings, with their JSON forms (the Redis store keeps records as JSON; the ORM store in columns).
Pure Python.

A record changes in two ways only: through the ``Client`` (create, update, pause, ...), which
bumps ``revision``, and through a firing (``firing.fire``), which never touches the definition.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..engine.core import DEFAULT_QUEUE, WorkflowInstance, validate_id
from .spec import (
    DEFAULT_CATCHUP_WINDOW,
    MAX_SCHEDULE_ID_LENGTH,
    OverlapPolicy,
    ScheduleError,
    ScheduleSpec,
    run_instance_id,
)

#: Firings remembered per schedule (older records are dropped).
MAX_RUNS = 50
#: How often a firing that waits for the previous run to finish (buffered) looks again.
BUFFER_RECHECK = timedelta(seconds=1)
# The namespace of the execution ids of runs: uuid5(namespace, instance id) is the same on every
# worker, so a repeated start of a firing is refused by the store even after the first run ended.
_RUN_NAMESPACE = uuid.UUID("5d0c1c55-6f1e-4a53-9d55-3f4f4e7a2b10")


def validate_schedule_id(value: object) -> str:
    schedule_id = validate_id(value, "schedule id")
    if len(schedule_id) > MAX_SCHEDULE_ID_LENGTH:
        raise ScheduleError(
            f"schedule id must be at most {MAX_SCHEDULE_ID_LENGTH} characters (its runs are named "
            f"<schedule id>@<time>), got {len(schedule_id)}"
        )
    return schedule_id


def run_instance(schedule_id: str, fire_time: datetime, *, triggered: bool = False) -> WorkflowInstance:
    """The instance a firing starts: its id and execution id follow from the schedule id and
    the fire time, so every worker that fires that time names the same execution."""
    instance_id = run_instance_id(schedule_id, fire_time, triggered=triggered)
    return WorkflowInstance(instance_id, uuid.uuid5(_RUN_NAMESPACE, instance_id).hex)


class RunAction(str, enum.Enum):
    """What became of one firing."""

    STARTED = "started"
    SKIPPED = "skipped"
    #: Waiting for the previous run to finish (a ``started`` record follows when it starts).
    BUFFERED = "buffered"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRun:
    """One firing (or, for ``count`` > 1, a row of skipped firings from ``fire_time`` to
    ``last_fire_time``)."""

    fire_time: datetime
    action: RunAction
    #: When the scheduler decided (store clock).
    at: datetime
    instance: WorkflowInstance | None = None
    #: Why it was skipped (``missed``, ``overlap``, ...) or what else happened (``canceled ...``).
    reason: str = ""
    count: int = 1
    last_fire_time: datetime | None = None
    #: Started by ``trigger_schedule`` rather than by the schedule's times.
    triggered: bool = False
    #: How the run ended (``running``, ``completed``, ``failed``, ``canceled``, ``terminated``,
    #: ``continued_as_new``, ``removed``); filled in by ``describe_schedule``, else ``""``.
    outcome: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"t": _iso(self.fire_time), "a": self.action.value, "at": _iso(self.at)}
        if self.instance is not None:
            data["i"], data["e"] = self.instance.instance_id, self.instance.execution_id
        if self.reason:
            data["r"] = self.reason
        if self.count != 1:
            data["n"] = self.count
        if self.last_fire_time is not None:
            data["l"] = _iso(self.last_fire_time)
        if self.triggered:
            data["x"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleRun:
        instance = WorkflowInstance(data["i"], data["e"]) if "i" in data else None
        return cls(
            fire_time=_dt(data["t"]),
            action=RunAction(data["a"]),
            at=_dt(data["at"]),
            instance=instance,
            reason=data.get("r", ""),
            count=int(data.get("n", 1)),
            last_fire_time=_dt(data["l"]) if "l" in data else None,
            triggered=bool(data.get("x", False)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleDefinition:
    """What a schedule starts and when: set through the Client or declared in code."""

    schedule_id: str
    workflow_name: str
    #: The workflow's arguments as converter payloads (JSON strings).
    inputs: tuple[str, ...] = ()
    spec: ScheduleSpec
    queue: str = DEFAULT_QUEUE
    overlap: OverlapPolicy = OverlapPolicy.SKIP
    catchup_window: timedelta = DEFAULT_CATCHUP_WINDOW
    #: Declared in code (``register_workflow(schedule=...)``): workers keep it in line with the code.
    declared: bool = False

    def __post_init__(self) -> None:
        validate_schedule_id(self.schedule_id)
        if not isinstance(self.workflow_name, str) or not self.workflow_name:
            raise ScheduleError(f"workflow name must be a non-empty string, got {self.workflow_name!r}")
        validate_id(self.queue, "queue")
        object.__setattr__(self, "overlap", OverlapPolicy.parse(self.overlap))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if not isinstance(self.catchup_window, timedelta) or self.catchup_window < timedelta(0):
            raise ScheduleError(f"catchup_window must be a non-negative duration, got {self.catchup_window!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.schedule_id,
            "workflow": self.workflow_name,
            "inputs": list(self.inputs),
            "spec": self.spec.to_json(),
            "queue": self.queue,
            "overlap": self.overlap.value,
            "catchup": self.catchup_window.total_seconds(),
            "declared": self.declared,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleDefinition:
        return cls(
            schedule_id=data["id"],
            workflow_name=data["workflow"],
            inputs=tuple(data.get("inputs", ())),
            spec=ScheduleSpec.from_json(data["spec"]),
            queue=data.get("queue", DEFAULT_QUEUE),
            overlap=OverlapPolicy(data.get("overlap", OverlapPolicy.SKIP.value)),
            catchup_window=timedelta(seconds=data.get("catchup", DEFAULT_CATCHUP_WINDOW.total_seconds())),
            declared=bool(data.get("declared", False)),
        )

    def same_as(self, other: ScheduleDefinition) -> bool:
        return self.to_json() == other.to_json()


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleState:
    """Where a schedule stands."""

    created_at: datetime
    updated_at: datetime
    paused: bool = False
    #: Why it is paused (or any operator note).
    note: str = ""
    #: The next fire time not handled yet (None: the spec has no more).
    next_fire_at: datetime | None = None
    #: A firing that waits for the previous run to finish.
    buffered_at: datetime | None = None
    #: When a scheduler must look at the schedule next (None: not before it changes).
    due_at: datetime | None = None
    #: The newest run started, the one overlap policies look at.
    last_instance: WorkflowInstance | None = None
    runs: tuple[ScheduleRun, ...] = field(default=())
    #: Bumped by every change made through the Client.
    revision: int = 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "created": _iso(self.created_at),
            "updated": _iso(self.updated_at),
            "paused": self.paused,
            "note": self.note,
            "next": _iso_or_none(self.next_fire_at),
            "buffered": _iso_or_none(self.buffered_at),
            "due": _iso_or_none(self.due_at),
            "runs": [run.to_json() for run in self.runs],
            "revision": self.revision,
        }
        if self.last_instance is not None:
            data["last"] = [self.last_instance.instance_id, self.last_instance.execution_id]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleState:
        last = data.get("last")
        return cls(
            created_at=_dt(data["created"]),
            updated_at=_dt(data["updated"]),
            paused=bool(data.get("paused", False)),
            note=data.get("note", ""),
            next_fire_at=_dt_or_none(data.get("next")),
            buffered_at=_dt_or_none(data.get("buffered")),
            due_at=_dt_or_none(data.get("due")),
            last_instance=WorkflowInstance(last[0], last[1]) if last else None,
            runs=tuple(ScheduleRun.from_json(run) for run in data.get("runs", ())),
            revision=int(data.get("revision", 0)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRecord:
    definition: ScheduleDefinition
    state: ScheduleState

    @property
    def schedule_id(self) -> str:
        return self.definition.schedule_id

    def to_json(self) -> dict[str, Any]:
        return {"definition": self.definition.to_json(), "state": self.state.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleRecord:
        return cls(
            definition=ScheduleDefinition.from_json(data["definition"]),
            state=ScheduleState.from_json(data["state"]),
        )


def due_at(state: ScheduleState, now: datetime) -> datetime | None:
    """When a scheduler must look next: the next fire time, or soon if a firing is buffered;
    never while paused."""
    if state.paused:
        return None
    candidates = [t for t in (state.next_fire_at,) if t is not None]
    if state.buffered_at is not None:
        candidates.append(now + BUFFER_RECHECK)
    return min(candidates) if candidates else None


def with_runs(state: ScheduleState, runs: list[ScheduleRun]) -> ScheduleState:
    if not runs:
        return state
    return replace(state, runs=(*state.runs, *runs)[-MAX_RUNS:])


def new_record(definition: ScheduleDefinition, now: datetime, *, paused: bool = False, note: str = "") -> ScheduleRecord:
    """A schedule created at ``now``: it first fires at its first fire time after ``now``."""
    next_fire_at = definition.spec.next_after(now)
    state = ScheduleState(created_at=now, updated_at=now, paused=paused, note=note, next_fire_at=next_fire_at)
    return ScheduleRecord(definition=definition, state=replace(state, due_at=due_at(state, now)))


def redefined(record: ScheduleRecord, definition: ScheduleDefinition, now: datetime) -> ScheduleRecord:
    """``record`` with a new definition: a changed spec starts counting from ``now``."""
    state = record.state
    if definition.spec != record.definition.spec:
        state = replace(state, next_fire_at=definition.spec.next_after(now))
    state = replace(state, updated_at=now, revision=state.revision + 1)
    return ScheduleRecord(definition=definition, state=replace(state, due_at=due_at(state, now)))


def paused(record: ScheduleRecord, pause: bool, note: str, now: datetime) -> ScheduleRecord:
    """Pause, or unpause: firings due while paused are not made up for; the next is the first
    fire time after ``now``."""
    state = record.state
    if pause:
        state = replace(state, paused=True, note=note)
    else:
        state = replace(state, paused=False, note=note, next_fire_at=record.definition.spec.next_after(now))
    state = replace(state, updated_at=now, revision=state.revision + 1)
    return ScheduleRecord(definition=record.definition, state=replace(state, due_at=due_at(state, now)))


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _dt_or_none(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
