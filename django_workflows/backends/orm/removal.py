"""Batch removal of finished executions (``OrmBackend.remove_workflow_instances``), bounded so
that workers running meanwhile are held up little (issue 21; bench/admin_scale.py measures it).

- Each batch is its own short transaction: at most ``batch_size`` executions and, whatever
  their histories' lengths, about ``ROW_BUDGET`` history rows (the instance row's
  ``last_sequence_id`` says how many an execution has). An execution with a longer history is
  cut down ``ROW_BUDGET`` rows at a time, oldest first, each cut its own transaction, before its
  last batch removes it.
- Children first, by lists of ids (``instance_id IN (...)``, payloads by their ids), never
  ``DELETE ... WHERE id IN (SELECT ...)``, which MariaDB runs without a semi-join.
- Candidates are locked with ``SKIP LOCKED`` where the database has it, so a batch never waits
  for a row someone else holds.
- Between batches the remover pauses as long as the batch took (``DUTY``): it holds the store
  half of the time at most. On SQLite that matters most: a batch holds the database's one write
  lock, and waiting writers poll for it (SQLite's busy handler sleeps up to 100 ms between
  tries), so a remover that begins its next batch at once would take the lock again before
  they wake: the pause is at least ``SQLITE_MIN_PAUSE``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connections

from ...engine.core import InstanceState
from ...models import HistoryEvent, Payload
from .completion import delete_execution_rows
from .store import OrmStore
from .transactions import raw_delete

#: History rows (and as many payloads) one batch deletes at most, roughly.
ROW_BUDGET = 10_000
#: The pause after a batch, as a multiple of the batch's duration.
DUTY = 1.0
#: Shortest pause on SQLite: longer than the longest sleep of a waiting writer's busy handler.
SQLITE_MIN_PAUSE = 0.12


def remove_finished(
    store: OrmStore,
    finished_before: datetime,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Remove every execution that finished before ``finished_before``; return how many."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    sqlite = connections[store.using].vendor == "sqlite"
    removed = 0
    while True:
        started = time.monotonic()
        count, rows = store.db.run(lambda: _batch(store, finished_before, batch_size))
        removed += count
        if count and progress is not None:
            progress(count, removed)
        # Until a batch finds nothing, not merely fewer: rows another transaction held for a
        # moment (SKIP LOCKED) are picked up by a later batch.
        if not count and not rows:
            if progress is not None:
                progress(0, removed)
            return removed
        took = time.monotonic() - started
        sleep(max(took * DUTY, SQLITE_MIN_PAUSE if sqlite else 0.0))


def _batch(store: OrmStore, finished_before: datetime, batch_size: int) -> tuple[int, int]:
    """One transaction: (executions removed, history rows cut from a long one)."""
    candidates = store.locking(
        store.instances().filter(completed_at__lt=finished_before).exclude(state=InstanceState.ACTIVE.value)
    )
    rows = list(candidates.order_by("completed_at", "id").values_list("pk", "last_sequence_id")[:batch_size])
    ids: list[int] = []
    budget = 0
    for pk, length in rows:
        if ids and budget + length > ROW_BUDGET:
            break
        ids.append(pk)
        budget += length
    if len(ids) == 1 and budget > ROW_BUDGET:
        cut = _cut_history(store, ids[0])
        if cut:
            return 0, cut
    if ids:
        delete_execution_rows(store.using, ids)
    return len(ids), 0


def _cut_history(store: OrmStore, row_id: int) -> int:
    """Delete the oldest ``ROW_BUDGET`` history rows of one execution, and their payloads."""
    history = HistoryEvent.objects.using(store.using).filter(instance_id=row_id)
    oldest: Any = history.order_by("sequence_id").values_list("sequence_id", flat=True).first()
    if oldest is None:
        return 0
    chunk = history.filter(sequence_id__lt=oldest + ROW_BUDGET)
    payload_ids = list(chunk.values_list("payload_id", flat=True))
    count = raw_delete(chunk)
    for start in range(0, len(payload_ids), 1000):
        raw_delete(Payload.objects.using(store.using).filter(pk__in=payload_ids[start : start + 1000]))
    return count
