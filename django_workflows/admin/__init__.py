"""The Django admin for workflow instances: a read-only list, an instance page, operator actions.

Our counterpart of go-workflows' ``diag`` web UI (instance list, instance tree and history with
payloads), except that it sits behind the admin's login and permissions (``diag`` has no
authentication; see reference/reliability.md §4.1). Only ``WorkflowInstance`` is registered:
history events, payloads, pending events and activity tasks are shown inside the instance page.
Nothing can be added, edited or deleted here; the only way to change an instance is an action
(``admin.actions``), which goes through the ``Client`` like any other caller.

- List: status, workflow name, queue, created, completed, duration; filters by status, name and
  queue; search by instance id (prefix) or execution id; a date hierarchy on creation.
- Instance page (``change_view``): input, result or error with its traceback, the history with
  decoded payloads one page at a time, a timeline of activities/timers/sub-workflows, the
  parent/child tree, other executions of the instance id, pending activities, timers and events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from ..engine.core import InstanceState
from ..models import WorkflowInstance
from .actions import ACTIONS
from .detail import HISTORY_PAGE_SIZE, InstanceDetail
from .display import STATUS_LABELS, describe_duration, status_key, status_label

#: The permissions behind the actions, as ``app_label.codename``.
PERMISSIONS = {
    "cancel": "django_workflows.cancel_workflowinstance",
    "terminate": "django_workflows.terminate_workflowinstance",
    "signal": "django_workflows.signal_workflowinstance",
    "remove": "django_workflows.remove_workflowinstance",
}


def _timestamp(value: datetime) -> str:
    # To the second: "12:10 p.m." cannot tell apart instances started a few seconds apart.
    return date_format(timezone.localtime(value), "Y-m-d H:i:s")


class StatusFilter(admin.SimpleListFilter):
    """State and outcome as one choice: running, completed, failed, canceled, terminated..."""

    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(STATUS_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[WorkflowInstance]) -> QuerySet[WorkflowInstance]:
        value = self.value()
        if value == "running":
            return queryset.filter(state=InstanceState.ACTIVE.value)
        if value == "continued_as_new":
            return queryset.filter(state=InstanceState.CONTINUED_AS_NEW.value)
        if value in STATUS_LABELS:
            return queryset.filter(state=InstanceState.FINISHED.value, outcome=value)
        return queryset


@admin.register(WorkflowInstance)
class WorkflowInstanceAdmin(admin.ModelAdmin):
    list_display = ("instance_link", "status", "workflow_name", "queue", "created", "completed", "duration")
    list_display_links = None
    list_filter = (StatusFilter, "workflow_name", "queue")
    search_fields = ("^instance_id", "=execution_id")
    search_help_text = _("Instance id (or its beginning), or an exact execution id.")
    date_hierarchy = "created_at"
    list_per_page = 50
    # Counting a large table on every page view is slow; the filtered count is enough.
    show_full_result_count = False
    actions = ACTIONS
    # Columns the list needs; leases and metadata stay in the database.
    list_only = (
        "id", "instance_id", "execution_id", "workflow_name", "queue", "state", "outcome", "created_at", "completed_at"
    )

    class Media:
        css: ClassVar[dict[str, list[str]]] = {"all": ["django_workflows/admin.css", "django_workflows/health.css"]}

    # -- read-only ---------------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Removal goes through the Client (the "remove" action), never through Django's delete.
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["cancel"])

    def has_terminate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["terminate"])

    def has_signal_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["signal"])

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["remove"])

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
        return super().changelist_view(request, {"workflows_overview": summary, **(extra_context or {})})

    def get_queryset(self, request: HttpRequest) -> QuerySet[WorkflowInstance]:
        queryset = super().get_queryset(request).using(getattr(self.get_backend(), "using", DEFAULT_DB_ALIAS))
        url_name = request.resolver_match.url_name if request.resolver_match is not None else None
        if url_name and url_name.endswith("_changelist"):
            queryset = queryset.only(*self.list_only)
        return queryset

    @admin.display(description=_("instance"), ordering="instance_id")
    def instance_link(self, obj: WorkflowInstance) -> str:
        url = reverse(f"{self.admin_site.name}:django_workflows_workflowinstance_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.instance_id)

    @admin.display(description=_("status"), ordering="state")
    def status(self, obj: WorkflowInstance) -> str:
        key = status_key(obj.state, obj.outcome)
        return format_html('<span class="wf-status wf-status-{}">{}</span>', key, status_label(key))

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: WorkflowInstance) -> str:
        return _timestamp(obj.created_at)

    @admin.display(description=_("completed"), ordering="completed_at")
    def completed(self, obj: WorkflowInstance) -> str:
        return _timestamp(obj.completed_at) if obj.completed_at is not None else "—"

    @admin.display(description=_("duration"))
    def duration(self, obj: WorkflowInstance) -> str:
        return describe_duration(obj.created_at, obj.completed_at, timezone.now())

    # -- the instance page -------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        lookup = path(
            "lookup/",
            self.admin_site.admin_view(self.lookup_view),
            name="django_workflows_workflowinstance_lookup",
        )
        # Before the model admin's own URLs: "<path:object_id>/" would swallow "lookup/".
        return [lookup, *super().get_urls()]

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
        converter = self.get_backend().options.converter
        detail = InstanceDetail.build(converter, obj, request.GET.get("page"), now)
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
            # Why a running instance does not run (admin.workers; empty when a worker polls its queue).
            "queue_warning": workers.queue_warning(self.get_backend(), obj),
            "workers_url": reverse(f"{self.admin_site.name}:django_workflows_registeredworker_changelist"),
            "workers_link_label": _("Live workers"),
            "changelist_url": reverse(f"{self.admin_site.name}:django_workflows_workflowinstance_changelist"),
            "lookup_url": reverse(f"{self.admin_site.name}:django_workflows_workflowinstance_lookup"),
            "media": self.media,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/django_workflows/workflowinstance/detail.html", context)

    def instance_actions(self, request: HttpRequest, obj: WorkflowInstance) -> list[dict[str, str]]:
        """The action buttons of the instance page: those the user may run and the state allows."""
        active = obj.state == InstanceState.ACTIVE.value
        candidates = [
            ("cancel", "cancel_instances", _("Cancel"), active),
            ("signal", "signal_instances", _("Send signal…"), active),
            ("terminate", "terminate_instances", _("Terminate…"), active),
            ("remove", "remove_instances", _("Remove…"), not active),
        ]
        return [
            {"name": name, "label": str(label), "kind": permission}
            for permission, name, label, allowed in candidates
            if allowed and getattr(self, f"has_{permission}_permission")(request)
        ]


# The schedules' admin registers itself (docs/schedules.md); so does the Workers page
# (docs/observability.md).
from . import schedules, workers  # noqa: E402,F401
