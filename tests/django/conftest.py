"""Fixtures of the Django-layer tests: ``store`` and ``worker`` (see ``stores``)."""

from .stores import store, worker  # noqa: F401
