"""Build the sdist and wheel (the wheel from the sdist, as pip would) and check their contents."""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

# Build from a copy so that parallel tox envs never share build/ or *.egg-info in the repo.
_IGNORE = shutil.ignore_patterns(
    ".git",
    ".tox",
    ".ci-venv",
    "venv",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    "*.sqlite3*",
    ".pytest_cache",
    "artifacts",
)


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("packaging")
    src, out = tmp / "src", tmp / "dist"
    shutil.copytree(REPO_ROOT, src, ignore=_IGNORE)
    # --no-isolation: use the setuptools/wheel of this env (the "test" extra), no network.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--outdir",
            str(out),
            str(src),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, (
        f"unexpected build output: {sorted(out.iterdir())}"
    )
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="module")
def wheel_names(dists: dict[str, Path]) -> set[str]:
    with zipfile.ZipFile(dists["wheel"]) as zf:
        return set(zf.namelist())


@pytest.mark.parametrize(
    "name",
    [
        "django_workflows/__init__.py",
        "django_workflows/migrations/0001_initial.py",
        "django_workflows/py.typed",
    ],
)
def test_wheel_contains(wheel_names: set[str], name: str) -> None:
    assert name in wheel_names, f"{name} missing from the wheel"


def test_wheel_contains_templates(wheel_names: set[str]) -> None:
    templates = [
        n
        for n in wheel_names
        if n.startswith("django_workflows/templates/") and not n.endswith("/")
    ]
    assert templates, "no files under django_workflows/templates/ in the wheel"


def test_wheel_is_named_for_the_index_and_keeps_the_import_package(dists: dict[str, Path], wheel_names: set[str]) -> None:
    # The distribution name is django-durable-workflows ("django-workflows" on the package index
    # is another project); the import package stays django_workflows.
    assert dists["wheel"].name.startswith("django_durable_workflows-"), dists["wheel"].name
    assert dists["sdist"].name.startswith("django_durable_workflows-"), dists["sdist"].name
    with zipfile.ZipFile(dists["wheel"]) as zf:
        metadata_path = next(n for n in wheel_names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(zf.read(metadata_path).decode())
    assert metadata["Name"] == "django-durable-workflows"
    assert metadata["Requires-Python"] == ">=3.11"
    assert set(metadata.get_all("Provides-Extra")) == {"mysql", "postgres", "redis", "tasks", "otel", "test", "docs"}
    top_level = {n.split("/", 1)[0] for n in wheel_names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top_level == {"django_workflows"}, top_level


def test_wheel_has_no_test_code(wheel_names: set[str]) -> None:
    stray = sorted(
        {n.split("/", 1)[0] for n in wheel_names} & {"tests", "testproject", "bench"}
    )
    assert not stray, f"wheel ships non-library top-level packages: {stray}"


def test_sdist_contains_migrations_license_changelog_and_docs(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for name in ("LICENSE", "CHANGELOG.md", "setup.cfg", "mkdocs.yml", "docs/index.md", "django_workflows/migrations/0001_initial.py"):
        assert name in names, f"{name} missing from the sdist"
