"""``BaseBackend``: what every backend shares (option handling, the task scope hook, checks).

Backends implement the ``engine.backend.Backend`` protocol; subclassing this class gives them
``BackendOptions`` parsing from keyword arguments (so a ``WORKFLOWS`` setting's ``OPTIONS`` map
straight onto them), a default no-op ``task_scope`` and an empty ``check``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from ..engine.backend import (
    ActivityTask,
    BackendOptions,
    Feature,
    InstanceInfo,
    InstancePage,
    Stats,
    WorkflowTask,
)
from ..engine.core import InstanceState, WorkflowInstance
from ..engine.errors import NotSupported
from ..engine.history import Event, WorkflowEvent
from ..engine.listing import InstanceFilter


class BaseBackend(ABC):
    #: Features this backend supports (see ``engine.backend.Feature``).
    features: frozenset[Feature] = frozenset()

    def __init__(self, options: BackendOptions | None = None, **option_kwargs: Any) -> None:
        if options is not None and option_kwargs:
            raise TypeError("pass either options= or keyword options, not both")
        try:
            self._options = options or BackendOptions(**option_kwargs)
        except TypeError as exc:
            raise TypeError(f"{type(self).__name__}: {exc}") from None

    @property
    def options(self) -> BackendOptions:
        return self._options

    @contextlib.contextmanager
    def task_scope(self) -> Iterator[None]:
        """Wraps every task a worker runs; the ORM backend closes stale DB connections here."""
        yield

    def feature_supported(self, feature: Feature) -> bool:
        return feature in self.features

    def check(self, **kwargs: Any) -> list[Any]:
        """Django system check messages about this backend's configuration."""
        return []

    def release_finished_threads(self) -> None:
        """Free what threads that have ended still hold (a stopped worker calls this): the ORM
        backend closes their database connections, which Django never closes by itself."""
        return

    def close(self) -> None:
        return None

    # The storage operations; see ``engine.backend.Backend`` for their contracts.

    @abstractmethod
    def create_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None: ...

    @abstractmethod
    def cancel_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None: ...

    @abstractmethod
    def terminate_workflow_instance(self, instance: WorkflowInstance, reason: str) -> None: ...

    @abstractmethod
    def signal_workflow(self, instance_id: str, event: Event) -> WorkflowInstance: ...

    @abstractmethod
    def remove_workflow_instance(self, instance: WorkflowInstance) -> None: ...

    @abstractmethod
    def remove_workflow_instances(self, *, finished_before: datetime, batch_size: int = 100) -> int: ...

    @abstractmethod
    def get_workflow_instance_state(self, instance: WorkflowInstance) -> InstanceState: ...

    @abstractmethod
    def get_workflow_instance_info(self, instance: WorkflowInstance) -> InstanceInfo: ...

    @abstractmethod
    def get_workflow_instance_history(
        self, instance: WorkflowInstance, last_sequence_id: int | None = None
    ) -> list[Event]: ...

    @abstractmethod
    def get_latest_execution(self, instance_id: str) -> WorkflowInstance: ...

    def prepare_workflow_queues(self, queues: Sequence[str]) -> None:
        return None

    @abstractmethod
    def get_workflow_task(self, queues: Sequence[str], timeout: float) -> WorkflowTask | None: ...

    @abstractmethod
    def extend_workflow_task(self, task: WorkflowTask) -> None: ...

    @abstractmethod
    def complete_workflow_task(
        self,
        task: WorkflowTask,
        *,
        state: InstanceState,
        executed_events: Sequence[Event],
        activity_events: Sequence[Event],
        timer_events: Sequence[Event],
        workflow_events: Sequence[WorkflowEvent],
        activity_queues: Sequence[str] = (),
        max_leased_activities: int = 0,
    ) -> list[ActivityTask]: ...

    @abstractmethod
    def abandon_workflow_task(self, task: WorkflowTask) -> None: ...

    def prepare_activity_queues(self, queues: Sequence[str]) -> None:
        return None

    @abstractmethod
    def get_activity_task(self, queues: Sequence[str], timeout: float) -> ActivityTask | None: ...

    def get_workflow_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[WorkflowTask]:
        task = self.get_workflow_task(queues, timeout)
        return [] if task is None else [task]

    def get_activity_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[ActivityTask]:
        task = self.get_activity_task(queues, timeout)
        return [] if task is None else [task]

    @abstractmethod
    def extend_activity_task(self, task: ActivityTask) -> None: ...

    @abstractmethod
    def complete_activity_task(
        self, task: ActivityTask, result: Event, *, workflow_queues: Sequence[str] = ()
    ) -> WorkflowTask | None: ...

    @abstractmethod
    def abandon_activity_task(self, task: ActivityTask) -> None: ...

    @abstractmethod
    def get_stats(self) -> Stats: ...

    # Listing, for operators' tools (``manage.py workflows list``); see ``engine.listing``.

    def list_workflow_instances(
        self, filter: InstanceFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> InstancePage:
        raise NotSupported(f"{type(self).__name__} cannot list workflow instances")

    def get_pending_events(self, instance: WorkflowInstance) -> list[Event]:
        raise NotSupported(f"{type(self).__name__} cannot show pending events")
