"""``SqliteWriters``: SQLite writers queue per thread and, through an ``flock`` of the database
file, per process. Two queues on one file stand for two processes here: ``flock`` locks belong
to open file descriptions, so two descriptors of one process exclude each other like two
processes do."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from django_workflows.backends.orm.sqlite_writers import SqliteWriters


def _connection(name: object) -> SimpleNamespace:
    return SimpleNamespace(settings_dict={"NAME": name})


def _locked_by_someone(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"")
    return path


def test_a_second_process_waits_for_the_first(db_file: Path) -> None:
    first, second = SqliteWriters(), SqliteWriters()
    order: list[str] = []

    def other_process() -> None:
        with second.hold(_connection(str(db_file))):
            order.append("second")

    with first.hold(_connection(str(db_file))):
        thread = threading.Thread(target=other_process)
        thread.start()
        thread.join(0.2)
        assert thread.is_alive(), "the second writer did not wait for the first"
        order.append("first done")
    thread.join(30)
    assert order == ["first done", "second"]


def test_nested_holds_keep_the_file_lock_until_the_outermost_ends(db_file: Path) -> None:
    writers = SqliteWriters()
    connection = _connection(str(db_file))
    with writers.hold(connection):
        with writers.hold(connection):
            assert _locked_by_someone(db_file)
        assert _locked_by_someone(db_file), "the inner hold released the outer one's lock"
    assert not _locked_by_someone(db_file)


def test_threads_of_one_process_take_turns(db_file: Path) -> None:
    writers = SqliteWriters()
    inside = 0
    most = 0
    guard = threading.Lock()

    def write() -> None:
        nonlocal inside, most
        for _ in range(50):
            with writers.hold(_connection(str(db_file))):
                with guard:
                    inside += 1
                    most = max(most, inside)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert most == 1


@pytest.mark.parametrize("name", [":memory:", "file:memorydb?mode=memory&cache=shared", "", None])
def test_databases_without_a_file_queue_threads_only(name: object) -> None:
    writers = SqliteWriters()
    with writers.hold(_connection(name)):
        pass
    assert writers._descriptors == {}


def test_a_file_created_after_the_first_write_is_locked_from_then_on(tmp_path: Path) -> None:
    path = tmp_path / "created-by-the-first-connection.sqlite3"
    writers = SqliteWriters()
    with writers.hold(_connection(str(path))):
        assert not path.exists()
    path.write_bytes(b"")
    with writers.hold(_connection(str(path))):
        assert _locked_by_someone(path)


# The child only makes system calls and exits with os._exit, so the threads pytest-xdist runs
# beside this test cannot leave it a lock it would wait for.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_queues_against_its_parent(db_file: Path) -> None:
    """A child of a preforking server shares the parent's open file descriptions; it must open
    its own descriptor, or the two would share one flock and never exclude each other."""
    writers = SqliteWriters()
    connection = _connection(str(db_file))
    with writers.hold(connection):
        pass
    read_end, write_end = os.pipe()
    with writers.hold(connection):
        pid = os.fork()
        if pid == 0:  # the child: would block if it queued against the parent; report instead
            try:
                fd = writers._descriptor(str(db_file))
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    os.write(write_end, b"got the lock")
                except BlockingIOError:
                    os.write(write_end, b"waited")
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    assert os.read(read_end, 64) == b"waited"
    os.close(read_end)
    os.close(write_end)
