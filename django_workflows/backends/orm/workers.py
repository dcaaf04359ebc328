"""The ORM backend's registry of live workers and its backlog (``Backend.register_worker`` and
friends, ``Backend.get_backlog``; docs/observability.md).

A worker's row (``models.RegisteredWorker``) carries its last heartbeat and when it expires, both
from the database clock (``DbNow``), so the workers' own clocks never decide who is alive. Rows
are few (one per worker process) and written every few seconds: the QuerySet API is enough here.
The list shows unexpired rows; expired ones are deleted when a worker registers.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ...engine.backend import QueueBacklog, WorkerInfo
from ...models import RegisteredWorker
from .store import OrmStore
from .transactions import DbNow, raw_delete


class OrmWorkers:
    def __init__(self, store: OrmStore) -> None:
        self.store = store

    def _rows(self) -> Any:
        return RegisteredWorker.objects.using(self.store.using).order_by()

    def register(self, info: WorkerInfo, ttl: timedelta) -> None:
        values = {
            "name": info.name,
            "host": info.host,
            "pid": info.pid,
            "workflow_queues": list(info.workflow_queues),
            "activity_queues": list(info.activity_queues),
            "app_version": info.app_version,
            "library_version": info.library_version,
            "started_at": info.started_at,
            "heartbeat_at": DbNow(),
            "expires_at": DbNow(ttl),
            "tasks_in_flight": info.tasks_in_flight,
        }

        def register() -> None:
            # Rows of workers that died are pruned here, when a worker (re)starts, so that
            # reading the list never writes.
            raw_delete(self._rows().filter(expires_at__lte=DbNow()))
            # The id is this worker's own: no one else writes the row, so update-or-insert
            # cannot race.
            if not self._rows().filter(worker_id=info.worker_id).update(**values):
                RegisteredWorker(worker_id=info.worker_id, **values).save(using=self.store.using, force_insert=True)

        self.store.db.run(register, reconnect=True)

    def heartbeat(self, worker_id: str, tasks_in_flight: int, ttl: timedelta) -> bool:
        def heartbeat() -> bool:
            live = self._rows().filter(worker_id=worker_id, expires_at__gt=DbNow())
            return bool(live.update(heartbeat_at=DbNow(), expires_at=DbNow(ttl), tasks_in_flight=tasks_in_flight))

        return bool(self.store.db.run(heartbeat, reconnect=True))

    def unregister(self, worker_id: str) -> None:
        self.store.db.run(lambda: raw_delete(self._rows().filter(worker_id=worker_id)), reconnect=True)

    def live(self) -> list[WorkerInfo]:
        def live() -> list[WorkerInfo]:
            return [_info(row) for row in self._rows().filter(expires_at__gt=DbNow()).order_by("worker_id")]

        return list(self.store.db.run(live, atomic=False, reconnect=True))

    def backlog(self) -> list[QueueBacklog]:
        workflows, activities = self.store.db.run(self.store.sql.backlog, atomic=False, reconnect=True)
        return [
            QueueBacklog(
                queue=queue,
                ready_workflow_tasks=workflows.get(queue, (0, 0.0))[0],
                ready_activity_tasks=activities.get(queue, (0, 0.0))[0],
                oldest_workflow_task_age=workflows[queue][1] if queue in workflows else None,
                oldest_activity_task_age=activities[queue][1] if queue in activities else None,
            )
            for queue in sorted(set(workflows) | set(activities))
        ]


def _info(row: RegisteredWorker) -> WorkerInfo:
    return WorkerInfo(
        worker_id=row.worker_id,
        name=row.name,
        host=row.host,
        pid=row.pid,
        workflow_queues=tuple(row.workflow_queues or ()),
        activity_queues=tuple(row.activity_queues or ()),
        app_version=row.app_version,
        library_version=row.library_version,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        tasks_in_flight=row.tasks_in_flight,
    )
