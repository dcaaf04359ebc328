"""Schedules of the Redis backend: ``schedules.store.ScheduleStore`` in Redis, exposed as
``RedisBackend.schedules`` (keys: ``keys.schedule``, ``keys.schedules``, ``keys.schedules_due``).

A record is the JSON of ``ScheduleRecord`` in the schedule's hash. ``claim`` is one Lua script
(``scripts/schedule_claim.lua``): it takes the first due schedule no claim holds and leases it
with a token, on the server clock, atomically however many schedulers ask at once. ``put`` and
``complete`` are optimistic transactions: ``WATCH`` the hash, read, compute, and write in
``MULTI``/``EXEC``, again from the start if another client wrote the hash meanwhile;
``complete`` writes only while the hash still holds its claim's token.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from ...schedules.records import ScheduleRecord
from ...schedules.store import Change, ScheduleClaim, ScheduleNotFound
from . import keys
from .codec import epoch_ms, ms, text
from .lua import Scripts

# Due schedules the claim script looks at per call (claimed ones are passed over).
_SCAN_LIMIT = 20
# Optimistic transactions retried this often before the conflict is reported.
_MAX_ATTEMPTS = 100


def _dumps(record: ScheduleRecord) -> str:
    return json.dumps(record.to_json(), separators=(",", ":"))


def _loads(data: Any) -> ScheduleRecord:
    return ScheduleRecord.from_json(json.loads(data))


class RedisScheduleStore:
    def __init__(self, client: redis.Redis, scripts: Scripts, ns: str) -> None:
        self._redis = client
        self._scripts = scripts
        self._ns = ns

    def _key(self, schedule_id: str) -> str:
        return keys.schedule(self._ns, schedule_id)

    def now(self) -> datetime:
        seconds, micros = self._redis.time()
        return datetime.fromtimestamp(int(seconds) + int(micros) / 1_000_000, tz=UTC)

    def get(self, schedule_id: str) -> ScheduleRecord:
        data = self._redis.hget(self._key(schedule_id), "data")
        if data is None:
            raise ScheduleNotFound(schedule_id)
        return _loads(data)

    def list(self) -> list[ScheduleRecord]:
        ids = sorted(text(member) for member in self._redis.smembers(keys.schedules(self._ns)))
        pipe = self._redis.pipeline(transaction=False)
        for schedule_id in ids:
            pipe.hget(self._key(schedule_id), "data")
        return [_loads(data) for data in pipe.execute() if data is not None]

    def _write(self, pipe: Any, record: ScheduleRecord, *, release: bool = False) -> None:
        key = self._key(record.schedule_id)
        pipe.multi()
        pipe.hset(key, "data", _dumps(record))
        if release:
            pipe.hdel(key, "token", "until")
        pipe.sadd(keys.schedules(self._ns), record.schedule_id)
        due = record.state.due_at
        if due is None:
            pipe.zrem(keys.schedules_due(self._ns), record.schedule_id)
        else:
            pipe.zadd(keys.schedules_due(self._ns), {record.schedule_id: epoch_ms(due)})
        pipe.execute()

    def _optimistic(self, key: str, attempt: Callable[[Any], Any]) -> Any:
        with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_ATTEMPTS):
                try:
                    pipe.watch(key)
                    return attempt(pipe)
                except redis.WatchError:
                    continue
                finally:
                    pipe.reset()
        raise RuntimeError(f"schedule {key!r} kept changing under {_MAX_ATTEMPTS} attempts to write it")

    def put(self, schedule_id: str, change: Change) -> ScheduleRecord:
        def attempt(pipe: Any) -> ScheduleRecord:
            data = pipe.hget(self._key(schedule_id), "data")
            current = None if data is None else _loads(data)
            record = change(current)
            if record is not current:
                self._write(pipe, record)
            return record

        return self._optimistic(self._key(schedule_id), attempt)

    def delete(self, schedule_id: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._key(schedule_id))
        pipe.srem(keys.schedules(self._ns), schedule_id)
        pipe.zrem(keys.schedules_due(self._ns), schedule_id)
        deleted, _, _ = pipe.execute()
        if not deleted:
            raise ScheduleNotFound(schedule_id)

    def claim(self, lease: timedelta, schedule_id: str | None = None) -> ScheduleClaim | None:
        token = uuid.uuid4().hex
        schedule, data, now = self._scripts("schedule_claim", ms(lease), token, schedule_id or "", _SCAN_LIMIT)
        if schedule is None:
            return None
        moment = datetime.fromtimestamp(int(now) / 1000, tz=UTC)
        return ScheduleClaim(record=_loads(data), token=token, now=moment)

    def complete(self, claim: ScheduleClaim, change: Callable[[ScheduleRecord], ScheduleRecord]) -> ScheduleRecord | None:
        key = self._key(claim.record.schedule_id)

        def attempt(pipe: Any) -> ScheduleRecord | None:
            data, token = pipe.hmget(key, "data", "token")
            if data is None or token is None or text(token) != claim.token:
                return None
            record = change(_loads(data))
            self._write(pipe, record, release=True)
            return record

        return self._optimistic(key, attempt)

    def release(self, claim: ScheduleClaim) -> None:
        key = self._key(claim.record.schedule_id)

        def attempt(pipe: Any) -> None:
            token = pipe.hget(key, "token")
            if token is not None and text(token) == claim.token:
                pipe.multi()
                pipe.hdel(key, "token", "until")
                pipe.execute()

        self._optimistic(key, attempt)
