"""Django models of the ORM backend (port of go-workflows' SQL schema, ``backend/mysql/schema``).

One row of ``WorkflowInstance`` per execution; it doubles as the workflow task queue (its lease
columns). ``PendingEvent`` is an execution's inbox (``visible_at`` in the future = a timer),
``HistoryEvent`` its event-sourced history, ``ActivityTask`` the activity task queue, and
``Payload`` holds the JSON attributes of every event once, as go-workflows' ``attributes`` table:
moving an event from the inbox to the history moves the reference, not the data.

Beyond go-workflows (see reference/reliability.md §5): leases carry a token, history sequence ids
are unique per execution, and ``active_instance_id`` (set while the execution is active, NULL
after) makes the database refuse a second active execution of one instance id. A nullable unique
column is used rather than a partial index because MySQL has none.

The models are written only by ``django_workflows.backends.orm``; the admin shows them read-only.
Foreign keys use ``DO_NOTHING``: the backend deletes rows itself, children first, in single
statements, instead of letting Django's collector fetch rows to cascade over.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from .engine.core import InstanceState

#: Longest instance id or queue name (``engine.core.validate_id`` enforces it).
ID_LENGTH = 128
#: Execution ids, event ids and lease tokens are uuid4 hex strings (32 characters).
UUID_LENGTH = 64


class Outcome(models.TextChoices):
    """How an execution ended, for the admin (the engine's state only says *that* it ended)."""

    ACTIVE = "", _("Active")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    CANCELED = "canceled", _("Canceled")
    TERMINATED = "terminated", _("Terminated")
    CONTINUED_AS_NEW = "continued_as_new", _("Continued as new")
    TIMED_OUT = "timed_out", _("Timed out")


STATE_CHOICES = [(state.value, state.label) for state in InstanceState]


class PrefixSearchIndex(models.Index):
    """An index on ``UPPER(column)`` for the admin's case-insensitive prefix search
    (``UPPER(col) LIKE UPPER('x%')`` on PostgreSQL, a range of ``UPPER(col)`` on SQLite: see
    ``admin.scale.search``). On PostgreSQL with the ``varchar_pattern_ops`` operator class,
    without which LIKE uses no index unless the database collation is C. MariaDB has no
    expression indexes and skips it; its case-insensitive collation lets LIKE use the index of
    ``(instance_id, execution_id)`` instead."""

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.vendor == "postgresql":
            # Written out: Django puts an operator class inside the expression's parentheses
            # unless django.contrib.postgres (an app this one does not need) is installed.
            (expression,) = self.expressions
            column = model._meta.get_field(expression.source_expressions[0].name).column
            quote = schema_editor.quote_name
            return (
                f"CREATE INDEX {quote(self.name)} ON {quote(model._meta.db_table)} "
                f"((UPPER({quote(column)}::text)) varchar_pattern_ops)"
            )
        return super().create_sql(model, schema_editor, using=using, **kwargs)


class WorkflowInstance(models.Model):
    """One execution of a workflow instance, and the lease of its workflow task."""

    instance_id = models.CharField(_("instance id"), max_length=ID_LENGTH)
    execution_id = models.CharField(_("execution id"), max_length=UUID_LENGTH)
    #: ``instance_id`` while the execution is active, NULL afterwards; unique, so that of two
    #: concurrent starts of one instance id the database lets exactly one in.
    active_instance_id = models.CharField(
        _("active instance id"), max_length=ID_LENGTH, null=True, blank=True, unique=True, editable=False
    )
    parent_instance_id = models.CharField(_("parent instance id"), max_length=ID_LENGTH, blank=True, default="")
    parent_execution_id = models.CharField(_("parent execution id"), max_length=UUID_LENGTH, blank=True, default="")
    parent_schedule_event_id = models.BigIntegerField(_("parent schedule event id"), default=0)
    workflow_name = models.CharField(_("workflow name"), max_length=255)
    queue = models.CharField(_("queue"), max_length=ID_LENGTH)
    state = models.PositiveSmallIntegerField(_("state"), choices=STATE_CHOICES, default=InstanceState.ACTIVE.value)
    outcome = models.CharField(_("outcome"), max_length=32, choices=Outcome.choices, blank=True, default="")
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"))
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    #: Sequence id of the last history event, so a claim needs no MAX() over the history.
    last_sequence_id = models.BigIntegerField(_("last sequence id"), default=0)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    lease_token = models.CharField(_("lease token"), max_length=UUID_LENGTH, blank=True, default="")
    worker = models.CharField(_("worker"), max_length=255, blank=True, default="")
    sticky_until = models.DateTimeField(_("sticky until"), null=True, blank=True)
    # Set while the execution's workflow task is blocked (its code disagrees with its history,
    # raised a bug-class error or hung; ``Backend.block_workflow_task``): the error (the engine's
    # ``ErrorInfo`` as JSON), the first failure, the attempts, and the retry time claims wait for.
    # A completed workflow task clears them.
    blocked_error = models.JSONField(_("blocked by"), null=True, blank=True)
    blocked_since = models.DateTimeField(_("blocked since"), null=True, blank=True)
    blocked_attempts = models.IntegerField(_("blocked attempts"), default=0)
    blocked_until = models.DateTimeField(_("blocked until"), null=True, blank=True)
    #: When ``execution_timeout`` ends the execution (database clock); NULL: no limit.
    timeout_at = models.DateTimeField(_("times out at"), null=True, blank=True)

    class Meta:
        verbose_name = _("workflow instance")
        verbose_name_plural = _("workflow instances")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["instance_id", "execution_id"], name="dj_wf_instance_execution_uniq"),
        ]
        indexes = [
            # Workflow task claims: active instances of the polled queues.
            models.Index(fields=["state", "queue", "locked_until"], name="dj_wf_instance_claim_idx"),
            # Batch removal of finished executions, admin date filters.
            models.Index(fields=["completed_at"], name="dj_wf_instance_completed_idx"),
            models.Index(fields=["created_at"], name="dj_wf_instance_created_idx"),
            # The admin's parent/child tree.
            models.Index(fields=["parent_instance_id", "parent_execution_id"], name="dj_wf_instance_parent_idx"),
            models.Index(fields=["workflow_name"], name="dj_wf_instance_name_idx"),
            # The admin's queue filter (SELECT DISTINCT queue).
            models.Index(fields=["queue"], name="dj_wf_instance_queue_idx"),
            # The sweep for executions whose execution timeout passed.
            models.Index(fields=["timeout_at"], name="dj_wf_instance_timeout_idx"),
            # The admin at scale (admin/scale.py): its counts per status (a bounded range of
            # this index each) and its status filter, newest first.
            models.Index(fields=["state", "outcome", "created_at"], name="dj_wf_instance_status_idx"),
            # The admin's search: an instance id prefix, in any case (see PrefixSearchIndex), or
            # an exact execution id.
            PrefixSearchIndex(Upper("instance_id"), name="dj_wf_instance_prefix_idx"),
            models.Index(fields=["execution_id"], name="dj_wf_instance_execution_idx"),
        ]
        permissions = [
            ("cancel_workflowinstance", _("Can cancel workflow instances")),
            ("terminate_workflowinstance", _("Can terminate workflow instances")),
            ("signal_workflowinstance", _("Can signal workflow instances")),
            ("remove_workflowinstance", _("Can remove workflow instances")),
            ("restart_workflowinstance", _("Can restart workflow instances")),
            ("reset_workflowinstance", _("Can reset workflow instances")),
            # Inputs, results, signal values and history payloads may hold personal data: view
            # permission alone shows states and event names, with payloads hidden.
            ("view_payloads", _("Can view workflow payloads (inputs, results, signal values)")),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_name} {self.instance_id} ({self.execution_id})"

    @property
    def is_active(self) -> bool:
        return self.state == InstanceState.ACTIVE.value

    @property
    def is_blocked(self) -> bool:
        return self.is_active and self.blocked_since is not None


