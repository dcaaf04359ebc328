"""Operator actions of the admin: cancel, terminate, signal, remove, restart and reset workflow
instances.

The admin side of go-workflows' client operations (``CancelWorkflowInstance``,
``SignalWorkflow``, ``RemoveWorkflowInstance``) plus termination, which go-workflows' issue #196
asks for. Every action:

- is behind its own permission (``@admin.action(permissions=[...])``, checked by the
  ``has_<name>_permission`` methods of ``WorkflowInstanceAdmin``);
- runs only on POST through the changelist's action machinery, so Django's CSRF check applies;
- goes through ``django_workflows.client.Client``, never writing the models itself;
- handles each selected instance on its own, so a selection in mixed states does what it can
  and reports per instance what happened (``“order-1”: canceled``, ``“order-2”: already finished``);
- writes what it did to the admin's ``LogEntry`` log (with the termination reason).

Signal, terminate, remove, restart and reset first show an intermediate form (signal name and
JSON payload, termination reason, removal or restart confirmation, the reset point); its
submission comes back here with ``apply`` set. Reset starts from a history row of the instance
page ("Reset to here", on the workflow task it goes back to) and takes one execution at a time.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext_lazy as _

from ..client import Client
from ..engine.converter import Converter
from ..engine.core import WorkflowInstance as EngineInstance
from ..engine.core import validate_signal_name
from ..engine.errors import InstanceAlreadyExists, InstanceFinished, InstanceNotFinished, InstanceNotFound, PayloadTooLarge
from ..engine.payloads import PayloadLimits
from ..engine.reset import ResetError
from ..models import WorkflowInstance
from .display import status_key, status_label

if TYPE_CHECKING:
    from . import WorkflowInstanceAdmin

logger = logging.getLogger("django_workflows.admin")

#: Most instances one action handles; bulk clean-up belongs to ``remove_workflow_instances``.
MAX_ACTION_ROWS = 1000
#: Per-instance messages shown; the rest are summed up in one message.
MAX_REPORTED = 25
#: Longest termination reason kept (it is stored in the history and the admin log).
MAX_REASON_LENGTH = 1000

_ROW_COLUMNS = (
    "id",
    "instance_id",
    "execution_id",
    "parent_instance_id",
    "parent_execution_id",
    "parent_schedule_event_id",
    "workflow_name",
    "state",
    "outcome",
    "blocked_since",
)


# -- forms -------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON payloads")


class SignalForm(forms.Form):
    """A signal's name (the one rule of every sender, ``engine.core.validate_signal_name``) and
    its JSON payload, checked against the backend's converter and payload limits."""

    # No max_length or stripping of the form's own: the name is checked as every sender checks it.
    name = forms.CharField(label=_("Signal name"), strip=False)
    payload = forms.CharField(
        label=_("Payload (JSON)"),
        required=False,
        initial="null",
        widget=forms.Textarea(attrs={"rows": 8, "cols": 70, "spellcheck": "false"}),
        help_text=_("The value the workflow receives, as JSON: null, 42, \"text\", {\"approved\": true}…"),
    )

    def __init__(self, *args: Any, converter: Converter, limits: PayloadLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.converter = converter
        self.limits = limits

    def clean_name(self) -> str:
        try:
            return validate_signal_name(self.cleaned_data.get("name", ""))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def clean_payload(self) -> Any:
        text = (self.cleaned_data.get("payload") or "").strip() or "null"
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            raise ValidationError(_("The payload is not valid JSON: %(error)s"), params={"error": exc}) from None
        try:
            payload = self.converter.to_payload(value)
        except Exception as exc:  # noqa: BLE001 - a converter is application code: any failure is possible
            raise ValidationError(
                _("The payload cannot be stored by the converter: %(error)s"), params={"error": exc}
            ) from None
        if self.limits is not None:
            try:
                self.limits.check(payload, "signal value")
            except PayloadTooLarge as exc:
                raise ValidationError(str(exc)) from None
        return value


class TerminateForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=MAX_REASON_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text=_("Stored in the history and the admin log; the workflow's code does not run again."),
    )


class ConfirmForm(forms.Form):
    """No fields: submitting it confirms the action."""


class RestartForm(forms.Form):
    terminate_running = forms.BooleanField(
        label=_("Terminate a running execution first"),
        required=False,
        help_text=_("Without it, an instance id that still has a running execution is left alone."),
    )


