"""Receivers the app connects for itself (not user-facing Django signals; see ``signals``).

``setting_changed`` resets the cached backends so ``override_settings(WORKFLOWS=...)`` takes
effect in tests, as Django does for ``TASKS`` and ``CACHES``.
"""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver


@receiver(setting_changed, dispatch_uid="django_workflows.reset_backends")
def reset_backends(*, setting: str, **kwargs: Any) -> None:
    if setting == "WORKFLOWS":
        from .backends import workflow_backends

        workflow_backends.reset()
