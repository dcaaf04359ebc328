"""Workflow histories as JSON files: what ``Replayer`` and ``manage.py replayworkflows`` read, and
how a history is written for them.

One file holds one history document, or a JSON list of them::

    {"format": "django_workflows.history", "version": 1,
     "instance": {"instance_id": "order-7", "execution_id": "...", "parent": {...}, "parent_event_id": 3},
     "workflow_name": "order_workflow",
     "events": [{"id": "...", "type": "WorkflowTaskStarted", "timestamp": "2026-...+00:00",
                 "schedule_event_id": 0, "sequence_id": 1, "visible_at": null, "attributes": {}}, ...]}

``attributes`` is the engine's JSON form of the event's attributes (``engine.history
.attributes_to_dict``: payloads stay as the converter stored them). Events in the engine's
short form (``engine.history.event_to_dict``: ``t``, ``ts``, ``attr``, ``sid``...) are read too.
A file of a newer format version, an unknown event type or a malformed event is refused with an
error naming the file and the event.

This module is pure Python (no Django): the same reader serves tests, CI jobs and the command.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..engine.core import WorkflowInstance
from ..engine.history import (
    Event,
    EventType,
    WorkflowExecutionStartedAttributes,
    attributes_from_dict,
    attributes_to_dict,
)

FORMAT = "django_workflows.history"
VERSION = 1


class HistoryFileError(ValueError):
    """A history document or file cannot be read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class WorkflowHistory:
    """The recorded history of one execution."""

    instance: WorkflowInstance
    workflow_name: str
    events: list[Event] = field(default_factory=list)
    #: Where it was read from (a file name), for reports.
    source: str = ""

    @classmethod
    def of(cls, instance: WorkflowInstance, events: Sequence[Event], workflow_name: str = "", source: str = "") -> WorkflowHistory:
        """A history of ``events``; the workflow name defaults to the one of the start event."""
        return cls(instance, workflow_name or _started_name(events), list(events), source)


def _started_name(events: Iterable[Event]) -> str:
    for event in events:
        if isinstance(event.attributes, WorkflowExecutionStartedAttributes):
            return event.attributes.name
    return ""


# -- writing -----------------------------------------------------------------------------------


def event_to_export(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type.value,
        "timestamp": event.timestamp.isoformat(),
        "schedule_event_id": event.schedule_event_id,
        "sequence_id": event.sequence_id,
        "visible_at": event.visible_at.isoformat() if event.visible_at is not None else None,
        "attributes": attributes_to_dict(event.attributes),
    }


def history_to_dict(history: WorkflowHistory) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "instance": history.instance.to_dict(),
        "workflow_name": history.workflow_name,
        "events": [event_to_export(event) for event in history.events],
    }


def dumps(history: WorkflowHistory | Sequence[WorkflowHistory], *, indent: int | None = 1) -> str:
    """One history (or a list of them) as JSON text."""
    data: Any = (
        history_to_dict(history) if isinstance(history, WorkflowHistory) else [history_to_dict(h) for h in history]
    )
    return json.dumps(data, indent=indent, ensure_ascii=False)


def write_history(history: WorkflowHistory, path: str | Path) -> Path:
    """Write ``history`` to ``path`` (UTF-8 JSON) and return the path."""
    target = Path(path)
    target.write_text(dumps(history) + "\n", encoding="utf-8")
    return target


# -- reading -----------------------------------------------------------------------------------


def _datetime(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise HistoryFileError(f"{where}: expected an ISO 8601 time, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HistoryFileError(f"{where}: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise HistoryFileError(f"{where}: {value!r} has no time zone")
    return moment


def _int(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise HistoryFileError(f"{where}: expected an integer, got {value!r}")
    return value


def event_from_export(data: Any, where: str = "event") -> Event:
    """An event from its exported form (or the engine's short form)."""
    if not isinstance(data, Mapping):
        raise HistoryFileError(f"{where}: an event must be a JSON object, got {type(data).__name__}")
    short = "t" in data and "type" not in data

    def get(long: str, brief: str) -> Any:
        return data.get(brief if short else long)

    type_name = get("type", "t")
    try:
        event_type = EventType(type_name)
    except ValueError:
        raise HistoryFileError(f"{where}: unknown event type {type_name!r}") from None
    attributes = get("attributes", "attr") or {}
    if not isinstance(attributes, Mapping):
        raise HistoryFileError(f"{where}: attributes must be a JSON object")
    try:
        decoded = attributes_from_dict(event_type, dict(attributes))
    except (TypeError, ValueError, KeyError) as exc:
        raise HistoryFileError(f"{where}: bad {event_type.value} attributes: {exc}") from None
    event_id = get("id", "id")
    if not isinstance(event_id, str) or not event_id:
        raise HistoryFileError(f"{where}: an event needs an id")
    visible_at = get("visible_at", "vat")
    return Event(
        id=event_id,
        type=event_type,
        timestamp=_datetime(get("timestamp", "ts"), f"{where} timestamp"),
        attributes=decoded,
        schedule_event_id=_int(get("schedule_event_id", "seid"), f"{where} schedule_event_id"),
        sequence_id=_int(get("sequence_id", "sid"), f"{where} sequence_id"),
        visible_at=_datetime(visible_at, f"{where} visible_at") if visible_at else None,
    )


def history_from_dict(data: Any, *, source: str = "") -> WorkflowHistory:
    """A history from its document (see the module docstring)."""
    where = source or "history"
    if not isinstance(data, Mapping):
        raise HistoryFileError(f"{where}: a history must be a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise HistoryFileError(f"{where}: not a django_workflows history (format is {data.get('format')!r}, expected {FORMAT!r})")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise HistoryFileError(f"{where}: bad format version {version!r}")
    if version > VERSION:
        raise HistoryFileError(
            f"{where}: format version {version} is newer than this django_workflows reads ({VERSION}); upgrade it"
        )
    instance_data = data.get("instance")
    try:
        instance = WorkflowInstance.from_dict(dict(instance_data))  # type: ignore[arg-type]
    except (TypeError, ValueError, KeyError):
        raise HistoryFileError(f"{where}: 'instance' needs instance_id and execution_id") from None
    raw_events = data.get("events")
    if not isinstance(raw_events, list):
        raise HistoryFileError(f"{where}: 'events' must be a list")
    events = [event_from_export(item, f"{where} event {index + 1}") for index, item in enumerate(raw_events)]
    name = data.get("workflow_name") or ""
    if not isinstance(name, str):
        raise HistoryFileError(f"{where}: 'workflow_name' must be a string")
    return WorkflowHistory.of(instance, events, name, source)


def loads(text: str, *, source: str = "") -> list[WorkflowHistory]:
    """The histories in JSON text: one document or a list of them."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise HistoryFileError(f"{source or 'history'}: not valid JSON: {exc}") from None
    if isinstance(data, list):
        return [history_from_dict(item, source=f"{source}[{index}]" if source else f"[{index}]") for index, item in enumerate(data)]
    return [history_from_dict(data, source=source)]


def read_histories(*paths: str | Path) -> list[WorkflowHistory]:
    """The histories in files, and in the ``*.json`` files of directories (recursively, in name order)."""
    histories: list[WorkflowHistory] = []
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.json") if p.is_file())
        elif path.exists():
            files = [path]
        else:
            raise HistoryFileError(f"{path}: no such file or directory")
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise HistoryFileError(f"{file}: cannot read it: {exc}") from None
            histories.extend(loads(text, source=str(file)))
    return histories
