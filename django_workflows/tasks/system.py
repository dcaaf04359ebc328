"""The system workflow that runs one enqueued Django task, and the activity that calls it.

Every task enqueued through ``WorkflowsTaskBackend`` is one instance of the workflow
``DjangoTask``, its instance id being the task result's id. The workflow

1. sleeps until ``run_after`` (a durable timer: a restart does not forget it),
2. runs the activity ``RunDjangoTask`` on the task's queue (the activity gives an attempt up
   after ``timeout``),
3. on failure waits the backoff (a durable timer) and tries again, up to ``max_attempts``,
4. returns the task's return value, or fails with the last attempt's error.

A cancellation (admin, ``Client.cancel_workflow_instance``) ends a task that waits for
``run_after`` or a retry at once; an attempt already running is not interrupted, and the task
ends canceled when it failed (with its result when it succeeded).

Why a workflow rather than a bare activity task: the history records every attempt (its
worker, start and end, error with traceback), which is where ``get_result`` reads status,
errors and attempts from; the admin lists tasks as instances with their arguments and outcome;
cancel, terminate and removal work as for any workflow; and ``run_after`` and the retry
backoff are durable timers without a scheduler of their own.

The activity returns an *outcome* (a JSON object) instead of raising, so that a failed
attempt's worker and start time are recorded along with its error; the workflow decides
whether to retry. Its inputs are the task's *spec* (see ``TaskSpec``), the attempt number and
the ids of the workers of the earlier attempts (for ``TaskContext``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import importlib
import os
import socket
import threading
import traceback
from datetime import datetime, timedelta
from typing import Any

from ..engine.activities import ActivityOptions, execute_activity
from ..engine.activity_runner import current_activity
from ..engine.context import Context
from ..engine.errors import Canceled, WorkflowError
from ..engine.futures import on_future, on_receive, select
from ..engine.info import now
from ..engine.registry import Registry
from ..engine.timers import schedule_timer
from .options import RunOptions

TASK_WORKFLOW_NAME = "DjangoTask"
TASK_ACTIVITY_NAME = "RunDjangoTask"
#: Version of the spec layout, so a later layout can still run tasks enqueued before it.
SPEC_VERSION = 1
#: The instance metadata key that holds the spec as JSON (see ``results``).
SPEC_METADATA_KEY = "django_task"
RUN_AFTER_TIMER = "run-after"
RETRY_TIMER = "retry-backoff"


# -- the workflow ----------------------------------------------------------------------------


async def run_django_task(ctx: Context, spec: dict[str, Any]) -> Any:
    """Run the task described by ``spec`` until it succeeds or its attempts are used up."""
    run_after = spec.get("run_after")
    if run_after:
        delay = datetime.fromisoformat(run_after) - now(ctx)
        if delay > timedelta(0):
            await _sleep(ctx, delay, RUN_AFTER_TIMER)
    options = RunOptions(**spec["options"])
    workers: list[str] = []
    last_error: dict[str, Any] = {}
    for attempt in range(1, options.max_attempts + 1):
        if attempt > 1:
            await _sleep(ctx, timedelta(seconds=options.backoff(attempt - 1)), RETRY_TIMER)
        future = execute_activity(
            ctx, ActivityOptions(queue=spec["queue"]), TASK_ACTIVITY_NAME, spec, attempt, list(workers)
        )
        canceled = await select(ctx, on_future(future, lambda f: False), on_receive(ctx.done(), lambda v, ok: True))
        # A running attempt cannot be interrupted; a cancellation takes effect once it ended
        # (and the workflow may not end while one of its activities is outstanding).
        try:
            outcome = dict(await future)
        except WorkflowError as err:
            # The engine failed the attempt (the activity is not registered on that worker, it
            # kept killing its workers, its outcome could not be stored...).
            outcome = {"ok": False, "error": engine_error(err), "permanent": err.permanent}
        if outcome.get("worker_id"):
            workers.append(outcome["worker_id"])
        if outcome["ok"]:
            return outcome.get("value")
        if canceled:
            raise Canceled()
        last_error = outcome["error"]
        if outcome.get("permanent"):
            break
    raise WorkflowError(
        last_error.get("message", ""),
        type=last_error.get("exception_class_path", "Exception"),
        stacktrace=last_error.get("traceback", ""),
        permanent=True,
    )


async def _sleep(ctx: Context, delay: timedelta, name: str) -> None:
    """``workflow.sleep``, except that a cancellation ends the task (``Canceled``)."""
    await schedule_timer(ctx, delay, name=name)
    if ctx.err() is not None:
        raise Canceled()


def engine_error(err: WorkflowError) -> dict[str, Any]:
    text = f"{err.type}: {err.message}" if err.type else err.message
    return {
        "exception_class_path": "django_workflows.engine.errors.WorkflowError",
        "message": text,
        "traceback": f"{err.stacktrace.rstrip()}\n{text}\n" if err.stacktrace else f"{text}\n",
    }


# -- the activity ----------------------------------------------------------------------------


def run_task_attempt(spec: dict[str, Any], attempt: int, previous_workers: list[str]) -> dict[str, Any]:
    """Import the task, call it (with a ``TaskContext`` if it takes one) and report the outcome."""
    from . import compat

    started = _utcnow()
    worker_id = _worker_id(spec)
    base = {"worker_id": worker_id, "started_at": started.isoformat(), "attempt": attempt}
    try:
        task = import_task(spec)
    except Exception as exc:  # an import error cannot heal by retrying
        return {**base, "ok": False, "permanent": True, "error": error_of(exc), "finished_at": _utcnow().isoformat()}
    result = compat.TaskResult(
        task=task,
        id=current_activity().instance.instance_id,
        status=compat.TaskResultStatus.RUNNING,
        enqueued_at=datetime.fromisoformat(spec["enqueued_at"]),
        started_at=started,
        last_attempted_at=started,
        finished_at=None,
        args=spec["args"],
        kwargs=spec["kwargs"],
        backend=spec["backend"],
        errors=[],
        worker_ids=[*previous_workers, worker_id],
    )
    compat.task_started.send(sender=_backend_class(), task_result=result)
    args = [compat.TaskContext(task_result=result), *spec["args"]] if spec["takes_context"] else spec["args"]
    try:
        value = compat.normalize_json(_call(task, args, spec["kwargs"], attempt, spec["options"].get("timeout")))
    except Exception as exc:
        outcome = {**base, "ok": False, "error": error_of(exc), "finished_at": _utcnow().isoformat()}
        if attempt >= int(spec["options"]["max_attempts"]):
            _finished(result, compat.TaskResultStatus.FAILED, outcome)
        return outcome
    outcome = {**base, "ok": True, "value": value, "finished_at": _utcnow().isoformat()}
    _finished(result, compat.TaskResultStatus.SUCCESSFUL, outcome)
    return outcome


def _call(task: Any, args: list[Any], kwargs: dict[str, Any], attempt: int, timeout: float | None) -> Any:
    """``task.call(*args, **kwargs)``, given up after ``timeout`` seconds (``TimeoutError``).

    With a timeout the task runs in a thread of its own, which this attempt stops waiting for:
    Python cannot interrupt a thread, so a task that overran goes on in the background (a daemon
    thread: it does not hold up the worker's shutdown) and its result is dropped.
    """
    if not timeout:
        return task.call(*args, **kwargs)
    box: dict[str, Any] = {}

    def target() -> None:
        from django.db import connections

        try:
            box["value"] = task.call(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed over to the attempt's thread
            box["error"] = exc
        finally:
            connections.close_all()  # this thread's connections; Django never closes them itself

    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,), daemon=True, name="django-task")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"attempt {attempt} did not finish within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _finished(result: Any, status: Any, outcome: dict[str, Any]) -> None:
    from . import compat

    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", datetime.fromisoformat(outcome["finished_at"]))
    if not outcome["ok"]:
        result.errors.append(compat.TaskError(**{k: outcome["error"][k] for k in ("exception_class_path", "traceback")}))
    else:
        object.__setattr__(result, "_return_value", outcome["value"])
    compat.task_finished.send(sender=_backend_class(), task_result=result)


def import_task(spec: dict[str, Any]) -> Any:
    """The ``Task`` object named by the spec, with the settings it was enqueued with."""
    from . import compat

    module_name, _, attribute = spec["task"].rpartition(".")
    task = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(task, compat.Task):
        raise TypeError(f"{spec['task']} is not a task (decorate it with @task)")
    run_after = datetime.fromisoformat(spec["run_after"]) if spec.get("run_after") else None
    changes = {"queue_name": spec["queue_name"], "priority": spec["priority"], "run_after": run_after, "backend": spec["backend"]}
    if all(getattr(task, name) == value for name, value in changes.items()):
        return task
    try:
        return dataclasses.replace(task, **changes)
    except Exception:  # noqa: BLE001 - this process's TASKS refuse it; the decorated task still runs
        return task


def error_of(exc: BaseException) -> dict[str, Any]:
    kind = type(exc)
    return {
        "exception_class_path": f"{kind.__module__}.{kind.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _worker_id(spec: dict[str, Any]) -> str:
    """The lease name of this process's workflow backend (the worker running the attempt)."""
    try:
        from ..backends import workflow_backends

        return str(workflow_backends[spec["workflows_backend"]].options.worker_name)
    except Exception:  # noqa: BLE001 - an id is nice to have, never worth failing the task for
        return f"{socket.gethostname()}-{os.getpid()}"


def _backend_class() -> type:
    from .backend import WorkflowsTaskBackend

    return WorkflowsTaskBackend


def _utcnow() -> datetime:
    from ..engine.clock import system_clock

    return system_clock.now()


def register_task_workflow(registry: Registry) -> None:
    """Register the system workflow and its activity (``AppConfig.ready`` does, for every worker)."""
    registry.register_workflow(run_django_task, TASK_WORKFLOW_NAME)
    registry.register_activity(run_task_attempt, TASK_ACTIVITY_NAME)
