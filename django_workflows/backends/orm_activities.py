"""Activity tasks of the ORM backend (go-workflows' SQL ``GetActivityTask``, ``ExtendActivityTask``,
``CompleteActivityTask``); ``OrmBackend`` delegates its activity methods here.

An activity row is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and leased with a token;
extend, complete and abandon are fenced on that token and on ``locked_until > <db now>``. Every
lease counts (``lease_count``); an activity whose workers died ``max_activity_leases`` times is
failed with ``ActivityAbandoned`` instead of being leased again. Writers that touch both an
execution and its activities lock the execution first, so they cannot deadlock each other.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.db.models import F, Q
from django.db.models.functions import Greatest

from ..engine.backend import ActivityTask, WorkflowTask
from ..engine.clock import system_clock
from ..engine.core import InstanceState
from ..engine.errors import LeaseLost
from ..engine.history import Event
from ..models import Payload
from .common import abandoned_activity_result
from .orm_db import DbNow, first, raw_delete
from .orm_rows import (
    EVENT_COLUMNS,
    INSTANCE_COLUMNS,
    TASK_COLUMNS,
    event_from,
    instance_from,
)

if TYPE_CHECKING:
    from .orm import OrmBackend

ACTIVE = InstanceState.ACTIVE.value

_ACTIVITY_COLUMNS = ("id", "instance_id", "lease_count", "queue", *EVENT_COLUMNS[:-1], "payload_id")


class ActivityTasks:
    """The activity half of one ``OrmBackend`` (its database alias, options and wake-ups)."""

    def __init__(self, backend: OrmBackend) -> None:
        self.backend = backend
        self.using = backend.using
        self.options = backend.options

    def claim(self, queues: list[str]) -> ActivityTask | None:
        while True:
            task = self.backend._db.run(lambda: self._lease(queues), reconnect=True)
            if not isinstance(task, _Exhausted):
                return task
            self.backend._db.run(functools.partial(self._fail_exhausted, task))

    def _lease(self, queues: list[str]) -> ActivityTask | _Exhausted | None:
        free = Q(locked_until__isnull=True) | Q(locked_until__lte=DbNow())
        features = connections[self.using].features
        candidates = self.backend._activities().filter(free, queue__in=queues).order_by("id")
        # Join the payload and the execution into the locking SELECT only where FOR UPDATE OF
        # keeps the lock on the activity row; MariaDB would lock the joined rows too.
        joined = not features.has_select_for_update or features.has_select_for_update_of
        columns = _ACTIVITY_COLUMNS + (("payload__data", *(f"instance__{c}" for c in INSTANCE_COLUMNS)) if joined else ())
        locking = candidates.select_for_update(
            skip_locked=bool(features.has_select_for_update_skip_locked),
            of=("self",) if joined and features.has_select_for_update else (),
        )
        row = first(locking.values_list(*columns))
        if row is None:
            return None
        row_id, instance_row_id, lease_count, queue, *event_columns = row[: len(_ACTIVITY_COLUMNS)]
        payload_id = event_columns.pop()
        if lease_count >= self.options.max_activity_leases:
            return _Exhausted(row_id, instance_row_id, lease_count)
        if joined:
            data, *identity = row[len(_ACTIVITY_COLUMNS) :]
        else:
            # The payload row points at the execution: one more SELECT fetches both.
            data, *identity = (
                Payload.objects.using(self.using)
                .filter(pk=payload_id)
                .values_list("data", *(f"instance__{c}" for c in INSTANCE_COLUMNS))
                .get()
            )
        token = uuid.uuid4().hex
        claimed = (
            self.backend._activities()
            .filter(free, pk=row_id)
            .update(
                locked_until=DbNow(self.options.activity_lock),
                lease_token=token,
                worker=self.options.worker_name,
                lease_count=F("lease_count") + 1,
            )
        )
        if claimed != 1:
            return None
        event = event_from(*event_columns, data)  # type: ignore[call-arg]  # (six columns, then the data)
        return ActivityTask(
            id=str(row_id),
            activity_id=event.id,
            queue=queue,
            instance=instance_from(*identity),
            event=event,
            lease_token=token,
            lease_count=lease_count + 1,
            custom_data=(row_id, instance_row_id),
        )

    def _fail_exhausted(self, exhausted: _Exhausted) -> None:
        """Fail an activity whose workers kept dying, instead of leasing it again.

        Locks the execution before the activity, the order every other writer uses."""
        state = first(
            self.backend._instances().filter(pk=exhausted.instance_row_id).select_for_update().values_list("state", flat=True)
        )
        free = Q(locked_until__isnull=True) | Q(locked_until__lte=DbNow())
        row = first(
            self.backend._activities()
            .filter(free, pk=exhausted.row_id, lease_count__gte=self.options.max_activity_leases)
            .select_for_update()
            .values_list(*EVENT_COLUMNS)
        )
        if row is None:
            return  # another poller got there first
        raw_delete(self.backend._activities().filter(pk=exhausted.row_id))
        if state == ACTIVE:
            result = abandoned_activity_result(event_from(*row), exhausted.lease_count, system_clock.now())
            self.backend._insert_event(exhausted.instance_row_id, result)
            self.backend._notify_on_commit("workflow")

    def _leased(self, task: ActivityTask) -> Any:
        row_id, _ = _activity_keys(task)
        return self.backend._activities().filter(
            pk=row_id, lease_token=task.lease_token, locked_until__gt=DbNow()
        )

    def extend(self, task: ActivityTask) -> None:
        extended = self.backend._db.run(
            lambda: self._leased(task).update(locked_until=DbNow(self.options.activity_lock)),
            atomic=False,
            reconnect=True,
        )
        if extended != 1:
            raise LeaseLost()

    def complete(self, task: ActivityTask, result: Event, workflow_queues: Sequence[str] = ()) -> WorkflowTask | None:
        _, instance_row_id = _activity_keys(task)

        def complete() -> WorkflowTask | None:
            # The execution first (the lock order of every writer), so that it cannot finish
            # between our check and our insert.
            execution = first(
                self.backend._instances()
                .filter(pk=instance_row_id)
                .select_for_update()
                .values_list("state", *TASK_COLUMNS)
            )
            if raw_delete(self._leased(task)) != 1:
                raise LeaseLost()
            if execution is None or execution[0] != ACTIVE:
                return None
            self.backend._insert_event(instance_row_id, result)
            _, *row = execution
            if row[1] in workflow_queues:
                # Continue the workflow here, in this transaction, if its task is free for us.
                next_task = self.backend._lease_workflow_task(row, self.backend.free_workflow_task())
                if next_task is not None:
                    return next_task
            self.backend._notify_on_commit("workflow")
            return None

        return self.backend._db.run(complete, reconnect=True)

    def abandon(self, task: ActivityTask) -> None:
        # A graceful release is not a crash: it does not count against max_activity_leases.
        released = self.backend._db.run(
            lambda: self._leased(task).update(
                locked_until=None, lease_token="", lease_count=Greatest(F("lease_count") - 1, 0)
            ),
            atomic=False,
            reconnect=True,
        )
        if released:
            self.backend._waker.notify("activity")


class _Exhausted:
    """A claim found an activity at ``max_activity_leases``: fail it in its own transaction."""

    def __init__(self, row_id: int, instance_row_id: int, lease_count: int) -> None:
        self.row_id = row_id
        self.instance_row_id = instance_row_id
        self.lease_count = lease_count


def _activity_keys(task: ActivityTask) -> tuple[int, int]:
    keys = task.custom_data
    if not (isinstance(keys, tuple) and len(keys) == 2):
        raise LeaseLost("this activity task was not leased from the ORM backend")
    return keys
