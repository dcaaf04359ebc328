"""Runs the backend conformance suite (``django_workflows.testing.conformance``) over every
backend of ``backend_factory`` in ``conftest.py``: memory, ORM and Redis."""

from __future__ import annotations

from django_workflows.testing import BackendConformance, EndToEndConformance


class TestBackend(BackendConformance):
    pass


class TestEndToEnd(EndToEndConformance):
    pass
