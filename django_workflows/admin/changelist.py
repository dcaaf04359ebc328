"""The instance list's extra columns that need more than the instance row: the error of failed
executions and the termination reason of terminated ones, read for the whole page at once.

One query per page (the ending events of the page's failed and terminated rows, with their
payloads), not one per row; attached to the rows as ``wf_error`` for the ``error`` column.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.main import ChangeList

from ..engine.history import (
    EventType,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionTerminatedAttributes,
)
from ..models import HistoryEvent, Outcome
from .display import decode_attributes

#: Longest error text shown in a list cell (the full text is in the cell's tooltip).
SNIPPET_CHARS = 90

_ENDINGS = [EventType.WORKFLOW_EXECUTION_FINISHED.value, EventType.WORKFLOW_EXECUTION_TERMINATED.value]


def ending_texts(rows: list[Any]) -> dict[int, str]:
    """``pk -> "Type: message"`` for failed rows, ``pk -> "terminated: reason"`` for terminated ones."""
    wanted = [row.pk for row in rows if row.outcome in (Outcome.FAILED, Outcome.TERMINATED)]
    if not wanted:
        return {}
    using = rows[0]._state.db
    texts: dict[int, str] = {}
    events = (
        HistoryEvent.objects.using(using)
        .filter(instance_id__in=wanted, event_type__in=_ENDINGS)
        .values_list("instance_id", "event_type", "payload__data")
    )
    for pk, event_type, data in events:
        try:
            attributes = decode_attributes(event_type, data)
        except Exception as exc:  # noqa: BLE001 - damaged data: say so in the cell
            texts[pk] = f"cannot decode: {exc}"
            continue
        if isinstance(attributes, WorkflowExecutionFinishedAttributes) and attributes.error is not None:
            error = attributes.error
            texts[pk] = f"{error.type}: {error.message}" if error.type else error.message
        elif isinstance(attributes, WorkflowExecutionTerminatedAttributes):
            texts[pk] = f"terminated: {attributes.reason}" if attributes.reason else "terminated"
    return texts


class InstanceChangeList(ChangeList):
    def get_results(self, request: Any) -> None:
        super().get_results(request)
        texts = ending_texts(list(self.result_list))
        for row in self.result_list:
            row.wf_error = " ".join(texts.get(row.pk, "").split())
