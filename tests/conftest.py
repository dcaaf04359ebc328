"""Shared pytest helpers for the whole test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_ROOT / "django_workflows"


def pytest_report_header(config: pytest.Config) -> str:
    # Say which database this run uses, so CI logs of parallel tox envs are easy to tell apart.
    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"django_workflows: DB={db['ENGINE'].rsplit('.', 1)[-1]} test NAME={db.get('TEST', {}).get('NAME')}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
