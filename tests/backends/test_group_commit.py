"""``GroupCommit``: callers that arrive while a batch is written go in together in the next one,
each gets its own outcome, and a failing batch fails exactly its own callers."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from django_workflows.backends.group_commit import GroupCommit
from django_workflows.testing.conformance.support import wait_until


class BlockingWrites:
    """A ``write`` whose first batch waits for ``release``; records every batch."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release.wait(30), "the test never released the first batch"
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"cannot write {self.fail_on}")
        return [item * 10 for item in items]


def _submit_all(group: GroupCommit[int, int], items: list[int], writes: BlockingWrites) -> dict[int, object]:
    """Submit items[0] (it leads and blocks), then the rest while it is blocked; release."""
    outcomes: dict[int, object] = {}

    def submit(item: int) -> None:
        try:
            outcomes[item] = group.submit(item)
        except Exception as exc:  # noqa: BLE001 - the test looks at what each caller got
            outcomes[item] = exc

    threads = [threading.Thread(target=submit, args=(items[0],))]
    threads[0].start()
    assert writes.first_started.wait(30)
    for item in items[1:]:
        thread = threading.Thread(target=submit, args=(item,))
        thread.start()
        threads.append(thread)
    wait_until(lambda: len(group._queue) == len(items) - 1, what="the later callers to queue")
    writes.release.set()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    return outcomes


def test_callers_that_arrive_during_a_write_share_the_next_one() -> None:
    writes = BlockingWrites()
    group: GroupCommit[int, int] = GroupCommit(writes, max_batch=32)
    outcomes = _submit_all(group, list(range(1, 8)), writes)
    assert outcomes == {item: item * 10 for item in range(1, 8)}
    assert writes.batches[0] == [1]
    assert sorted(writes.batches[1]) == list(range(2, 8)), writes.batches
    assert (group.batches, group.items) == (2, 7)


def test_batches_hold_at_most_max_batch_items() -> None:
    writes = BlockingWrites()
    group: GroupCommit[int, int] = GroupCommit(writes, max_batch=3)
    outcomes = _submit_all(group, list(range(1, 9)), writes)
    assert outcomes == {item: item * 10 for item in range(1, 9)}
    assert [len(batch) for batch in writes.batches] == [1, 3, 3, 1], writes.batches


def test_a_failing_batch_fails_its_own_callers_only() -> None:
    writes = BlockingWrites(fail_on=5)
    group: GroupCommit[int, int] = GroupCommit(writes, max_batch=3)
    outcomes = _submit_all(group, list(range(1, 9)), writes)
    failed_batch = next(batch for batch in writes.batches if 5 in batch)
    for item in range(1, 9):
        if item in failed_batch:
            assert isinstance(outcomes[item], ValueError) and "cannot write 5" in str(outcomes[item])
        else:
            assert outcomes[item] == item * 10
    # The lead passed on after the failure: the later batch was written.
    assert writes.batches[-1] != failed_batch


def test_a_lone_caller_writes_at_once() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda items: [item + 1 for item in items], max_batch=4)
    assert [group.submit(i) for i in range(3)] == [1, 2, 3]
    assert (group.batches, group.items) == (3, 3)


def test_a_write_that_miscounts_its_outcomes_is_an_error() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda items: [], max_batch=4)
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        group.submit(1)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        GroupCommit(lambda items: list(items), max_batch=0)
