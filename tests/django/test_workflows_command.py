"""``manage.py workflows ...`` and ``startworkflow`` on the test database (and on Redis): every
subcommand, its ``--json`` output, and its exit status (0 done, 1 not found or not allowed, 2
usage). Most calls run through Django's command-line entry point in this process; the exit
statuses, the Redis case and ``startworkflow`` also run as real processes.

The instances come from ``test_admin.run_world`` (a worker in this process runs them to where
they are needed): a parent with a child, a failure, one waiting for a signal with a timer
pending, a continue-as-new chain, a long history.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import load_command_class
from django.core.management.base import OutputWrapper

from django_workflows.client import Client, WorkflowInstanceOptions
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import InstanceNotFound
from django_workflows.engine.history_export import read_history
from tests.django.test_admin import admin_approval, run_world, running_worker, start, wait_until_waiting

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def run(manage: Callable[..., Any], *args: str, **env: str) -> tuple[int, str]:
    """``manage.py workflows ARGS``: its exit status and what it printed (stdout, then stderr)."""
    code, out, err = _call(manage, *args, **env)
    return code, out + err


def run_json(manage: Callable[..., Any], *args: str, **env: str) -> Any:
    code, out, err = _call(manage, *args, "--json", **env)
    assert code == 0, out + err
    return json.loads(out)


def _call(manage: Callable[..., Any], *args: str, **env: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``manage.py workflows ARGS``.

    In this process, through the command's command-line entry point (``run_from_argv``, as
    ``manage.py`` runs it: argparse's usage errors exit 2, a ``CommandError`` exits with its
    status), because a process per call costs seconds of start-up. The command writes to
    buffers of its own, so what the test's worker threads print meanwhile does not mix in;
    argparse writes its usage errors to ``sys.stderr``. With ``env`` (settings read from the
    environment), as a real process."""
    if env:
        process = manage("workflows", *args, **env)
        code = process.wait(120)
        return code, process.output(), ""
    out, err = io.StringIO(), io.StringIO()
    command = load_command_class("django_workflows", "workflows")
    command.stdout, command.stderr = OutputWrapper(out), OutputWrapper(err)
    with contextlib.redirect_stderr(err):
        try:
            command.run_from_argv(["manage.py", "workflows", *args])
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def test_list_show_history_status(manage: Callable[..., Any]) -> None:
    world = run_world()

    everything = run_json(manage, "list")
    ids = [row["instance_id"] for row in everything["instances"]]
    assert {world.order, world.shipping, world.failing, world.waiting, world.counter} <= set(ids)
    assert everything["next_cursor"] is None
    created = [row["created_at"] for row in everything["instances"]]
    assert created == sorted(created, reverse=True)  # newest first

    # Filters and pages.
    assert [r["instance_id"] for r in run_json(manage, "list", "--state", "active")["instances"]] == [
        world.stuck, world.waiting
    ]
    assert [r["instance_id"] for r in run_json(manage, "list", "--workflow", "admin_failing")["instances"]] == [world.failing]
    assert {r["instance_id"] for r in run_json(manage, "list", "--prefix", "order-1")["instances"]} == {world.order, world.shipping}
    assert run_json(manage, "list", "--queue", "approvals")["instances"][0]["instance_id"] == world.waiting
    assert run_json(manage, "list", "--since", "1h", "--prefix", "order-3")["instances"][0]["instance_id"] == world.waiting
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert run_json(manage, "list", "--since", future)["instances"] == []
    first = run_json(manage, "list", "--limit", "2")
    second = run_json(manage, "list", "--limit", "2", "--cursor", first["next_cursor"])
    assert [r["instance_id"] for r in first["instances"] + second["instances"]] == ids[:4]
    code, text = run(manage, "list", "--limit", "2")
    assert code == 0 and "INSTANCE" in text and "CREATED" in text and f"--cursor {first['next_cursor']}" in text

    # show: a parent with its child and result; a failure; a waiting instance with pending work.
    parent = run_json(manage, "show", world.order)
    assert parent["status"] == "completed" and parent["state"] == "finished"
    assert parent["input"] == [world.order, 42] and parent["result"]["charged"] == {"order": world.order, "charged": 42}
    assert [c["instance_id"] for c in parent["children"]] == [world.shipping]
    child = run_json(manage, "show", world.shipping)
    assert child["parent"]["instance_id"] == world.order
    failed = run_json(manage, "show", world.failing)
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "ValueError" and "card declined" in failed["error"]["message"]
    waiting = run_json(manage, "show", world.waiting)
    assert waiting["status"] == "running"
    assert [t["name"] for t in waiting["pending"]["timers"]] == ["approval-deadline"]
    stuck = run_json(manage, "show", world.stuck)
    assert [a["name"] for a in stuck["pending"]["activities"]] == ["ship"]
    code, text = run(manage, "show", world.failing)
    assert code == 0 and "Status:     failed" in text and "Error:      ValueError: card declined" in text
    # Continue-as-new: the newest execution by default, an older one with --execution.
    newest = run_json(manage, "show", world.counter)
    assert newest["status"] == "completed" and newest["input"] == [2]
    oldest = [r for r in run_json(manage, "list", "--prefix", world.counter)["instances"]][-1]
    assert run_json(manage, "show", world.counter, "--execution", oldest["execution_id"])["status"] == "continued_as_new"

    # history --json is the export format, and reads back into the stored events.
    document = run_json(manage, "history", world.order)
    loaded = read_history(document)
    assert loaded.workflow_name == "admin_order"
    assert loaded.events == Client().backend.get_workflow_instance_history(loaded.instance)
    code, text = run(manage, "history", world.order)
    assert code == 0 and "ActivityCompleted" in text and '"charged": 42' in text

    # An activity task waits in "manual", which no live worker polls: the health check says so.
    code, text = run(manage, "status", "--json")
    status = json.loads(text)
    assert code == 1 and status["unserved_queues"] == ["manual"]
    assert {q["queue"]: q["ready_activity_tasks"] for q in status["queues"]}.get("manual") == 1
    code, text = run(manage, "status")
    assert code == 1 and "manual" in text


