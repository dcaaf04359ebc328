"""Testing support for projects that use django_workflows.

- ``WorkflowTester`` (``testing.tester``): run one workflow in-process with mocked activities and
  sub-workflows, and time that skips ahead to the next timer.
- ``Replayer`` (``testing.replayer``): replay recorded histories (JSON files from
  ``testing.history_files``, or a backend's) against the code registered now, for CI.
- The backend conformance suite (``testing.conformance``): the cases every backend must pass,
  reusable by third-party backends.

Names are imported lazily so that ``django_workflows.testing`` imports without pytest.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "WorkflowTester": "django_workflows.testing.tester",
    "WorkflowBlocked": "django_workflows.testing.tester",
    "UnexpectedCall": "django_workflows.testing.tester_mocks",
    "Replayer": "django_workflows.testing.replayer",
    "ReplayReport": "django_workflows.testing.replayer",
    "ReplayMismatch": "django_workflows.testing.replayer",
    "ReplayFailed": "django_workflows.testing.replayer",
    "BackendConformance": "django_workflows.testing.conformance",
    "EndToEndConformance": "django_workflows.testing.conformance",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'django_workflows.testing' has no attribute {name!r}")
    return getattr(import_module(module), name)
