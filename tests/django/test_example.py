"""The example app: start Workflow1 from the view, see its result; the orchestrator script."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.test import Client as HttpClient

from django_workflows.backends import default_backend
from django_workflows.registration import registry
from django_workflows.worker import Worker, WorkerOptions
from tests.conftest import REPO_ROOT, subprocess_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_view_starts_workflow1_and_shows_its_result():
    http = HttpClient()
    assert http.get("/").status_code == 200
    response = http.post("/", {"input": "from-the-view", "instance_id": "view-1"})
    assert response.status_code == 302
    assert response["Location"] == "/instances/view-1/"
    page = http.get("/instances/view-1/").content.decode()
    assert "Workflow1" in page and "Active" in page

    worker = Worker(default_backend(), WorkerOptions(workflow_pollers=1, activity_pollers=1), registry=registry)
    with worker:
        wait_for(lambda: 'id="result">59<' in http.get("/instances/view-1/").content.decode(), what="the result page")
    page = http.get("/instances/view-1/").content.decode()
    assert "Finished" in page


def test_view_page_of_an_unknown_instance_is_a_404():
    assert HttpClient().get("/instances/nobody/").status_code == 404


@pytest.mark.slow
def test_orchestrator_script_prints_the_seed_result(tmp_path):
    env = subprocess_env()
    if env["DB"] == "sqlite":
        env["SQLITE_PATH"] = str(tmp_path / "simple.sqlite3")
    out = subprocess.run(
        [sys.executable, "-m", "testproject.example.orchestrator"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Workflow completed with result: Processed input-for-workflow with result 42" in out.stdout

