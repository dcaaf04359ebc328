"""``manage.py runworkflows`` and ``startworkflow`` as real processes on the test database."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest

from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import InstanceNotFound, WorkflowError
from django_workflows.engine.history import EventType
from django_workflows.models import WorkflowInstance as WorkflowInstanceRow
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_worker_process_runs_the_quickstart_workflow(manage):
    client = Client()
    instance = client.create_workflow_instance(
        WorkflowInstanceOptions(instance_id="quickstart"), "Workflow1", "input-for-workflow"
    )
    worker = manage("runworkflows")
    assert client.get_workflow_result(instance, timeout=60) == 59
    worker.send(signal.SIGTERM)
    assert worker.wait(60) == 0
    assert "worker stopped" in worker.output()


def test_startworkflow_waits_for_a_worker_in_another_process(manage):
    worker = manage("runworkflows")
    starter = manage("startworkflow", "Workflow1", "input-for-workflow", "--instance-id", "cli-1", "--wait", "60")
    assert starter.wait(90) == 0, starter.output()
    assert "Workflow completed with result: 59" in starter.output()
    worker.send(signal.SIGTERM)
    assert worker.wait(60) == 0


def test_startworkflow_rejects_an_unknown_workflow(manage):
    starter = manage("startworkflow", "NoSuchWorkflow")
    assert starter.wait(60) != 0
    assert "workflow NoSuchWorkflow not found; registered workflows:" in starter.output()
    assert "Workflow1" in starter.output()


def test_startworkflow_rejects_bad_arguments_before_writing_anything(manage):
    starter = manage("startworkflow", "Workflow1", "--instance-id", "bad-args")
    assert starter.wait(60) != 0
    assert "mismatched argument count: expected 1, got 0" in starter.output()
    with pytest.raises(InstanceNotFound):
        Client().get_workflow_instance_state("bad-args")


def test_sigterm_lets_the_running_activity_finish_and_commit(manage, tmp_path: Path):
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    client = Client()
    instance = client.create_workflow_instance(
        WorkflowInstanceOptions(instance_id="drain"), "ledger_workflow", str(ledger), 1, 1, str(gate)
    )
    worker = manage("runworkflows")
    wait_for(lambda: ledger.exists() and "start 1" in ledger.read_text(), what="the activity to start")
    worker.send(signal.SIGTERM)  # stop polling; the activity in flight must still finish
    gate.touch()
    assert worker.wait(60) == 0
    assert "done 1" in ledger.read_text()
    history = client.backend.get_workflow_instance_history(instance)
    assert [e.type for e in history].count(EventType.ACTIVITY_COMPLETED) == 1
    # A poll that was already under way may have taken the next workflow task before the
    # worker stopped; otherwise a new worker finishes the job.
    if client.get_workflow_instance_state(instance) is InstanceState.ACTIVE:
        manage("runworkflows")
    assert client.get_workflow_result(instance, timeout=60) == [1]


def test_until_idle_exits_when_nothing_is_left(manage):
    client = Client()
    instance = client.create_workflow_instance(WorkflowInstanceOptions(), "Workflow1", "x")
    worker = manage("runworkflows", "--until-idle")
    assert worker.wait(90) == 0, worker.output()
    assert client.get_workflow_instance_state(instance) is InstanceState.FINISHED
    assert "nothing is ready to run: exiting (--until-idle)" in worker.output()


def test_until_idle_does_not_wait_for_timers_or_signals(manage):
    """An instance that waits for a signal (with a 30 s reminder timer) does not keep the worker:
    it runs as far as it can, and the worker exits while the instance stays active."""
    client = Client()
    waiting = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="idle-order"), "order_workflow", 1)
    done = client.create_workflow_instance(WorkflowInstanceOptions(), "Workflow1", "x")
    worker = manage("runworkflows", "--until-idle")
    assert worker.wait(90) == 0, worker.output()
    assert client.get_workflow_instance_state(done) is InstanceState.FINISHED
    assert client.get_workflow_instance_state(waiting) is InstanceState.ACTIVE
    types = [event.type for event in client.backend.get_workflow_instance_history(waiting)]
    assert EventType.ACTIVITY_COMPLETED in types and EventType.TIMER_SCHEDULED in types


# -- refusing to start ------------------------------------------------------------------------


def _refused(process, code: int = 1) -> str:
    assert process.wait(60) == code, process.output()
    output = process.output()
    assert "Traceback" not in output, output
    assert "started on queues" not in output, output
    return output


def test_refuses_an_unmigrated_database(manage, tmp_path: Path):
    empty = tmp_path / "empty.sqlite3"
    output = _refused(manage("runworkflows", DB="sqlite", SQLITE_PATH=str(empty)))
    assert (
        "CommandError: the workflow tables are not migrated on database 'default' "
        "(unapplied: django_workflows.0001_initial"
    ) in output
    assert "run `manage.py migrate` first" in output


def test_refuses_an_unknown_backend_alias(manage):
    output = _refused(manage("runworkflows", "--backend", "nope"))
    assert "CommandError: unknown workflow backend alias 'nope'; the WORKFLOWS setting has: default" in output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workflow-pollers", "-1"], "argument --workflow-pollers: must not be negative, got -1"),
        (["--max-parallel-activity-tasks", "many"], "argument --max-parallel-activity-tasks: expected a whole number"),
        (["--max-outage", "-5"], "argument --max-outage: must be a non-negative number of seconds, got -5"),
        (["--grace-period", "-1"], "argument --grace-period: must be a non-negative number of seconds, got -1"),
        (["--executor-cache-size", "-3"], "argument --executor-cache-size: must not be negative, got -3"),
    ],
)
def test_refuses_flags_out_of_range(manage, flags, message):
    output = _refused(manage("runworkflows", *flags), code=2)
    assert f"manage.py runworkflows: error: {message}" in output


def test_refuses_to_poll_for_nothing(manage):
    output = _refused(manage("runworkflows", "--workflows-only", "--workflow-pollers", "0"))
    assert "CommandError: this worker would poll for nothing" in output


def test_refuses_an_unreachable_store(manage, tmp_path: Path):
    # A Redis server that is not there: nothing listens on port 1.
    output = _refused(manage("runworkflows", WORKFLOWS_BACKEND="redis", REDIS_URL="redis://127.0.0.1:1/0"))
    assert "CommandError: cannot reach the store of workflow backend 'default': ConnectionError:" in output


def test_sigterm_stops_a_worker_whose_workflow_code_hangs(manage):
    # The code sleeps for two minutes without yielding; with the default deadlock timeout (10 s)
    # the worker gives the task up, blocks the instance and still exits within 20 s of SIGTERM.
    client = Client()
    instance = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="hangs"), "hanging_workflow", 120)
    healthy = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="healthy"), "Workflow1", "x")
    worker = manage("runworkflows")
    assert client.get_workflow_result(healthy, timeout=60) == 59
    wait_for(lambda: WorkflowInstanceRow.objects.filter(instance_id="hangs", locked_until__isnull=False).exists(),
             what="the hanging task to be leased")
    worker.send(signal.SIGTERM)
    # It exits once the deadlock timeout gives the task up (10 s), well before the grace period
    # (30 s) would release it: status 0, not 3. The bound is generous for a loaded machine.
    assert worker.wait(120) == 0, worker.output()
    blocked = client.get_workflow_instance_info(instance).blocked
    assert blocked is not None and blocked.error.type == "DeadlockDetected"
    assert "hanging_workflow" in blocked.error.message and "time.sleep(seconds)" in blocked.error.message
    assert client.get_workflow_instance_state(instance) is InstanceState.ACTIVE


def test_failure_policy_and_deadlock_timeout_flags(manage):
    client = Client()
    instance = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="hangs-fail"), "hanging_workflow", 30)
    worker = manage("runworkflows", "--deadlock-timeout", "1", "--failure-policy", "fail")
    with pytest.raises(WorkflowError, match="potential deadlock: workflow hanging_workflow"):
        client.get_workflow_result(instance, timeout=60)
    worker.send(signal.SIGTERM)
    assert worker.wait(120) == 0, worker.output()


def test_executor_cache_flags_reach_the_worker_options():
    from django_workflows.management.commands.runworkflows import Command
    from django_workflows.runner import WorkerSettings

    parsed = Command().create_parser("manage.py", "runworkflows").parse_args(
        ["--executor-cache-size", "512", "--executor-cache-ttl", "30"]
    )
    settings = WorkerSettings(
        workflow_executor_cache_size=parsed.workflow_executor_cache_size,
        workflow_executor_cache_ttl=parsed.workflow_executor_cache_ttl,
    )
    options = settings.worker_options()
    assert options.workflow_executor_cache_size == 512
    assert options.workflow_executor_cache_ttl == timedelta(seconds=30)
    # Without the flags the worker takes the backend's options (WORKFLOWS' OPTIONS).
    assert WorkerSettings().worker_options().workflow_executor_cache_size is None
