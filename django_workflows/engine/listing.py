"""Listing executions for operators (``manage.py workflows list``, ``show``'s children): the filter,
the page, and the order and cursor every backend shares.

go-workflows' ``diag`` backend has ``GetWorkflowInstances(afterInstanceID, afterExecutionID,
count)``, newest first, paged by the last row seen; ``Backend.list_workflow_instances`` is the
same idea with filters. The order is creation time, newest first, then instance id and execution
id (descending) to break ties, on every backend; a page ends with an opaque cursor (the key of its
last row) that the next call starts after, so pages stay stable while new instances arrive.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .core import InstanceState, WorkflowInstance

if TYPE_CHECKING:
    from .backend import InstanceInfo, InstancePage

#: Most executions one call returns.
MAX_LIST_LIMIT = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceFilter:
    """Which executions to list; every field that is set must match."""

    state: InstanceState | None = None
    workflow_name: str | None = None
    queue: str | None = None
    #: Created at or after this time ("started since").
    created_after: datetime | None = None
    instance_id_prefix: str | None = None
    #: Sub-workflows of this execution.
    parent: WorkflowInstance | None = None

    def matches(
        self,
        *,
        instance: WorkflowInstance,
        workflow_name: str,
        queue: str,
        state: InstanceState,
        created_at: datetime,
    ) -> bool:
        """Whether an execution passes the filter (for backends that filter in Python)."""
        if self.state is not None and state is not self.state:
            return False
        if self.workflow_name is not None and workflow_name != self.workflow_name:
            return False
        if self.queue is not None and queue != self.queue:
            return False
        if self.created_after is not None and created_at < self.created_after:
            return False
        if self.instance_id_prefix and not instance.instance_id.startswith(self.instance_id_prefix):
            return False
        if self.parent is not None and instance.parent != self.parent:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Cursor:
    """The sort key of the last row of a page: the next page starts after it."""

    created_at: datetime
    instance_id: str
    execution_id: str

    def encode(self) -> str:
        data = json.dumps([self.created_at.isoformat(), self.instance_id, self.execution_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            padded = text + "=" * (-len(text) % 4)
            created, instance_id, execution_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
            return cls(datetime.fromisoformat(created), str(instance_id), str(execution_id))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid listing cursor {text!r}: pass the next_cursor of a previous page") from exc

    def key(self) -> tuple[datetime, str, str]:
        return (self.created_at, self.instance_id, self.execution_id)


def sort_key(created_at: datetime, instance: WorkflowInstance) -> tuple[datetime, str, str]:
    """Executions are listed in descending order of this key."""
    return (created_at, instance.instance_id, instance.execution_id)


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIST_LIMIT}, got {limit!r}")
    return limit


def page_of(
    infos: Iterable[InstanceInfo], filter: InstanceFilter | None, limit: int, cursor: str | None
) -> InstancePage:
    """A page from all of a backend's executions, for backends that filter in Python (memory,
    Redis): filtered, newest first, after ``cursor``."""
    from .backend import InstancePage

    check_limit(limit)
    after = Cursor.decode(cursor).key() if cursor else None
    chosen = filter or InstanceFilter()
    rows = [
        info
        for info in infos
        if chosen.matches(
            instance=info.instance,
            workflow_name=info.workflow_name,
            queue=info.queue,
            state=info.state,
            created_at=info.created_at,
        )
        and (after is None or sort_key(info.created_at, info.instance) < after)
    ]
    rows.sort(key=lambda info: sort_key(info.created_at, info.instance), reverse=True)
    page = rows[:limit]
    more = len(rows) > limit
    last = page[-1] if page else None
    next_cursor = (
        Cursor(last.created_at, last.instance.instance_id, last.instance.execution_id).encode()
        if more and last is not None
        else None
    )
    return InstancePage(page, next_cursor)