def test_signal_cancel_terminate_remove(manage: Callable[..., Any]) -> None:
    client = Client()
    with running_worker() as worker_client:
        for instance_id in ("cli-signal", "cli-cancel", "cli-terminate"):
            start(worker_client, instance_id, admin_approval, instance_id, queue="approvals")
        for instance_id in ("cli-signal", "cli-cancel", "cli-terminate"):
            wait_until_waiting(instance_id)

        assert run(manage, "signal", "cli-signal", "approve", '{"by": "cli"}')[0] == 0
        assert worker_client.get_workflow_result("cli-signal", timeout=60)["approval"] == {"by": "cli"}
        code, output = run(manage, "cancel", "cli-cancel")
        assert code == 0 and "Cancellation of cli-cancel" in output
        worker_client.wait_for_workflow_instance("cli-cancel", timeout=60)
        assert run_json(manage, "show", "cli-cancel")["status"] == "canceled"
        code, output = run(manage, "terminate", "cli-terminate", "--reason", "stuck for a week")
        assert code == 0 and "Terminated cli-terminate" in output
        shown = run_json(manage, "show", "cli-terminate")
        assert shown["status"] == "terminated" and shown["reason"] == "stuck for a week"

    # Not allowed on finished instances, not found for unknown ones: exit status 1.
    for args in (("signal", "cli-signal", "approve"), ("cancel", "cli-signal"), ("terminate", "cli-signal", "--reason", "x")):
        code, output = run(manage, *args)
        assert code == 1 and "has finished" in output, output
    for args in (("show", "no-such"), ("history", "no-such"), ("signal", "no-such", "x"), ("remove", "no-such")):
        code, output = run(manage, *args)
        assert code == 1 and "workflow instance no-such not found" in output, output

    # remove: one execution, then everything that finished before a date (in batches).
    running = client.create_workflow_instance(WorkflowInstanceOptions(instance_id="cli-running"), "admin_approval", "x")
    code, output = run(manage, "remove", "cli-running")
    assert code == 1 and "is still running" in output
    assert run(manage, "remove", "cli-signal")[0] == 0
    with pytest.raises(InstanceNotFound):
        client.get_workflow_instance_state("cli-signal")
    code, output = run(manage, "remove", "--finished-before", "0m", "--batch-size", "1")
    assert code == 0 and "Removed 2 execution(s)" in output, output
    assert [r["instance_id"] for r in run_json(manage, "list")["instances"]] == ["cli-running"]
    assert client.get_workflow_instance_state(running) is InstanceState.ACTIVE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("list", "--state", "sleeping"), "unknown state 'sleeping'; use one of: active, finished, continued_as_new"),
        (("list", "--since", "last tuesday"), "'last tuesday' is neither an ISO 8601 date/time"),
        (("list", "--cursor", "nonsense"), "invalid listing cursor 'nonsense'"),
        (("list", "--limit", "0"), "argument --limit: must be at least 1"),
        (("list", "--limit", "5000"), "limit must be between 1 and 1000"),
        (("signal", "x", "approve", "{oops"), "the signal value is not valid JSON"),
        # Signal names follow the rule of every sender (engine.core.validate_signal_name).
        (("signal", "x", "bell\a", "1"), "cannot send this signal: signal name 'bell\\x07' contains a control character"),
        (("signal", "x", " ", "1"), "cannot send this signal: signal name must not be blank"),
        (("signal", "x", "n" * 256, "1"), "cannot send this signal: signal name must be at most 255 characters"),
        (("remove",), "remove needs either an instance ID or --finished-before WHEN"),
        (("terminate", "x"), "the following arguments are required: --reason"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
        (("show", "a:b"), "contains a control character, '{', '}' or ':'"),
    ],
)
def test_usage_errors_exit_2(manage: Callable[..., Any], args: tuple[str, ...], message: str) -> None:
    code, output = run(manage, *args)
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output


