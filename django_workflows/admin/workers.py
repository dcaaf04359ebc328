"""The admin's view of live workers (docs/observability.md): a Workers page, an overview above the
instance list (counts per status, the backlog per queue) and warnings where no live worker polls
a queue that has work, on the instance list and on a running instance's page.

Everything is read through the backend the instance admin shows (``Backend.list_workers``,
``Backend.get_backlog``, ``health.collect``), so it works the same on the ORM and Redis stores;
only the counts per status come from the ORM tables the list shows. Read-only: the page has no
actions, and rows are written only by the workers themselves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..engine.backend import Backend, Feature
from ..engine.core import InstanceState
from ..health import HealthReport, collect, describe_age
from ..models import RegisteredWorker, WorkflowInstance
from .display import STATUS_LABELS
from .readonly import ReadOnlyAdmin
from .scale import capped_status_counts, count_text, indexed_values

#: One count serves the list for this long (a list that refreshes itself would count on every
#: refresh otherwise); each count is bounded anyway (``scale.capped_status_counts``).
COUNTS_CACHE_SECONDS = 10.0
_counts_cache: dict[str, tuple[float, dict[str, int]]] = {}


def status_counts(using: str) -> dict[str, int]:
    """Executions per status key (``running``, ``failed``...), each counted up to
    ``scale.COUNT_CAP + 1`` through the status index, at most ``COUNTS_CACHE_SECONDS`` old."""
    cached = _counts_cache.get(using)
    if cached is not None and time.monotonic() - cached[0] < COUNTS_CACHE_SECONDS:
        return cached[1]
    counts = {**dict.fromkeys(STATUS_LABELS, 0), **capped_status_counts(using)}
    _counts_cache[using] = (time.monotonic(), counts)
    return counts


@dataclass
class QueueRow:
    queue: str
    ready_workflow_tasks: int
    oldest_workflow_task: str
    ready_activity_tasks: int
    oldest_activity_task: str
    workflow_pollers: int
    activity_pollers: int
    unserved: bool


@dataclass
class Overview:
    """What the instance list shows above its table."""

    #: (status key, label, count as shown: "10,000+" above the cap).
    counts: list[tuple[str, str, str]] = field(default_factory=list)
    queues: list[QueueRow] = field(default_factory=list)
    registry: bool = False
    live_workers: int = 0
    #: Queues with running instances or ready tasks that no live worker polls.
    unserved: list[str] = field(default_factory=list)
    #: The command that would serve them.
    hint: str = ""
    workers_url: str = ""
    error: str = ""


def _queue_rows(report: HealthReport, unserved: set[str]) -> list[QueueRow]:
    return [
        QueueRow(
            queue=q.queue,
            ready_workflow_tasks=q.backlog.ready_workflow_tasks,
            oldest_workflow_task=describe_age(q.backlog.oldest_workflow_task_age),
            ready_activity_tasks=q.backlog.ready_activity_tasks,
            oldest_activity_task=describe_age(q.backlog.oldest_activity_task_age),
            workflow_pollers=q.workflow_pollers,
            activity_pollers=q.activity_pollers,
            unserved=q.queue in unserved,
        )
        for q in report.queues
    ]


def runworkflows_hint(queues: list[str]) -> str:
    """The command that would serve ``queues``."""
    return "manage.py runworkflows " + " ".join(f"--queue {queue}" for queue in queues)


def unserved_queues(report: HealthReport, active_queues: set[str]) -> list[str]:
    """Queues whose running instances no live worker runs (no workflow poller there), or whose
    ready tasks of a kind no live worker polls for."""
    if not report.registry:
        return []
    polled = {q.queue for q in report.queues if q.workflow_pollers}
    stranded = {q.queue for q in report.queues if q.stranded}
    return sorted((active_queues - polled) | stranded)


def overview(backend: Backend, using: str, workers_url: str) -> Overview:
    """The overview of the instance list; a store that cannot be read gives an error line, not a
    broken list."""
    counts = status_counts(using)
    summary = Overview(
        counts=[(key, str(label), count_text(counts.get(key, 0))) for key, label in STATUS_LABELS.items()],
        workers_url=workers_url,
    )
    try:
        report = collect(backend)
    except Exception as exc:  # the list must still show what the tables hold
        summary.error = f"{type(exc).__name__}: {exc}"
        return summary
    # The queues of running instances through the claim index (state, queue, ...), one probe
    # per queue, not a read of every running row.
    active = set(indexed_values(WorkflowInstance.objects.using(using), "queue", state=InstanceState.ACTIVE.value))
    unserved = unserved_queues(report, active)
    summary.registry = report.registry
    summary.live_workers = len(report.workers)
    summary.unserved = unserved
    summary.hint = runworkflows_hint(unserved)
    summary.queues = [row for row in _queue_rows(report, set(unserved)) if row.ready_workflow_tasks or row.ready_activity_tasks or row.unserved]
    return summary


def queue_warning(backend: Backend, instance: WorkflowInstance) -> str:
    """Why a running instance does not run: no live worker polls its queue for workflow tasks
    (empty when one does, the instance has ended, or the store keeps no registry)."""
    if instance.state != InstanceState.ACTIVE.value or not backend.feature_supported(Feature.WORKER_REGISTRY):
        return ""
    try:
        workers = backend.list_workers()
    except Exception:
        return ""
    if any(worker.polls(instance.queue, "workflow") for worker in workers):
        return ""
    return str(
        _("No live worker polls the queue “%(queue)s” for workflow tasks: this instance does not run until one does "
          "(manage.py runworkflows --queue %(queue)s).")
        % {"queue": instance.queue}
    )


def instance_admin_backend(site: admin.AdminSite) -> Backend:
    """The backend the instance admin of ``site`` shows."""
    instance_admin = site._registry.get(WorkflowInstance)
    if instance_admin is not None and hasattr(instance_admin, "get_backend"):
        return instance_admin.get_backend()
    from ..backends import default_backend

    return default_backend()


@admin.register(RegisteredWorker)
class WorkerAdmin(ReadOnlyAdmin):
    """The Workers page: every live worker of the store, and each queue with its backlog and
    the workers polling it. Rows are the workers' own; nothing here changes them."""

    class Media:
        css: ClassVar[dict[str, list[str]]] = {"all": ["django_workflows/admin.css", "django_workflows/health.css"]}

    def get_urls(self) -> list[Any]:
        # Only the list: there is no page per worker.
        return [url for url in super().get_urls() if url.name and url.name.endswith("_changelist")]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        backend = instance_admin_backend(self.admin_site)
        error = ""
        report: HealthReport | None = None
        try:
            report = collect(backend)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = timezone.now()
        workers = []
        if report is not None:
            for worker in report.workers:
                heartbeat = (now - worker.heartbeat_at).total_seconds() if worker.heartbeat_at else None
                workers.append({"info": worker, "heartbeat_age": describe_age(heartbeat), "uptime": describe_age(
                    (now - worker.started_at).total_seconds() if worker.started_at else None)})
        active = set(
            WorkflowInstance.objects.using(getattr(backend, "using", "default"))
            .filter(state=InstanceState.ACTIVE.value)
            .order_by()
            .values_list("queue", flat=True)
            .distinct()
        ) if hasattr(backend, "using") else set()
        unserved = unserved_queues(report, active) if report is not None else []
        context = {
            **self.admin_site.each_context(request),
            "title": _("Live workers"),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "report": report,
            "workers": workers,
            "queues": _queue_rows(report, set(unserved)) if report is not None else [],
            "unserved": unserved,
            "runworkflows_hint": runworkflows_hint(unserved),
            "error": error,
            "instances_url": reverse(f"{self.admin_site.name}:django_workflows_workflowinstance_changelist"),
            "media": self.media,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/django_workflows/workers.html", context)
