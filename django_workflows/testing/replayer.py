"""``Replayer``: replay recorded histories against the workflow code registered now, so a CI job
can refuse a deploy that would block running instances (Temporal's ``Replayer``).

    from django_workflows.testing import Replayer

    def test_deployed_histories_still_replay():
        report = Replayer().replay_files("tests/histories/")
        report.raise_for_mismatches()      # AssertionError listing every mismatch

Each history is replayed by a fresh executor, as a worker would after a deploy, without running
activities or writing anything. A mismatch names the instance, the history event, what the
history says the code did there (``expected``) and what the code does now (``got``). Histories
come from JSON files (``testing.history_files``, written by ``manage.py workflows history ID
--json`` or the admin's download), from a backend (``Replayer.replay_backend``), or as
``WorkflowHistory`` objects; ``manage.py replayworkflows`` runs the same over the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.backend import Backend
from ..engine.converter import Converter, default_converter
from ..engine.core import WorkflowInstance
from ..engine.errors import NondeterminismError
from ..engine.executor import Executor
from ..engine.expiration import EXPIRATION_WORKFLOW_NAME, expire_workflow_instances
from ..engine.history import Event
from ..engine.propagation import ContextPropagator
from ..engine.registry import Registry
from .history_files import WorkflowHistory, read_histories

__all__ = ["ReplayFailed", "ReplayMismatch", "ReplayReport", "Replayer"]

_SILENT = logging.getLogger("django_workflows.replayer")


@dataclass(frozen=True, slots=True)
class ReplayMismatch:
    """Where a history and the code disagree."""

    instance: WorkflowInstance
    workflow_name: str
    #: The history event (0 and "" when the failure is not tied to one).
    sequence_id: int
    event_type: str
    #: What the history records the code did there, and what the code does now.
    expected: str
    got: str
    message: str
    #: Where the history came from (a file), if known.
    source: str = ""

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        event = f"event {self.sequence_id} {self.event_type}" if self.sequence_id else "the history"
        return (
            f"{where}instance {self.instance.instance_id} (execution {self.instance.execution_id}), workflow "
            f"{self.workflow_name or '?'}: {event}: expected {self.expected}, got {self.got}"
        )


@dataclass(slots=True)
class ReplayReport:
    """The outcome of replaying histories."""

    replayed: int = 0
    mismatches: list[ReplayMismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def extend(self, other: ReplayReport) -> None:
        self.replayed += other.replayed
        self.mismatches.extend(other.mismatches)

    def summary(self) -> str:
        lines = [f"replayed {self.replayed} histories: {len(self.mismatches)} mismatch(es)"]
        lines += [f"- {mismatch}" for mismatch in self.mismatches]
        return "\n".join(lines)

    def raise_for_mismatches(self) -> None:
        """Raise ``ReplayFailed`` (an ``AssertionError``) if any history did not replay."""
        if self.mismatches:
            raise ReplayFailed(self)


class ReplayFailed(AssertionError):
    def __init__(self, report: ReplayReport) -> None:
        super().__init__(report.summary())
        self.report = report


class _Recorded:
    """The history provider of a replay: the recorded events, nothing else."""

    def __init__(self, events: Sequence[Event]) -> None:
        self._events = list(events)

    def get_workflow_instance_history(self, instance: WorkflowInstance, last_sequence_id: int | None = None) -> list[Event]:
        return [e for e in self._events if last_sequence_id is None or e.sequence_id > last_sequence_id]


HistoryLike = WorkflowHistory | Sequence[Event]


class Replayer:
    """Replays histories against ``registry`` (default: the project's registry, which the apps'
    ``workflows`` modules fill); ``converter`` and ``propagators`` as the backend's."""

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        converter: Converter = default_converter,
        propagators: Sequence[ContextPropagator] = (),
    ) -> None:
        self.registry = Registry()
        if registry is None:
            from ..registration import registry as project_registry

            registry = project_registry
        self.registry.update(registry)
        # The engine's own workflow (auto-expiration) is in every worker, so in its histories too.
        if EXPIRATION_WORKFLOW_NAME not in dict(self.registry.workflows()):
            self.registry.register_workflow(expire_workflow_instances, EXPIRATION_WORKFLOW_NAME)
        self.converter = converter
        self.propagators = list(propagators)

    def register_workflow(self, fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        return self.registry.register_workflow(fn, name)

    # -- replaying ---------------------------------------------------------------------------

    def replay(self, history: HistoryLike) -> ReplayReport:
        """Replay one history."""
        return self.replay_all([history])

    def replay_all(self, histories: Iterable[HistoryLike]) -> ReplayReport:
        """Replay every history; the report holds every mismatch (it does not stop at the first)."""
        report = ReplayReport()
        for item in histories:
            history = item if isinstance(item, WorkflowHistory) else WorkflowHistory.of(WorkflowInstance("replay", "replay"), item)
            report.replayed += 1
            mismatch = self._replay_one(history)
            if mismatch is not None:
                report.mismatches.append(mismatch)
        return report

    def replay_files(self, *paths: str | Path) -> ReplayReport:
        """Replay the histories in JSON files and directories of them (``history_files``)."""
        return self.replay_all(read_histories(*paths))

    def replay_backend(self, backend: Backend, instances: Iterable[WorkflowInstance]) -> ReplayReport:
        """Replay the stored histories of ``instances``."""
        return self.replay_all(
            WorkflowHistory.of(instance, backend.get_workflow_instance_history(instance)) for instance in instances
        )

    def _replay_one(self, history: WorkflowHistory) -> ReplayMismatch | None:
        def mismatch(sequence_id: int, event_type: str, expected: str, got: str, message: str) -> ReplayMismatch:
            return ReplayMismatch(history.instance, history.workflow_name, sequence_id, event_type, expected, got, message, history.source)

        executor = Executor(
            registry=self.registry,
            history_provider=_Recorded(history.events),
            instance=history.instance,
            converter=self.converter,
            propagators=self.propagators,
            logger=_SILENT,
        )
        try:
            executor.replay(history.events)
        except NondeterminismError as err:
            return mismatch(err.sequence_id, err.event_type, err.expected, err.got, err.message)
        except Exception as exc:  # noqa: BLE001 - a history this code cannot even read is a mismatch too
            return mismatch(0, "", "a history this code can replay", f"{type(exc).__name__}: {exc}", str(exc))
        finally:
            executor.close()
        finished = executor.unmatched_finish
        if finished is not None:
            return mismatch(
                finished.sequence_id,
                finished.type.value,
                "the workflow code to finish here, as the recorded run did",
                "code that has not finished",
                f"history event {finished.type.value} at history sequence {finished.sequence_id} records that the "
                "workflow finished, but the workflow code does not finish there",
            )
        return None
