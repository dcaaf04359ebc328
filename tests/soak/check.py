"""The soak's invariant check: what must hold over the store and the activity ledger after a
run, however many workers were killed and whether the store restarted.

The store is read through the public Client and Backend API (listing, state, history, pending
events, stats), so the same check serves the ORM and Redis backends; only the search for rows
left behind looks at each store's own tables or keys (``leftovers``), since no API lists them.
Each broken invariant is one line in ``violations``; an empty list means the run was clean.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django_workflows.client import Client
from django_workflows.completions import _LEASE_MARGIN, _MAX_DELAY
from django_workflows.engine.core import InstanceState, WorkflowInstance
from django_workflows.engine.history import (
    TERMINAL_EVENT_TYPES,
    ActivityFailedAttributes,
    Event,
    EventType,
    SignalReceivedAttributes,
    SubWorkflowFailedAttributes,
)
from django_workflows.engine.listing import MAX_LIST_LIMIT
from testproject.testapp.soak import SIGNAL, child_instance_id, expected_result, step_value

#: Outcome events of each kind of scheduled work, by the event that schedules it.
OUTCOMES = {
    EventType.ACTIVITY_SCHEDULED: (EventType.ACTIVITY_COMPLETED, EventType.ACTIVITY_FAILED),
    EventType.TIMER_SCHEDULED: (EventType.TIMER_FIRED, EventType.TIMER_CANCELED),
    EventType.SUB_WORKFLOW_SCHEDULED: (EventType.SUB_WORKFLOW_COMPLETED, EventType.SUB_WORKFLOW_FAILED),
}


def instance_id(index: int) -> str:
    return f"soak-{index}"


@dataclass
class RunRecord:
    """What the driver did, which the check compares with what the store holds."""

    workflows: int
    ledger: Path
    #: Signal tokens whose ``signal_workflow`` call returned, by instance id: each must be in
    #: that instance's history exactly once.
    accepted: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: Tokens whose call raised (the store was away): each may be in the history at most once.
    uncertain: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: Killed worker processes: pid -> when (``time.time()``).
    killed: dict[int, float] = field(default_factory=dict)
    #: Store restarts: (stopped at, answering again at).
    restarts: list[tuple[float, float]] = field(default_factory=list)
    #: How many activities were running when each restart began.
    running_at_restart: list[int] = field(default_factory=list)
    #: The workers' lease timeout (a killed worker's result could still commit within it).
    lease_seconds: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass
class Execution:
    """One activity execution as the ledger recorded it."""

    pid: int
    attempt: int
    started: float
    done: float | None = None


def read_ledger(path: Path) -> dict[tuple[str, str], list[Execution]]:
    """Executions by (instance id, step), in the order they started."""
    executions: dict[tuple[str, str], list[Execution]] = defaultdict(list)
    if not path.exists():
        return executions
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        key = (entry["instance"], entry["step"])
        if entry["event"] == "start":
            executions[key].append(Execution(entry["pid"], entry["attempt"], entry["at"]))
        else:
            # The last start of that process without an end is the one that ended.
            for execution in reversed(executions[key]):
                if execution.pid == entry["pid"] and execution.done is None:
                    execution.done = entry["at"]
                    break
    return executions


def ledger_progress(path: Path) -> int:
    """How many activity executions have ended so far (the driver's measure of progress)."""
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(1 for line in f if b'"event": "done"' in line)


def running_activities(path: Path, killed: Collection[int]) -> int:
    """How many activity executions run now: started, not ended, on a worker not killed."""
    return sum(
        execution.done is None and execution.pid not in killed for runs in read_ledger(path).values() for execution in runs
    )


def all_executions(client: Client) -> Iterator[WorkflowInstance]:
    cursor = None
    while True:
        page = client.backend.list_workflow_instances(limit=MAX_LIST_LIMIT, cursor=cursor)
        yield from (info.instance for info in page.instances)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def check_history(name: str, history: list[Event]) -> list[str]:
    """Sequence ids dense and unique, one start and one terminal event (the last), one outcome
    per scheduled activity, timer and sub-workflow, and no failed activity."""
    problems = []
    sequence = [event.sequence_id for event in history]
    if sequence != list(range(1, len(history) + 1)):
        problems.append(f"{name}: sequence ids are not 1..{len(history)}: {sequence}")
    types = [event.type for event in history]
    if types.count(EventType.WORKFLOW_EXECUTION_STARTED) != 1:
        problems.append(f"{name}: not exactly one WorkflowExecutionStarted: {[t.value for t in types]}")
    terminal = [t for t in types if t in TERMINAL_EVENT_TYPES]
    if len(terminal) != 1 or types[-1] not in TERMINAL_EVENT_TYPES:
        problems.append(f"{name}: terminal events {[t.value for t in terminal]}, the last event is {types[-1:]}")
    for scheduled_type, outcome_types in OUTCOMES.items():
        scheduled = Counter(e.schedule_event_id for e in history if e.type is scheduled_type)
        outcomes = Counter(e.schedule_event_id for e in history if e.type in outcome_types)
        if outcomes != scheduled:
            problems.append(
                f"{name}: {scheduled_type.value} at {sorted(scheduled)} but outcomes for {sorted(outcomes.elements())}"
            )
    for event in history:
        if isinstance(event.attributes, (ActivityFailedAttributes, SubWorkflowFailedAttributes)):
            error = event.attributes.error
            problems.append(f"{name}: {event.type.value} at {event.sequence_id}: {error.type}: {error.message}")
    return problems


def check_store(client: Client, record: RunRecord) -> list[str]:
    """Every instance (and only the soak's) finished with its result; clean histories; every
    accepted signal in history exactly once; nothing pending; no ready task left."""
    problems: list[str] = []
    converter = client.backend.options.converter
    expected_ids = {instance_id(i) for i in range(record.workflows)}
    expected_ids |= {child_instance_id(i) for i in expected_ids}
    seen: Counter[str] = Counter()
    for execution in all_executions(client):
        seen[execution.instance_id] += 1
        name = execution.instance_id
        if name not in expected_ids:
            problems.append(f"{name}: an execution the soak did not start")
            continue
        state = client.get_workflow_instance_state(execution)
        if state is not InstanceState.FINISHED:
            problems.append(f"{name}: state {state.name}, not FINISHED")
            continue
        history = client.backend.get_workflow_instance_history(execution)
        problems += check_history(name, history)
        pending = client.backend.get_pending_events(execution)
        if pending:
            problems.append(f"{name}: pending events left: {[event.type.value for event in pending]}")
        tokens = [
            converter.from_payload(e.attributes.arg)
            for e in history
            if isinstance(e.attributes, SignalReceivedAttributes) and e.attributes.name == SIGNAL
        ]
        problems += _check_result(client, execution, record, tokens)
    for name in sorted(expected_ids):
        if seen[name] != 1:
            problems.append(f"{name}: {seen[name]} executions, expected 1")
    stats = client.get_stats()
    if stats.active_workflow_instances:
        problems.append(f"{stats.active_workflow_instances} active instances left")
    for kind, counts in (("workflow", stats.pending_workflow_tasks), ("activity", stats.pending_activity_tasks)):
        if any(counts.values()):
            problems.append(f"ready {kind} tasks left: {counts}")
    return problems


def _check_result(client: Client, execution: WorkflowInstance, record: RunRecord, tokens: list[Any]) -> list[str]:
    name = execution.instance_id
    try:
        result = client.get_workflow_result(execution, timeout=1)
    except Exception as exc:  # the workflow failed: report how
        return [f"{name}: failed with {type(exc).__name__}: {exc}"]
    if name.endswith("-child"):
        index = int(name.removeprefix("soak-").removesuffix("-child"))
        return [] if result == step_value(index, "d") else [f"{name}: result {result!r}, expected {step_value(index, 'd')}"]
    index = int(name.removeprefix("soak-"))
    accepted, uncertain = record.accepted.get(name, []), record.uncertain.get(name, [])
    problems = check_signals(name, tokens, accepted, uncertain)
    received = result.get("token") if isinstance(result, dict) else None
    if received not in accepted + uncertain or result != expected_result(index, received):
        problems.append(f"{name}: result {result!r}, expected {expected_result(index, received)!r}")
    return problems


def check_signals(name: str, tokens: list[Any], accepted: list[str], uncertain: list[str]) -> list[str]:
    """The signal tokens in a history against those the driver sent: each accepted one exactly
    once, each whose call failed at most once, no other."""
    problems = []
    counts = Counter(tokens)
    for token in accepted:
        if counts[token] == 0:
            problems.append(f"{name}: accepted signal {token} is missing from its history")
        elif counts[token] > 1:
            problems.append(f"{name}: accepted signal {token} is in its history {_times(counts[token])}")
    for token, count in counts.items():
        if token in accepted:
            continue
        if token not in uncertain:
            problems.append(f"{name}: signal {token} is in its history {_times(count)}, but the driver never sent it")
        elif count > 1:
            problems.append(f"{name}: signal {token} (whose call failed) is in its history {_times(count)}")
    return problems


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


@dataclass
class LedgerCheck:
    problems: list[str] = field(default_factory=list)
    #: Activities that ran again because their result was lost to the store's restart although
    #: the worker that ran them lived on and its lease outlasted the outage: its completion
    #: retries (``django_workflows.completions``) should have committed the result. Kept apart
    #: from ``problems`` so a test can name this failure (issue 14).
    after_restart: list[str] = field(default_factory=list)
    #: Re-executions after a restart that outlasted what the lease left for completion retries.
    after_long_outage: int = 0
    figures: dict[str, Any] = field(default_factory=dict)


def check_ledger(record: RunRecord) -> LedgerCheck:
    """Every activity ran, and ran again only when a kill stopped an execution before its result
    was committed; with the figures of re-executions and of how long recovery took."""
    out = LedgerCheck()
    executions = read_ledger(record.ledger)
    expected = {(instance_id(i), step) for i in range(record.workflows) for step in "abc"}
    expected |= {(child_instance_id(instance_id(i)), "d") for i in range(record.workflows)}
    for key in sorted(set(executions) - expected):
        out.problems.append(f"activity {key} ran but the soak never schedules it")
    reexecutions = on_killed = 0
    recovery: list[float] = []
    for key in sorted(expected):
        runs = executions.get(key, [])
        if not runs:
            out.problems.append(f"activity {key} never ran")
            continue
        if runs[-1].done is None:
            out.problems.append(f"activity {key}: its last execution (pid {runs[-1].pid}) did not end")
        for earlier, later in itertools.pairwise(runs):
            reexecutions += 1
            killed_at = record.killed.get(earlier.pid)
            if killed_at is not None and _killed_before_commit(earlier, killed_at, record.lease_seconds):
                on_killed += 1
                recovery.append(later.started - killed_at)
                continue
            killed = "not killed" if killed_at is None else f"killed only at {killed_at:.3f}"
            message = (
                f"activity {key} ran again (pid {later.pid} at {later.started:.3f}, attempt {later.attempt}) "
                f"after pid {earlier.pid} ({killed}) ran it from {earlier.started:.3f}"
                + ("" if earlier.done is None else f" to {earlier.done:.3f}")
            )
            restart = _restart_during(record, earlier)
            if restart is None:
                out.problems.append(message)
            elif _outlasted_retries(restart, record.lease_seconds):
                out.after_long_outage += 1
            else:
                out.after_restart.append(f"{message}, as the store restarted ({restart[0]:.3f} to {restart[1]:.3f})")
    out.figures.update(
        activity_executions=sum(len(runs) for runs in executions.values()),
        reexecutions=reexecutions,
        reexecutions_after_kills=on_killed,
        reexecutions_after_restart=len(out.after_restart) + out.after_long_outage,
        reexecutions_after_restart_beyond_lease=out.after_long_outage,
    )
    if recovery:
        out.figures["recovery_after_kill_s"] = {"median": round(statistics.median(recovery), 2), "max": round(max(recovery), 2)}
    for (down, up), running in zip(record.restarts, record.running_at_restart, strict=True):
        after = [run.started for runs in executions.values() for run in runs if run.started > up]
        out.figures.setdefault("restarts", []).append({
            "outage_s": round(up - down, 2),
            "activities_running": running,
            "first_activity_after_s": round(min(after) - up, 2) if after else None,
        })
    return out


def _killed_before_commit(execution: Execution, killed_at: float, lease_seconds: float) -> bool:
    """Could the kill have stopped this execution's result from being committed? Only if it
    came while the activity ran, or after its end but within its lease (a result is committed
    under the lease or not at all)."""
    if killed_at < execution.started:
        return False
    return execution.done is None or killed_at <= execution.done + lease_seconds


def _outlasted_retries(restart: tuple[float, float], lease_seconds: float) -> bool:
    """Could the outage have used up the time the lease left for retrying the completion? The
    lease's last extension may have come a heartbeat interval (a third of the lease) before the
    store went; retries stop ``_LEASE_MARGIN`` before the lease runs out, and the first retry
    after the store is back may wait up to 1.5 x ``_MAX_DELAY``; one more second for a loaded
    machine's late heartbeats."""
    down, up = restart
    retries_until = down - lease_seconds / 3 + lease_seconds - _LEASE_MARGIN
    return up + 1.5 * _MAX_DELAY + 1.0 >= retries_until


def _restart_during(record: RunRecord, execution: Execution) -> tuple[float, float] | None:
    """The restart that could have lost this execution's result: one that came while it ran, or
    within a lease after its end (while its result could still be on its way to the store)."""
    for down, up in record.restarts:
        if execution.started <= up and (execution.done is None or execution.done + record.lease_seconds >= down):
            return down, up
    return None
