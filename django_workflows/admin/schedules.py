"""The admin of schedules (docs/schedules.md): a list (what, when, next run, last run, paused), a
schedule page (definition, coming fire times, recent runs linking to their instance pages), and
the actions pause, unpause, trigger now and delete.

As for workflow instances: nothing is added or edited here; every action is behind its own
permission (``pause_schedule``, ``unpause_schedule``, ``trigger_schedule``, and Django's
``delete_schedule``), runs only on POST through the changelist's action machinery (so Django's
CSRF check applies), goes through the ``Client``, reports per schedule what happened, and is
written to the admin's log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..backends.orm.schedules import record_of
from ..client import Client
from ..models import Schedule, WorkflowInstance
from ..schedules import ScheduleNotFound, ScheduleRun
from ..schedules.description import describe
from .actions import _back
from .display import PAYLOAD_HIDDEN, VIEW_PAYLOADS, status_key, status_label
from .readonly import ReadOnlyAdmin

#: The permissions behind the actions, as ``app_label.codename``.
PERMISSIONS = {
    "pause": "django_workflows.pause_schedule",
    "unpause": "django_workflows.unpause_schedule",
    "trigger": "django_workflows.trigger_schedule",
    "remove": "django_workflows.delete_schedule",
}
#: Most schedules one action handles.
MAX_ACTION_ROWS = 200


def _timestamp(value: datetime | None) -> str:
    return date_format(timezone.localtime(value), "Y-m-d H:i:s") if value is not None else "—"


def run_statuses(using: str, runs: Sequence[ScheduleRun]) -> dict[tuple[str, str], str]:
    """(instance id, execution id) -> status key of the runs' executions, in one query."""
    pairs = {(run.instance.instance_id, run.instance.execution_id) for run in runs if run.instance is not None}
    if not pairs:
        return {}
    match = Q()
    for instance_id, execution_id in pairs:
        match |= Q(instance_id=instance_id, execution_id=execution_id)
    rows = WorkflowInstance.objects.using(using).filter(match).values_list("instance_id", "execution_id", "state", "outcome")
    return {(iid, eid): status_key(state, outcome) for iid, eid, state, outcome in rows}


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyAdmin):
    list_display = ("schedule_link", "workflow_name", "when", "next_run", "last_run", "paused_flag")
    list_display_links = None
    list_filter = ("paused", "declared", "workflow_name")
    search_fields = ("^schedule_id", "workflow_name")
    list_per_page = 50

    class Media:
        css: ClassVar[dict[str, list[str]]] = {"all": ["django_workflows/admin.css"]}

    # -- actions behind permissions (the rows are read-only: ReadOnlyAdmin) ------------------

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["pause"])

    def has_unpause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["unpause"])

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["trigger"])

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSIONS["remove"])

    def get_backend(self) -> Any:
        """The backend whose tables the workflow admin shows (see ``WorkflowInstanceAdmin``)."""
        from . import WorkflowInstanceAdmin

        return WorkflowInstanceAdmin.get_backend(self)

    def client(self) -> Client:
        return Client(self.get_backend())

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        return super().get_queryset(request).using(getattr(self.get_backend(), "using", DEFAULT_DB_ALIAS))

    # -- the list ----------------------------------------------------------------------------

    @admin.display(description=_("schedule"), ordering="schedule_id")
    def schedule_link(self, obj: Schedule) -> str:
        url = reverse(f"{self.admin_site.name}:django_workflows_schedule_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.schedule_id)

    @admin.display(description=_("when"))
    def when(self, obj: Schedule) -> str:
        return record_of(obj).definition.spec.describe()

    @admin.display(description=_("next run"), ordering="next_fire_at")
    def next_run(self, obj: Schedule) -> str:
        return "—" if obj.paused else _timestamp(obj.next_fire_at)

    @admin.display(description=_("last run"))
    def last_run(self, obj: Schedule) -> str:
        if not obj.last_instance_id:
            return "—"
        row = (
            WorkflowInstance.objects.using(obj._state.db or DEFAULT_DB_ALIAS)
            .filter(instance_id=obj.last_instance_id, execution_id=obj.last_execution_id)
            .values_list("state", "outcome")
            .first()
        )
        key = "removed" if row is None else status_key(*row)
        label = _("removed") if row is None else status_label(key)
        return format_html('<span class="wf-status wf-status-{}">{}</span>', key, label)

    @admin.display(description=_("paused"), boolean=True, ordering="paused")
    def paused_flag(self, obj: Schedule) -> bool:
        return obj.paused

    # -- the schedule page -------------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The read-only schedule page."""
        if request.method != "GET":
            raise PermissionDenied  # actions are posted to the changelist
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        backend = self.get_backend()
        description = describe(record_of(obj), backend, next_count=5, outcomes=False)
        statuses = run_statuses(obj._state.db or DEFAULT_DB_ALIAS, description.recent_runs)
        runs = []
        for run in description.recent_runs:
            key = ""
            if run.instance is not None:
                key = statuses.get((run.instance.instance_id, run.instance.execution_id), "removed")
            runs.append({"run": run, "status": key, "label": status_label(key) if key != "removed" else _("removed")})
        lookup_url = reverse(f"{self.admin_site.name}:django_workflows_workflowinstance_lookup")
        context = {
            **self.admin_site.each_context(request),
            "title": obj.schedule_id,
            "subtitle": obj.workflow_name,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": obj,
            "description": description,
            # The arguments are payloads: hidden without view_payloads, as on the instance pages.
            "args_json": json.dumps(description.args, indent=2, ensure_ascii=False, default=str)
            if request.user.has_perm(VIEW_PAYLOADS) else str(PAYLOAD_HIDDEN),
            "runs": runs,
            "schedule_actions": self.schedule_actions(request, obj),
            "changelist_url": reverse(f"{self.admin_site.name}:django_workflows_schedule_changelist"),
            "lookup_url": lookup_url,
            "media": self.media,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/django_workflows/schedule/detail.html", context)

    def schedule_actions(self, request: HttpRequest, obj: Schedule) -> list[dict[str, str]]:
        candidates = [
            ("trigger", "trigger_schedules", _("Trigger now"), True),
            ("pause", "pause_schedules", _("Pause"), not obj.paused),
            ("unpause", "unpause_schedules", _("Unpause"), obj.paused),
            ("remove", "delete_schedules", _("Delete…"), True),
        ]
        return [
            {"name": name, "label": str(label), "kind": permission}
            for permission, name, label, allowed in candidates
            if allowed and getattr(self, f"has_{permission}_permission")(request)
        ]

    # -- actions -----------------------------------------------------------------------------

    def per_schedule(
        self, request: HttpRequest, queryset: Any, operation: Callable[[str], str], log_message: str | None
    ) -> HttpResponse | None:
        """Run ``operation(schedule_id)`` (it returns what happened) for each selected schedule."""
        rows = list(queryset.order_by("schedule_id")[: MAX_ACTION_ROWS + 1])
        if len(rows) > MAX_ACTION_ROWS:
            self.message_user(request, _("Select at most %(n)d schedules for one action; nothing was done.") % {"n": MAX_ACTION_ROWS}, messages.ERROR)
            return None
        for row in rows:
            try:
                done = operation(row.schedule_id)
            except ScheduleNotFound:
                self.message_user(request, f"“{row.schedule_id}”: {_('not found')}", messages.WARNING)
            except Exception as exc:
                self.message_user(request, f"“{row.schedule_id}”: {_('failed: %(error)s') % {'error': exc}}", messages.ERROR)
            else:
                self.message_user(request, f"“{row.schedule_id}”: {done}", messages.SUCCESS)
                if log_message is None:
                    self.log_deletions(request, [row])
                else:
                    self.log_change(request, row, log_message)
        return _back(request)

    @admin.action(description=_("Pause selected schedules"), permissions=["pause"])
    def pause_schedules(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        client = self.client()
        user = request.user.get_username()

        def pause(schedule_id: str) -> str:
            client.pause_schedule(schedule_id, str(_("paused by %(user)s in the admin") % {"user": user}))
            return str(_("paused"))

        return self.per_schedule(request, queryset, pause, "Paused through the admin.")

    @admin.action(description=_("Unpause selected schedules"), permissions=["unpause"])
    def unpause_schedules(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        client = self.client()

        def unpause(schedule_id: str) -> str:
            client.unpause_schedule(schedule_id)
            return str(_("unpaused"))

        return self.per_schedule(request, queryset, unpause, "Unpaused through the admin.")

    @admin.action(description=_("Trigger selected schedules now"), permissions=["trigger"])
    def trigger_schedules(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        client = self.client()

        def trigger(schedule_id: str) -> str:
            instance = client.trigger_schedule(schedule_id)
            return str(_("started %(id)s") % {"id": instance.instance_id}) if instance else str(_("not started"))

        return self.per_schedule(request, queryset, trigger, "Triggered through the admin.")

    @admin.action(description=_("Delete selected schedules…"), permissions=["remove"])
    def delete_schedules(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        if "apply" not in request.POST:
            rows = list(queryset.order_by("schedule_id")[: MAX_ACTION_ROWS + 1])
            context = {
                **self.admin_site.each_context(request),
                "title": _("Delete schedules"),
                "opts": self.opts,
                "app_label": self.opts.app_label,
                "selection": rows,
                "action": "delete_schedules",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "media": self.media,
            }
            request.current_app = self.admin_site.name
            return TemplateResponse(request, "admin/django_workflows/schedule/delete_confirmation.html", context)
        client = self.client()

        def delete(schedule_id: str) -> str:
            client.delete_schedule(schedule_id)
            return str(_("deleted"))

        self.per_schedule(request, queryset, delete, None)
        return None  # never back to the schedule page: it is gone

    actions = ["pause_schedules", "unpause_schedules", "trigger_schedules", "delete_schedules"]
