"""The data of the admin's instance page: input, result or error, history, timeline, tree, pending work.

Our counterpart of the instance view of go-workflows' ``diag`` UI (``diag/app``), built from the
ORM backend's tables (``models.py``). Every part is read with bounded queries, so an instance
with a history of 10,000 events, thousands of children or a flood of signals still renders
quickly: the history is paginated (its payloads are loaded one page at a time), and the
timeline, the tree and the pending lists are capped, saying so when they are cut.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.db import DEFAULT_DB_ALIAS
from django.db.models import BooleanField, ExpressionWrapper, Q

from ..backends.orm.sql import visible_q
from ..backends.orm.transactions import DbNow
from ..engine.converter import Converter
from ..engine.history import (
    ActivityScheduledAttributes,
    EventType,
    SubWorkflowScheduledAttributes,
    TimerScheduledAttributes,
    WorkflowExecutionContinuedAsNewAttributes,
    WorkflowExecutionFinishedAttributes,
    WorkflowExecutionStartedAttributes,
    WorkflowExecutionTerminatedAttributes,
    WorkflowExecutionTimedOutAttributes,
)
from ..models import ActivityTask, HistoryEvent, Payload, PendingEvent, WorkflowInstance
from .display import (
    ErrorView,
    EventView,
    Field,
    blocked_error,
    decode_attributes,
    decode_value,
    describe_duration,
    event_view,
    format_duration,
    status_key,
    status_label,
)

#: History events per page of the instance page.
HISTORY_PAGE_SIZE = 100
#: Operations (activities, timers, sub-workflows) drawn on the timeline.
TIMELINE_LIMIT = 200
#: Pending events and activity tasks listed.
PENDING_LIMIT = 100
#: Executions of the same instance id listed (continue-as-new chains can be long).
EXECUTIONS_LIMIT = 50
#: Bounds of the parent/child tree.
TREE_MAX_ANCESTORS = 20
TREE_MAX_DEPTH = 10
TREE_MAX_NODES = 200

_SCHEDULED_TYPES = {
    EventType.ACTIVITY_SCHEDULED.value: "activity",
    EventType.TIMER_SCHEDULED.value: "timer",
    EventType.SUB_WORKFLOW_SCHEDULED.value: "sub-workflow",
}
#: The event that closes an operation, and the status it gives it.
_END_STATUS = {
    EventType.ACTIVITY_COMPLETED.value: "completed",
    EventType.ACTIVITY_FAILED.value: "failed",
    EventType.TIMER_FIRED.value: "fired",
    EventType.TIMER_CANCELED.value: "canceled",
    EventType.SUB_WORKFLOW_COMPLETED.value: "completed",
    EventType.SUB_WORKFLOW_FAILED.value: "failed",
}
_ENDING_TYPES = [
    EventType.WORKFLOW_EXECUTION_FINISHED.value,
    EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW.value,
    EventType.WORKFLOW_EXECUTION_TERMINATED.value,
    EventType.WORKFLOW_EXECUTION_TIMED_OUT.value,
]


def _db(instance: WorkflowInstance) -> str:
    # Everything about an execution is read from the database its row came from (the ORM
    # backend's "using" alias).
    return instance._state.db or DEFAULT_DB_ALIAS


# -- input and outcome -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the execution ended, decoded from its last event."""

    event_type: str
    timestamp: datetime
    result: Field | None = None
    error: ErrorView | None = None
    reason: str = ""
    continued_execution_id: str = ""
    #: Seconds of the execution timeout that ended it (a ``WorkflowExecutionTimedOut``).
    execution_timeout: float | None = None

    @property
    def canceled(self) -> bool:
        """The workflow ended because it was canceled (it let the Canceled error through): shown
        as a cancellation, with the engine's traceback out of the way."""
        return self.error is not None and self.error.error.type == "Canceled"


def _in_order(model: type[HistoryEvent] | type[PendingEvent]) -> str:
    # History in its own order, through the (instance, sequence id) index: ordered by "id",
    # PostgreSQL walks the primary key of the whole table looking for the instance's rows
    # (300 ms at a million rows). An execution's inbox is small; its index is on the instance.
    return "sequence_id" if model is HistoryEvent else "id"


