"""End-to-end conformance cases for durable timers (port of go-workflows
``backend/test/e2e_timer.go``): firing, cancellation through the timer's context before and
after it is committed, canceling twice, and timers that come due while a task runs.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from ... import workflow
from ...engine.history import EventType
from .support import EndToEndFixtures, contains_in_order


def _noop() -> None:
    return None


_ONCE = workflow.ActivityOptions()


async def _outcome(timer: workflow.Future[None]) -> str:
    try:
        await timer
    except workflow.Canceled:
        return "canceled"
    return "fired"


class TimerCases(EndToEndFixtures):
    def test_sleep_waits_in_workflow_time(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> float:
            start = workflow.now(ctx)
            await workflow.sleep(ctx, 0.2)
            return (workflow.now(ctx) - start).total_seconds()

        h = e2e([wf])
        instance = h.run(wf)
        assert h.wait_result(instance) >= 0.2
        assert contains_in_order(h.history(instance), EventType.TIMER_SCHEDULED, EventType.TIMER_FIRED)

    def test_cancel_workflow_instance_cancels_timer(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> str:
            return await _outcome(workflow.schedule_timer(ctx, 30))

        h = e2e([wf])
        instance = h.run(wf)
        h.wait_for_event(instance, EventType.TIMER_SCHEDULED)
        h.client.cancel_workflow_instance(instance)
        assert h.wait_result(instance) == "canceled"
        assert contains_in_order(
            h.history(instance),
            EventType.TIMER_SCHEDULED,
            EventType.WORKFLOW_EXECUTION_CANCELED,
            EventType.TIMER_CANCELED,
        )
        assert EventType.TIMER_FIRED not in h.types(instance)

    def test_cancel_before_starting_records_nothing(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> str:
            tctx, cancel = workflow.with_cancel(ctx)
            timer = workflow.schedule_timer(tctx, 30)
            cancel()
            # Force the end of the task before looking at the timer again.
            await workflow.execute_activity(ctx, _ONCE, _noop)
            return await _outcome(timer)

        h = e2e([wf], [_noop])
        instance = h.run(wf)
        assert h.wait_result(instance) == "canceled"
        types = h.types(instance)
        assert EventType.TIMER_SCHEDULED not in types
        assert EventType.TIMER_CANCELED not in types

    def test_cancel_twice(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> str:
            tctx, cancel = workflow.with_cancel(ctx)
            timer = workflow.schedule_timer(tctx, 30)
            await workflow.execute_activity(ctx, _ONCE, _noop)
            cancel()
            await workflow.execute_activity(ctx, _ONCE, _noop)
            cancel()
            await workflow.execute_activity(ctx, _ONCE, _noop)
            return await _outcome(timer)

        h = e2e([wf], [_noop])
        instance = h.run(wf)
        assert h.wait_result(instance) == "canceled"
        types = h.types(instance)
        assert contains_in_order(h.history(instance), EventType.TIMER_SCHEDULED, EventType.TIMER_CANCELED)
        assert types.count(EventType.TIMER_CANCELED) == 1

    def test_canceled_timer_never_fires(self, e2e: Any) -> None:
        # go-workflows' Timer/CancelBeforeFiringRemovesFutureEvent, observed from outside: the
        # workflow outlives the canceled timer's due time, and no TimerFired ever reaches it.
        async def wf(ctx: workflow.Context) -> str:
            tctx, cancel = workflow.with_cancel(ctx)
            due = workflow.now(ctx) + timedelta(seconds=0.8)
            timer = workflow.schedule_timer(tctx, 0.8)
            await workflow.sleep(ctx, 0.001)
            cancel()
            await workflow.sleep(ctx, max(0.0, (due - workflow.now(ctx)).total_seconds()) + 0.3)
            return await _outcome(timer)

        h = e2e([wf])
        instance = h.run(wf)
        outcome = h.wait_result(instance)
        history = h.history(instance)
        timer_id = next(e for e in history if e.type is EventType.TIMER_SCHEDULED).schedule_event_id
        fired = [e.schedule_event_id for e in history if e.type is EventType.TIMER_FIRED]
        canceled = [e.schedule_event_id for e in history if e.type is EventType.TIMER_CANCELED]
        assert len(fired) >= 2  # the two sleeps
        if outcome == "canceled":
            assert canceled == [timer_id] and timer_id not in fired
        else:
            # Only on a machine so slow that the first task took longer than the timer: it
            # fired before the cancel ran, and then there is nothing to cancel.
            assert outcome == "fired" and canceled == [] and fired.count(timer_id) == 1

    def test_timer_due_while_its_task_runs(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> str:
            timer = workflow.schedule_timer(ctx, 0.05)
            if not workflow.replaying(ctx):
                # The task outlasts the timer: it is due before it is even stored.
                time.sleep(0.2)
            await timer
            return "fired"

        h = e2e([wf])
        instance = h.run(wf)
        assert h.wait_result(instance) == "fired"
        assert contains_in_order(h.history(instance), EventType.TIMER_SCHEDULED, EventType.TIMER_FIRED)

    def test_schedule_cancel_race(self, e2e: Any) -> None:
        # go-workflows' Timer/ScheduleCancelRace: the timer is canceled, then the task runs past
        # the timer's due time, so its TimerFired becomes visible while the task that cancels it
        # is still running.
        async def wf(ctx: workflow.Context) -> str:
            tctx, cancel = workflow.with_cancel(ctx)
            timer = workflow.schedule_timer(tctx, 0.1)
            await workflow.sleep(ctx, 0.001)
            cancel()
            outcome = await _outcome(timer)
            time.sleep(0.2)
            return outcome

        h = e2e([wf])
        instance = h.run(wf)
        # Either the timer fired before the cancel ran (its event was in the same task), or it
        # was canceled; both are correct, and the workflow must finish either way.
        assert h.wait_result(instance) in {"fired", "canceled"}

    def test_timer_raced_against_activity_with_select(self, e2e: Any) -> None:
        def quick() -> str:
            return "activity"

        async def wf(ctx: workflow.Context) -> str:
            tctx, cancel_timer = workflow.with_cancel(ctx)
            timer = workflow.schedule_timer(tctx, 30)
            work = workflow.execute_activity(ctx, _ONCE, quick)
            winner = await workflow.select(
                ctx,
                workflow.on_future(timer, lambda f: "timer"),
                workflow.on_future(work, lambda f: f.result()),
            )
            cancel_timer()
            return winner

        h = e2e([wf], [quick])
        instance = h.run(wf)
        assert h.wait_result(instance) == "activity"
        assert contains_in_order(h.history(instance), EventType.TIMER_SCHEDULED, EventType.TIMER_CANCELED)
