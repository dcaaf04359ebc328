"""Which workers are alive and whether every queue is served (pure core; docs/observability.md).

``collect`` reads the live workers (``Backend.list_workers``) and the backlog
(``Backend.get_backlog``) and says, per queue, how many live workers poll it for workflow and
for activity tasks. ``HealthReport.exit_code`` is what ``manage.py workflows status`` exits
with, so it can serve as a health check (systemd, Kubernetes): 0, or 1 when a queue is unserved:

- a queue named in ``required`` has no live worker polling it (for either kind of task);
- with no queue named: a queue holds ready tasks of a kind that no live worker polls it for.

``status`` is the one call behind the command: the report rendered as text or JSON, and the
exit code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .engine.backend import Backend, Feature, QueueBacklog, WorkerInfo
from .engine.clock import system_clock

#: Exit codes of ``status``.
HEALTHY = 0
UNSERVED = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueHealth:
    queue: str
    backlog: QueueBacklog
    #: Live workers polling the queue for workflow tasks, and for activity tasks.
    workflow_pollers: int = 0
    activity_pollers: int = 0

    @property
    def served(self) -> bool:
        """Some live worker polls the queue."""
        return bool(self.workflow_pollers or self.activity_pollers)

    @property
    def stranded(self) -> list[str]:
        """Kinds of ready tasks that no live worker polls this queue for."""
        kinds = []
        if self.backlog.ready_workflow_tasks and not self.workflow_pollers:
            kinds.append("workflow")
        if self.backlog.ready_activity_tasks and not self.activity_pollers:
            kinds.append("activity")
        return kinds


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    checked_at: datetime
    #: False where the backend keeps no worker registry: then nothing can be said about workers.
    registry: bool
    workers: list[WorkerInfo] = field(default_factory=list)
    queues: list[QueueHealth] = field(default_factory=list)
    required: tuple[str, ...] = ()

    def queue(self, name: str) -> QueueHealth | None:
        return next((q for q in self.queues if q.queue == name), None)

    @property
    def unserved(self) -> list[str]:
        """The queues that fail the check (see the module docstring)."""
        if not self.registry:
            return []
        if self.required:
            return [q.queue for q in self.queues if q.queue in self.required and not q.served]
        return [q.queue for q in self.queues if q.stranded]

    @property
    def exit_code(self) -> int:
        return UNSERVED if self.unserved else HEALTHY

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "registry": self.registry,
            "healthy": self.exit_code == HEALTHY,
            "unserved_queues": self.unserved,
            "workers": [worker.to_dict() for worker in self.workers],
            "queues": [
                {
                    "queue": q.queue,
                    "ready_workflow_tasks": q.backlog.ready_workflow_tasks,
                    "ready_activity_tasks": q.backlog.ready_activity_tasks,
                    "oldest_workflow_task_age": q.backlog.oldest_workflow_task_age,
                    "oldest_activity_task_age": q.backlog.oldest_activity_task_age,
                    "workflow_pollers": q.workflow_pollers,
                    "activity_pollers": q.activity_pollers,
                }
                for q in self.queues
            ],
        }


def collect(backend: Backend, required: Sequence[str] = ()) -> HealthReport:
    """Read the live workers and the backlog; the queues are those with a backlog, those a live
    worker polls and those in ``required``."""
    registry = backend.feature_supported(Feature.WORKER_REGISTRY)
    workers = backend.list_workers() if registry else []
    backlog = {b.queue: b for b in backend.get_backlog()}
    names = set(backlog) | set(required)
    for worker in workers:
        names.update(worker.workflow_queues, worker.activity_queues)
    queues = [
        QueueHealth(
            queue=name,
            backlog=backlog.get(name) or QueueBacklog(queue=name),
            workflow_pollers=sum(1 for w in workers if w.polls(name, "workflow")),
            activity_pollers=sum(1 for w in workers if w.polls(name, "activity")),
        )
        for name in sorted(names)
    ]
    return HealthReport(
        checked_at=system_clock.now(), registry=registry, workers=workers, queues=queues, required=tuple(required)
    )


def describe_age(seconds: float | None) -> str:
    """``—``, ``850 ms``, ``12 s``, ``3 min``, ``2.5 h``."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render_text(report: HealthReport) -> str:
    """The report for a terminal: workers, then queues, then the verdict."""
    now = report.checked_at
    lines = []
    if not report.registry:
        lines.append("Workers: this backend keeps no registry of live workers.")
    else:
        lines.append(f"Workers ({len(report.workers)} live):")
        for w in report.workers:
            beat = describe_age((now - w.heartbeat_at).total_seconds()) + " ago" if w.heartbeat_at else "—"
            version = f" app {w.app_version}" if w.app_version else ""
            lines.append(
                f"  {w.worker_id}  host {w.host} pid {w.pid}{version}  in flight {w.tasks_in_flight}  heartbeat {beat}"
            )
            lines.append(
                f"    workflow queues: {', '.join(w.workflow_queues) or '—'}; activity queues: {', '.join(w.activity_queues) or '—'}"
            )
        if not report.workers:
            lines.append("  (none)")
    lines.append("Queues:")
    header = ("queue", "ready workflow tasks", "oldest", "ready activity tasks", "oldest", "pollers (wf/act)")
    rows = [
        (
            q.queue,
            str(q.backlog.ready_workflow_tasks),
            describe_age(q.backlog.oldest_workflow_task_age),
            str(q.backlog.ready_activity_tasks),
            describe_age(q.backlog.oldest_activity_task_age),
            f"{q.workflow_pollers}/{q.activity_pollers}" if report.registry else "?",
        )
        for q in report.queues
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if not rows:
        lines.append("  (no queue has work or a worker)")
    unserved = report.unserved
    if unserved:
        lines.append(f"UNHEALTHY: no live worker polls {', '.join(unserved)}")
    else:
        lines.append("OK")
    return "\n".join(lines)


def status(backend: Backend, queues: Sequence[str] = (), *, as_json: bool = False) -> tuple[str, int]:
    """What ``manage.py workflows status`` prints and its exit code (see the module docstring)."""
    report = collect(backend, queues)
    text = json.dumps(report.to_dict(), indent=2) if as_json else render_text(report)
    return text, report.exit_code


__all__ = ["HEALTHY", "UNSERVED", "HealthReport", "QueueHealth", "collect", "describe_age", "render_text", "status"]
