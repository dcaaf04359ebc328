"""``RedisBackend``: everything in Redis, through a django-redis connection (port of go-workflows'
``backend/redis``).

Task queues are streams read through a consumer group, one per queue for workflow tasks and one
for activity tasks, plus a stream per worker for executions sticky to it. An instance is queued
at most once however many events arrive. Timers wait in a sorted set until they are due. Every
state change is one Lua script (``scripts/*.lua``), so it is atomic, and a finished execution's
keys can expire by TTL (``auto_expiration``).

Beyond go-workflows: leases carry tokens and their times come from the Redis server's clock, so
extending or completing a task that another worker has recovered fails (go-workflows' extend
claims unconditionally); signals look up the active execution inside the script that queues them,
so they never land on an execution that continued as new (go-workflows #493); a task that would
end an execution while unseen events wait is rejected; ``remove_workflow_instances`` works.

Round trips: one script call claims up to as many waiting tasks as the worker has free slots
(``get_workflow_tasks``/``get_activity_tasks``, each task with its own fenced lease); completing a
task is one, and it leases the follow-up work to the completing worker when it has free slots
(``Feature.LEASE_ON_COMPLETION``): a workflow task's completion the activities it schedules, an
activity's completion its workflow's next task. Completions a worker process finishes at the
same moment share one script call (``GroupCommit``; ``activity_complete.lua`` and
``workflow_complete.lua`` take several), each fenced by its own lease and answered on its own.
A poller that finds nothing blocks in ``XREADGROUP`` and, when it wakes, claims with one more
script call.
Like go-workflows' scripts, ours build keys from ids, so the backend needs one Redis server
(or a primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import redis

from ...engine.backend import (
    ActivityTask,
    BlockBackoff,
    BlockedInfo,
    ExecutionSeed,
    Feature,
    InstanceInfo,
    InstancePage,
    QueueBacklog,
    RemoveProgress,
    Stats,
    WorkerInfo,
    WorkflowTask,
    WorkflowTaskCompletion,
)
from ...engine.clock import system_clock, to_timedelta
from ...engine.converter import Payload
from ...engine.core import InstanceState, WorkflowInstance, validate_id
from ...engine.errors import (
    CompletionRejected,
    ErrorInfo,
    InstanceAlreadyExists,
    InstanceFinished,
    InstanceNotFinished,
    InstanceNotFound,
    LeaseLost,
    TimeoutType,
)
from ...engine.history import (
    Event,
    WorkflowExecutionStartedAttributes,
    event_from_json,
    event_to_json,
)
from ...engine.listing import InstanceFilter
from ..base import BaseBackend
from ..group_commit import GroupCommit
from ..rules import (
    abandoned_activity_result,
    activity_queue,
    canceled_before_start_events,
    terminated_events,
    timed_out_activity_result,
    timed_out_events,
)
from . import codec, keys, listing
from .checks import persistence_messages
from .codec import instance_from, instance_json, ms, text
from .lua import Scripts
from .polling import Poller
from .schedules import RedisScheduleStore

# How many entries one poll looks at in each set or stream before giving up for this round.
_SCAN_LIMIT = 50

#: Most completions one script call writes (GroupCommit). A script holds the server while it
#: runs; 32 activity completions take well under a millisecond. Workflow task completions are
#: bounded by the worker's parallel workflow tasks (8 by default) anyway.
_MAX_COMPLETIONS_PER_CALL = 32

#: One activity completion for ``activity_complete.lua``: activity id, lease token (``""``: the
#: attempt is failed as abandoned, fenced by its lease count), result event JSON, lease count,
#: and the workflow queues from which the caller takes the workflow's next task (``()``: none).
_Completion = tuple[str, str, str, int, tuple[str, ...]]


def get_client(connection: str) -> redis.Redis:
    """The redis-py client of a django-redis cache alias."""
    if not isinstance(connection, str) or not connection:
        raise ValueError(f"connection must be the alias of a django-redis cache, got {connection!r}")
    from django.conf import settings
    from django_redis import get_redis_connection

    if connection not in settings.CACHES:
        raise ValueError(f"RedisBackend: there is no cache {connection!r} in CACHES (a django-redis alias is needed)")
    try:
        return get_redis_connection(connection)
    except NotImplementedError:
        raise ValueError(f"RedisBackend: cache {connection!r} is not a django-redis cache") from None


class RedisBackend(BaseBackend):
    """``RedisBackend(connection="default", key_prefix="", auto_expiration=None, **options)``.

    ``connection`` names a django-redis cache in ``CACHES``; every key starts with ``key_prefix``
    then ``workflows:``. ``auto_expiration`` (seconds or ``timedelta``) sets a TTL on the keys of
    every execution that finishes. Other keyword arguments are ``BackendOptions``.
    """

    def __init__(
        self,
        connection: str = "default",
        *,
        key_prefix: str = "",
        auto_expiration: timedelta | float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.connection = connection
        self.key_prefix = key_prefix
        self._ns = keys.namespace(key_prefix)
        expiration = to_timedelta(auto_expiration, what="auto_expiration")
        if expiration < timedelta(0) or (auto_expiration is not None and ms(expiration) <= 0):
            raise ValueError(f"auto_expiration must be a positive duration, got {auto_expiration!r}")
        self._ttl_ms = ms(expiration)
        features = {Feature.REMOVE_INSTANCES, Feature.WORKER_REGISTRY, Feature.LEASE_ON_COMPLETION}
        if self._ttl_ms:
            features.add(Feature.AUTO_EXPIRATION)
        self.features = frozenset(features)
        self._redis = get_client(connection)
        self._scripts = Scripts(self._redis, self._ns)
        self._poller = Poller(self._redis, self._scripts)
        # Concurrent activity completions of this process share a script call (a round trip).
        self._completions: GroupCommit[_Completion, Any] = GroupCommit(
            self._complete_activities, max_batch=_MAX_COMPLETIONS_PER_CALL
        )
        self._workflow_completions: GroupCommit[list[Any], Any] = GroupCommit(
            self._complete_workflow_tasks, max_batch=_MAX_COMPLETIONS_PER_CALL
        )
        #: The schedule store (``schedules.store.ScheduleStore``) in this backend's namespace.
        self.schedules = RedisScheduleStore(self._redis, self._scripts, self._ns)

    def close(self) -> None:
        self._scripts.close()

    def check(self, **kwargs: Any) -> list[Any]:
        if kwargs.get("databases") is not None:
            return []  # nothing of Redis is a Django database; its checks ran with the settings
        return persistence_messages(self._redis, self.connection)

    # -- instances ---------------------------------------------------------------------------

    def _key(self, instance: WorkflowInstance) -> str:
        return keys.instance(self._ns, instance.instance_id, instance.execution_id)

    def create_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        validate_id(instance.instance_id)
        validate_id(instance.execution_id, "execution id")
        attributes = event.attributes
        if not isinstance(attributes, WorkflowExecutionStartedAttributes):
            raise TypeError(f"a workflow instance starts with a WorkflowExecutionStarted event, got {event.type}")
        reply = self._scripts(
            "create",
            instance.instance_id,
            instance.execution_id,
            instance_json(instance),
            attributes.name,
            attributes.queue,
            json.dumps(attributes.metadata),
            event_to_json(event),
            *codec.start_args(event),
        )
        if reply == b"exists":
            raise InstanceAlreadyExists()

    def create_workflow_instance_from_history(self, seed: ExecutionSeed) -> None:
        instance, started = seed.instance, seed.started
        validate_id(instance.instance_id)
        validate_id(instance.execution_id, "execution id")
        args: list[Any] = [
            instance.instance_id,
            instance.execution_id,
            instance_json(instance),
            started.name,
            started.queue,
            json.dumps(started.metadata),
        ]
        args += [len(seed.history), *map(event_to_json, seed.history)]
        args += [len(seed.pending_events), *map(event_to_json, seed.pending_events)]
        args.append(len(seed.timer_events))
        for event in seed.timer_events:
            args += [event.id, 0 if event.visible_at is None else codec.epoch_ms(event.visible_at), event_to_json(event)]
        args.append(len(seed.activity_events))
        for event in seed.activity_events:
            args += [event.id, activity_queue(event, started.queue), event_to_json(event)]
        if self._scripts("seed", *args) == b"exists":
            raise InstanceAlreadyExists()

    def cancel_workflow_instance(self, instance: WorkflowInstance, event: Event) -> None:
        stored = self._redis.hget(self._key(instance), "inst")
        if stored is None:
            raise InstanceNotFound()
        # Used by the script only if the execution has not started yet (a delayed start).
        execution = instance_from(stored)
        (canceled, finished), parent_event = canceled_before_start_events(execution, system_clock.now())
        parent = execution.parent
        reply = self._scripts(
            "cancel",
            instance.instance_id,
            instance.execution_id,
            event_to_json(event),
            self._ttl_ms,
            event_to_json(canceled),
            event_to_json(finished),
            parent.instance_id if parent else "",
            parent.execution_id if parent else "",
            event_to_json(parent_event) if parent_event is not None else "",
        )
        self._raise_for(reply)

    @staticmethod
    def _raise_for(reply: bytes) -> None:
        if reply == b"notfound":
            raise InstanceNotFound()
        if reply == b"finished":
            raise InstanceFinished()

    def terminate_workflow_instance(self, instance: WorkflowInstance, reason: str) -> None:
        values: list[Any] = self._redis.hmget(self._key(instance), "inst", "state")
        stored, state = values
        if stored is None:
            raise InstanceNotFound()
        if state != b"0":
            raise InstanceFinished()
        terminated, parent_event = terminated_events(instance_from(stored), reason, system_clock.now())
        self._raise_for(self._end(instance_from(stored), [terminated], parent_event, timed=False))

    def _end(self, execution: WorkflowInstance, events: list[Event], parent_event: Event | None, *, timed: bool) -> Any:
        """End an execution without running it (``terminate.lua``); ``timed``: only if its
        execution timeout passed."""
        parent = execution.parent
        return self._scripts(
            "terminate",
            execution.instance_id,
            execution.execution_id,
            len(events),
            *map(event_to_json, events),
            self._ttl_ms,
            parent.instance_id if parent else "",
            parent.execution_id if parent else "",
            event_to_json(parent_event) if parent_event is not None else "",
            "1" if timed else "0",
        )

    def time_out_workflow_instances(self, max_instances: int = 100) -> int:
        reply = self._scripts("workflow_expired", max_instances)
        ended = 0
        for index in range(0, len(reply), 4):
            _iid, _eid, inst, seconds = reply[index : index + 4]
            execution = instance_from(inst)
            timeout = float(text(seconds)) if text(seconds) else None
            ended_event, parent_event = timed_out_events(execution, timeout, system_clock.now())
            if self._end(execution, [ended_event], parent_event, timed=True) == b"ok":
                ended += 1
        return ended

    def signal_workflow(self, instance_id: str, event: Event) -> WorkflowInstance:
        validate_id(instance_id)
        reply = self._scripts("signal", instance_id, event_to_json(event))
        self._raise_for(reply[0])
        return instance_from(reply[1])

    def remove_workflow_instance(self, instance: WorkflowInstance) -> None:
        reply = self._scripts("remove", instance.instance_id, instance.execution_id)
        if reply == b"notfound":
            raise InstanceNotFound()
        if reply == b"active":
            raise InstanceNotFinished()

    def remove_workflow_instances(
        self, *, finished_before: datetime, batch_size: int = 100, progress: RemoveProgress | None = None
    ) -> int:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        before = codec.epoch_ms(finished_before)
        removed = 0
        while True:
            count, seen = self._scripts("remove_finished", before, batch_size)
            removed += count
            if progress is not None:
                progress(count, removed)
            if seen < batch_size:
                return removed

    def get_workflow_instance_state(self, instance: WorkflowInstance) -> InstanceState:
        state = self._redis.hget(self._key(instance), "state")
        if state is None:
            raise InstanceNotFound()
        return InstanceState(int(state))

    def get_workflow_instance_info(self, instance: WorkflowInstance) -> InstanceInfo:
        fields = (
            "inst", "name", "queue", "state", "created", "completed", "meta", "berror", "bsince", "battempts", "buntil",
            "delayed", "start_at",
        )
        pipe = self._redis.pipeline(transaction=False)
        pipe.hmget(self._key(instance), fields)
        pipe.time()
        values, (seconds, micros) = pipe.execute()
        inst, name, queue, state, created, completed, meta, error, since, attempts, until, delayed, start_at = values
        if inst is None:
            raise InstanceNotFound()
        blocked = None
        if error is not None and since is not None and until is not None:
            blocked = BlockedInfo(
                error=ErrorInfo.from_dict(json.loads(error)),
                since=codec.to_datetime(since),  # type: ignore[arg-type]
                attempts=int(attempts or 0),
                retry_at=codec.to_datetime(until),  # type: ignore[arg-type]
            )
        now = seconds * 1000 + micros // 1000
        delayed_start = delayed is not None and state == b"0" and int(start_at) > now
        return InstanceInfo(
            instance=instance_from(inst),
            workflow_name=text(name),
            queue=text(queue),
            state=InstanceState(int(state)),
            created_at=codec.to_datetime(created),  # type: ignore[arg-type]
            completed_at=codec.to_datetime(completed),
            metadata=json.loads(meta),
            blocked=blocked,
            scheduled_for=codec.to_datetime(start_at) if delayed_start else None,
        )

    def get_workflow_instance_history(
        self, instance: WorkflowInstance, last_sequence_id: int | None = None
    ) -> list[Event]:
        pipe = self._redis.pipeline(transaction=True)
        pipe.exists(self._key(instance))
        # The list index of an event is its sequence id - 1.
        pipe.lrange(keys.history(self._ns, instance.instance_id, instance.execution_id), last_sequence_id or 0, -1)
        exists, rows = pipe.execute()
        if not exists:
            raise InstanceNotFound()
        events = [event_from_json(row) for row in rows]
        if last_sequence_id is None:
            return events
        return [e for e in events if e.sequence_id > last_sequence_id]

    def get_latest_execution(self, instance_id: str) -> WorkflowInstance:
        inst = self._scripts("latest", instance_id)
        if inst is None:
            raise InstanceNotFound()
        return instance_from(inst)

    # -- workflow tasks ----------------------------------------------------------------------

    def prepare_workflow_queues(self, queues: Sequence[str]) -> None:
        self._scripts("prepare", "wf", *[validate_id(q, "queue") for q in queues])

    def get_workflow_task(self, queues: Sequence[str], timeout: float) -> WorkflowTask | None:
        tasks = self.get_workflow_tasks(queues, timeout, 1)
        return tasks[0] if tasks else None

    def get_workflow_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[WorkflowTask]:
        queues = [validate_id(q, "queue") for q in queues]
        me = self.options.worker_name
        args = [me, ms(self.options.workflow_lock), uuid.uuid4().hex, _SCAN_LIMIT, max(1, max_tasks), *queues]
        streams: dict[Any, Any] = {keys.sticky_queue(self._ns, me): ">"}
        streams.update({keys.workflow_queue(self._ns, q): ">" for q in queues})
        reply = self._poller.poll("workflow_poll", args, me, streams, timeout)
        return [] if reply is None else [codec.workflow_task(row) for row in reply[1:]]

    def extend_workflow_task(self, task: WorkflowTask) -> None:
        instance = task.instance
        member = f"{instance.instance_id}:{instance.execution_id}"
        reply = self._scripts("extend", "wf", member, task.lease_token, ms(self.options.workflow_lock))
        if reply != b"ok":
            raise LeaseLost()

    def abandon_workflow_task(self, task: WorkflowTask) -> None:
        self._scripts("workflow_abandon", task.instance.instance_id, task.instance.execution_id, task.lease_token)

    def release_sticky_instances(self) -> int:
        moved = self._scripts("workflow_release_sticky", self.options.worker_name, ms(self.options.sticky))
        return int(moved)

    def block_workflow_task(self, task: WorkflowTask, error: ErrorInfo, backoff: BlockBackoff) -> BlockedInfo:
        instance = task.instance
        reply = self._scripts(
            "workflow_block",
            instance.instance_id,
            instance.execution_id,
            task.lease_token,
            json.dumps(error.to_dict()),
            ms(backoff.first),
            ms(backoff.maximum),
        )
        if reply[0] != b"ok":
            raise LeaseLost()
        _, since, attempts, retry_at = reply
        return BlockedInfo(
            error=error,
            since=codec.to_datetime(since),  # type: ignore[arg-type]
            attempts=int(attempts),
            retry_at=codec.to_datetime(retry_at),  # type: ignore[arg-type]
        )

    def complete_workflow_task(self, task: WorkflowTask, completion: WorkflowTaskCompletion) -> list[ActivityTask]:
        instance = task.instance
        args: list[Any] = [
            instance.instance_id,
            instance.execution_id,
            task.lease_token,
            len(task.new_events),
            int(completion.result.state),
            ms(self.options.sticky),
            self._ttl_ms,
            "1" if self.options.remove_continued_as_new_instances else "0",
            instance_json(instance),
        ]
        lease = completion.lease_activities
        token = uuid.uuid4().hex if lease.max_tasks > 0 else ""
        args += [lease.max_tasks, self.options.worker_name, ms(self.options.activity_lock), token]
        args += [len(lease.queues), *lease.queues]
        args += codec.completion_args(task, completion.result)
        reply = self._workflow_completions.submit(args)
        if reply == b"lost":
            raise LeaseLost()
        if reply == b"rejected":
            raise CompletionRejected()
        return codec.leased_activities(task, completion.result, reply[1:], token)

    def _complete_workflow_tasks(self, completions: Sequence[list[Any]]) -> list[Any]:
        """``GroupCommit``'s write: ``workflow_complete.lua`` for a batch of completions (the
        arguments of each), one reply per completion; the script fences each on its own lease."""
        args: list[Any] = []
        for one in completions:
            args += [len(one), *one]
        return list(self._scripts("workflow_complete", *args))

    # -- activity tasks ----------------------------------------------------------------------

    def prepare_activity_queues(self, queues: Sequence[str]) -> None:
        self._scripts("prepare", "act", *[validate_id(q, "queue") for q in queues])

    def get_activity_task(self, queues: Sequence[str], timeout: float) -> ActivityTask | None:
        tasks = self.get_activity_tasks(queues, timeout, 1)
        return tasks[0] if tasks else None

    def get_activity_tasks(self, queues: Sequence[str], timeout: float, max_tasks: int) -> list[ActivityTask]:
        queues = [validate_id(q, "queue") for q in queues]
        deadline = time.monotonic() + timeout
        options = self.options
        streams: dict[Any, Any] = {keys.activity_queue(self._ns, q): ">" for q in queues}
        while True:
            args = [options.worker_name, ms(options.activity_lock), uuid.uuid4().hex, _SCAN_LIMIT, max(1, max_tasks),
                    options.max_activity_leases, *queues]
            reply = self._poller.poll(
                "activity_poll", args, options.worker_name, streams, max(0.0, deadline - time.monotonic())
            )
            if reply is None:
                return []
            _, tasks, abandoned = reply
            for aid, _inst, event, leases, details in abandoned:
                # Its workers died every time: fail it instead of leasing it again.
                result = abandoned_activity_result(
                    event_from_json(event), int(leases), system_clock.now(), text(details) or None
                )
                self._completions.submit((text(aid), "", event_to_json(result), int(leases), ()))
            if tasks:
                return [codec.activity_task(row) for row in tasks]

    def extend_activity_task(self, task: ActivityTask) -> None:
        reply = self._scripts("extend", "act", task.id, task.lease_token, ms(self.options.activity_lock))
        if reply != b"ok":
            raise LeaseLost()

    def complete_activity_task(
        self, task: ActivityTask, result: Event, *, workflow_queues: Sequence[str] = ()
    ) -> WorkflowTask | None:
        # Serialised here, in the caller's thread, not while others wait for the batch.
        reply = self._completions.submit((task.id, task.lease_token, event_to_json(result), 0, tuple(workflow_queues)))
        if reply == b"lost":
            raise LeaseLost()
        return None if reply == b"ok" else codec.workflow_task(reply)

    def _complete_activities(self, completions: Sequence[_Completion]) -> list[Any]:
        """``GroupCommit``'s write: ``activity_complete.lua`` for a batch of completions, one
        reply per completion (``ok``, ``lost`` or the workflow task leased to its caller).

        The script fences and answers each completion for itself, so a lease that ran out is
        refused for its own caller without failing the rest. It takes one set of workflow
        queues per call: completions that take a workflow task go in one call per set (one
        worker's all have the same), those that take none with the first."""
        by_queues: dict[tuple[str, ...], list[int]] = {}
        for index, completion in enumerate(completions):
            by_queues.setdefault(completion[4], []).append(index)
        plain = by_queues.pop((), [])
        calls = list(by_queues.items()) or [((), [])]
        calls[0][1].extend(plain)
        replies: list[Any] = [None] * len(completions)
        # One token for the workflow tasks a call hands on: each is fenced by its own execution.
        head = [self.options.worker_name, ms(self.options.workflow_lock), uuid.uuid4().hex]
        for queues, indexes in calls:
            args: list[Any] = [*head, len(queues), *queues]
            for index in indexes:
                aid, token, result, leases, takes = completions[index]
                args += [aid, token, result, leases, "1" if takes else "0"]
            for index, reply in zip(indexes, self._scripts("activity_complete", *args), strict=True):
                replies[index] = reply
        return replies

    def abandon_activity_task(self, task: ActivityTask) -> None:
        self._scripts("activity_abandon", task.id, task.lease_token)

    def heartbeat_activity_task(self, task: ActivityTask, details: Payload | None = None) -> bool:
        reply = self._scripts(
            "activity_heartbeat",
            task.id,
            task.lease_token,
            ms(self.options.activity_lock),
            "0" if details is None else "1",
            details or "",
        )
        if reply == b"lost":
            raise LeaseLost()
        return bool(reply == b"stop")

    def time_out_activity_tasks(self, max_tasks: int = 100) -> int:
        reply = self._scripts("activity_expired", max_tasks)
        failed = 0
        for index in range(0, len(reply), 4):
            aid, event, details, kind = reply[index : index + 4]
            result = timed_out_activity_result(
                event_from_json(event), TimeoutType(text(kind)), system_clock.now(), text(details) or None
            )
            if self._scripts("activity_time_out", aid, event_to_json(result)) == b"ok":
                failed += 1
        return failed

    # -- misc --------------------------------------------------------------------------------

    def get_stats(self) -> Stats:
        return codec.stats(self._scripts("stats"))

    def list_workflow_instances(
        self, filter: InstanceFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> InstancePage:
        return listing.list_workflow_instances(self._redis, self._ns, filter, limit, cursor)

    def get_pending_events(self, instance: WorkflowInstance) -> list[Event]:
        return listing.pending_events(self._redis, self._ns, instance)

    def get_backlog(self) -> list[QueueBacklog]:
        now, count, *rows = self._scripts("backlog", _SCAN_LIMIT)
        out = []
        for index in range(int(count)):
            queue, workflows, workflow_oldest, activities, activity_oldest = rows[index * 5 : index * 5 + 5]

            def age(oldest: Any) -> float | None:
                return None if int(oldest) < 0 else max(0.0, (int(now) - int(oldest)) / 1000)

            out.append(
                QueueBacklog(
                    queue=text(queue),
                    ready_workflow_tasks=int(workflows),
                    ready_activity_tasks=int(activities),
                    oldest_workflow_task_age=age(workflow_oldest) if int(workflows) else None,
                    oldest_activity_task_age=age(activity_oldest) if int(activities) else None,
                )
            )
        return sorted(out, key=lambda backlog: backlog.queue)

    # -- live workers: ``worker:<id>`` hashes with a TTL, the ``workers`` set by expiry ----------

    def register_worker(self, info: WorkerInfo, ttl: timedelta) -> None:
        self._scripts("worker_register", info.worker_id, json.dumps(info.to_dict()), max(1, ms(ttl)))

    def heartbeat_worker(self, worker_id: str, tasks_in_flight: int, ttl: timedelta) -> bool:
        return bool(self._scripts("worker_heartbeat", worker_id, int(tasks_in_flight), max(1, ms(ttl))))

    def unregister_worker(self, worker_id: str) -> None:
        self._scripts("worker_unregister", worker_id)

    def list_workers(self) -> list[WorkerInfo]:
        workers = []
        for _worker_id, entry, heartbeat, in_flight in self._scripts("workers"):
            info = WorkerInfo.from_dict(json.loads(entry))
            workers.append(
                dataclasses.replace(
                    info, heartbeat_at=codec.to_datetime(heartbeat), tasks_in_flight=int(in_flight or 0)
                )
            )
        return sorted(workers, key=lambda worker: worker.worker_id)

    def get_future_events(self) -> list[Event]:
        """Pending events that are not visible yet (timers), for tests (go-workflows'
        ``TestBackend.GetFutureEvents``)."""
        seconds, micros = self._redis.time()
        now = seconds * 1000 + micros // 1000
        members: list[Any] = self._redis.zrangebyscore(keys.future_events(self._ns), f"({now}", "+inf")
        pipe = self._redis.pipeline(transaction=False)
        for member in members:
            iid, eid, event_id = text(member).split(":")
            pipe.hget(keys.future(self._ns, iid, eid), event_id)
        return [event_from_json(row) for row in pipe.execute() if row is not None]
