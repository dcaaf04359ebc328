"""What a workflow can know about itself: time, replay, identity, history length, logging."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .context import Context
from .core import WorkflowInstance
from .state import WorkflowState, state_of


def now(ctx: Context) -> datetime:
    """Workflow time: the start of the current workflow task, the same on every replay."""
    return state_of(ctx).time


def replaying(ctx: Context) -> bool:
    """True while the workflow re-executes events already in its history."""
    return state_of(ctx).replaying


def workflow_instance(ctx: Context) -> WorkflowInstance:
    return state_of(ctx).instance


@dataclass(frozen=True, slots=True)
class InstanceExecutionDetails:
    #: Events in history so far, including those of the current task.
    history_length: int


def instance_execution_details(ctx: Context) -> InstanceExecutionDetails:
    return InstanceExecutionDetails(history_length=state_of(ctx).history_length)


class _ReplayAwareLogger(logging.LoggerAdapter):
    """Drops records while the workflow replays, so each line is logged once."""

    def __init__(self, state: WorkflowState) -> None:
        super().__init__(
            state.base_logger,
            {"workflow_instance_id": state.instance.instance_id, "workflow_execution_id": state.instance.execution_id},
        )
        self._state = state

    def isEnabledFor(self, level: int) -> bool:
        return not self._state.replaying and self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self._state.replaying:
            super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**self.extra, **kwargs.get("extra", {})}  # type: ignore[dict-item]
        return f"[{self._state.instance.instance_id}] {msg}", kwargs


def logger(ctx: Context) -> logging.LoggerAdapter:
    """A logger tagged with the instance that is silent while replaying."""
    return _ReplayAwareLogger(state_of(ctx))