class ResetForm(forms.Form):
    to = forms.IntegerField(
        label=_("Reset to history sequence"),
        min_value=1,
        help_text=_(
            "A WorkflowTaskStarted event: the new execution keeps the history before it, and runs that "
            "workflow task and everything after it again with the code deployed now."
        ),
    )
    terminate_running = RestartForm.base_fields["terminate_running"]
    reason = forms.CharField(
        label=_("Reason"),
        max_length=MAX_REASON_LENGTH,
        required=False,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 70}),
        help_text=_("Kept in the admin log (and in the termination, if one is needed)."),
    )


# -- running an action on each selected instance -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    label: str
    outcome: str
    level: int


def engine_instance(row: WorkflowInstance) -> EngineInstance:
    """The execution a row stands for, with its parent (a terminated child must tell its parent)."""
    parent = EngineInstance(row.parent_instance_id, row.parent_execution_id) if row.parent_instance_id else None
    return EngineInstance(row.instance_id, row.execution_id, parent, row.parent_schedule_event_id)


def _labels(rows: Sequence[WorkflowInstance]) -> dict[int, str]:
    # The instance id says it all unless several executions of one id are selected.
    counts = Counter(row.instance_id for row in rows)
    return {
        row.pk: row.instance_id if counts[row.instance_id] == 1 else f"{row.instance_id} ({row.execution_id[:8]})"
        for row in rows
    }


def run_per_instance(
    modeladmin: WorkflowInstanceAdmin,
    request: HttpRequest,
    rows: Sequence[WorkflowInstance],
    operation: Callable[[WorkflowInstance], None],
    done: str,
    log: Callable[[WorkflowInstance], None],
    still_running: str | None = None,
) -> list[Result]:
    """Apply ``operation`` to each row; an engine error for one row does not stop the others."""
    labels = _labels(rows)
    results = []
    for row in rows:
        try:
            operation(row)
        except InstanceFinished:  # before InstanceNotFound: it is a subclass
            outcome, level = str(_("already finished")), messages.WARNING
        except InstanceNotFound:
            outcome, level = str(_("not found")), messages.WARNING
        except InstanceNotFinished:
            outcome, level = still_running or str(_("still running, not removed")), messages.WARNING
        except Exception as exc:
            logger.exception("admin action on workflow instance %s failed", row.instance_id)
            outcome, level = str(_("failed: %(error)s") % {"error": exc}), messages.ERROR
        else:
            outcome, level = done, messages.SUCCESS
            log(row)
        results.append(Result(labels[row.pk], outcome, level))
    report(modeladmin, request, results)
    return results


def report(modeladmin: WorkflowInstanceAdmin, request: HttpRequest, results: Sequence[Result]) -> None:
    for result in results[:MAX_REPORTED]:
        # Quoted: the admin capitalizes the first letter of messages, and ids are case-sensitive.
        modeladmin.message_user(request, f"“{result.label}”: {result.outcome}", result.level)
    rest = results[MAX_REPORTED:]
    if rest:
        counts = Counter(result.outcome for result in rest)
        summary = ", ".join(f"{count} {outcome}" for outcome, count in counts.most_common())
        level = max(result.level for result in rest)
        modeladmin.message_user(request, _("… and %(n)d more: %(summary)s") % {"n": len(rest), "summary": summary}, level)


def selected_rows(modeladmin: WorkflowInstanceAdmin, request: HttpRequest, queryset: Any) -> list[WorkflowInstance] | None:
    rows = list(queryset.only(*_ROW_COLUMNS).order_by("created_at", "id")[: MAX_ACTION_ROWS + 1])
    if len(rows) > MAX_ACTION_ROWS:
        modeladmin.message_user(
            request,
            _("Select at most %(n)d instances for one action; nothing was done.") % {"n": MAX_ACTION_ROWS},
            messages.ERROR,
        )
        return None
    if not rows:
        # Selected on the list, removed since (by another operator or a clean-up job).
        modeladmin.message_user(request, _("The selected instances do not exist anymore."), messages.WARNING)
        return None
    return rows


def _back(request: HttpRequest) -> HttpResponse | None:
    """Go back to the page the action was started from (the instance page), if it is ours."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return HttpResponseRedirect(target)
    return None


def _client(modeladmin: WorkflowInstanceAdmin) -> Client:
    return Client(modeladmin.get_backend())


@dataclass(frozen=True, slots=True)
class FormPage:
    """The texts of an action's intermediate page."""

    action: str
    title: Any
    intro: Any
    submit: Any


