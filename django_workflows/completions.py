"""Committing what a task produced through the store's transient errors (pure core, used by
``worker``; docs/reliability.md, "Completion retries").

A worker's completion (``Backend.complete_workflow_task``, ``complete_activity_task``) can fail
for a reason that passes: a dropped connection, a restarting server, a lock wait that timed
out. ``commit`` tries it again, with a bounded, jittered backoff, while the task's lease is
still valid (and for at most ``RETRY_BUDGET`` seconds), so the result is not dropped and its
work not redone after the lease expires.

A failure may be *ambiguous*: the store committed and the connection dropped before the reply
came. The retry then meets the lease fence (the completion released the lease, or deleted the
activity's row), which the backend reports as ``LeaseLost``. Before believing it, ``commit``
asks whether the completion's own event is in the store (``Backend.has_event``: the workflow
task's fresh ``WorkflowTaskStarted`` event, the activity's result event): if it is, the first
attempt committed and the completion is done. Nothing is recorded twice, because every
completion is fenced by its lease: once one commits, no repetition can. The same question is
asked whenever a completion meets the fence, since a backend may itself have retried a write
after a lost connection (the ORM backend does, once).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .engine.errors import CompletionRejected, LeaseLost, NotSupported, WorkflowError, one_line

logger = logging.getLogger("django_workflows.worker")

T = TypeVar("T")

#: Longest time a completion is retried, however long its lease: a store that refuses it for
#: longer has no passing problem, and the task is better left to another worker.
RETRY_BUDGET = 30.0
#: The first wait between two attempts; it doubles up to ``_MAX_DELAY`` (each wait jittered
#: between half and one and a half of it, so that the workers a restart hit do not retry in step).
_FIRST_DELAY = 0.05
_MAX_DELAY = 2.0
#: A retry is not started this close to the lease's expiry (the store's clock decides it).
_LEASE_MARGIN = 0.5

#: Answers, not failures: retrying them cannot change them (engine errors, and the programming
#: errors of a result that cannot be written).
_DEFINITE = (LeaseLost, CompletionRejected, NotSupported, WorkflowError, TypeError, ValueError)


@dataclass(frozen=True, slots=True)
class Committed(Generic[T]):
    """A completion that is in the store: what the backend returned, or, when its reply was
    lost, ``None`` with ``found`` set (whatever it leased to this worker waits out its lease)."""

    value: T | None
    found: bool = False


def delay(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` from 1): capped, jittered."""
    return min(_MAX_DELAY, _FIRST_DELAY * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


def commit(
    write: Callable[[], T],
    *,
    committed: Callable[[], bool],
    lease_valid_until: Callable[[], float],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> Committed[T]:
    """Run ``write`` (a completion) until it succeeds, retrying transient errors (see the
    module docstring). ``committed`` tells whether the completion is in the store;
    ``lease_valid_until`` is when the lease runs out (``time.monotonic()``). Raises
    ``LeaseLost`` if the lease is gone and the completion is not in the store, the error of
    the last attempt once retrying is over, and definite errors (``CompletionRejected``...)
    at once."""
    give_up_at = time.monotonic() + RETRY_BUDGET
    failures = 0
    while True:
        try:
            return Committed(write())
        except LeaseLost:
            if _found(committed, what):
                return Committed(None, found=True)
            raise
        except _DEFINITE:
            raise
        except Exception as exc:
            failures += 1
            wait = delay(failures)
            if time.monotonic() + wait >= min(give_up_at, lease_valid_until() - _LEASE_MARGIN):
                if _found(committed, what):  # the last attempt committed after all
                    return Committed(None, found=True)
                logger.error("committing %s failed %d time(s), giving up: %s", what, failures, one_line(exc))
                raise
            log = logger.warning if failures == 1 else logger.info
            log("committing %s failed (%s); retrying in %.2f s", what, one_line(exc), wait)
            sleep(wait)


def _found(committed: Callable[[], bool], what: str) -> bool:
    """Whether the completion is in the store; False if the store cannot tell now."""
    try:
        found = committed()
    except Exception as exc:  # noqa: BLE001 - unknown: the caller's own answer stands
        logger.info("could not check whether %s committed (%s)", what, one_line(exc))
        return False
    if found:
        logger.info("%s had committed already (its reply was lost); nothing to redo", what)
    return found


__all__ = ["RETRY_BUDGET", "Committed", "commit", "delay"]