def started_attributes(instance: WorkflowInstance) -> WorkflowExecutionStartedAttributes | None:
    """The start event, from the history, or from the inbox while no worker has run the instance."""
    for model in (HistoryEvent, PendingEvent):
        row = (
            model.objects.using(_db(instance)).filter(instance=instance, event_type=EventType.WORKFLOW_EXECUTION_STARTED.value)
            .select_related("payload")
            .order_by(_in_order(model))
            .first()
        )
        if row is not None:
            attributes = decode_attributes(row.event_type, row.payload.data)
            assert isinstance(attributes, WorkflowExecutionStartedAttributes)
            return attributes
    return None


def input_field(converter: Converter, instance: WorkflowInstance) -> tuple[Field | None, str]:
    """The workflow's arguments as pretty JSON, or ``(None, why not)``."""
    try:
        attributes = started_attributes(instance)
    except Exception as exc:  # noqa: BLE001 - damaged stored data must not take the page down
        return None, f"cannot decode the start event: {exc}"
    if attributes is None:
        return None, "the start event is not stored (anymore)"
    return decode_value(converter, "inputs", attributes.inputs), ""


def outcome_of(converter: Converter, instance: WorkflowInstance) -> tuple[Outcome | None, str]:
    row = (
        HistoryEvent.objects.using(_db(instance)).filter(instance=instance, event_type__in=_ENDING_TYPES)
        .select_related("payload")
        .order_by("-sequence_id")
        .first()
    )
    if row is None:
        return None, ""
    try:
        attributes = decode_attributes(row.event_type, row.payload.data)
    except Exception as exc:  # noqa: BLE001 - shown on the page instead
        return None, f"cannot decode the {row.event_type} event: {exc}"
    if isinstance(attributes, WorkflowExecutionFinishedAttributes):
        if attributes.error is not None:
            return Outcome(row.event_type, row.timestamp, error=ErrorView.of(attributes.error)), ""
        return Outcome(row.event_type, row.timestamp, result=_result(converter, attributes.result)), ""
    if isinstance(attributes, WorkflowExecutionContinuedAsNewAttributes):
        return (
            Outcome(
                row.event_type,
                row.timestamp,
                result=_result(converter, attributes.result),
                continued_execution_id=attributes.continued_execution_id,
            ),
            "",
        )
    if isinstance(attributes, WorkflowExecutionTimedOutAttributes):
        return Outcome(row.event_type, row.timestamp, execution_timeout=attributes.execution_timeout), ""
    assert isinstance(attributes, WorkflowExecutionTerminatedAttributes)
    return Outcome(row.event_type, row.timestamp, reason=attributes.reason), ""


def scheduled_for(instance: WorkflowInstance) -> datetime | None:
    """When an execution whose start is delayed (``start_delay``) starts; None once it has."""
    if not instance.is_active or instance.last_sequence_id:
        return None
    return (
        PendingEvent.objects.using(_db(instance))
        .filter(instance=instance, event_type=EventType.WORKFLOW_EXECUTION_STARTED.value, visible_at__gt=DbNow())
        .values_list("visible_at", flat=True)
        .first()
    )


def _result(converter: Converter, payload: str | None) -> Field:
    # A workflow that returns nothing stores no result payload: show it as null.
    return decode_value(converter, "result", "null" if payload is None else payload)


def cancel_requested_at(instance: WorkflowInstance) -> datetime | None:
    canceled = EventType.WORKFLOW_EXECUTION_CANCELED.value
    for model in (HistoryEvent, PendingEvent):
        stamp = (
            model.objects.using(_db(instance)).filter(instance=instance, event_type=canceled)
            .order_by(_in_order(model))
            .values_list("timestamp", flat=True)
            .first()
        )
        if stamp is not None:
            return stamp
    return None


# -- history -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryPage:
    page: Page
    events: list[EventView]
    #: Page numbers to link to, with ``ELLIPSIS`` where numbers are left out.
    page_range: list[int | str]


ELLIPSIS = Paginator.ELLIPSIS


def history_page(converter: Converter, instance: WorkflowInstance, number: Any, compact: bool = False) -> HistoryPage:
    """One page of the history; only that page's payloads are read. ``compact`` leaves out the
    ``WorkflowTaskStarted`` events (one per workflow task: the bulk of most histories)."""
    rows = HistoryEvent.objects.using(_db(instance)).filter(instance=instance).order_by("sequence_id")
    if compact:
        rows = rows.exclude(event_type=EventType.WORKFLOW_TASK_STARTED.value)
    paginator = Paginator(rows, HISTORY_PAGE_SIZE)
    page = paginator.get_page(number)
    page_range = list(paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1))
    return HistoryPage(page, [event_view(converter, row) for row in with_payloads(list(page.object_list))], page_range)