TERMINATE_PAGE = FormPage(
    "terminate_instances",
    _("Terminate workflow instances"),
    _(
        "Terminated instances end at once, without running their code again; their pending "
        "activities and timers are dropped, and a parent workflow sees its child fail."
    ),
    _("Terminate"),
)
SIGNAL_PAGE = FormPage(
    "signal_instances",
    _("Send a signal"),
    _("The signal goes to the running execution of each selected instance id; a finished instance cannot receive it."),
    _("Send signal"),
)
REMOVE_PAGE = FormPage(
    "remove_instances",
    _("Remove workflow instances"),
    _(
        "Finished instances are deleted with their history and payloads; this cannot be undone. "
        "Running instances in the selection are left alone."
    ),
    _("Remove"),
)


def intermediate_page(
    modeladmin: WorkflowInstanceAdmin,
    request: HttpRequest,
    rows: Sequence[WorkflowInstance],
    page: FormPage,
    form: forms.Form,
) -> TemplateResponse:
    """The form an action shows before it runs (signal payload, termination reason, confirmation)."""
    opts = modeladmin.model._meta
    selection = []
    for row in rows:
        key = status_key(row.state, row.outcome, row.is_blocked)
        selection.append({"row": row, "status": key, "label": status_label(key)})
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": page.title,
        "intro": page.intro,
        "submit_label": page.submit,
        "opts": opts,
        "app_label": opts.app_label,
        "form": form,
        "selection": selection,
        "action": page.action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "next": request.POST.get("next", ""),
        "media": modeladmin.media + form.media,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/django_workflows/workflowinstance/action_form.html", context)


def _submitted(request: HttpRequest) -> Any:
    """The intermediate form's data once it was submitted (its "apply" field), else None."""
    return request.POST if "apply" in request.POST else None


def _apply(
    modeladmin: WorkflowInstanceAdmin,
    request: HttpRequest,
    rows: Sequence[WorkflowInstance],
    operation: Callable[[WorkflowInstance], None],
    done: str,
    log_message: str,
) -> HttpResponse | None:
    run_per_instance(
        modeladmin, request, rows, operation, done, lambda row: modeladmin.log_change(request, row, log_message)
    )
    return _back(request)


# -- the actions -------------------------------------------------------------------------------


@admin.action(description=_("Cancel selected workflow instances"), permissions=["cancel"])
def cancel_instances(modeladmin: WorkflowInstanceAdmin, request: HttpRequest, queryset: Any) -> HttpResponse | None:
    rows = selected_rows(modeladmin, request, queryset)
    if rows is None:
        return None
    client = _client(modeladmin)
    return _apply(
        modeladmin,
        request,
        rows,
        lambda row: client.cancel_workflow_instance(engine_instance(row)),
        str(_("cancellation requested")),
        "Cancellation requested through the admin.",
    )


@admin.action(description=_("Terminate selected workflow instances…"), permissions=["terminate"])
def terminate_instances(modeladmin: WorkflowInstanceAdmin, request: HttpRequest, queryset: Any) -> HttpResponse | None:
    rows = selected_rows(modeladmin, request, queryset)
    if rows is None:
        return None
    form = TerminateForm(_submitted(request))
    if not form.is_valid():
        return intermediate_page(modeladmin, request, rows, TERMINATE_PAGE, form)
    reason = form.cleaned_data["reason"]
    client = _client(modeladmin)
    return _apply(
        modeladmin,
        request,
        rows,
        lambda row: client.terminate_workflow_instance(engine_instance(row), reason),
        str(_("terminated")),
        f"Terminated through the admin: {reason}",
    )


@admin.action(description=_("Send a signal to selected workflow instances…"), permissions=["signal"])
def signal_instances(modeladmin: WorkflowInstanceAdmin, request: HttpRequest, queryset: Any) -> HttpResponse | None:
    rows = selected_rows(modeladmin, request, queryset)
    if rows is None:
        return None
    client = _client(modeladmin)
    form = SignalForm(_submitted(request), converter=client.backend.options.converter, limits=client.payload_limits)
    if not form.is_valid():
        return intermediate_page(modeladmin, request, rows, SIGNAL_PAGE, form)
    name, value = form.cleaned_data["name"], form.cleaned_data["payload"]
    return _apply(
        modeladmin,
        request,
        # A signal addresses an instance id, not an execution: send it once per id.
        list({row.instance_id: row for row in rows}.values()),
        lambda row: client.signal_workflow(row.instance_id, name, value),
        str(_("signal %(name)s sent") % {"name": name}),
        # The payload is not logged: it may hold personal data, and the history keeps it anyway.
        f"Signal {name!r} sent through the admin.",
    )


