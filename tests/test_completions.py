"""``django_workflows.completions.commit`` on its own (no store): which errors are retried, for
how long, and when a completion that met the lease fence counts as done."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from django_workflows.completions import commit, delay
from django_workflows.engine.errors import CompletionRejected, LeaseLost


def _writes(*outcomes: Any) -> tuple[Callable[[], Any], list[int]]:
    """A write that raises or returns ``outcomes`` in turn; the list counts its calls."""
    calls: list[int] = []

    def write() -> Any:
        calls.append(1)
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return write, calls


def _commit(write: Callable[[], Any], *, committed: bool = False, lease_for: float = 60.0) -> Any:
    valid_until = time.monotonic() + lease_for
    return commit(write, committed=lambda: committed, lease_valid_until=lambda: valid_until, what="a test", sleep=lambda s: None)


def test_a_transient_error_is_retried_until_the_write_succeeds() -> None:
    write, calls = _writes(ConnectionError("reset"), OSError("gone"), "done")
    assert _commit(write).value == "done"
    assert len(calls) == 3


def test_a_repeat_that_meets_the_fence_is_done_if_the_completion_is_in_the_store() -> None:
    write, calls = _writes(ConnectionError("reply lost"), LeaseLost())
    done = _commit(write, committed=True)
    assert (done.value, done.found, len(calls)) == (None, True, 2)


def test_the_fence_without_the_completion_in_the_store_is_a_lost_lease() -> None:
    write, _ = _writes(ConnectionError("reset"), LeaseLost())
    with pytest.raises(LeaseLost):
        _commit(write, committed=False)


@pytest.mark.parametrize("error", [CompletionRejected(), ValueError("bad"), TypeError("bad")])
def test_definite_answers_are_not_retried(error: Exception) -> None:
    write, calls = _writes(error, "done")
    with pytest.raises(type(error)):
        _commit(write)
    assert len(calls) == 1


def test_retrying_stops_before_the_lease_runs_out() -> None:
    write, calls = _writes(ConnectionError("down"))
    with pytest.raises(ConnectionError):
        _commit(write, lease_for=0.5)  # the lease runs out within the margin: no retry
    assert len(calls) == 1


def test_the_backoff_is_bounded_and_jittered() -> None:
    waits = [delay(attempt) for attempt in range(1, 40)]
    assert all(0.025 <= wait <= 3.0 for wait in waits)
    assert len({round(wait, 6) for wait in waits[-10:]}) > 1  # jittered, not in step
