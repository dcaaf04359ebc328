"""Pins the public API: what ``workflow``, ``activity``, ``client``, ``worker``, ``testing`` and the
package root export (Temporal's ``tests/test_workflow_exports.py``). A name added to or dropped
from an ``__all__`` fails here until it is added to DESIGN.md's names and to this list on purpose;
a dropped public name needs a deprecation path in CHANGELOG.md."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "django_workflows": {
        "acancel_workflow",
        "asignal_workflow",
        "astart_workflow",
        "cancel_workflow",
        "register_activity",
        "register_workflow",
        "registry",
        "signal_workflow",
        "start_workflow",
    },
    "django_workflows.workflow": {
        # DESIGN.md section 7, activities; ActivityCancellation and TimeoutType name the values
        # of ActivityOptions.cancellation and ActivityTimeoutError.timeout_type.
        "ActivityCancellation",
        "ActivityTimeoutError",
        "TimeoutType",
        "WorkflowTimedOut",
        "ActivityOptions",
        "Canceled",
        "Channel",
        "ChannelClosed",
        "Context",
        "ContinueAsNew",
        "DEFAULT_ACTIVITY_OPTIONS",
        "DEFAULT_RETRY_OPTIONS",
        "ErrGroup",
        "Future",
        "InstanceExecutionDetails",
        "NondeterminismError",
        "PanicError",
        # DESIGN.md section 7, limits: also raised by the Client (django_workflows.client).
        "PayloadTooLarge",
        "PermanentError",
        "RetryOptions",
        "SelectCase",
        "SubWorkflowOptions",
        "WaitGroup",
        "WorkflowError",
        "WorkflowInstance",
        "can_retry",
        "create_sub_workflow_instance",
        "deprecate_patch",
        "execute_activity",
        "gather",
        "go",
        "instance_execution_details",
        "logger",
        "new_buffered_channel",
        "new_channel",
        "new_disconnected_context",
        "new_signal_channel",
        "now",
        "on_default",
        "on_future",
        "on_receive",
        "on_send",
        "patched",
        "replaying",
        "schedule_timer",
        "select",
        "side_effect",
        "signal_workflow",
        "sleep",
        "with_cancel",
        "with_err_group",
        "with_retries",
        "with_value",
        "workflow_instance",
    },
    "django_workflows.activity": {
        "ActivityCanceled",
        "is_canceled",
        "ActivityInfo",
        "ActivityLeaseLost",
        "PermanentError",
        "WorkflowError",
        "attempt",
        "heartbeat",
        "info",
        "logger",
    },
    "django_workflows.client": {
        "Client",
        "Instance",
        "InstanceAlreadyExists",
        "InstanceFinished",
        "InstanceNotFinished",
        "InstanceNotFound",
        "NotSupported",
        "OverlapPolicy",
        "PayloadTooLarge",
        "PreparedStart",
        "ScheduleAlreadyExists",
        "ScheduleDescription",
        "ScheduleNotFound",
        "ScheduleSpec",
        "ResetError",
        "WorkflowInstance",
        "WorkflowInstanceOptions",
        "WorkflowTerminated",
        "WorkflowTimedOut",
        "WorkflowTimeout",
    },
    "django_workflows.worker": {"ExecutionResult", "StoreUnavailable", "Worker", "WorkerOptions", "WorkflowOrchestrator"},
    "django_workflows.testing": {
        "BackendConformance",
        "EndToEndConformance",
        "ReplayFailed",
        "ReplayMismatch",
        "ReplayReport",
        "Replayer",
        "UnexpectedCall",
        "WorkflowBlocked",
        "WorkflowTester",
    },
    "django_workflows.tasks": {"RunOptions", "WorkflowsTask", "WorkflowsTaskBackend"},
    "django_workflows.backends.base": {
        "NO_LEASES",
        "ActivityTask",
        "BackendOptions",
        "BaseBackend",
        "BlockBackoff",
        "BlockedInfo",
        "ExecutionResult",
        "ExecutionSeed",
        "Feature",
        "InstanceInfo",
        "InstancePage",
        "LeaseRequest",
        "QueueBacklog",
        "Stats",
        "WorkerInfo",
        "WorkflowTask",
        "WorkflowTaskCompletion",
    },
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_public_names_are_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = set(module.__all__)
    assert exported == PUBLIC[module_name], (
        f"{module_name}.__all__ changed: added {sorted(exported - PUBLIC[module_name])}, "
        f"dropped {sorted(PUBLIC[module_name] - exported)}"
    )
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name} exports names it does not define: {missing}"


def test_documented_backend_paths_import() -> None:
    from django_workflows.backends.base import BaseBackend
    from django_workflows.backends.memory import MemoryBackend
    from django_workflows.backends.orm import OrmBackend
    from django_workflows.backends.redis import RedisBackend

    assert all(issubclass(cls, BaseBackend) for cls in (MemoryBackend, OrmBackend, RedisBackend))
