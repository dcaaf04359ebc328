"""The Redis backend's own guarantees, at the backend level, against the real server at REDIS_URL.

The conformance suite (``test_conformance.py``) checks that it behaves like every other backend;
these cases check what is particular to it: leases fenced by token and recovered only after the
lock timeout (also for entries a dead worker read but never leased), signals around a
continue-as-new (go-workflows #493), one queue entry per instance, timers moved at their time,
stickiness handed back when its worker is gone, TTL expiration, tasks leased by completions (fenced
like polled ones), and the round trips a task costs.

Every case uses its own key prefix (parallel tox environments share the server) and deletes its
keys afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django_redis import get_redis_connection

from django_workflows.backends.redis import RedisBackend
from django_workflows.backends.redis import keys as redis_keys
from django_workflows.engine.backend import Feature, LeaseRequest, WorkflowTask
from django_workflows.engine.clock import utcnow
from django_workflows.engine.core import DEFAULT_QUEUE, InstanceState
from django_workflows.engine.errors import (
    CompletionRejected,
    InstanceNotFound,
    LeaseLost,
)
from django_workflows.engine.history import (
    ActivityCompletedAttributes,
    ActivityScheduledAttributes,
    EventType,
    TimerFiredAttributes,
    WorkflowEvent,
    WorkflowExecutionContinuedAsNewAttributes,
    new_event,
)
from django_workflows.testing.conformance.support import (
    WAIT,
    complete,
    new_instance,
    poll_workflow_task,
    signal_event,
    started_event,
    wait_until,
)

from .held_batch import HeldFirstBatch

pytestmark = pytest.mark.redis

QUEUES = (DEFAULT_QUEUE,)
# Short leases so that expiry happens within the test; the production defaults are minutes.
LOCK = 1.0


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"wf-redis-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    connection = get_redis_connection("workflows")
    for key in connection.scan_iter(match=f"{prefix}*", count=1000):
        connection.delete(key)


@pytest.fixture
def make(redis_prefix: str) -> Callable[..., RedisBackend]:
    """``make(**options)``: a backend on the test's keys; each call is another worker process."""

    def make(**options: Any) -> RedisBackend:
        return RedisBackend(connection="workflows", key_prefix=redis_prefix, **options)

    return make


def _ns(backend: RedisBackend) -> str:
    return redis_keys.namespace(backend.key_prefix)


def _activity_event(schedule_event_id: int = 1) -> Any:
    return new_event(ActivityScheduledAttributes(name="charge", inputs=["12"]), utcnow(), schedule_event_id=schedule_event_id)


def _activity_result(schedule_event_id: int = 1) -> Any:
    return new_event(ActivityCompletedAttributes(result="24"), utcnow(), schedule_event_id=schedule_event_id)


def _continue_as_new(backend: RedisBackend, task: Any, successor: Any) -> None:
    """Complete ``task`` by continuing its execution as ``successor``."""
    continued = new_event(WorkflowExecutionContinuedAsNewAttributes(continued_execution_id=successor.execution_id), utcnow())
    complete(
        backend,
        task,
        state=InstanceState.CONTINUED_AS_NEW,
        extra=[continued],
        workflow_events=[WorkflowEvent(successor, started_event(name="loop"))],
    )


# -- configuration ------------------------------------------------------------------------------


def test_selected_through_the_workflows_setting(redis_prefix: str) -> None:
    from django_workflows.backends import workflow_backends

    setting = {
        "default": {
            "BACKEND": "django_workflows.backends.redis.RedisBackend",
            "OPTIONS": {"connection": "workflows", "key_prefix": redis_prefix, "auto_expiration": 60, "sticky_timeout": 0},
        }
    }
    with override_settings(WORKFLOWS=setting):
        backend = workflow_backends["default"]
        assert isinstance(backend, RedisBackend)
        assert backend.key_prefix == redis_prefix
        assert backend.options.sticky == timedelta(0)
        assert backend.feature_supported(Feature.AUTO_EXPIRATION)
        assert backend.feature_supported(Feature.REMOVE_INSTANCES)
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        assert get_redis_connection("workflows").exists(redis_keys.instance(_ns(backend), instance.instance_id, instance.execution_id))


