"""Key names of the Redis backend (the layout of go-workflows' ``backend/redis/keys.go``).

Every key starts with the configured prefix followed by ``workflows:``. The Lua scripts build the
same names from ids passed as arguments (``scripts/lib.lua``); this module names the keys that
Python reads or blocks on directly. Per execution (``<iid>:<eid>``):

- ``instance:<iid>:<eid>`` hash: instance JSON, name, queue, metadata, state, created/completed
  (server ms), last sequence id, lease (token, until, worker), stickiness, queued stream entry;
- ``pending:<iid>:<eid>`` list of visible pending events, ``future:<iid>:<eid>`` hash of events
  not visible yet (timers), ``history:<iid>:<eid>`` list (index = sequence id - 1),
  ``activities:<iid>:<eid>`` set of its activity ids.

Per instance id: ``active:<iid>`` (the active execution id) and ``executions:<iid>`` (sorted set
of execution ids by creation). Global: ``future-events`` and ``finished`` sorted sets,
``instances-active``, ``wf-queues``/``act-queues`` sets, and the task queues:
``wf-queue:<queue>``/``act-queue:<queue>`` streams with the consumer group ``workers``,
``wf-sticky:<worker>`` streams (tasks of executions sticky to that worker), ``wf-queued:<queue>``
sets, ``wf-leases:<queue>``/``act-leases:<queue>``/``wf-sticky-expiry`` sorted sets, and
``activity:<id>`` hashes. Live workers: ``worker:<id>`` hashes that expire with their heartbeats,
and the ``workers`` sorted set of ids by expiry (server ms).
"""

from __future__ import annotations

#: The consumer group of every task stream.
GROUP = "workers"


def namespace(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"key_prefix must be a string, got {type(prefix).__name__}")
    return f"{prefix}workflows:"


def instance(ns: str, instance_id: str, execution_id: str) -> str:
    return f"{ns}instance:{instance_id}:{execution_id}"


def history(ns: str, instance_id: str, execution_id: str) -> str:
    return f"{ns}history:{instance_id}:{execution_id}"


def future(ns: str, instance_id: str, execution_id: str) -> str:
    return f"{ns}future:{instance_id}:{execution_id}"


def future_events(ns: str) -> str:
    return f"{ns}future-events"


def workflow_queue(ns: str, queue: str) -> str:
    return f"{ns}wf-queue:{queue}"


def sticky_queue(ns: str, worker: str) -> str:
    return f"{ns}wf-sticky:{worker}"


def activity_queue(ns: str, queue: str) -> str:
    return f"{ns}act-queue:{queue}"


# Schedules (``schedules.py``): ``schedule:<id>`` hash (``data``: the record's JSON; ``token``
# and ``until``: the claim of the scheduler firing it), ``schedules`` set of ids, and
# ``schedules-due`` sorted set of ids by due time (server ms; absent while nothing is due).


def schedule(ns: str, schedule_id: str) -> str:
    return f"{ns}schedule:{schedule_id}"


def schedules(ns: str) -> str:
    return f"{ns}schedules"


def schedules_due(ns: str) -> str:
    return f"{ns}schedules-due"
