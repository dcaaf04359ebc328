"""``BaseBackend``: the class storage backends subclass, and the types they handle.

It is ``engine.backend.Backend``, the one declaration of the backend contract (every method with
its error contract, the optional ``Feature`` flags, defaults for the optional methods, option
parsing), under the name backend authors import; the types a backend receives and returns are
re-exported here so that an implementation need not reach into ``engine.*``. Run the
conformance suite (``django_workflows.testing.conformance``) over a new backend.
"""

from __future__ import annotations

from ..engine.backend import (
    NO_LEASES,
    ActivityTask,
    Backend,
    BackendOptions,
    BlockBackoff,
    BlockedInfo,
    ExecutionResult,
    ExecutionSeed,
    Feature,
    InstanceInfo,
    InstancePage,
    LeaseRequest,
    QueueBacklog,
    Stats,
    WorkerInfo,
    WorkflowTask,
    WorkflowTaskCompletion,
)

BaseBackend = Backend

__all__ = [
    "NO_LEASES",
    "ActivityTask",
    "BaseBackend",
    "BackendOptions",
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
    "WorkflowTask",
    "WorkerInfo",
    "WorkflowTaskCompletion",
]