def test_bad_configuration_names_what_is_wrong(make: Callable[..., RedisBackend]) -> None:
    with pytest.raises(ValueError, match="'nope'"):
        RedisBackend(connection="nope")
    with pytest.raises(ValueError, match="django-redis"):
        RedisBackend(connection="default")  # a LocMemCache
    with pytest.raises(ValueError, match="auto_expiration"):
        make(auto_expiration=-5)
    with pytest.raises(TypeError, match="key_prefix"):
        RedisBackend(connection="workflows", key_prefix=3)  # type: ignore[arg-type]
    assert not make().feature_supported(Feature.AUTO_EXPIRATION)


# -- fencing and recovery -----------------------------------------------------------------------


def test_recovered_workflow_task_fences_the_stalled_worker(make: Callable[..., RedisBackend]) -> None:
    stalled = make(workflow_lock_timeout=LOCK, worker_name="stalled")
    rescuer = make(workflow_lock_timeout=LOCK, worker_name="rescuer")
    instance = new_instance()
    stalled.create_workflow_instance(instance, started_event())
    claimed_at = time.monotonic()
    task = poll_workflow_task(stalled)
    assert rescuer.get_workflow_task(QUEUES, 0) is None  # the lease holds

    recovered = poll_workflow_task(rescuer)
    # Recovery waits for the lease to run out (server clock, millisecond resolution).
    assert time.monotonic() - claimed_at >= LOCK - 0.01
    assert recovered.instance == instance
    assert recovered.lease_token != task.lease_token
    assert [e.type for e in recovered.new_events] == [EventType.WORKFLOW_EXECUTION_STARTED]

    # go-workflows' extend claims unconditionally; here the stalled worker is fenced off.
    with pytest.raises(LeaseLost):
        stalled.extend_workflow_task(task)
    with pytest.raises(LeaseLost):
        complete(stalled, task)
    stalled.abandon_workflow_task(task)  # a no-op: it no longer holds the lease
    rescuer.extend_workflow_task(recovered)
    complete(rescuer, recovered)
    history = rescuer.get_workflow_instance_history(instance)
    assert [e.sequence_id for e in history] == [1, 2]


def _stalled_and_rescuer(make: Callable[..., RedisBackend], **lock: float) -> tuple[RedisBackend, RedisBackend, Any]:
    """Two workers with short ``lock`` timeouts, and an instance whose first task ``stalled``
    completed, scheduling one activity."""
    stalled = make(worker_name="stalled", sticky_timeout=0, **lock)
    rescuer = make(worker_name="rescuer", sticky_timeout=0, **lock)
    instance = new_instance()
    stalled.create_workflow_instance(instance, started_event())
    activity = _activity_event()
    complete(stalled, poll_workflow_task(stalled), extra=[activity], activity_events=[activity])
    return stalled, rescuer, instance


def test_recovered_activity_task_fences_the_stalled_worker(make: Callable[..., RedisBackend]) -> None:
    stalled, rescuer, _ = _stalled_and_rescuer(make, activity_lock_timeout=LOCK)

    claimed_at = time.monotonic()
    task = stalled.get_activity_task(QUEUES, WAIT)
    assert task is not None and task.lease_count == 1
    assert rescuer.get_activity_task(QUEUES, 0) is None
    recovered = rescuer.get_activity_task(QUEUES, WAIT)
    assert recovered is not None
    assert time.monotonic() - claimed_at >= LOCK - 0.01
    assert recovered.id == task.id and recovered.lease_count == 2

    with pytest.raises(LeaseLost):
        stalled.extend_activity_task(task)
    with pytest.raises(LeaseLost):
        stalled.complete_activity_task(task, _activity_result())
    rescuer.complete_activity_task(recovered, _activity_result())
    result_task = poll_workflow_task(rescuer)
    assert [e.type for e in result_task.new_events] == [EventType.ACTIVITY_COMPLETED]