def with_payloads(rows: list[Any]) -> list[Any]:
    """``rows`` (history or pending events) with their payloads, read in one query by primary
    key. Not a join: for a page deep in a long history, PostgreSQL would hash-join the whole
    payload table (a million rows: 0.5-1.8 s) instead of probing it for the page's 100."""
    if not rows:
        return rows
    payloads = Payload.objects.using(rows[0]._state.db).in_bulk({row.payload_id for row in rows})
    for row in rows:
        # A missing payload shows as an event whose attributes cannot be decoded.
        row.payload = payloads.get(row.payload_id) or Payload(id=row.payload_id, instance_id=row.instance_id, data="")
    return rows


# -- timeline ----------------------------------------------------------------------------------


@dataclass(slots=True)
class TimelineItem:
    kind: str
    name: str
    start: datetime
    end: datetime | None
    #: completed, failed, fired, canceled, pending (no closing event yet) or dropped (still open
    #: when the execution ended).
    status: str
    detail: str = ""
    left: float = 0.0
    width: float = 0.0


@dataclass(slots=True)
class Timeline:
    items: list[TimelineItem] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    total: int = 0

    @property
    def truncated(self) -> bool:
        return self.total > len(self.items)


def timeline(instance: WorkflowInstance, now: datetime) -> Timeline:
    """Activities, timers and sub-workflows as bars between the execution's start and end; signals
    and cancellation requests as markers."""
    scheduled_rows = (
        HistoryEvent.objects.using(_db(instance)).filter(instance=instance, event_type__in=list(_SCHEDULED_TYPES))
        .order_by("sequence_id")
    )
    rows = with_payloads(list(scheduled_rows[:TIMELINE_LIMIT]))
    total = len(rows) if len(rows) < TIMELINE_LIMIT else scheduled_rows.count()
    ends: dict[int, tuple[str, datetime]] = {}
    if rows:
        end_rows = HistoryEvent.objects.using(_db(instance)).filter(
            instance=instance,
            event_type__in=list(_END_STATUS),
            schedule_event_id__in=[row.schedule_event_id for row in rows],
        ).values_list("schedule_event_id", "event_type", "timestamp")
        for schedule_event_id, event_type, stamp in end_rows:
            ends[schedule_event_id] = (event_type, stamp)
    items = [_timeline_item(row, ends.get(row.schedule_event_id), now) for row in rows]
    signal_rows = (
        HistoryEvent.objects.using(_db(instance))
        .filter(instance=instance, event_type__in=list(_MOMENT_TYPES))
        .order_by("sequence_id")
    )
    signals = with_payloads(list(signal_rows[:TIMELINE_LIMIT]))
    total += len(signals) if len(signals) < TIMELINE_LIMIT else signal_rows.count()
    items.extend(_signal_item(row) for row in signals)
    items.sort(key=lambda item: item.start)
    if instance.completed_at is not None:
        # Still open when the execution ended (terminated, or ended without waiting for it).
        for item in items:
            if item.status == "pending":
                item.status, item.end, item.detail = "dropped", instance.completed_at, ""
    start = instance.created_at
    end = instance.completed_at or now
    for item in items:
        if item.end is not None and item.end > end and instance.completed_at is not None:
            end = item.end
    span = max((end - start).total_seconds(), 0.001)
    for item in items:
        # A pending timer due after "now" is drawn up to now; its due time is in the label.
        item_end = min(item.end or now, end) if item.status != "fired" else (item.end or now)
        left = min(max((item.start - start).total_seconds() / span, 0.0), 1.0)
        right = min(max((item_end - start).total_seconds() / span, left), 1.0)
        item.left = round(left * 100, 2)
        # At least a sliver, so an instant operation is still visible.
        item.width = round(max((right - left) * 100, 0.6), 2)
        if item.left + item.width > 100:
            item.left = round(100 - item.width, 2)
    return Timeline(items, start, end, total)


#: Events drawn as instants on the timeline, with their kind.
_MOMENT_TYPES = {
    EventType.SIGNAL_RECEIVED.value: "signal",
    EventType.WORKFLOW_EXECUTION_CANCELED.value: "cancel",
}


