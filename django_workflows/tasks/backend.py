"""``WorkflowsTaskBackend``: Django's task API (``@task``, ``enqueue``, ``get_result``) run durably
by the workflow engine.

    TASKS = {
        "default": {
            "BACKEND": "django_workflows.tasks.WorkflowsTaskBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"max_attempts": 3, "retry_interval": 2, "timeout": 600},
        },
    }

``enqueue`` starts one instance of the system workflow ``DjangoTask`` (see ``system``) through
the ``start_workflow`` shortcut, so it is atomic with the caller's transaction when the
workflow store is that database and waits for the commit otherwise. ``runworkflows`` workers
run the task: ``--queue NAME`` serves the tasks of ``queue_name`` NAME.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from django.core import checks
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from ..client import Client, WorkflowInstanceOptions
from ..engine.clock import system_clock
from ..engine.core import validate_id
from ..engine.errors import InstanceNotFound
from ..shortcuts import start_prepared
from . import compat
from .options import RunOptions
from .results import TaskRecord, read_record
from .system import SPEC_METADATA_KEY, SPEC_VERSION, TASK_WORKFLOW_NAME

#: ``OPTIONS`` keys of the backend besides those of ``RunOptions``.
_BACKEND_OPTIONS = {"workflows_backend", "using"}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowsTask(compat.Task):
    """A ``Task`` that also says how it is run; ``None`` takes the backend's ``OPTIONS``.

    On Django 6.1 (and the backport) these are keyword arguments of ``@task``:
    ``@task(max_attempts=5, retry_interval=10, timeout=60)``.
    """

    max_attempts: int | None = None
    retry_interval: float | None = None
    backoff_coefficient: float | None = None
    max_retry_interval: float | None = None
    timeout: float | None = None


class WorkflowsTaskBackend(compat.BaseTaskBackend):
    task_class = WorkflowsTask

    #: ``run_after`` is a durable timer of the task's workflow.
    supports_defer = True
    #: ``async def`` tasks run on an event loop of the worker's task thread.
    supports_async_task = True
    #: Results are read from the store, from any process, for as long as the instance is kept.
    supports_get_result = True
    #: Workers claim tasks in the order they were queued; there is no priority order yet.
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = dict(self.options)
        self.workflows_alias: str = options.pop("workflows_backend", "default")
        self._using: str | None = options.pop("using", None)
        try:
            self.run_options = RunOptions.from_mapping(options, where=f"TASKS[{alias!r}]['OPTIONS']")
        except ValueError as exc:
            raise compat.InvalidTaskBackend(str(exc)) from None

    # -- configuration -----------------------------------------------------------------------

    @property
    def workflows(self) -> Any:
        """The workflow backend (alias ``workflows_backend`` of ``WORKFLOWS``) tasks are stored in."""
        from ..backends import workflow_backends

        return workflow_backends[self.workflows_alias]

    @property
    def using(self) -> str:
        """The database whose transaction ``enqueue`` joins or waits for: ``OPTIONS["using"]``,
        else the ORM store's own database, else ``default``."""
        if self._using is not None:
            return self._using
        return str(getattr(self.workflows, "using", DEFAULT_DB_ALIAS))

    def run_options_of(self, task: Any) -> RunOptions:
        if not isinstance(task, WorkflowsTask):
            return self.run_options
        return self.run_options.override(**{f.name: getattr(task, f.name) for f in dataclasses.fields(RunOptions)})

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        try:
            validate_id(task.queue_name, "queue_name")
        except ValueError as exc:
            raise compat.InvalidTask(str(exc)) from None
        try:
            self.run_options_of(task)
        except ValueError as exc:
            raise compat.InvalidTask(f"{task.module_path}: {exc}") from None

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        messages: list[checks.CheckMessage] = []
        from ..backends.handler import InvalidWorkflowBackend

        try:
            self.workflows  # noqa: B018 - creating it is the check
        except InvalidWorkflowBackend as exc:
            messages.append(
                checks.Error(
                    f"TASKS[{self.alias!r}]: its workflow backend {self.workflows_alias!r} cannot be used: {exc}",
                    hint="Set OPTIONS['workflows_backend'] to an alias of the WORKFLOWS setting.",
                    id="django_workflows.E101",
                )
            )
        for queue in sorted(self.queues):
            try:
                validate_id(queue, "queue name")
            except ValueError as exc:
                messages.append(checks.Error(f"TASKS[{self.alias!r}]['QUEUES']: {exc}", id="django_workflows.E102"))
        return messages

    # -- enqueue -----------------------------------------------------------------------------

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        enqueued_at = system_clock.now()
        run_after = task.run_after
        if run_after is not None and timezone.is_naive(run_after):
            run_after = timezone.make_aware(run_after)  # USE_TZ = False: local time
        spec = {
            "v": SPEC_VERSION,
            "task": task.module_path,
            "backend": self.alias,
            "workflows_backend": self.workflows_alias,
            "queue_name": task.queue_name,
            "queue": task.queue_name,
            "priority": task.priority,
            "takes_context": task.takes_context,
            "run_after": run_after.astimezone(UTC).isoformat() if run_after is not None else None,
            "enqueued_at": enqueued_at.isoformat(),
            "args": compat.normalize_json(list(args)),
            "kwargs": compat.normalize_json(dict(kwargs)),
            "options": self.run_options_of(task).to_dict(),
        }
        client = Client(self.workflows)
        # The spec also goes into the instance's metadata: until a worker has run the first
        # workflow task the history is empty, and get_result still needs the task and its arguments.
        prepared = client.prepare_workflow_instance(
            WorkflowInstanceOptions(queue=task.queue_name),
            TASK_WORKFLOW_NAME,
            spec,
            metadata={SPEC_METADATA_KEY: json.dumps(spec)},
        )
        instance = start_prepared(client, prepared, idempotent=False, using=self.using)
        result = compat.TaskResult(
            task=task,
            id=instance.instance_id,
            status=compat.TaskResultStatus.READY,
            enqueued_at=enqueued_at,
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=spec["args"],
            kwargs=spec["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        # Sent when the task really is enqueued: at once outside a transaction, else on commit.
        transaction.on_commit(lambda: compat.task_enqueued.send(type(self), task_result=result), using=self.using)
        return result

    # -- results -----------------------------------------------------------------------------

    def get_result(self, result_id: str) -> Any:
        client = Client(self.workflows)
        try:
            validate_id(result_id, "result id")
            instance = client.backend.get_latest_execution(result_id)
            info = client.get_workflow_instance_info(instance)
        except (ValueError, InstanceNotFound):
            raise compat.TaskResultDoesNotExist(result_id) from None
        if info.workflow_name != TASK_WORKFLOW_NAME:
            raise compat.TaskResultDoesNotExist(result_id)
        history = client.backend.get_workflow_instance_history(instance)
        record = read_record(info, history, client.backend.options.converter)
        return self._task_result(result_id, record)

    def _task_result(self, result_id: str, record: TaskRecord) -> Any:
        from .system import import_task

        spec = record.spec
        result = compat.TaskResult(
            task=import_task(spec),
            id=result_id,
            status=compat.TaskResultStatus[record.status],
            enqueued_at=_parse(spec.get("enqueued_at")) or record.enqueued_at,
            started_at=record.started_at,
            last_attempted_at=record.last_attempted_at,
            finished_at=record.finished_at,
            args=spec["args"],
            kwargs=spec["kwargs"],
            backend=spec.get("backend", self.alias),
            errors=[
                compat.TaskError(exception_class_path=error["exception_class_path"], traceback=error["traceback"])
                for error in record.errors
            ],
            worker_ids=record.worker_ids,
        )
        if record.status == "SUCCESSFUL":
            object.__setattr__(result, "_return_value", record.return_value)
        return result


def _parse(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None