def test_workflow_task_leased_by_an_activity_completion_is_fenced(make: Callable[..., RedisBackend]) -> None:
    stalled, rescuer, instance = _stalled_and_rescuer(make, workflow_lock_timeout=LOCK)
    activity_task = stalled.get_activity_task(QUEUES, WAIT)
    assert activity_task is not None
    handed = stalled.complete_activity_task(activity_task, _activity_result(), workflow_queues=QUEUES)
    assert handed is not None and handed.instance == instance
    # Leased, not queued: nobody polls it while the lease holds, and no stream entry is left.
    ns = _ns(stalled)
    assert rescuer.get_workflow_task(QUEUES, 0) is None
    assert get_redis_connection("workflows").xlen(redis_keys.workflow_queue(ns, DEFAULT_QUEUE)) == 0
    stalled.signal_workflow(instance.instance_id, signal_event())  # does not queue it again

    recovered = poll_workflow_task(rescuer)  # after the lease ran out
    assert recovered.lease_token != handed.lease_token
    assert [e.type for e in recovered.new_events] == [EventType.ACTIVITY_COMPLETED, EventType.SIGNAL_RECEIVED]
    with pytest.raises(LeaseLost):
        stalled.extend_workflow_task(handed)
    with pytest.raises(LeaseLost):
        complete(stalled, handed)
    complete(rescuer, recovered, finish=True)
    assert rescuer.get_workflow_instance_state(instance) is InstanceState.FINISHED


def test_activity_leased_by_a_workflow_completion_is_fenced_and_can_be_given_back(
    make: Callable[..., RedisBackend],
) -> None:
    mine = make(activity_lock_timeout=LOCK, worker_name="mine", sticky_timeout=0)
    other = make(activity_lock_timeout=LOCK, worker_name="other", sticky_timeout=0)
    instance = new_instance()
    mine.create_workflow_instance(instance, started_event())
    first, second = _activity_event(1), _activity_event(2)
    leased: list[Any] = []
    complete(
        mine, poll_workflow_task(mine), extra=[first, second], activity_events=[first, second], leased=leased,
        lease=LeaseRequest(QUEUES, 2),
    )
    handed, kept = leased
    assert (handed.activity_id, handed.lease_count, kept.lease_count) == (first.id, 1, 1)
    assert other.get_activity_task(QUEUES, 0) is None  # both are leased; none is queued
    # Given back (a stopping worker), it is queued for anyone, and the give-back does not count.
    mine.abandon_activity_task(handed)
    polled = other.get_activity_task(QUEUES, WAIT)
    assert polled is not None and polled.activity_id == first.id and polled.lease_count == 1
    with pytest.raises(LeaseLost):
        mine.complete_activity_task(handed, _activity_result(1))
    other.complete_activity_task(polled, _activity_result(1))
    # The other one's lease runs out like a polled one's: recovered, and its late result refused.
    recovered = other.get_activity_task(QUEUES, WAIT)
    assert recovered is not None and recovered.activity_id == second.id and recovered.lease_count == 2
    with pytest.raises(LeaseLost):
        mine.complete_activity_task(kept, _activity_result(2))
    other.complete_activity_task(recovered, _activity_result(2))
    task = poll_workflow_task(other)
    assert sorted(e.schedule_event_id for e in task.new_events) == [1, 2]


def test_entry_read_by_a_worker_that_died_before_leasing_it_is_recovered(make: Callable[..., RedisBackend]) -> None:
    # A worker's blocking read moves the stream entry into its pending entries; if the process
    # dies before its next poll leases it, the entry waits there. Other workers claim it once it
    # has been idle for the lock timeout (XAUTOCLAIM).
    backend = make(workflow_lock_timeout=LOCK, worker_name="survivor")
    instance = new_instance()
    backend.create_workflow_instance(instance, started_event())
    connection = get_redis_connection("workflows")
    stream = redis_keys.workflow_queue(_ns(backend), DEFAULT_QUEUE)
    read_at = time.monotonic()
    assert connection.xreadgroup(redis_keys.GROUP, "dead-worker", {stream: ">"}, count=10)
    assert backend.get_workflow_task(QUEUES, 0) is None

    task = poll_workflow_task(backend)
    assert time.monotonic() - read_at >= LOCK - 0.01
    assert task.instance == instance
    assert connection.xpending(stream, redis_keys.GROUP)["pending"] == 0  # leased entries are acknowledged


