"""System checks for django_workflows (ids ``django_workflows.E001``, ``W001``, ...).

Each configured backend also contributes its own checks through ``BaseBackend.check()``,
the way ``django.tasks`` delegates checks to its backends.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.compatibility)
def check_use_tz(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not settings.USE_TZ:
        return [
            checks.Error(
                "django_workflows needs USE_TZ = True.",
                hint="Workflow timers, leases and history timestamps are aware UTC datetimes.",
                id="django_workflows.E002",
            )
        ]
    return []
