"""Workflow histories as JSON files: what ``Replayer`` and ``manage.py replayworkflows`` read, and
how a history is written for them.

One file holds one history document, or a JSON list of them, in the one export format
(``engine.history_export``: what ``manage.py workflows history --json`` and the admin's download
write). A file of a newer format version, an unknown event type or a malformed event is refused
with an error naming the file and what is wrong.

This module is pure Python (no Django): the same reader serves tests, CI jobs and the command.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.core import WorkflowInstance
from ..engine.history import Event, WorkflowExecutionStartedAttributes
from ..engine.history_export import FORMAT, VERSION, HistoryFormatError, export_history, read_history


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


def history_to_dict(history: WorkflowHistory) -> dict[str, Any]:
    """The export document of ``history`` (``engine.history_export``)."""
    return export_history(history.instance, history.workflow_name, history.events)


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


def history_from_dict(data: Any, *, source: str = "") -> WorkflowHistory:
    """A history from its export document (``engine.history_export.read_history``)."""
    where = source or "history"
    if not isinstance(data, Mapping):
        raise HistoryFileError(f"{where}: a history must be a JSON object, got {type(data).__name__}")
    try:
        export = read_history(dict(data))
    except HistoryFormatError as exc:
        raise HistoryFileError(f"{where}: {exc}") from None
    return WorkflowHistory.of(export.instance, export.events, export.workflow_name, source)


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


__all__ = [
    "FORMAT",
    "VERSION",
    "HistoryFileError",
    "WorkflowHistory",
    "dumps",
    "history_from_dict",
    "history_to_dict",
    "loads",
    "read_histories",
    "write_history",
]