# -- signals around continue-as-new (go-workflows #493) ------------------------------------------


def test_signal_around_continue_as_new_never_lands_on_the_continued_execution(make: Callable[..., RedisBackend]) -> None:
    backend = make(sticky_timeout=0)
    first = new_instance()
    backend.create_workflow_instance(first, started_event(name="loop"))
    complete(backend, poll_workflow_task(backend))
    backend.signal_workflow(first.instance_id, signal_event(arg='"a"'))
    task = poll_workflow_task(backend)

    second = new_instance(first.instance_id)
    # A signal while the continuing task runs: the completion is refused, nothing is lost.
    assert backend.signal_workflow(first.instance_id, signal_event(arg='"b"')) == first
    with pytest.raises(CompletionRejected):
        _continue_as_new(backend, task, second)
    assert backend.get_workflow_instance_state(first) is InstanceState.ACTIVE
    assert backend.get_latest_execution(first.instance_id) == first
    retry = poll_workflow_task(backend)
    assert [e.attributes.arg for e in retry.new_events] == ['"a"', '"b"']  # type: ignore[attr-defined]
    _continue_as_new(backend, retry, second)

    # A signal after it: the new execution gets it, the old history never does.
    assert backend.signal_workflow(first.instance_id, signal_event(arg='"c"')) == second
    task = poll_workflow_task(backend)
    assert task.instance == second
    assert [e.type for e in task.new_events] == [EventType.WORKFLOW_EXECUTION_STARTED, EventType.SIGNAL_RECEIVED]
    assert task.new_events[1].attributes.arg == '"c"'  # type: ignore[attr-defined]
    old = backend.get_workflow_instance_history(first)
    assert [e.attributes.arg for e in old if e.type is EventType.SIGNAL_RECEIVED] == ['"a"', '"b"']  # type: ignore[attr-defined]
    assert old[-1].type is EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert backend.get_workflow_instance_state(first) is InstanceState.CONTINUED_AS_NEW


# -- queues ---------------------------------------------------------------------------------------


def test_an_instance_is_queued_once_however_many_events_arrive(make: Callable[..., RedisBackend]) -> None:
    backend = make(sticky_timeout=0)
    other = make(sticky_timeout=0)
    connection = get_redis_connection("workflows")
    stream = redis_keys.workflow_queue(_ns(backend), DEFAULT_QUEUE)
    instance = new_instance()
    backend.create_workflow_instance(instance, started_event())
    for n in range(20):
        backend.signal_workflow(instance.instance_id, signal_event(arg=str(n)))
    assert connection.xlen(stream) == 1
    assert backend.get_stats().pending_workflow_tasks == {DEFAULT_QUEUE: 1}

    task = poll_workflow_task(backend)
    assert len(task.new_events) == 21
    assert other.get_workflow_task(QUEUES, 0) is None
    # Events that arrive while the task runs do not queue it a second time...
    for n in range(5):
        backend.signal_workflow(instance.instance_id, signal_event(arg=str(20 + n)))
    assert connection.xlen(stream) == 1
    # ...and completing queues it again, once, with exactly those events.
    complete(backend, task)
    assert connection.xlen(stream) == 1
    again = poll_workflow_task(other)
    assert [e.attributes.arg for e in again.new_events] == [str(20 + n) for n in range(5)]  # type: ignore[attr-defined]
    complete(other, again)
    assert connection.xlen(stream) == 0
    assert backend.get_stats().pending_workflow_tasks.get(DEFAULT_QUEUE, 0) == 0


