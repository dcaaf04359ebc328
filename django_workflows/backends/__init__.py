"""Storage backends: ``memory`` (tests), ``orm`` (Django models) and ``redis`` (django-redis).

``workflow_backends`` resolves the aliases of the ``WORKFLOWS`` setting lazily, the way Django
resolves ``CACHES`` and ``TASKS``; it is imported on first use so that the memory backend can be
used without configuring Django.
"""

from __future__ import annotations

from typing import Any

__all__ = ["workflow_backends", "default_backend"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import handler

        return getattr(handler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
