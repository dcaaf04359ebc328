"""The pure core must import neither Django nor Redis: the engine (django_workflows/engine/) and
what is built on it alone, the worker, the client, the workflow and activity APIs, the memory
backend, the backend contract, the tester and the replayer (DESIGN.md §1; procrastinate's seam)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_ROOT / "django_workflows"

ENGINE_DIR = PACKAGE_DIR / "engine"
#: The pure core outside ``engine/``, as module names under ``django_workflows``.
CORE_MODULES = (
    "worker",
    "completions",
    "client",
    "instrumentation",
    "telemetry",
    "presence",
    "health",
    "operations",
    "schedules.declarations",
    "schedules.description",
    "schedules.firing",
    "schedules.operations",
    "schedules.records",
    "schedules.scheduler",
    "schedules.spec",
    "schedules.store",
    "workflow",
    "activity",
    "registration",
    "backends.base",
    "backends.group_commit",
    "backends.memory",
    "backends.rules",
    "testing.tester",
    "testing.tester_mocks",
    "testing.replayer",
    "testing.history_files",
)
FORBIDDEN = ("django", "redis", "django_redis")
FORBIDDEN_IMPORT = re.compile(
    r"^\s*(?:import|from)\s+(?:django|redis|django_redis)(?:\.|\s|,|$)", re.MULTILINE
)

# Runs in a fresh interpreter. It registers a bare "django_workflows" package object whose
# __path__ points at the source tree, so importing the core does not run
# django_workflows/__init__.py (which may legitimately import Django); only the core and
# whatever the core itself imports get loaded.
_PROBE = r"""
import json, pkgutil, sys, types
package_dir, engine_dir, core = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
stub = types.ModuleType("django_workflows")
stub.__path__ = [package_dir]
sys.modules["django_workflows"] = stub
forbidden = ("django", "redis", "django_redis")
import importlib
modules, culprits = ["django_workflows.engine"], {}
importlib.import_module("django_workflows.engine")
for info in pkgutil.walk_packages([engine_dir], prefix="django_workflows.engine."):
    modules.append(info.name)
modules += ["django_workflows." + name for name in core]
for name in modules:
    before = {m for m in forbidden if m in sys.modules}
    importlib.import_module(name)
    new = [m for m in forbidden if m in sys.modules and m not in before]
    if new:
        culprits[name] = new
print(json.dumps({
    "modules": modules,
    "culprits": culprits,
    "loaded": [m for m in forbidden if m in sys.modules],
}))
"""


def _engine_files() -> list[Path]:
    return sorted(ENGINE_DIR.rglob("*.py"))


def _core_files() -> list[Path]:
    return _engine_files() + [PACKAGE_DIR / (name.replace(".", "/") + ".py") for name in CORE_MODULES]


def test_engine_has_modules() -> None:
    files = _engine_files()
    assert (ENGINE_DIR / "__init__.py").is_file(), (
        f"{ENGINE_DIR} is not a package (no __init__.py)"
    )
    assert [f for f in files if f.name != "__init__.py"], (
        f"no engine modules found in {ENGINE_DIR}"
    )


def test_core_sources_do_not_import_django_or_redis() -> None:
    files = _core_files()
    missing = [path for path in files if not path.is_file()]
    assert not missing, f"core modules not found: {missing}"
    offenders = []
    for path in files:
        for match in FORBIDDEN_IMPORT.finditer(path.read_text(encoding="utf-8")):
            line_no = path.read_text(encoding="utf-8").count("\n", 0, match.start()) + 1
            offenders.append(
                f"{path.relative_to(REPO_ROOT)}:{line_no}: {match.group(0).strip()}"
            )
    assert not offenders, "core modules import Django or Redis:\n" + "\n".join(
        offenders
    )


def test_importing_the_core_loads_neither_django_nor_redis() -> None:
    assert _engine_files(), f"no Python files in {ENGINE_DIR}"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(PACKAGE_DIR), str(ENGINE_DIR), ",".join(CORE_MODULES)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, f"importing the core failed:\n{proc.stderr}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {f"django_workflows.{name}" for name in CORE_MODULES} <= set(report["modules"])
    assert len(report["modules"]) > len(CORE_MODULES) + 1, (
        f"no engine modules were imported: {report['modules']}"
    )
    assert not report["culprits"], (
        f"core modules pulled in forbidden packages: {report['culprits']}"
    )
    assert not report["loaded"], (
        f"forbidden packages in sys.modules after importing the core: {report['loaded']}"
    )