def test_future_event_is_moved_at_its_time(make: Callable[..., RedisBackend]) -> None:
    backend = make(sticky_timeout=0)
    instance = new_instance()
    backend.create_workflow_instance(instance, started_event())
    task = poll_workflow_task(backend)
    now = utcnow()
    due = now + timedelta(seconds=1)
    timer = new_event(TimerFiredAttributes(scheduled_at=now, at=due), now, schedule_event_id=1, visible_at=due)
    complete(backend, task, timer_events=[timer])
    assert [e.id for e in backend.get_future_events()] == [timer.id]
    assert backend.get_workflow_task(QUEUES, 0) is None

    fired = poll_workflow_task(backend)
    assert utcnow() >= due - timedelta(milliseconds=20)  # never before its time
    assert [e.id for e in fired.new_events] == [timer.id]
    assert backend.get_future_events() == []
    assert get_redis_connection("workflows").zcard(redis_keys.future_events(_ns(backend))) == 0


def test_sticky_task_goes_back_to_the_queue_when_its_worker_is_gone(make: Callable[..., RedisBackend]) -> None:
    gone = make(sticky_timeout=LOCK, worker_name="gone")
    other = make(sticky_timeout=LOCK, worker_name="other")
    connection = get_redis_connection("workflows")
    instance = new_instance()
    gone.create_workflow_instance(instance, started_event())
    complete(gone, poll_workflow_task(gone))
    completed_at = time.monotonic()
    gone.signal_workflow(instance.instance_id, signal_event())
    # The task waits in the sticky worker's own stream, not in the shared queue.
    assert connection.xlen(redis_keys.sticky_queue(_ns(gone), "gone")) == 1
    assert other.get_workflow_task(QUEUES, 0) is None

    task = poll_workflow_task(other)
    assert time.monotonic() - completed_at >= LOCK - 0.01
    assert task.instance == instance
    assert connection.xlen(redis_keys.sticky_queue(_ns(gone), "gone")) == 0


def test_sticky_worker_takes_its_task_before_anyone_else(make: Callable[..., RedisBackend]) -> None:
    sticky = make(sticky_timeout=WAIT, worker_name="sticky")
    other = make(sticky_timeout=WAIT, worker_name="other")
    instance = new_instance()
    sticky.create_workflow_instance(instance, started_event())
    complete(sticky, poll_workflow_task(sticky))
    # The other worker reads the shared queue first and finds nothing it may take.
    assert other.get_workflow_task(QUEUES, 0) is None
    sticky.signal_workflow(instance.instance_id, signal_event())
    assert other.get_workflow_task(QUEUES, 0) is None
    task = sticky.get_workflow_task(QUEUES, 0)
    assert task is not None and task.instance == instance


# -- expiration ---------------------------------------------------------------------------------


def test_finished_executions_expire_and_active_ones_do_not(make: Callable[..., RedisBackend]) -> None:
    backend = make(auto_expiration=1, sticky_timeout=0)
    connection = get_redis_connection("workflows")
    ns = _ns(backend)
    first = new_instance()
    backend.create_workflow_instance(first, started_event())
    second = new_instance(first.instance_id)
    _continue_as_new(backend, poll_workflow_task(backend), second)
    ended_keys = [redis_keys.instance(ns, first.instance_id, first.execution_id), redis_keys.history(ns, first.instance_id, first.execution_id)]
    assert all(0 < connection.pttl(key) <= 1000 for key in ended_keys)
    assert connection.pttl(redis_keys.instance(ns, second.instance_id, second.execution_id)) == -1
    assert connection.pttl(f"{ns}executions:{first.instance_id}") == -1  # the instance id lives on

    wait_until(lambda: not any(connection.exists(key) for key in ended_keys), what="the ended execution to expire")
    with pytest.raises(InstanceNotFound):
        backend.get_workflow_instance_state(first)
    assert backend.get_latest_execution(first.instance_id) == second

    complete(backend, poll_workflow_task(backend), finish=True)
    wait_until(
        lambda: not connection.exists(redis_keys.instance(ns, second.instance_id, second.execution_id)),
        what="the finished execution to expire",
    )
    with pytest.raises(InstanceNotFound):
        backend.get_latest_execution(first.instance_id)
    # Finishing pruned the index of finished executions of what had expired by then.
    assert connection.zrange(f"{ns}finished", 0, -1) == [f"{second.instance_id}:{second.execution_id}".encode()]


