"""The changes behind the Client's schedule methods (pure Python): each is a ``change`` function
for ``ScheduleStore.put``, computed on the store's clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from ..engine.clock import to_timedelta
from ..engine.converter import Converter
from ..engine.core import validate_id
from ..engine.payloads import PayloadLimits
from ..engine.registry import Registry, WorkflowNotFound, check_arguments
from .records import ScheduleDefinition, ScheduleRecord, new_record, paused, redefined, validate_schedule_id
from .spec import OverlapPolicy, ScheduleError, ScheduleSpec
from .store import ScheduleAlreadyExists, ScheduleNotFound, ScheduleStore


def checked_inputs(
    registry: Registry,
    converter: Converter,
    workflow: Callable[..., Any] | str,
    args: Sequence[Any],
    limits: PayloadLimits | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The workflow's name and the arguments as payloads; arguments that do not fit the
    workflow (when its function is known here), cannot be stored or are over the payload
    ``limits`` raise now, not at 3 a.m."""
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise TypeError(f"args must be a list or tuple of the workflow's arguments, got {type(args).__name__}")
    name = registry.workflow_name(workflow)
    function = workflow if callable(workflow) else None
    if function is None:
        try:
            function = registry.get_workflow(name)
        except WorkflowNotFound:
            function = None  # registered only in the workers' processes
    if function is not None:
        check_arguments(function, tuple(args), skip_context=True)
    payloads = tuple(converter.to_payload(arg) for arg in args)
    if limits is not None:
        for index, payload in enumerate(payloads, start=1):
            limits.check(payload, "workflow input", f"{index} of the schedule's workflow {name}")
    return name, payloads


def window(value: timedelta | float) -> timedelta:
    delta = to_timedelta(value, what="catchup_window")
    if delta < timedelta(0):
        raise ScheduleError(f"catchup_window must not be negative, got {value!r}")
    return delta


def create(store: ScheduleStore, definition: ScheduleDefinition, *, paused_: bool, note: str) -> ScheduleRecord:
    def change(current: ScheduleRecord | None) -> ScheduleRecord:
        if current is not None:
            raise ScheduleAlreadyExists(definition.schedule_id)
        return new_record(definition, store.now(), paused=paused_, note=note)

    return store.put(definition.schedule_id, change)


def update(store: ScheduleStore, schedule_id: str, **changes: Any) -> ScheduleRecord:
    """``changes``: any of spec, workflow_name, inputs, queue, overlap, catchup_window."""

    def change(current: ScheduleRecord | None) -> ScheduleRecord:
        if current is None:
            raise ScheduleNotFound(schedule_id)
        fields = current.definition.to_json()
        definition = ScheduleDefinition(
            schedule_id=schedule_id,
            workflow_name=changes.get("workflow_name") or fields["workflow"],
            inputs=changes["inputs"] if changes.get("inputs") is not None else current.definition.inputs,
            spec=changes.get("spec") or current.definition.spec,
            queue=validate_id(changes["queue"], "queue") if changes.get("queue") else current.definition.queue,
            overlap=OverlapPolicy.parse(changes["overlap"]) if changes.get("overlap") else current.definition.overlap,
            catchup_window=changes["catchup_window"] if changes.get("catchup_window") is not None else current.definition.catchup_window,
            declared=current.definition.declared,
        )
        return redefined(current, definition, store.now())

    return store.put(validate_schedule_id(schedule_id), change)


def set_paused(store: ScheduleStore, schedule_id: str, pause: bool, note: str) -> ScheduleRecord:
    if not isinstance(note, str):
        raise TypeError(f"note must be a string, got {type(note).__name__}")

    def change(current: ScheduleRecord | None) -> ScheduleRecord:
        if current is None:
            raise ScheduleNotFound(schedule_id)
        return paused(current, pause, note, store.now())

    return store.put(validate_schedule_id(schedule_id), change)


def coerce_spec(spec: ScheduleSpec | str | timedelta) -> ScheduleSpec:
    return ScheduleSpec.coerce(spec)
