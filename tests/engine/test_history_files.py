"""History JSON files (``testing.history_files``): the documented format round-trips, the
engine's short event form is read too, and bad files are refused with errors that say where."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from django_workflows.engine.core import WorkflowInstance
from django_workflows.engine.history import (
    ActivityScheduledAttributes,
    SignalReceivedAttributes,
    event_to_dict,
    new_event,
)
from django_workflows.testing.history_files import (
    FORMAT,
    HistoryFileError,
    WorkflowHistory,
    dumps,
    history_to_dict,
    loads,
    read_histories,
    write_history,
)

from .drive import T0, started

PARENT = WorkflowInstance("parent", "p-1")
INSTANCE = WorkflowInstance("child", "c-1", parent=PARENT, parent_event_id=3)


def _history() -> WorkflowHistory:
    events = [
        started("ship", '"o-1"'),
        new_event(ActivityScheduledAttributes(name="book", inputs=["1"]), T0, schedule_event_id=1),
        new_event(SignalReceivedAttributes(name="go", arg="true"), T0, visible_at=T0),
    ]
    return WorkflowHistory.of(INSTANCE, [e.with_sequence_id(i) for i, e in enumerate(events, start=1)])


def test_the_documented_shape() -> None:
    # The one export format (engine.history_export), as `workflows history --json` writes it.
    data = history_to_dict(_history())
    assert (data["format"], data["version"], data["workflow_name"]) == (FORMAT, 1, "ship")
    assert (data["instance"], data["execution"]) == ("child", "c-1")
    assert data["parent"] == {"instance": "parent", "execution": "p-1", "event_id": 3}
    assert set(data["events"][0]) == {"id", "type", "timestamp", "schedule_event_id", "sequence_id", "visible_at", "attributes"}
    assert data["events"][1]["attributes"] == {"name": "book", "inputs": ["1"], "metadata": {}, "queue": "", "attempt": 0}


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    history = _history()
    path = write_history(history, tmp_path / "h.json")
    (back,) = read_histories(path)
    assert back.instance == INSTANCE and back.instance.parent == PARENT and back.workflow_name == "ship"
    assert [event_to_dict(e) for e in back.events] == [event_to_dict(e) for e in history.events]
    assert back.source == str(path)


def test_a_list_of_histories_and_directories(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "many.json").write_text(dumps([_history(), _history()]), encoding="utf-8")
    write_history(_history(), tmp_path / "one.json")
    (tmp_path / "notes.txt").write_text("not json", encoding="utf-8")
    assert len(read_histories(tmp_path)) == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other"), "not a history export: format is 'other'"),
        (lambda d: d.update(version=2), "version 2 is newer than this reader"),
        (lambda d: d.pop("instance"), "instance must be a non-empty string"),
        (lambda d: d["events"][1].update(type="Teleported"), "events[1].type 'Teleported' is not an event type"),
        (lambda d: d["events"][0].update(timestamp="yesterday"), "events[0].timestamp is not an ISO 8601 time"),
        (lambda d: d["events"][0].update(timestamp="2026-01-01T00:00:00"), "has no UTC offset"),
        (lambda d: d["events"][1]["attributes"].pop("name"), "events[1].attributes do not fit ActivityScheduled"),
        (lambda d: d["events"][2].update(sequence_id="3"), "events[2].sequence_id must be a non-negative integer"),
    ],
)
def test_bad_documents_are_refused_saying_where(change: object, message: str) -> None:
    data = json.loads(json.dumps(history_to_dict(_history())))
    change(data)  # type: ignore[operator]
    with pytest.raises(HistoryFileError, match=re.escape(message)):
        loads(json.dumps(data), source="h.json")


def test_missing_file_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(HistoryFileError, match="no such file"):
        read_histories(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(HistoryFileError, match="bad.json: not valid JSON"):
        read_histories(tmp_path / "bad.json")
