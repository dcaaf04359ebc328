"""``list_workflow_instances`` and ``get_pending_events`` of the Redis backend.

Redis keeps no index of executions by creation time, so a listing reads them all: it finds the
instance ids through ``SCAN`` over the ``executions:<iid>`` sorted sets (only those that start
with the prefix when the filter has one), then reads each execution's hash in pipelined batches,
and filters, orders and pages in Python (``engine.listing.page_of``). That costs a round trip per
``_BATCH`` executions: fine for the operator's command line over thousands of instances, not a
query to run per request over millions (the ORM backend's listing is an indexed query).
"""

from __future__ import annotations

import json
import re
from typing import Any

import redis

from ...engine.backend import InstanceInfo, InstancePage
from ...engine.core import InstanceState, WorkflowInstance
from ...engine.errors import InstanceNotFound
from ...engine.history import Event, event_from_json
from ...engine.listing import InstanceFilter, page_of
from . import codec
from .codec import instance_from, text

# Executions read per pipelined round trip.
_BATCH = 500
_FIELDS = ("inst", "name", "queue", "state", "created", "completed", "meta")


def _glob_escape(value: str) -> str:
    """``value`` as a literal in a Redis MATCH pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", value)


def list_workflow_instances(
    client: redis.Redis, ns: str, filter: InstanceFilter | None, limit: int, cursor: str | None
) -> InstancePage:
    prefix = filter.instance_id_prefix if filter is not None and filter.instance_id_prefix else ""
    index_prefix = f"{ns}executions:"
    pattern = _glob_escape(index_prefix + prefix) + "*"
    instance_ids = [text(key)[len(index_prefix):] for key in client.scan_iter(match=pattern, count=1000)]
    infos: list[InstanceInfo] = []
    for start in range(0, len(instance_ids), _BATCH):
        batch = instance_ids[start : start + _BATCH]
        pipe = client.pipeline(transaction=False)
        for instance_id in batch:
            pipe.zrange(index_prefix + instance_id, 0, -1)
        executions = [
            (instance_id, text(execution_id))
            for instance_id, execution_ids in zip(batch, pipe.execute(), strict=True)
            for execution_id in execution_ids
        ]
        pipe = client.pipeline(transaction=False)
        for instance_id, execution_id in executions:
            pipe.hmget(f"{ns}instance:{instance_id}:{execution_id}", _FIELDS)
        for values in pipe.execute():
            info = _info(values)
            if info is not None:
                infos.append(info)
    return page_of(infos, filter, limit, cursor)


def _info(values: list[Any]) -> InstanceInfo | None:
    inst, name, queue, state, created, completed, meta = values
    if inst is None:  # expired by TTL or removed since the index was read
        return None
    return InstanceInfo(
        instance=instance_from(inst),
        workflow_name=text(name),
        queue=text(queue),
        state=InstanceState(int(state)),
        created_at=codec.to_datetime(created),  # type: ignore[arg-type]
        completed_at=codec.to_datetime(completed),
        metadata=json.loads(meta) if meta else {},
    )


def pending_events(client: redis.Redis, ns: str, instance: WorkflowInstance) -> list[Event]:
    """The execution's pending list (visible events no task has taken) and its future events
    (timers), in one transaction."""
    suffix = f"{instance.instance_id}:{instance.execution_id}"
    pipe = client.pipeline(transaction=True)
    pipe.exists(f"{ns}instance:{suffix}")
    pipe.lrange(f"{ns}pending:{suffix}", 0, -1)
    pipe.hvals(f"{ns}future:{suffix}")
    exists, pending, future = pipe.execute()
    if not exists:
        raise InstanceNotFound()
    events = [event_from_json(row) for row in pending]
    timers = sorted((event_from_json(row) for row in future), key=lambda e: (e.visible_at or e.timestamp, e.id))
    return events + timers

