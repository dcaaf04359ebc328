"""Resolve the ``WORKFLOWS`` setting into backend instances, lazily and per alias.

    WORKFLOWS = {
        "default": {
            "BACKEND": "django_workflows.backends.orm.OrmBackend",
            "OPTIONS": {"using": "default", "sticky_timeout": 30},
        },
    }

Without the setting, the default alias is the ORM backend on the default database. Backends
are created on first use, never at import time, and ``override_settings(WORKFLOWS=...)`` resets
them (see ``signal_handlers``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

DEFAULT_WORKFLOWS_ALIAS = "default"
DEFAULT_BACKEND = "django_workflows.backends.orm.OrmBackend"


class InvalidWorkflowBackend(ImproperlyConfigured):
    pass


class WorkflowBackendHandler:
    """Like Django's connection handlers, except that backends are shared by all threads of the
    process: they are thread-safe, and an in-process backend must be one object for a worker's
    pollers and the code that starts workflows to see the same data."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._backends: dict[str, Any] = {}
        self._settings: dict[str, Any] | None = None

    @property
    def settings(self) -> dict[str, Any]:
        if self._settings is None:
            configured = getattr(django_settings, "WORKFLOWS", None)
            if configured is None:
                configured = {DEFAULT_WORKFLOWS_ALIAS: {"BACKEND": DEFAULT_BACKEND}}
            if not isinstance(configured, dict) or DEFAULT_WORKFLOWS_ALIAS not in configured:
                raise InvalidWorkflowBackend(f"The WORKFLOWS setting needs a {DEFAULT_WORKFLOWS_ALIAS!r} alias.")
            self._settings = configured
        return self._settings

    def __getitem__(self, alias: str) -> Any:
        with self._lock:
            backend = self._backends.get(alias)
            if backend is None:
                backend = self._backends[alias] = self.create_backend(alias)
            return backend

    def __iter__(self) -> Iterator[str]:
        return iter(self.settings)

    def create_backend(self, alias: str) -> Any:
        try:
            params = self.settings[alias]
        except KeyError:
            raise InvalidWorkflowBackend(f"The workflow backend alias {alias!r} is not in WORKFLOWS.") from None
        backend_path = params.get("BACKEND", DEFAULT_BACKEND)
        try:
            backend_class = import_string(backend_path)
        except ImportError as exc:
            raise InvalidWorkflowBackend(
                f"Could not find workflow backend {backend_path!r} for alias {alias!r}: {exc}"
            ) from exc
        options = dict(params.get("OPTIONS", {}))
        try:
            return backend_class(**options)
        except TypeError as exc:
            raise InvalidWorkflowBackend(f"Invalid OPTIONS for workflow backend {alias!r}: {exc}") from exc

    def reset(self) -> None:
        """Forget the configured aliases and their backends (after a settings change)."""
        with self._lock:
            backends, self._backends = self._backends, {}
            self._settings = None
        for backend in backends.values():
            close = getattr(backend, "close", None)
            if close is not None:
                close()


workflow_backends = WorkflowBackendHandler()


def default_backend() -> Any:
    return workflow_backends[DEFAULT_WORKFLOWS_ALIAS]