class Payload(models.Model):
    """The JSON attributes of one event, shared by the rows that refer to that event."""

    id = models.CharField(_("id"), max_length=UUID_LENGTH, primary_key=True, editable=False)
    instance = models.ForeignKey(
        WorkflowInstance, on_delete=models.DO_NOTHING, related_name="payloads", verbose_name=_("workflow instance")
    )
    data = models.TextField(_("data"))

    class Meta:
        verbose_name = _("payload")
        verbose_name_plural = _("payloads")

    def __str__(self) -> str:
        return self.id


class EventRow(models.Model):
    """The columns of an ``engine.history.Event`` except its attributes, which live in ``Payload``."""

    event_id = models.CharField(_("event id"), max_length=UUID_LENGTH)
    event_type = models.CharField(_("event type"), max_length=64)
    timestamp = models.DateTimeField(_("timestamp"))
    schedule_event_id = models.BigIntegerField(_("schedule event id"), default=0)
    sequence_id = models.BigIntegerField(_("sequence id"), default=0)
    visible_at = models.DateTimeField(_("visible at"), null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class PendingEvent(EventRow):
    """An event an execution has not executed yet (its inbox); a future ``visible_at`` is a timer."""

    instance = models.ForeignKey(
        WorkflowInstance,
        on_delete=models.DO_NOTHING,
        related_name="pending_events",
        verbose_name=_("workflow instance"),
    )
    # No database constraint: a pending event's payload is deleted with it, in one transaction,
    # payload first (found through this column); a constraint would only forbid that order.
    payload = models.ForeignKey(
        Payload, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", verbose_name=_("payload")
    )
    #: The execution's queue, and when the event becomes visible (``visible_at``, or when it was
    #: queued): workflow-task claims find ready work through their index, so instances that wait
    #: (for a timer, a signal, an activity) cost nothing. NULL only in rows written by a version
    #: without these columns; the backend fills them in (``sql.HotSql.fill_ready_columns``).
    queue = models.CharField(_("queue"), max_length=ID_LENGTH, null=True, blank=True, editable=False)
    ready_at = models.DateTimeField(_("ready at"), null=True, blank=True, editable=False)
    #: True on the start event of an instance created from outside any workflow (a client, a
    #: schedule): new work, which claims take only after the ready events of executions that
    #: already run (issue 21: a backlog of starts must not hold back the workflows it started).
    #: False for everything else, sub-workflow starts and continue-as-new included (they are
    #: part of running work), and, through the database default, in rows of earlier versions.
    new_instance = models.BooleanField(_("new instance"), db_default=False, editable=False)

    class Meta:
        verbose_name = _("pending event")
        verbose_name_plural = _("pending events")
        ordering = ["instance_id", "id"]
        indexes = [
            models.Index(fields=["instance", "visible_at"], name="dj_wf_pending_visible_idx"),
            models.Index(fields=["queue", "ready_at"], name="dj_wf_pending_ready_idx"),
            # Claims: the ready events of running executions and new instances' starts, each
            # in ready order (``sql.HotSql._FIND_READY``).
            models.Index(fields=["queue", "new_instance", "ready_at"], name="dj_wf_pending_claim_idx"),
        ]


class HistoryEvent(EventRow):
    """An event in an execution's history, at position ``sequence_id`` (1, 2, ...)."""

    instance = models.ForeignKey(
        WorkflowInstance,
        on_delete=models.DO_NOTHING,
        related_name="history_events",
        verbose_name=_("workflow instance"),
    )
    payload = models.ForeignKey(Payload, on_delete=models.DO_NOTHING, related_name="+", verbose_name=_("payload"))

    class Meta:
        verbose_name = _("history event")
        verbose_name_plural = _("history events")
        ordering = ["instance_id", "sequence_id"]
        constraints = [
            # A stale worker's append is refused by the database, whatever the code above does.
            models.UniqueConstraint(fields=["instance", "sequence_id"], name="dj_wf_history_sequence_uniq"),
        ]


class ActivityTask(EventRow):
    """A scheduled activity (its ``ActivityScheduled`` event) waiting for or leased to a worker."""

    instance = models.ForeignKey(
        WorkflowInstance,
        on_delete=models.DO_NOTHING,
        related_name="activity_tasks",
        verbose_name=_("workflow instance"),
    )
    # Shared with the ActivityScheduled history event, which outlives the task.
    payload = models.ForeignKey(
        Payload, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", verbose_name=_("payload")
    )
    queue = models.CharField(_("queue"), max_length=ID_LENGTH)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    lease_token = models.CharField(_("lease token"), max_length=UUID_LENGTH, blank=True, default="")
    worker = models.CharField(_("worker"), max_length=255, blank=True, default="")
    #: Leases so far; at ``max_activity_leases`` the activity fails instead of being leased again.
    lease_count = models.IntegerField(_("lease count"), default=0)
    # The deadlines of the attempt's timeouts (database clock; NULL where none applies, see
    # backends/rules.py): schedule-to-start (until the first lease), schedule-to-close,
    # start-to-close (from the first lease) and heartbeat (from every lease and heartbeat).
    start_by = models.DateTimeField(_("schedule-to-start deadline"), null=True, blank=True)
    close_by = models.DateTimeField(_("schedule-to-close deadline"), null=True, blank=True)
    run_by = models.DateTimeField(_("start-to-close deadline"), null=True, blank=True)
    heartbeat_by = models.DateTimeField(_("heartbeat deadline"), null=True, blank=True)
    #: The earliest of them: when the attempt times out, whoever holds its lease.
    deadline = models.DateTimeField(_("deadline"), null=True, blank=True)
    #: The last ``activity.heartbeat(details)`` of the attempt (a converter payload).
    heartbeat_details = models.TextField(_("heartbeat details"), null=True, blank=True)
    #: The workflow asked the running activity to stop; its next heartbeat tells it.
    cancel_requested = models.BooleanField(_("cancel requested"), default=False)

    class Meta:
        verbose_name = _("activity task")
        verbose_name_plural = _("activity tasks")
        ordering = ["id"]
        indexes = [
            models.Index(fields=["queue", "locked_until"], name="dj_wf_activity_claim_idx"),
            # The sweep for attempts whose timeout passed.
            models.Index(fields=["deadline"], name="dj_wf_activity_deadline_idx"),
        ]


class Schedule(models.Model):
    """A schedule (docs/schedules.md): what it starts and when (the definition), and where it
    stands (next fire time, a buffered firing, the last run, recent runs, the claim of the
    scheduler firing it). Written only by ``backends.orm.schedules``; the admin shows it and acts
    on it through the ``Client``."""

    schedule_id = models.CharField(_("schedule id"), max_length=ID_LENGTH, unique=True)
    workflow_name = models.CharField(_("workflow name"), max_length=255)
    queue = models.CharField(_("queue"), max_length=ID_LENGTH)
    #: The workflow's arguments, as converter payloads (JSON strings).
    inputs = models.JSONField(_("inputs"), default=list, blank=True)
    #: ``ScheduleSpec.to_json()``: ``{"cron": ..., "time_zone": ...}`` or ``{"every": s, "offset": s}``.
    spec = models.JSONField(_("spec"))
    overlap = models.CharField(_("overlap policy"), max_length=32)
    catchup_window = models.FloatField(_("catch-up window (seconds)"))
    declared = models.BooleanField(_("declared in code"), default=False)
    paused = models.BooleanField(_("paused"), default=False)
    note = models.TextField(_("note"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"))
    updated_at = models.DateTimeField(_("updated at"))
    next_fire_at = models.DateTimeField(_("next fire time"), null=True, blank=True)
    buffered_at = models.DateTimeField(_("buffered fire time"), null=True, blank=True)
    #: When a scheduler must look next; NULL while paused or with nothing to fire.
    due_at = models.DateTimeField(_("due at"), null=True, blank=True)
    last_instance_id = models.CharField(_("last run instance id"), max_length=ID_LENGTH, blank=True, default="")
    last_execution_id = models.CharField(_("last run execution id"), max_length=UUID_LENGTH, blank=True, default="")
    #: Recent firings, oldest first (``ScheduleRun.to_json()`` each).
    runs = models.JSONField(_("recent runs"), default=list, blank=True)
    revision = models.IntegerField(_("revision"), default=0)
    firing_token = models.CharField(_("claim token"), max_length=UUID_LENGTH, blank=True, default="")
    firing_until = models.DateTimeField(_("claimed until"), null=True, blank=True)

    class Meta:
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        ordering = ["schedule_id"]
        indexes = [
            # The schedulers' claims: due schedules first.
            models.Index(fields=["due_at"], name="dj_wf_schedule_due_idx"),
        ]
        permissions = [
            ("pause_schedule", _("Can pause schedules")),
            ("unpause_schedule", _("Can unpause schedules")),
            ("trigger_schedule", _("Can trigger schedules")),
        ]

    def __str__(self) -> str:
        return self.schedule_id


class RegisteredWorker(models.Model):
    """A live worker process (``Backend.register_worker``): what it polls, which code it runs,
    when it last reported. Written only by ``backends.orm.workers``; a row whose ``expires_at``
    passed belongs to a worker that stopped heartbeating and is no longer listed."""

    worker_id = models.CharField(_("worker id"), max_length=255, unique=True)
    name = models.CharField(_("lease name"), max_length=255, blank=True, default="")
    host = models.CharField(_("host"), max_length=255, blank=True, default="")
    pid = models.IntegerField(_("process id"), default=0)
    workflow_queues = models.JSONField(_("workflow queues"), default=list, blank=True)
    activity_queues = models.JSONField(_("activity queues"), default=list, blank=True)
    app_version = models.CharField(_("app version"), max_length=255, blank=True, default="")
    library_version = models.CharField(_("django_workflows version"), max_length=64, blank=True, default="")
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("last heartbeat"))
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    tasks_in_flight = models.IntegerField(_("tasks in flight"), default=0)

    class Meta:
        verbose_name = _("worker")
        verbose_name_plural = _("workers")
        ordering = ["worker_id"]

    def __str__(self) -> str:
        return self.worker_id