# -- round trips ----------------------------------------------------------------------------------
# -- round trips ----------------------------------------------------------------------------------


def test_script_calls_survive_a_flushed_script_cache_and_dropped_connections(make: Callable[..., RedisBackend]) -> None:
    backend = make()
    instance = new_instance()
    backend.create_workflow_instance(instance, started_event())
    # The server forgets the scripts (a restart without persistence, SCRIPT FLUSH): loaded again.
    connection = get_redis_connection("workflows")
    connection.script_flush()
    task = poll_workflow_task(backend)
    # The server drops the connections script calls keep: they reconnect (redis-py's retry).
    addresses = ["%s:%d" % conn._sock.getsockname()[:2] for conn in backend._scripts._idle]
    assert addresses
    for address in addresses:
        connection.client_kill(address)
    complete(backend, task, finish=True)
    assert backend.get_workflow_instance_state(instance) is InstanceState.FINISHED
    backend.close()
    assert backend._scripts._idle == []  # given back to the pool


class _RoundTrips:
    """Counts the commands a backend sends: through its client, and its script calls (which
    use connections of their own, ``lua.Scripts``)."""

    def __init__(self, backend: RedisBackend) -> None:
        self.count = 0
        client, scripts = backend._redis, backend._scripts

        def counting(original: Callable[..., Any]) -> Callable[..., Any]:
            def counted(*args: Any, **options: Any) -> Any:
                self.count += 1
                return original(*args, **options)

            return counted

        client.execute_command = counting(client.execute_command)  # type: ignore[method-assign]
        scripts._send = counting(scripts._send)  # type: ignore[method-assign]

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


@pytest.mark.parametrize("handed_on", [False, True], ids=["polled", "leased-on-completion"])
def test_one_round_trip_per_claim_and_per_completion(make: Callable[..., RedisBackend], handed_on: bool) -> None:
    """Polled: claim, complete, claim the activity, complete it. Leased on completion: the
    workflow task's completion leases the activity, whose completion leases the workflow's next
    task, so the second claim and the workflow's poll after the result are not needed."""
    backend = make(sticky_timeout=0)
    lease, queues = (LeaseRequest(QUEUES, 1), QUEUES) if handed_on else (LeaseRequest(), ())

    def one_activity() -> list[int]:
        counts = []
        instance = new_instance()
        backend.create_workflow_instance(instance, started_event())
        rounds.take()
        task = poll_workflow_task(backend)
        counts.append(rounds.take())
        activity = _activity_event()
        leased: list[Any] = []
        complete(backend, task, extra=[activity], activity_events=[activity], leased=leased, lease=lease)
        counts.append(rounds.take())
        activity_task = leased[0] if leased else backend.get_activity_task(QUEUES, WAIT)
        assert activity_task is not None
        counts.append(rounds.take())
        next_task = backend.complete_activity_task(activity_task, _activity_result(), workflow_queues=queues)
        counts.append(rounds.take())
        assert (next_task is not None) is handed_on
        next_task = next_task or poll_workflow_task(backend)
        assert [e.type for e in next_task.new_events] == [EventType.ACTIVITY_COMPLETED]
        counts.append(rounds.take())
        complete(backend, next_task, finish=True)
        assert backend.get_workflow_instance_state(instance) is InstanceState.FINISHED
        return counts

    rounds = _RoundTrips(backend)
    one_activity()  # loads the scripts into the server's cache
    assert one_activity() == ([1, 1, 0, 1, 0] if handed_on else [1, 1, 1, 1, 1])


# -- grouped activity completions ---------------------------------------------------------------