def _signal_item(row: HistoryEvent) -> TimelineItem:
    """A signal (or a cancellation request) is an instant: a marker at the time it arrived."""
    if row.event_type == EventType.WORKFLOW_EXECUTION_CANCELED.value:
        return TimelineItem("cancel", "cancellation requested", row.timestamp, row.timestamp, "received")
    try:
        attributes = decode_attributes(row.event_type, row.payload.data)
        name = getattr(attributes, "name", "") or "signal"
    except Exception as exc:  # noqa: BLE001 - shown on the page instead
        name = f"? ({exc})"
    return TimelineItem("signal", name, row.timestamp, row.timestamp, "received")


def _timeline_item(row: HistoryEvent, end: tuple[str, datetime] | None, now: datetime) -> TimelineItem:
    kind = _SCHEDULED_TYPES[row.event_type]
    status, finished_at = (_END_STATUS[end[0]], end[1]) if end is not None else ("pending", None)
    try:
        attributes = decode_attributes(row.event_type, row.payload.data)
    except Exception as exc:  # noqa: BLE001 - shown on the page instead
        return TimelineItem(kind, f"? ({exc})", row.timestamp, finished_at, status)
    if isinstance(attributes, ActivityScheduledAttributes):
        detail = f"attempt {attributes.attempt + 1}" if attributes.attempt else ""
        return TimelineItem(kind, attributes.name, row.timestamp, finished_at, status, detail)
    if isinstance(attributes, TimerScheduledAttributes):
        # A timer ends when it was due, whatever time its fired event was written at.
        due = attributes.at
        if status == "pending":
            detail = f"due in {format_duration(due - now)}" if due > now else "due now"
        else:
            detail = f"{format_duration(due - row.timestamp)} timer"
        ends_at = finished_at if status == "canceled" else (due if status == "fired" else None)
        return TimelineItem(kind, attributes.name or "timer", row.timestamp, ends_at, status, detail)
    assert isinstance(attributes, SubWorkflowScheduledAttributes)
    return TimelineItem(
        kind, attributes.name, row.timestamp, finished_at, status, attributes.sub_workflow_instance.instance_id
    )


# -- the parent/child tree ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeNode:
    depth: int
    instance_id: str
    execution_id: str
    #: The row, or None for an ancestor that has been removed.
    row: WorkflowInstance | None
    current: bool = False

    @property
    def status(self) -> str:
        return status_key(self.row.state, self.row.outcome, self.row.is_blocked) if self.row is not None else "removed"

    @property
    def status_label(self) -> str:
        return status_label(self.status) if self.row is not None else "removed"


@dataclass(slots=True)
class Tree:
    nodes: list[TreeNode] = field(default_factory=list)
    truncated: bool = False

    @property
    def is_trivial(self) -> bool:
        return len(self.nodes) <= 1 and not self.truncated


_TREE_COLUMNS = (
    "id",
    "instance_id",
    "execution_id",
    "parent_instance_id",
    "parent_execution_id",
    "workflow_name",
    "state",
    "outcome",
    "created_at",
    "completed_at",
    "blocked_since",
)


def tree(instance: WorkflowInstance) -> Tree:
    """Ancestors down to this execution, then its descendants, depth first."""
    result = Tree()
    ancestors: list[tuple[str, str, WorkflowInstance | None]] = []
    parent_id, parent_execution = instance.parent_instance_id, instance.parent_execution_id
    while parent_id and len(ancestors) < TREE_MAX_ANCESTORS:
        row = (
            WorkflowInstance.objects.using(_db(instance))
            .filter(instance_id=parent_id, execution_id=parent_execution)
            .only(*_TREE_COLUMNS)
            .first()
        )
        ancestors.append((parent_id, parent_execution, row))
        if row is None:
            break
        parent_id, parent_execution = row.parent_instance_id, row.parent_execution_id
    ancestors.reverse()
    for depth, (instance_id, execution_id, row) in enumerate(ancestors):
        result.nodes.append(TreeNode(depth, instance_id, execution_id, row))
    base = len(ancestors)
    result.nodes.append(TreeNode(base, instance.instance_id, instance.execution_id, instance, current=True))
    children = _descendants(instance, result)
    _append_subtree(result, children, (instance.instance_id, instance.execution_id), base + 1)
    return result


