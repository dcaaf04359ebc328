"""Django application config for django_workflows.

``ready()`` wires the Django layer: it registers the system checks and imports every
installed app's ``workflows`` module so that ``@register_workflow`` and
``@register_activity`` decorators run before a worker or a view needs them. It never
starts a worker: that is the job of ``manage.py runworkflows``.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class WorkflowsConfig(AppConfig):
    name = "django_workflows"
    label = "django_workflows"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the system checks)
            signal_handlers,  # noqa: F401  (setting_changed, logging)
        )
        from .registration import registry
        from .tasks.system import register_task_workflow

        # The system workflow of the django.tasks backend, in every worker like go-workflows'
        # own system workflows (it is pure engine code; Django's task framework is not needed).
        register_task_workflow(registry)
        autodiscover_modules("workflows")