def _schedule(backend: RedisBackend, count: int) -> Any:
    """An instance whose first task scheduled ``count`` activities; the instance."""
    instance = new_instance()
    backend.create_workflow_instance(instance, started_event())
    events = [_activity_event(i + 1) for i in range(count)]
    complete(backend, poll_workflow_task(backend), extra=events, activity_events=events)
    return instance


def _claim(backend: RedisBackend, count: int) -> list[Any]:
    tasks: list[Any] = []
    while len(tasks) < count:
        claimed = backend.get_activity_tasks(QUEUES, WAIT, count - len(tasks))
        assert claimed, f"only {len(tasks)} of {count} activities were handed out"
        tasks += claimed
    return tasks


def _delivered(backend: RedisBackend, handed: list[Any], count: int) -> dict[str, list[int]]:
    """Run the workflow tasks (those ``handed`` on first, then polled ones) until ``count``
    activity results arrived; their schedule ids by instance id."""
    delivered: dict[str, list[int]] = {}
    seen = 0
    while seen < count:
        task = handed.pop() if handed else poll_workflow_task(backend)
        ids = [e.schedule_event_id for e in task.new_events if e.type is EventType.ACTIVITY_COMPLETED]
        delivered.setdefault(task.instance.instance_id, []).extend(ids)
        seen += len(ids)
        complete(backend, task)
    return {instance_id: sorted(ids) for instance_id, ids in delivered.items()}


def test_completions_that_arrive_together_share_one_script_call(make: Callable[..., RedisBackend]) -> None:
    """Eight completions of two executions: the first alone, the seven that queued behind it in
    one call. Each execution's next task is leased to exactly one of its callers."""
    backend = make(sticky_timeout=0)
    first, second = _schedule(backend, 4), _schedule(backend, 4)
    tasks = _claim(backend, 8)
    lead = next(task for task in tasks if task.instance == first)
    rest = [task for task in tasks if task is not lead]
    backend._scripts("activity_complete", "warm-up", 1000, "", 0)  # loaded: no SCRIPT LOAD counted below
    rounds = _RoundTrips(backend)
    held = HeldFirstBatch(backend._completions)
    outcomes = held.complete_together(
        lambda task: backend.complete_activity_task(task, _activity_result(task.event.schedule_event_id), workflow_queues=QUEUES),
        lead,
        rest,
    )
    assert (held.group.batches, held.group.items) == (2, 8)
    assert rounds.take() == 2
    handed = [outcome for outcome in outcomes.values() if outcome is not None]
    assert all(isinstance(task, WorkflowTask) for task in handed), outcomes
    assert outcomes[lead.id] is not None  # alone: its execution's task was free
    assert sorted(task.instance.instance_id for task in handed) == sorted([first.instance_id, second.instance_id])
    assert _delivered(backend, handed, 8) == {first.instance_id: [1, 2, 3, 4], second.instance_id: [1, 2, 3, 4]}


def test_a_lost_lease_in_a_batch_fails_only_its_own_completion(make: Callable[..., RedisBackend]) -> None:
    backend, thief = make(sticky_timeout=0), make(worker_name="thief")
    instance = _schedule(backend, 4)
    tasks = sorted(_claim(backend, 4), key=lambda task: task.event.schedule_event_id)
    # The lease of the third runs out and another worker takes the activity over.
    ns, connection = _ns(backend), get_redis_connection("workflows")
    connection.hset(f"{ns}activity:{tasks[2].id}", "until", 0)
    connection.zadd(f"{ns}act-leases:{DEFAULT_QUEUE}", {tasks[2].id: 0})
    (stolen,) = thief.get_activity_tasks(QUEUES, WAIT, 1)
    assert stolen.id == tasks[2].id and stolen.lease_token != tasks[2].lease_token
    held = HeldFirstBatch(backend._completions)
    outcomes = held.complete_together(
        lambda task: backend.complete_activity_task(task, _activity_result(task.event.schedule_event_id)), tasks[0], tasks[1:]
    )
    assert held.group.batches == 2 and held.group.items == 4
    assert isinstance(outcomes[tasks[2].id], LeaseLost), outcomes
    assert [outcomes[task.id] for task in tasks if task is not tasks[2]] == [None, None, None]
    assert _delivered(backend, [], 3) == {instance.instance_id: [1, 2, 4]}
    # The thief's lease holds: its result is taken.
    assert thief.complete_activity_task(stolen, _activity_result(3)) is None
    assert _delivered(backend, [], 1) == {instance.instance_id: [3]}