def test_exit_statuses_of_a_real_process(manage: Callable[..., Any]) -> None:
    """The same statuses from ``manage.py`` as a process: 0 done, 1 not found, 2 usage."""
    Client().create_workflow_instance(WorkflowInstanceOptions(instance_id="cli-process"), "Workflow1", "x")
    process = manage("workflows", "list", "--json")
    assert process.wait(120) == 0, process.output()
    assert [r["instance_id"] for r in json.loads(process.output())["instances"]] == ["cli-process"]
    process = manage("workflows", "show", "no-such")
    assert process.wait(120) == 1 and "workflow instance no-such not found" in process.output()
    process = manage("workflows", "list", "--limit", "0")
    assert process.wait(120) == 2 and "argument --limit: must be at least 1" in process.output()


def test_an_unknown_backend_is_refused(manage: Callable[..., Any]) -> None:
    code, output = run(manage, "--backend", "nope", "status")
    assert code == 1 and "unknown workflow backend alias 'nope'" in output


@pytest.mark.redis
def test_on_the_redis_backend(manage: Callable[..., Any]) -> None:
    """The same commands on Redis: nothing in them is ORM-specific."""
    from django_redis import get_redis_connection

    from django_workflows.backends.redis import RedisBackend

    prefix = f"wf-cli-test-{uuid.uuid4().hex[:12]}:"
    env = {"WORKFLOWS_BACKEND": "redis"}
    client = Client(RedisBackend(connection="workflows", key_prefix=prefix))
    try:
        client.create_workflow_instance(WorkflowInstanceOptions(instance_id="redis-1"), "Workflow1", "x")
        client.create_workflow_instance(WorkflowInstanceOptions(instance_id="redis-2"), "Workflow1", "y")

        def json_out(*args: str) -> Any:
            process = manage("workflows", *args, "--json", workflow_options={"key_prefix": prefix}, **env)
            assert process.wait(120) == 0, process.output()
            return json.loads(process.output())

        assert [r["instance_id"] for r in json_out("list")["instances"]] == ["redis-2", "redis-1"]
        assert json_out("show", "redis-1")["input"] == ["x"]
        # Two workflows wait in "default" and no worker polls it: unhealthy (exit 1), with the backlog.
        process = manage("workflows", "status", "--json", workflow_options={"key_prefix": prefix}, **env)
        assert process.wait(120) == 1, process.output()
        status = json.loads(process.output())
        assert status["unserved_queues"] == ["default"]
        assert {q["queue"]: q["ready_workflow_tasks"] for q in status["queues"]}["default"] == 2
        process = manage("workflows", "terminate", "redis-2", "--reason", "r", workflow_options={"key_prefix": prefix}, **env)
        assert process.wait(120) == 0, process.output()
        assert json_out("show", "redis-2")["status"] == "terminated"
        assert read_history(json_out("history", "redis-2")).events[-1].type.value == "WorkflowExecutionTerminated"
    finally:
        connection = get_redis_connection("workflows")
        for key in connection.scan_iter(match=f"{prefix}*", count=1000):
            connection.delete(key)


def test_startworkflow_says_how_it_read_each_argument(manage: Callable[..., Any]) -> None:
    for workflow_name, instance_id, argument, said, value in (
        ("Workflow1", "cli-word", "order-9", '"order-9" (not JSON, so a string)', "order-9"),
        ("Workflow1", "cli-quoted", '"42"', '"42" (JSON)', "42"),
        ("order_workflow", "cli-number", "42", "42 (JSON)", 42),
    ):
        process = manage("startworkflow", workflow_name, argument, "--instance-id", instance_id)
        assert process.wait(120) == 0, process.output()
        assert f"Argument 1: {said}" in process.output()
        assert run_json(manage, "show", instance_id)["input"] == [value]
