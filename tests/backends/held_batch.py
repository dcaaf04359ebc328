"""``HeldFirstBatch``: makes a backend's ``GroupCommit`` hold its first batch in its write, so that
completions submitted meanwhile queue and go in together as the second batch (the ORM and Redis
group-commit tests; activity or workflow tasks)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django_workflows.backends.group_commit import GroupCommit
from django_workflows.engine.backend import ActivityTask, WorkflowTask
from django_workflows.testing.conformance.support import wait_until

Task = TypeVar("Task", ActivityTask, WorkflowTask)


class HeldFirstBatch:
    """Holds ``group``'s first batch until the rest of the callers queued behind it."""

    def __init__(self, group: GroupCommit[Any, Any]) -> None:
        self.group = group
        self._write: Callable[[Sequence[Any]], Any] = group._write
        self.writing = threading.Event()
        self.release = threading.Event()
        group._write = self._held  # type: ignore[method-assign]

    def _held(self, items: Sequence[Any]) -> Any:
        if not self.writing.is_set():
            self.writing.set()
            assert self.release.wait(30), "the test never released the first batch"
        return self._write(items)

    def complete_together(
        self, complete: Callable[[Task], Any], first: Task, rest: list[Task]
    ) -> dict[str, Any]:
        """``complete(first)`` alone, then ``rest`` in one batch, each in its own thread; each
        task's outcome (what ``complete`` returned or raised) by task id."""
        outcomes: dict[str, Any] = {}

        def finish(task: Task) -> None:
            try:
                outcomes[task.id] = complete(task)
            except Exception as exc:  # noqa: BLE001 - the test looks at what each caller got
                outcomes[task.id] = exc

        threads = [threading.Thread(target=finish, args=(first,))]
        threads[0].start()
        assert self.writing.wait(30)
        for task in rest:
            threads.append(threading.Thread(target=finish, args=(task,)))
            threads[-1].start()
        wait_until(lambda: len(self.group._queue) == len(rest), what="the other completions to queue")
        self.release.set()
        for thread in threads:
            thread.join(60)
            assert not thread.is_alive()
        return outcomes
