"""The Django admin for workflow instances: a read-only list, an instance page, operator actions.

Our counterpart of go-workflows' ``diag`` web UI (instance list, instance tree and history with
payloads), except that it sits behind the admin's login and permissions (``diag`` has no
authentication; see reference/reliability.md §4.1). Only ``WorkflowInstance`` is registered:
history events, payloads, pending events and activity tasks are shown inside the instance page.
Nothing can be added, edited or deleted here; the only way to change an instance is an action
(``admin.actions``), which goes through the ``Client`` like any other caller.

- List: status, created, completed, duration, workflow name, queue, short execution id, parent
  and the error (or termination reason); filters by status, name and queue; search by instance id
  (prefix) or execution id; a date hierarchy on creation.
- Instance page (``change_view``): input, result or error with its traceback (a cancellation is
  shown as one), the history with decoded payloads one page at a time (``?compact=1`` leaves out
  ``WorkflowTaskStarted``), a timeline of activities, timers, sub-workflows and signals, the
  parent/child tree, other executions of the instance id, pending activities, timers and events,
  and the history as a JSON download (``<id>/history.json``, the export format of
  ``engine.history_export``).
- Both refresh themselves every ``refresh_seconds`` (``static/django_workflows/refresh.js``: the
  page is fetched and its content swapped in, never while rows are selected or a field is being
  typed in), with a pause/resume button; the instance page stops once the execution has ended.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import content_disposition_header
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from ..backends.orm.transactions import DbNow
from ..engine.converter import Converter
from ..engine.core import InstanceState
from ..engine.history import EventType
from ..engine.history_export import dumps_history
from ..models import PendingEvent, WorkflowInstance
from .actions import ACTIONS, engine_instance
from .changelist import SNIPPET_CHARS, InstanceChangeList
from .detail import HISTORY_PAGE_SIZE, InstanceDetail
from .display import (
    HIDDEN_PAYLOADS,
    STATUS_LABELS,
    VIEW_PAYLOADS,
    blocked_error,
    describe_duration,
    format_duration,
    status_key,
    status_label,
    time_parts,
)
from .readonly import ReadOnlyAdmin
from .scale import EstimatedCountPaginator, IndexedValuesFilter, search

#: The permissions behind the actions, as ``app_label.codename``.
PERMISSIONS = {
    "cancel": "django_workflows.cancel_workflowinstance",
    "terminate": "django_workflows.terminate_workflowinstance",
    "signal": "django_workflows.signal_workflowinstance",
    "remove": "django_workflows.remove_workflowinstance",
    "restart": "django_workflows.restart_workflowinstance",
    "reset": "django_workflows.reset_workflowinstance",
    # Not an action: decoded payloads on the instance and schedule pages, the history download.
    "view_payloads": VIEW_PAYLOADS,
}


def _timestamp(value: datetime) -> str:
    # The pages' one time format (display.time_parts), the milliseconds set smaller.
    machine, main, millis = time_parts(value)
    return format_html('<time class="wf-time" datetime="{}" title="{}">{}<span class="wf-ms">{}</span></time>',
                       machine, machine, main, millis)


class StatusFilter(admin.SimpleListFilter):
    """State and outcome as one choice: running, completed, failed, canceled, terminated..."""

    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(STATUS_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[WorkflowInstance]) -> QuerySet[WorkflowInstance]:
        value = self.value()
        if value == "scheduled":
            return queryset.filter(delayed_start(), state=InstanceState.ACTIVE.value)
        if value == "running":
            return queryset.filter(~delayed_start(), state=InstanceState.ACTIVE.value, blocked_since__isnull=True)
        if value == "blocked":
            return queryset.filter(state=InstanceState.ACTIVE.value, blocked_since__isnull=False)
        if value == "continued_as_new":
            return queryset.filter(state=InstanceState.CONTINUED_AS_NEW.value)
        if value in STATUS_LABELS:
            return queryset.filter(state=InstanceState.FINISHED.value, outcome=value)
        return queryset


def delayed_start() -> Exists:
    """An execution whose start is still delayed (``start_delay``): it shows as scheduled."""
    return Exists(
        PendingEvent.objects.filter(
            instance=OuterRef("pk"), event_type=EventType.WORKFLOW_EXECUTION_STARTED.value, visible_at__gt=DbNow()
        )
    )


@admin.register(WorkflowInstance)
class WorkflowInstanceAdmin(ReadOnlyAdmin):
    # Times right after the status: they stay in view on a 1280 px screen; ids and errors come last.
    list_display = (
        "instance_link", "status", "created", "completed", "workflow_name", "queue", "execution", "parent", "error",
    )
    list_display_links = None
    # Every query of the list is bounded by an index or a cap (admin.scale): the value filters
    # walk their index, the count is capped or estimated, the search uses two indexes.
    list_filter = (StatusFilter, ("workflow_name", IndexedValuesFilter), ("queue", IndexedValuesFilter))
    search_fields = ("^instance_id", "=execution_id")  # shows the search box; get_search_results searches
    search_help_text = _("Instance id (or its beginning), or an exact execution id.")
    date_hierarchy = "created_at"
    list_per_page = 50
    # Counting a large table on every page view is slow: no "(N total)", and the filtered count
    # is exact up to 10,000, estimated above (admin.scale.EstimatedCountPaginator).
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    actions = ACTIONS
    # Columns the list needs; leases and metadata stay in the database.
    list_only = (
        "id", "instance_id", "execution_id", "parent_instance_id", "parent_execution_id", "workflow_name", "queue",
        "state", "outcome", "created_at", "completed_at", "blocked_since", "blocked_error",
    )
    #: Seconds between two refreshes of the list and of a running instance's page.
    refresh_seconds: float = 5

    class Media:
        css: ClassVar[dict[str, list[str]]] = {"all": ["django_workflows/admin.css", "django_workflows/health.css"]}
        js: ClassVar[list[str]] = ["django_workflows/refresh.js"]

    # -- actions behind permissions (the rows are read-only: ReadOnlyAdmin) ------------------

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["cancel"])

    def has_terminate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["terminate"])

    def has_signal_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["signal"])

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["remove"])

    def has_restart_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["restart"])

    def has_reset_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["reset"])

    def has_view_payloads_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["view_payloads"])

    def payload_converter(self, request: HttpRequest) -> Converter:
        """How the pages decode payloads for this user: the backend's converter, or one that
        hides every payload (``display.PAYLOAD_HIDDEN``) without ``view_payloads``."""
        if self.has_view_payloads_permission(request):
            return self.get_backend().options.converter
        return HIDDEN_PAYLOADS

    def get_backend(self) -> Any:
        """The backend whose tables this admin shows: the first ORM backend of ``WORKFLOWS``
        (the ``default`` alias first), else the default backend."""
        from ..backends.handler import (
            DEFAULT_BACKEND,
            DEFAULT_WORKFLOWS_ALIAS,
            workflow_backends,
        )
        from ..backends.orm import OrmBackend

        for alias in sorted(workflow_backends, key=lambda alias: alias != DEFAULT_WORKFLOWS_ALIAS):
            backend_class = import_string(workflow_backends.settings[alias].get("BACKEND", DEFAULT_BACKEND))
            if isinstance(backend_class, type) and issubclass(backend_class, OrmBackend):
                return workflow_backends[alias]
        return workflow_backends[DEFAULT_WORKFLOWS_ALIAS]

    # -- the list ----------------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Counts per status, the backlog and unserved queues above the table (admin.workers).
        backend = self.get_backend()
        using = getattr(backend, "using", DEFAULT_DB_ALIAS)
        summary = workers.overview(backend, using, reverse(f"{self.admin_site.name}:django_workflows_registeredworker_changelist"))
        context = {
            "workflows_overview": summary,
            # The list refreshes itself (refresh.js).
            "wf_refresh_seconds": self.refresh_seconds,
            "wf_live": True,
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WorkflowInstance]:
        queryset = super().get_queryset(request).using(getattr(self.get_backend(), "using", DEFAULT_DB_ALIAS))
        url_name = request.resolver_match.url_name if request.resolver_match is not None else None
        if url_name and url_name.endswith("_changelist"):
            queryset = queryset.only(*self.list_only).annotate(delayed_start=delayed_start())
        return queryset

    @admin.display(description=_("instance"), ordering="instance_id")
    def instance_link(self, obj: WorkflowInstance) -> str:
        url = reverse(f"{self.admin_site.name}:django_workflows_workflowinstance_change", args=[obj.pk])
        # The full id in the tooltip: the column cuts long ids short (see admin.css).
        return format_html('<a href="{}" title="{}">{}</a>', url, obj.instance_id, obj.instance_id)

    @admin.display(description=_("status"), ordering="state")
    def status(self, obj: WorkflowInstance) -> str:
        key = status_key(obj.state, obj.outcome, obj.is_blocked, scheduled=bool(getattr(obj, "delayed_start", False)))
        label = format_html('<span class="wf-status wf-status-{}">{}</span>', key, status_label(key))
        if key != "blocked" or obj.blocked_since is None:
            return label
        # Why and since when, in the list already: a blocked instance needs someone's attention.
        error = blocked_error(obj)
        return format_html(
            '{}<div class="wf-muted wf-blocked-since" title="{}">{} {} · {}</div>',
            label,
            error.message if error else "",
            _("since"),
            _timestamp(obj.blocked_since),
            error.type if error else "?",
        )

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: WorkflowInstance) -> str:
        return _timestamp(obj.created_at)

    @admin.display(description=_("completed / duration"), ordering="completed_at")
    def completed(self, obj: WorkflowInstance) -> str:
        # One column for both, so the times stay in view on a 1280 px screen.
        now = timezone.now()
        if obj.completed_at is None:
            text = describe_duration(obj.created_at, None, now)
            return format_html(
                '—<div class="wf-muted wf-duration" title="{}">{} …</div>', text, format_duration(now - obj.created_at)
            )
        return format_html(
            '{}<div class="wf-muted wf-duration">{}</div>',
            _timestamp(obj.completed_at),
            describe_duration(obj.created_at, obj.completed_at, now),
        )

    @admin.display(description=_("execution"))
    def execution(self, obj: WorkflowInstance) -> str:
        return format_html('<span class="wf-mono" title="{}">{}</span>', obj.execution_id, obj.execution_id[:8])

    @admin.display(description=_("parent"), ordering="parent_instance_id")
    def parent(self, obj: WorkflowInstance) -> str:
        if not obj.parent_instance_id:
            return "—"
        url = reverse(f"{self.admin_site.name}:django_workflows_workflowinstance_lookup")
        return format_html(
            '<a href="{}?instance_id={}&amp;execution_id={}" title="{}">{}</a>',
            url, obj.parent_instance_id, obj.parent_execution_id, obj.parent_instance_id, obj.parent_instance_id,
        )

    @admin.display(description=_("error"))
    def error(self, obj: WorkflowInstance) -> str:
        text = getattr(obj, "wf_error", "")
        if not text:
            return ""
        shown = text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"
        return format_html('<span class="wf-error-snippet" title="{}">{}</span>', text, shown)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[WorkflowInstance], search_term: str
    ) -> tuple[QuerySet[WorkflowInstance], bool]:
        # Instance id prefix or exact execution id, through their indexes (admin.scale.search).
        term = search_term.strip()
        if not term:
            return queryset, False
        return search(queryset, term), False

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[InstanceChangeList]:
        return InstanceChangeList

    # -- the instance page -------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        lookup = path(
            "lookup/",
            self.admin_site.admin_view(self.lookup_view),
            name="django_workflows_workflowinstance_lookup",
        )
        history = path(
            "<path:object_id>/history.json",
            self.admin_site.admin_view(self.history_json_view),
            name="django_workflows_workflowinstance_history_json",
        )
        # Before the model admin's own URLs: "<path:object_id>/" would swallow these.
        return [lookup, history, *super().get_urls()]

    def history_json_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The execution's history in the export format, as a download."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, obj) or not self.has_view_payloads_permission(request):
            raise PermissionDenied  # the export holds every payload
        instance = engine_instance(obj)
        events = self.get_backend().get_workflow_instance_history(instance)
        response = HttpResponse(dumps_history(instance, obj.workflow_name, events), content_type="application/json")
        filename = f"{obj.instance_id}-{obj.execution_id[:8]}-history.json"
        response["Content-Disposition"] = content_disposition_header(True, filename)
        return response

    def lookup_view(self, request: HttpRequest) -> HttpResponse:
        """Redirect ``?instance_id=...&execution_id=...`` (execution optional: the newest) to the
        instance page; history events and trees link to other instances through it."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        instance_id = request.GET.get("instance_id", "")
        execution_id = request.GET.get("execution_id", "")
        rows = self.get_queryset(request).filter(instance_id=instance_id)
        if execution_id:
            rows = rows.filter(execution_id=execution_id)
        row = rows.order_by("-created_at", "-id").only("id").first()
        changelist = reverse(f"{self.admin_site.name}:django_workflows_workflowinstance_changelist")
        if row is None:
            self.message_user(
                request, _("No stored execution of instance %(id)s.") % {"id": instance_id or "?"}, messages.WARNING
            )
            return HttpResponseRedirect(changelist)
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:django_workflows_workflowinstance_change", args=[row.pk]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The read-only instance page (there is no change form: instances are not editable)."""
        if request.method != "GET":
            # Actions are posted to the changelist; nothing is ever saved from this page.
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        now = timezone.now()
        converter = self.payload_converter(request)
        compact = request.GET.get("compact") == "1"
        detail = InstanceDetail.build(converter, obj, request.GET.get("page"), now, compact)
        context = {
            **self.admin_site.each_context(request),
            "title": obj.instance_id,
            "subtitle": obj.workflow_name,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": obj,
            "object_id": obj.pk,
            "detail": detail,
            "now": now,
            "history_page_size": HISTORY_PAGE_SIZE,
            "instance_actions": self.instance_actions(request, obj),
            # History rows of workflow tasks offer "Reset to here" to those who may reset.
            "can_reset": self.has_reset_permission(request),
            # Why a running instance does not run (admin.workers; empty when a worker polls its queue).
            "queue_warning": workers.queue_warning(self.get_backend(), obj),
            "workers_url": reverse(f"{self.admin_site.name}:django_workflows_registeredworker_changelist"),
            "workers_link_label": _("Live workers"),
            "changelist_url": reverse(f"{self.admin_site.name}:django_workflows_workflowinstance_changelist"),
            "lookup_url": reverse(f"{self.admin_site.name}:django_workflows_workflowinstance_lookup"),
            "history_json_url": reverse(
                f"{self.admin_site.name}:django_workflows_workflowinstance_history_json", args=[obj.pk]
            ) if self.has_view_payloads_permission(request) else "",
            "compact": compact,
            "wf_refresh_seconds": self.refresh_seconds,
            "wf_live": obj.state == InstanceState.ACTIVE.value,
            "media": self.media,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/django_workflows/workflowinstance/detail.html", context)

    def instance_actions(self, request: HttpRequest, obj: WorkflowInstance) -> list[dict[str, str]]:
        """The action buttons of the instance page: those the user may run and the state allows."""
        active = obj.state == InstanceState.ACTIVE.value
        candidates = [
            ("cancel", "cancel_instances", _("Cancel workflow"), active),
            ("signal", "signal_instances", _("Send signal…"), active),
            ("terminate", "terminate_instances", _("Terminate workflow…"), active),
            ("remove", "remove_instances", _("Remove instance…"), not active),
            ("restart", "restart_instances", _("Restart workflow…"), True),
        ]
        return [
            {"name": name, "label": str(label), "kind": permission}
            for permission, name, label, allowed in candidates
            if allowed and getattr(self, f"has_{permission}_permission")(request)
        ]


# The schedules' admin registers itself (docs/schedules.md); so does the Workers page
# (docs/observability.md).
from . import schedules, workers  # noqa: E402,F401