def _descendants(instance: WorkflowInstance, result: Tree) -> dict[tuple[str, str], list[WorkflowInstance]]:
    """Children per parent, level by level (one query per level), within the tree's bounds."""
    children: dict[tuple[str, str], list[WorkflowInstance]] = defaultdict(list)
    level = [(instance.instance_id, instance.execution_id)]
    budget = TREE_MAX_NODES
    for _depth in range(TREE_MAX_DEPTH):
        if not level:
            return children
        rows = list(_children_of(instance, level).only(*_TREE_COLUMNS).order_by("created_at", "id")[: budget + 1])
        if len(rows) > budget:
            result.truncated = True
            rows = rows[:budget]
        budget -= len(rows)
        for row in rows:
            children[(row.parent_instance_id, row.parent_execution_id)].append(row)
        level = [(row.instance_id, row.execution_id) for row in rows]
        if result.truncated:
            return children
    # Depth bound reached: say so if the last level has children of its own.
    result.truncated = bool(level) and _children_of(instance, level).exists()
    return children


def _children_of(instance: WorkflowInstance, parents: list[tuple[str, str]]) -> Any:
    condition = Q()
    for instance_id, execution_id in parents:
        condition |= Q(parent_instance_id=instance_id, parent_execution_id=execution_id)
    return WorkflowInstance.objects.using(_db(instance)).filter(condition)


def _append_subtree(
    result: Tree, children: dict[tuple[str, str], list[WorkflowInstance]], key: tuple[str, str], depth: int
) -> None:
    for row in children.get(key, []):
        result.nodes.append(TreeNode(depth, row.instance_id, row.execution_id, row))
        _append_subtree(result, children, (row.instance_id, row.execution_id), depth + 1)


def executions(instance: WorkflowInstance) -> list[TreeNode]:
    """Every execution of this instance id (continue-as-new), oldest first."""
    rows = (
        WorkflowInstance.objects.using(_db(instance))
        .filter(instance_id=instance.instance_id)
        .only(*_TREE_COLUMNS)
        .order_by("created_at", "id")[:EXECUTIONS_LIMIT]
    )
    return [TreeNode(0, row.instance_id, row.execution_id, row, current=row.pk == instance.pk) for row in rows]


# -- pending work ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingActivity:
    name: str
    attempt: int
    queue: str
    scheduled_at: datetime
    locked_until: datetime | None
    worker: str
    lease_count: int
    inputs: Field | None
    #: When its attempt times out (the earliest of its timeouts), if it has any.
    deadline: datetime | None = None
    cancel_requested: bool = False
    heartbeat_details: Field | None = None


@dataclass(frozen=True, slots=True)
class PendingTimer:
    """A timer that has not fired yet: its ``TimerFired`` event waits until ``due_at``."""

    name: str
    due_at: datetime
    scheduled_at: datetime
    schedule_event_id: int


@dataclass(frozen=True, slots=True)
class WaitingEvent:
    """An event delivered to the execution and not executed yet, named for what it means."""

    label: str
    view: EventView


#: What a waiting event of each type means for the execution.
_PENDING_LABELS = {
    EventType.WORKFLOW_EXECUTION_STARTED.value: "Start (no worker has run it yet)",
    EventType.WORKFLOW_EXECUTION_CANCELED.value: "Cancellation requested",
    EventType.SIGNAL_RECEIVED.value: "Signal",
    EventType.TIMER_FIRED.value: "Timer fired",
    EventType.ACTIVITY_COMPLETED.value: "Activity result",
    EventType.ACTIVITY_FAILED.value: "Activity failure",
    EventType.SUB_WORKFLOW_COMPLETED.value: "Sub-workflow result",
    EventType.SUB_WORKFLOW_FAILED.value: "Sub-workflow failure",
}


@dataclass(slots=True)
class Pending:
    activities: list[PendingActivity] = field(default_factory=list)
    activity_total: int = 0
    timers: list[PendingTimer] = field(default_factory=list)
    events: list[WaitingEvent] = field(default_factory=list)
    event_total: int = 0

    @property
    def activities_truncated(self) -> bool:
        return self.activity_total > len(self.activities)

    @property
    def events_truncated(self) -> bool:
        return self.event_total > len(self.timers) + len(self.events)


