"""django_workflows: durable, long-running workflows for Django, a port of go-workflows.

Workflows are deterministic ``async def`` functions replayed from an event-sourced history;
activities are plain functions with side effects, retried by default. History lives in Django
models (or in Redis); ``manage.py runworkflows`` runs the workers.

This module exports the Django-facing shortcuts. They are resolved lazily so that importing the
package neither imports models nor requires configured settings. Workflow code imports
``django_workflows.workflow``; activity code ``django_workflows.activity``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "register_workflow",
    "register_activity",
    "start_workflow",
    "astart_workflow",
    "signal_workflow",
    "asignal_workflow",
    "cancel_workflow",
    "acancel_workflow",
    "registry",
]

_LAZY = {
    "register_workflow": "django_workflows.registration",
    "register_activity": "django_workflows.registration",
    "registry": "django_workflows.registration",
    "start_workflow": "django_workflows.shortcuts",
    "astart_workflow": "django_workflows.shortcuts",
    "signal_workflow": "django_workflows.shortcuts",
    "asignal_workflow": "django_workflows.shortcuts",
    "cancel_workflow": "django_workflows.shortcuts",
    "acancel_workflow": "django_workflows.shortcuts",
}

if TYPE_CHECKING:
    from .registration import register_activity, register_workflow, registry
    from .shortcuts import (
        acancel_workflow,
        asignal_workflow,
        astart_workflow,
        cancel_workflow,
        signal_workflow,
        start_workflow,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'django_workflows' has no attribute {name!r}")
    return getattr(import_module(module), name)