def test_completions_taking_work_from_other_queues_go_in_their_own_calls(make: Callable[..., RedisBackend]) -> None:
    """A batch's callers may poll different workflow queues (two workers on one backend): each
    set of queues is one call, so nobody is handed a task from a queue it does not poll; callers
    that take no task go in with the first set."""
    backend = make(sticky_timeout=0)
    instances = [_schedule(backend, 1) for _ in range(4)]
    by_instance = {task.instance: task for task in _claim(backend, 4)}
    lead, polls, elsewhere, takes_none = (by_instance[instance] for instance in instances)
    queues = {lead.id: QUEUES, polls.id: QUEUES, elsewhere.id: ("elsewhere",), takes_none.id: ()}
    backend._scripts("activity_complete", "warm-up", 1000, "", 0)  # loaded: no SCRIPT LOAD counted below
    rounds = _RoundTrips(backend)
    held = HeldFirstBatch(backend._completions)
    outcomes = held.complete_together(
        lambda task: backend.complete_activity_task(task, _activity_result(), workflow_queues=queues[task.id]),
        lead,
        [polls, elsewhere, takes_none],
    )
    assert (held.group.batches, held.group.items) == (2, 4)
    assert rounds.take() == 3  # the lead; then the default queue's set (with takes_none), "elsewhere"
    assert {task_id: getattr(outcome, "instance", outcome) for task_id, outcome in outcomes.items()} == {
        lead.id: instances[0], polls.id: instances[1], elsewhere.id: None, takes_none.id: None
    }
    polled = {poll_workflow_task(backend).instance for _ in range(2)}
    assert polled == {instances[2], instances[3]}


def test_workflow_task_completions_that_arrive_together_share_one_script_call(make: Callable[..., RedisBackend]) -> None:
    """Four workflow task completions: the first alone, three in one call behind it. Each is
    fenced and answered on its own: a lease that ran out is refused, a task that would finish
    past an unseen signal is rejected, and the others finish."""
    backend = make(sticky_timeout=0)
    instances = [new_instance() for _ in range(4)]
    for instance in instances:
        backend.create_workflow_instance(instance, started_event())
    claimed: dict[Any, Any] = {}
    while len(claimed) < 4:
        claimed.update((task.instance, task) for task in backend.get_workflow_tasks(QUEUES, WAIT, 4 - len(claimed)))
    lead, finishes, lost, rejected = (claimed[instance] for instance in instances)
    connection = get_redis_connection("workflows")
    connection.hset(redis_keys.instance(_ns(backend), lost.instance.instance_id, lost.instance.execution_id), "until", 0)
    backend.signal_workflow(rejected.instance.instance_id, signal_event())
    backend._scripts("workflow_complete")  # loaded: no SCRIPT LOAD counted below
    rounds = _RoundTrips(backend)
    held = HeldFirstBatch(backend._workflow_completions)
    outcomes = held.complete_together(lambda task: complete(backend, task, finish=True), lead, [finishes, lost, rejected])
    assert (held.group.batches, held.group.items) == (2, 4)
    assert rounds.take() == 2
    assert isinstance(outcomes[lost.id], LeaseLost), outcomes
    assert isinstance(outcomes[rejected.id], CompletionRejected), outcomes
    states = [backend.get_workflow_instance_state(instance) for instance in instances]
    assert states == [InstanceState.FINISHED, InstanceState.FINISHED, InstanceState.ACTIVE, InstanceState.ACTIVE]
    again = poll_workflow_task(backend)  # the rejected one, queued again with its signal
    assert again.instance == rejected.instance
    assert [e.type for e in again.new_events] == [EventType.WORKFLOW_EXECUTION_STARTED, EventType.SIGNAL_RECEIVED]