def pending(converter: Converter, instance: WorkflowInstance, now: datetime) -> Pending:
    """Activities waiting for (or leased to) a worker, timers not due yet, events not executed yet."""
    result = Pending()
    tasks = ActivityTask.objects.using(_db(instance)).filter(instance=instance).select_related("payload").order_by("id")
    task_rows = list(tasks[:PENDING_LIMIT])
    result.activity_total = len(task_rows) if len(task_rows) < PENDING_LIMIT else tasks.count()
    for task in task_rows:
        name, attempt, inputs = "?", 0, None
        try:
            attributes = decode_attributes(task.event_type, task.payload.data)
            if isinstance(attributes, ActivityScheduledAttributes):
                name, attempt = attributes.name, attributes.attempt
                inputs = decode_value(converter, "inputs", attributes.inputs)
        except Exception as exc:  # noqa: BLE001 - shown on the page instead
            name = f"? (cannot decode: {exc})"
        details = None if task.heartbeat_details is None else decode_value(converter, "heartbeat_details", task.heartbeat_details)
        result.activities.append(
            PendingActivity(
                name,
                attempt + 1,
                task.queue,
                task.timestamp,
                task.locked_until,
                task.worker,
                task.lease_count,
                inputs,
                deadline=task.deadline,
                cancel_requested=task.cancel_requested,
                heartbeat_details=details,
            )
        )
    # Due or still to come by the backend's own definition (sql.visible_q, the database clock).
    events = (
        PendingEvent.objects.using(_db(instance))
        .filter(instance=instance)
        .select_related("payload")
        .annotate(due=ExpressionWrapper(visible_q(), output_field=BooleanField()))
        .order_by("id")
    )
    event_rows = list(events[:PENDING_LIMIT])
    result.event_total = len(event_rows) if len(event_rows) < PENDING_LIMIT else events.count()
    for row in event_rows:
        view = event_view(converter, row)
        if not row.due:
            name = next((str(f.value) for f in view.fields if f.name == "name"), "")
            result.timers.append(PendingTimer(name, row.visible_at, row.timestamp, row.schedule_event_id))
        else:
            result.events.append(WaitingEvent(_PENDING_LABELS.get(row.event_type, row.event_type), view))
    return result


# -- the whole page ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why an active execution is blocked (its workflow task keeps failing), for the banner."""

    error: ErrorView | None
    since: datetime
    attempts: int
    retry_at: datetime | None


def blocked(instance: WorkflowInstance) -> Blocked | None:
    if not instance.is_blocked or instance.blocked_since is None:
        return None
    error = blocked_error(instance)
    return Blocked(ErrorView.of(error) if error else None, instance.blocked_since, instance.blocked_attempts, instance.blocked_until)


@dataclass(frozen=True, slots=True)
class InstanceDetail:
    instance: WorkflowInstance
    status: str
    status_label: str
    duration: str
    inputs: Field | None
    inputs_note: str
    outcome: Outcome | None
    outcome_note: str
    cancel_requested_at: datetime | None
    history: HistoryPage
    timeline: Timeline
    tree: Tree
    executions: list[TreeNode]
    pending: Pending
    lease_held: bool
    blocked: Blocked | None = None
    #: When a delayed start comes (``start_delay``); None once started.
    scheduled_for: datetime | None = None

    @classmethod
    def build(
        cls, converter: Converter, instance: WorkflowInstance, page: Any, now: datetime, compact: bool = False
    ) -> InstanceDetail:
        inputs, inputs_note = input_field(converter, instance)
        outcome, outcome_note = outcome_of(converter, instance)
        start_at = scheduled_for(instance)
        status = status_key(instance.state, instance.outcome, instance.is_blocked, scheduled=start_at is not None)
        return cls(
            instance=instance,
            status=status,
            status_label=status_label(status),
            duration=describe_duration(instance.created_at, instance.completed_at, now),
            inputs=inputs,
            inputs_note=inputs_note,
            outcome=outcome,
            outcome_note=outcome_note,
            cancel_requested_at=cancel_requested_at(instance),
            history=history_page(converter, instance, page, compact),
            timeline=timeline(instance, now),
            tree=tree(instance),
            executions=executions(instance),
            pending=pending(converter, instance, now),
            lease_held=instance.locked_until is not None and instance.locked_until > now,
            blocked=blocked(instance),
            scheduled_for=start_at,
        )
