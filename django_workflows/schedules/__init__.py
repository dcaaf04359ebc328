"""Schedules: start a registered workflow on a cron expression or an interval, exactly once per
fire time however many workers run (Temporal's Schedules, DBOS's stored schedules). Pure Python:
no Django here.

- ``spec``: when (``ScheduleSpec``) and what to do on overlap (``OverlapPolicy``);
- ``records``: what a store keeps (definition, state, recent runs) and the run instance ids;
- ``store``: the ``ScheduleStore`` contract each backend implements (``backend.schedules``);
- ``firing``: one firing (overlap policies, catch-up), through a ``Runtime``;
- ``scheduler``: the loop a worker runs, and the sync of declared schedules;
- ``declarations``: ``Schedule``, for ``register_workflow(schedule=...)``;
- ``description``: ``ScheduleDescription``, what the Client describes.

The Client methods (``create_schedule``, ``describe_schedule``, ...) are in ``client.py``; the
guide's section is ``docs/schedules.md``.
"""

from __future__ import annotations

from .declarations import Schedule
from .description import ScheduleDescription
from .records import RunAction, ScheduleDefinition, ScheduleRecord, ScheduleRun, ScheduleState, run_instance
from .scheduler import DEFAULT_CLAIM_LEASE, DEFAULT_SCHEDULER_INTERVAL, Scheduler, schedule_store, sync_declared
from .spec import DEFAULT_CATCHUP_WINDOW, OverlapPolicy, ScheduleError, ScheduleSpec
from .store import ScheduleAlreadyExists, ScheduleClaim, ScheduleNotFound, ScheduleStore

__all__ = [
    "DEFAULT_CATCHUP_WINDOW",
    "DEFAULT_CLAIM_LEASE",
    "DEFAULT_SCHEDULER_INTERVAL",
    "OverlapPolicy",
    "RunAction",
    "Schedule",
    "ScheduleAlreadyExists",
    "ScheduleClaim",
    "ScheduleDefinition",
    "ScheduleDescription",
    "ScheduleError",
    "ScheduleNotFound",
    "ScheduleRecord",
    "ScheduleRun",
    "ScheduleSpec",
    "ScheduleState",
    "ScheduleStore",
    "Scheduler",
    "run_instance",
    "schedule_store",
    "sync_declared",
]
