"""The backend conformance suite: what every storage backend must do, ours or a third party's
(port of go-workflows ``backend/test``: ``backendtest.go`` and the ``e2e*.go`` files).

Two pytest test classes:

- ``BackendConformance``: the ``Backend`` protocol driven by hand, without a worker: instances,
  history order, leases with tokens (stale extends and completions are refused), abandon,
  rejected completions, future (timer) events, stickiness, queues, activity leases, bounded
  activity leases, termination, removal and stats; blocked workflow tasks and executions
  created with a history (safe deploys); activity timeouts and heartbeat details,
  cancellation requests, delayed starts and execution timeouts.
- ``EndToEndConformance``: a real ``Worker`` and ``Client`` on the backend running workflows:
  timers, signals, channels and ``select``, sub-workflows, cancellation, ``ContinueAsNew``,
  errors and panics, non-determinism, context propagation, histories field by field as
  go-workflows records them (and as earlier versions did), versioning (``patched``), blocked
  instances, deadlock detection, restart and reset, activity timeouts, heartbeats and
  cancellation, execution timeouts and delayed starts. Every case runs twice, with and
  without the worker's executor cache (the ``cache`` / ``no_cache`` parameter).

How to run it against a backend
-------------------------------

Provide a ``backend_factory`` fixture in your ``conftest.py`` and subclass the classes in a test
module::

    # conftest.py
    import pytest
    from mypackage.backend import MyBackend

    @pytest.fixture
    def backend_factory(request):
        namespace = new_empty_namespace()          # e.g. a fresh schema or key prefix
        made = []

        def factory(**options):
            backend = MyBackend(namespace, **options)
            made.append(backend)
            return backend

        yield factory
        for backend in made:
            backend.close()
        drop(namespace)

    # test_my_backend.py
    from django_workflows.testing import BackendConformance, EndToEndConformance

    class TestMyBackend(BackendConformance):
        pass

    class TestMyBackendEndToEnd(EndToEndConformance):
        pass

The contract of ``backend_factory(**options)``:

- ``options`` are ``BackendOptions`` fields (``workflow_lock_timeout=1``, ``worker_name="w2"``,
  ``context_propagators=[...]``...); the factory passes them to the backend.
- The first call in a test returns a backend on fresh, empty storage.
- Later calls in the same test return *other* backend objects, with their own options, on the
  *same* storage, the way a second worker process sees it (cases about stickiness and
  concurrent starts use two of them).
- Backends are thread-safe: the end-to-end cases run worker threads next to the test.
- A backend on a database that Django manages needs committed data visible to other threads:
  mark the test classes (or the fixture's param) ``pytest.mark.django_db(transaction=True)``.

Cases wait on conditions with generous limits and never assert speed; the ones about lease
expiry use lock timeouts of about a second. A backend that does not support
``Feature.REMOVE_INSTANCES`` must raise ``NotSupported`` from ``remove_workflow_instances``,
which the removal cases check instead.

This project runs the suite over its own backends in ``tests/backends/test_conformance.py``.
"""

from __future__ import annotations

from .backend import BackendConformance as ProtocolCases
from .backend_deploys import DeployBackendCases
from .e2e_basics import BasicCases, TenantPropagator
from .e2e_deploys import DeployCases
from .e2e_errors import ErrorCases
from .e2e_history import HistoryCases
from .e2e_lifecycle import CancellationCases, ContinueAsNewCases, QueueAndRemovalCases
from .e2e_payloads import PayloadCases
from .e2e_restarts import RestartCases
from .e2e_signals import ConcurrencyCases, SignalCases
from .e2e_subworkflows import SubWorkflowCases
from .e2e_timeouts import ActivityCancellationCases, ActivityTimeoutCases, WorkflowTimeoutCases
from .e2e_timers import TimerCases


class BackendConformance(ProtocolCases, DeployBackendCases):
    """Every backend-level case: the protocol, and the storage side of safe deploys."""


class EndToEndConformance(
    BasicCases,
    TimerCases,
    SignalCases,
    ConcurrencyCases,
    SubWorkflowCases,
    CancellationCases,
    ContinueAsNewCases,
    QueueAndRemovalCases,
    ErrorCases,
    PayloadCases,
    HistoryCases,
    RestartCases,
    DeployCases,
    ActivityTimeoutCases,
    ActivityCancellationCases,
    WorkflowTimeoutCases,
):
    """Every end-to-end case; each runs with and without the executor cache."""


__all__ = ["BackendConformance", "EndToEndConformance", "TenantPropagator"]
