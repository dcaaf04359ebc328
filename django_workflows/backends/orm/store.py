"""``OrmStore``: what every part of the ORM backend shares (the role of the ``*sqlBackend`` struct
in go-workflows' ``backend/sqlite``).

One store per ``OrmBackend``: its database alias and options, the transactions that retry
(``transactions.Transactions``), the named SQL (``sql.HotSql``), the wake-ups of this process's
pollers (``wakeup.Waker``), the QuerySets of its tables, and the few writes every part makes
(an event into an execution's inbox, a wake-up after commit). The task modules
(``workflow_tasks``, ``activity_tasks``) and the facade (``backend``) take the store; none of
them reaches into another's state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import connections, transaction

from ...engine.backend import BackendOptions
from ...engine.core import InstanceState, WorkflowInstance
from ...engine.errors import LeaseLost
from ...engine.history import Event
from ...models import ActivityTask as ActivityRow
from ...models import WorkflowInstance as InstanceRow
from .notifications import Notifier, listener_for
from .sql import HotSql, new_token, payload_json
from .transactions import Transactions, first
from .wakeup import Kind, waker_for

T = TypeVar("T")

ACTIVE = InstanceState.ACTIVE.value

#: An idle poller looks again this soon after it found work, then ever less often, up to the
#: poll interval: work tends to come in bursts, and an idle look is one cheap indexed read.
FAST_POLL_INTERVAL = 0.01


class OrmStore:
    def __init__(
        self,
        using: str,
        options: BackendOptions,
        *,
        poll_interval: float,
        lock_retry_timeout: float,
        notifications: bool,
        prepared_statements: bool,
    ) -> None:
        self.using = using
        self.options = options
        self.poll_interval = poll_interval
        self.db = Transactions(using, lock_retry_timeout)
        self.sql = HotSql(using, pinned=self.db.pinned, prepared=prepared_statements)
        self.waker = waker_for(using)
        #: Cross-process wake-ups (PostgreSQL LISTEN/NOTIFY), or None: polling only.
        self.notifier = Notifier(using) if notifications else None
        self._intervals = threading.local()

    # -- tables --------------------------------------------------------------------------------

    def instances(self) -> Any:
        # Unordered: the models' default ordering is for the admin, not for these queries.
        return InstanceRow.objects.using(self.using).order_by()

    def activities(self) -> Any:
        return ActivityRow.objects.using(self.using).order_by()

    def execution(self, instance: WorkflowInstance) -> Any:
        return self.instances().filter(instance_id=instance.instance_id, execution_id=instance.execution_id)

    def locking(self, queryset: Any) -> Any:
        """``FOR UPDATE SKIP LOCKED`` where the database has it (a no-op on SQLite)."""
        features = connections[self.using].features
        return queryset.select_for_update(skip_locked=bool(features.has_select_for_update_skip_locked))

    def extend_lease(self, table: str, row_id: int, token: str, lock: timedelta) -> None:
        """Extend a lease (``table``: ``"instance"`` for a workflow task, ``"activity"``) by
        ``lock`` on the database clock; ``LeaseLost`` unless this token still holds it."""
        if not self.db.run(
            lambda: self.sql.extend_lease(table, row_id, token, lock), atomic=False, reconnect=True
        ):
            raise LeaseLost()

    # -- writes every part makes ------------------------------------------------------------------

    def insert_events(self, deliveries: Sequence[tuple[int, str, Event]], *, new_instances: bool = False) -> None:
        """Put events into executions' inboxes: (execution row id, its queue, event), each with
        its own payload; inside the caller's transaction. ``new_instances``: they are the start
        events of instances created from outside any workflow (``HotSql.insert_pending``)."""
        payloads = [(new_token(), row_id, payload_json(event)) for row_id, _, event in deliveries]
        self.sql.insert_payloads(payloads)
        self.sql.insert_pending(
            [(row_id, queue, payload[0], event) for (row_id, queue, event), payload in zip(deliveries, payloads, strict=True)],
            new_instances=new_instances,
        )

    def deliver_to_execution(self, target: WorkflowInstance, event: Event) -> None:
        """Queue ``event`` for the exact execution ``target`` if it is active (locked first)."""
        row = first(self.execution(target).filter(state=ACTIVE).select_for_update().values_list("pk", "queue"))
        if row is not None:
            self.insert_events([(row[0], row[1], event)])
            self.notify_on_commit("workflow")

    def notify_on_commit(self, kind: Kind, timers: Sequence[datetime] = (), *, other_processes: bool = True) -> None:
        """Wake this process's pollers of ``kind`` once the current transaction commits (and at
        each of ``timers``), and, with ``other_processes`` where notifications are on, those of
        every process."""
        transaction.on_commit(lambda: self.waker.notify(kind, timers), using=self.using)
        if other_processes and self.notifier is not None:
            self.notifier.notify_in_transaction(kind, self.sql.notify)

    def stop_listening(self) -> None:
        """This store's pollers are done (a worker stopped): the listener may stop."""
        if self.notifier is not None:
            listener_for(self.using, self.waker).release(self)

    # -- polling ----------------------------------------------------------------------------------

    def poll(self, kind: Kind, claim: Callable[[], list[T]], timeout: float) -> list[T]:
        """Claim until something comes back or ``timeout`` passes, sleeping between looks until
        work of ``kind`` is committed by this process (or, with notifications, by any) or the
        poller's interval passes: ``FAST_POLL_INTERVAL`` after it found work, doubling with each
        empty look up to ``poll_interval``."""
        if self.notifier is not None:
            listener_for(self.using, self.waker).acquire(self)
        deadline = time.monotonic() + max(0.0, timeout)
        interval = getattr(self._intervals, kind, FAST_POLL_INTERVAL)
        try:
            while True:
                seen = self.waker.generation(kind)
                tasks = claim()
                if tasks:
                    interval = FAST_POLL_INTERVAL
                    return tasks
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self.db.release_pooled()
                self.waker.wait(kind, seen, min(remaining, interval))
                interval = min(self.poll_interval, interval * 2)
        finally:
            setattr(self._intervals, kind, interval)
            # A poller waits for free slots before it polls again, and for work between looks:
            # with Django's connection pool it holds no connection meanwhile.
            self.db.release_pooled()
