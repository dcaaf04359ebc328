"""The worker's activity threads (``worker._TaskThreads``): reused, grown when a task never
returns, and a shutdown that does not wait for such a task."""

from __future__ import annotations

import threading

from django_workflows.worker import _Release, _TaskThreads


def test_threads_are_reused_grow_past_a_hung_task_and_shutdown_leaves_it() -> None:
    threads = _TaskThreads("test-activity")
    hung, release = threading.Event(), threading.Event()
    names: list[str] = []
    done = threading.Semaphore(0)

    def record() -> None:
        names.append(threading.current_thread().name)
        done.release()

    threads.submit(lambda: (hung.set(), release.wait(30)))
    assert hung.wait(10)
    for _ in range(3):  # one at a time: the same free thread serves them all
        threads.submit(record)
        assert done.acquire(timeout=10)
    assert len(set(names)) == 1
    # The hung task still holds its thread; shutdown returns without it.
    threads.shutdown(wait=True)
    release.set()


def test_release_frees_once() -> None:
    calls: list[int] = []
    release = _Release(lambda: calls.append(1))
    release()
    release()
    assert calls == [1]
