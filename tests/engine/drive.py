"""Helpers for engine unit tests: run workflow coroutines without an executor, and drive an
``Executor`` task by task against a hand-made history (no backend, no database)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timezone
from typing import Any

from django_workflows.engine.converter import default_converter
from django_workflows.engine.core import InstanceState, WorkflowInstance
from django_workflows.engine.coroutines import Scheduler
from django_workflows.engine.executor import ExecutionResult, Executor
from django_workflows.engine.history import Event, WorkflowExecutionStartedAttributes, new_event
from django_workflows.engine.registry import Registry
from django_workflows.engine.state import WorkflowState

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def run(*coroutines: Coroutine[Any, Any, Any]) -> Scheduler:
    """Spawn the coroutines (named c0, c1...) and run them until all block or end."""
    scheduler = Scheduler()
    for index, coro in enumerate(coroutines):
        scheduler.spawn(f"c{index}", coro)
    scheduler.run_until_blocked()
    return scheduler


def workflow_state(instance_id: str = "wf-1") -> WorkflowState:
    """A bare workflow state, for the API functions that need a context."""
    return WorkflowState(
        instance=WorkflowInstance(instance_id, "exec-1"),
        converter=default_converter,
        registry=Registry(),
        logger=logging.getLogger("tests.engine"),
        time=T0,
    )


class FixedClock:
    def __init__(self, now: datetime = T0) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


class HistoryStore:
    """A hand-made history provider: the history of one execution, as a backend would keep it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.reads = 0

    def get_workflow_instance_history(self, instance: WorkflowInstance, last_sequence_id: int | None = None) -> list[Event]:
        self.reads += 1
        if last_sequence_id is None:
            return list(self.events)
        return [e for e in self.events if e.sequence_id > last_sequence_id]


def started(name: str, *inputs: str, metadata: dict[str, str] | None = None) -> Event:
    return new_event(
        WorkflowExecutionStartedAttributes(name=name, queue="default", inputs=list(inputs), metadata=metadata or {}), T0
    )


class Driver:
    """Runs an execution task by task, the way a worker and a backend would."""

    def __init__(
        self,
        workflows: Sequence[Callable[..., Any] | tuple[Callable[..., Any], str]],
        *,
        instance: WorkflowInstance | None = None,
        max_history_size: int = 10_000,
        clock: FixedClock | None = None,
    ) -> None:
        self.registry = Registry()
        for wf in workflows:
            if isinstance(wf, tuple):
                self.registry.register_workflow(wf[0], wf[1])
            else:
                self.registry.register_workflow(wf)
        self.instance = instance or WorkflowInstance("wf-1", "exec-1")
        self.store = HistoryStore()
        self.clock = clock or FixedClock()
        self.max_history_size = max_history_size
        self.executor = self.new_executor()
        self.results: list[ExecutionResult] = []

    def new_executor(self, registry: Registry | None = None) -> Executor:
        return Executor(
            registry=registry or self.registry,
            history_provider=self.store,
            instance=self.instance,
            converter=default_converter,
            clock=self.clock,
            max_history_size=self.max_history_size,
        )

    def task(self, *new_events: Event, executor: Executor | None = None) -> ExecutionResult:
        """Execute one task with ``new_events`` and commit its events to the history."""
        executor = executor or self.executor
        result = executor.execute_task(last_sequence_id=len(self.store.events), new_events=list(new_events))
        self.store.events.extend(result.executed)
        self.results.append(result)
        return result

    @property
    def finished(self) -> bool:
        return bool(self.results) and self.results[-1].state is not InstanceState.ACTIVE