@admin.action(description=_("Remove selected finished workflow instances…"), permissions=["remove"])
def remove_instances(modeladmin: WorkflowInstanceAdmin, request: HttpRequest, queryset: Any) -> HttpResponse | None:
    rows = selected_rows(modeladmin, request, queryset)
    if rows is None:
        return None
    if _submitted(request) is None:
        return intermediate_page(modeladmin, request, rows, REMOVE_PAGE, ConfirmForm())
    client = _client(modeladmin)
    run_per_instance(
        modeladmin,
        request,
        rows,
        lambda row: client.remove_workflow_instance(engine_instance(row)),
        str(_("removed")),
        lambda row: modeladmin.log_deletions(request, [row]),
    )
    # Never back to the instance page: it is gone.
    return None


RESTART_PAGE = FormPage(
    "restart_instances",
    _("Restart workflow instances"),
    _(
        "Each selected execution starts again as a new execution of its instance id, with the same "
        "workflow, queue and input, running the code deployed now. Its old executions stay as they are."
    ),
    _("Restart"),
)
RESET_PAGE = FormPage(
    "reset_instances",
    _("Reset a workflow instance"),
    _(
        "A new execution of the instance id starts with this execution's history up to the chosen "
        "workflow task, then runs on with the code deployed now: activities completed before that point "
        "do not run again; the work after it does. Signals received after the point are delivered again."
    ),
    _("Reset"),
)


@admin.action(description=_("Restart selected workflow instances…"), permissions=["restart"])
def restart_instances(modeladmin: WorkflowInstanceAdmin, request: HttpRequest, queryset: Any) -> HttpResponse | None:
    rows = selected_rows(modeladmin, request, queryset)
    if rows is None:
        return None
    form = RestartForm(_submitted(request))
    if _submitted(request) is None or not form.is_valid():
        return intermediate_page(modeladmin, request, rows, RESTART_PAGE, form)
    terminate = form.cleaned_data["terminate_running"]
    client = _client(modeladmin)
    restarted: dict[int, EngineInstance] = {}

    def restart(row: WorkflowInstance) -> None:
        restarted[row.pk] = client.restart_workflow_instance(
            engine_instance(row), terminate_running=terminate, reason="terminated to restart it through the admin"
        )

    run_per_instance(
        modeladmin,
        request,
        # One new execution per instance id, from the newest selected execution of it.
        list({row.instance_id: row for row in rows}.values()),
        restart,
        str(_("restarted")),
        lambda row: modeladmin.log_change(
            request, row, f"Restarted through the admin as execution {restarted[row.pk].execution_id}."
        ),
        still_running=str(_("still running, not restarted (terminate it first)")),
    )
    return _back(request)


@admin.action(description=_("Reset a workflow instance to a workflow task…"), permissions=["reset"])
def reset_instances(modeladmin: WorkflowInstanceAdmin, request: HttpRequest, queryset: Any) -> HttpResponse | None:
    rows = selected_rows(modeladmin, request, queryset)
    if rows is None:
        return None
    if len(rows) != 1:
        modeladmin.message_user(
            request, _("Reset one execution at a time, from a row of its history; nothing was done."), messages.ERROR
        )
        return None
    (row,) = rows
    submitted = _submitted(request)
    # The history row's button posts the sequence id; the confirmation page posts it back.
    form = ResetForm(submitted if submitted is not None else None, initial={"to": request.POST.get("to")})
    if submitted is None or not form.is_valid():
        return intermediate_page(modeladmin, request, rows, RESET_PAGE, form)
    to, reason = form.cleaned_data["to"], form.cleaned_data["reason"]
    try:
        reset = _client(modeladmin).reset_workflow_instance(
            engine_instance(row),
            to,
            terminate_running=form.cleaned_data["terminate_running"],
            reason=reason or "terminated to reset it through the admin",
        )
    except (ResetError, InstanceNotFinished, InstanceAlreadyExists, InstanceNotFound) as exc:
        form.add_error("to" if isinstance(exc, ResetError) else "terminate_running", str(exc))
        return intermediate_page(modeladmin, request, rows, RESET_PAGE, form)
    message = f"Reset to history sequence {to} through the admin as execution {reset.execution_id}"
    modeladmin.log_change(request, row, f"{message}: {reason}" if reason else f"{message}.")
    modeladmin.message_user(
        request, _("“%(id)s”: reset to history sequence %(to)d") % {"id": row.instance_id, "to": to}, messages.SUCCESS
    )
    lookup = reverse(f"{modeladmin.admin_site.name}:django_workflows_workflowinstance_lookup")
    return HttpResponseRedirect(
        f"{lookup}?{urlencode({'instance_id': reset.instance_id, 'execution_id': reset.execution_id})}"
    )


ACTIONS = [cancel_instances, terminate_instances, signal_instances, remove_instances, restart_instances, reset_instances]
