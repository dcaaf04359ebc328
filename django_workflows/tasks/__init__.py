"""A ``django.tasks`` backend run by the workflow engine (on Django 5.2: the ``django-tasks``
backport).

    TASKS = {"default": {"BACKEND": "django_workflows.tasks.WorkflowsTaskBackend"}}

Each enqueued task is one instance of the system workflow ``DjangoTask`` that runs the task as
an activity, with retries, a timeout per attempt and ``run_after`` as durable timers; see
docs/tasks.md. ``backend`` holds the Django backend, ``system`` the workflow and its activity,
``results`` how a ``TaskResult`` is read back from history, ``options`` the run options.

The names below are resolved lazily: ``AppConfig.ready`` imports ``system`` (pure engine code)
on every project, also where Django's task framework is not installed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = ["WorkflowsTaskBackend", "WorkflowsTask", "RunOptions"]

_LAZY = {
    "WorkflowsTaskBackend": "django_workflows.tasks.backend",
    "WorkflowsTask": "django_workflows.tasks.backend",
    "RunOptions": "django_workflows.tasks.options",
}

if TYPE_CHECKING:
    from .backend import WorkflowsTask, WorkflowsTaskBackend
    from .options import RunOptions


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'django_workflows.tasks' has no attribute {name!r}")
    return getattr(import_module(module), name)
