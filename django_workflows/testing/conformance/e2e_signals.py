"""End-to-end conformance cases for signals, channels and coroutines inside workflows (ports
go-workflows' signal cases in ``backend/test/e2e.go`` and its ``signal``, ``concurrent`` and
``concurrent-errgroup`` samples): signal channels, signals sent before the channel exists,
signals between workflows, Go-style channels, ``go``, ``select``, ``WaitGroup``, error groups
and ``gather``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ... import workflow
from ...engine.errors import InstanceNotFound
from ...engine.history import EventType
from .support import EndToEndFixtures

_ONCE = workflow.ActivityOptions()


def _echo(value: Any) -> Any:
    return value


class SignalCases(EndToEndFixtures):
    def test_signal_is_received(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> Any:
            return await workflow.new_signal_channel(ctx, "greeting").receive(ctx)

        h = e2e([wf])
        instance = h.run(wf)
        h.client.signal_workflow(instance.instance_id, "greeting", {"text": "hello"})
        assert h.wait_result(instance) == {"text": "hello"}
        assert EventType.SIGNAL_RECEIVED in h.types(instance)

    def test_signals_sent_before_the_channel_exists_keep_arrival_order(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[Any]:
            await workflow.new_signal_channel(ctx, "go").receive(ctx)
            # The "data" signals all arrived before this channel was created.
            data = workflow.new_signal_channel(ctx, "data")
            return [await data.receive(ctx) for _ in range(4)]

        h = e2e([wf])
        instance = h.run(wf)
        for value in ["a", "b", "c", "d"]:
            h.client.signal_workflow(instance.instance_id, "data", value)
        h.client.signal_workflow(instance.instance_id, "go", None)
        assert h.wait_result(instance) == ["a", "b", "c", "d"]

    def test_many_signals_are_never_dropped(self, e2e: Any) -> None:
        # go-workflows buffers 100 signals and drops the rest; signal channels here are unbounded.
        count = 150

        async def wf(ctx: workflow.Context) -> list[Any]:
            await workflow.new_signal_channel(ctx, "go").receive(ctx)
            channel = workflow.new_signal_channel(ctx, "n")
            return [await channel.receive(ctx) for _ in range(count)]

        h = e2e([wf])
        instance = h.run(wf)
        for n in range(count):
            h.client.signal_workflow(instance.instance_id, "n", n)
        h.client.signal_workflow(instance.instance_id, "go", None)
        assert h.wait_result(instance) == list(range(count))

    def test_signal_unknown_instance_raises_instance_not_found(self, e2e: Any) -> None:
        h = e2e()
        with pytest.raises(InstanceNotFound):
            h.client.signal_workflow(f"missing-{uuid.uuid4().hex}", "signal", "value")

    def test_signal_after_completion_raises_instance_not_found(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> None:
            return None

        h = e2e([wf])
        instance = h.run(wf)
        h.wait_result(instance)
        with pytest.raises(InstanceNotFound):
            h.client.signal_workflow(instance.instance_id, "signal", None)

    def test_signal_selected_against_a_timer(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[Any]:
            channel = workflow.new_signal_channel(ctx, "approve")
            outcomes = []
            for delay in (0.05, 30):
                tctx, cancel = workflow.with_cancel(ctx)
                timer = workflow.schedule_timer(tctx, delay)
                outcome = await workflow.select(
                    ctx,
                    workflow.on_receive(channel, lambda value, ok: ["signal", value]),
                    workflow.on_future(timer, lambda f: ["timeout", None]),
                )
                cancel()
                outcomes.append(outcome)
                if outcome[0] == "timeout":
                    # Ask for the signal only once the first wait timed out.
                    await workflow.execute_activity(ctx, _ONCE, _echo, "waiting")
            return outcomes

        h = e2e([wf], [_echo])
        instance = h.run(wf)
        h.wait_for_event(instance, EventType.ACTIVITY_COMPLETED)
        h.client.signal_workflow(instance.instance_id, "approve", "yes")
        assert h.wait_result(instance) == [["timeout", None], ["signal", "yes"]]

    def test_signal_workflow_from_workflow(self, e2e: Any) -> None:
        async def child(ctx: workflow.Context, i: int) -> int:
            value = await workflow.new_signal_channel(ctx, "signal").receive(ctx)
            return i * 2 + len(value)

        async def parent(ctx: workflow.Context) -> int:
            child_id = await workflow.side_effect(ctx, lambda: f"child-{uuid.uuid4().hex}")
            result = workflow.create_sub_workflow_instance(
                ctx, workflow.SubWorkflowOptions(instance_id=child_id), child, 1
            )
            await workflow.signal_workflow(ctx, child_id, "signal", "hello")
            return await result

        h = e2e([parent, child])
        assert h.result(parent) == 7

    def test_signal_workflow_from_workflow_to_missing_instance_fails(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[str]:
            try:
                await workflow.signal_workflow(ctx, f"missing-{uuid.uuid4().hex}", "signal", "hello")
            except workflow.WorkflowError as err:
                return [err.type, err.message]
            return ["delivered", ""]

        h = e2e([wf])
        error_type, message = h.result(wf)
        assert "workflow instance not found" in message
        assert error_type in {"InstanceNotFound", "InstanceFinished"}


class ConcurrencyCases(EndToEndFixtures):
    def test_unbuffered_channel_between_coroutines(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[Any]:
            channel = workflow.new_channel()

            async def producer(ctx: workflow.Context) -> None:
                for n in range(3):
                    # An activity between sends makes the exchange span several tasks.
                    value = await workflow.execute_activity(ctx, _ONCE, _echo, n)
                    await channel.send(ctx, value)
                channel.close()

            workflow.go(ctx, producer)
            received = []
            while True:
                value, ok = await channel.receive_with_ok(ctx)
                if not ok:
                    break
                received.append(value)
            return received

        h = e2e([wf], [_echo])
        assert h.result(wf) == [0, 1, 2]

    def test_buffered_channel_and_close(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[Any]:
            channel = workflow.new_buffered_channel(2)
            sent = [channel.send_nonblocking(v) for v in ("a", "b", "c")]
            length = channel.len()
            channel.close()
            first = await channel.receive(ctx)
            second, ok = await channel.receive_with_ok(ctx)
            third = channel.receive_nonblocking()
            try:
                await channel.receive(ctx)
                closed = False
            except workflow.ChannelClosed:
                closed = True
            return [sent, length, first, second, ok, list(third), closed]

        h = e2e([wf])
        assert h.result(wf) == [[True, True, False], 2, "a", "b", True, [None, False], True]

    def test_select_takes_the_first_ready_case_in_argument_order(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[Any]:
            full = workflow.new_buffered_channel(1)
            full.send_nonblocking("item")
            room = workflow.new_buffered_channel(1)
            empty = workflow.new_channel()
            done = workflow.execute_activity(ctx, _ONCE, _echo, "done")
            pending = workflow.schedule_timer(ctx, 0.001)
            out = [
                await workflow.select(
                    ctx,
                    workflow.on_receive(full, lambda v, ok: ["receive", v, ok]),
                    workflow.on_send(room, "x", lambda: ["send"]),
                    workflow.on_default(lambda: ["default"]),
                ),
                await workflow.select(
                    ctx,
                    workflow.on_send(room, "y", lambda: ["send", room.len()]),
                    workflow.on_receive(empty, lambda v, ok: ["receive"]),
                ),
                # Default wins only when nothing else is ready, wherever it stands.
                await workflow.select(
                    ctx, workflow.on_default(lambda: ["default"]), workflow.on_receive(empty, lambda v, ok: ["receive"])
                ),
                await workflow.select(
                    ctx, workflow.on_default(lambda: ["default"]), workflow.on_receive(room, lambda v, ok: ["receive", v])
                ),
            ]

            async def async_handler(future: workflow.Future[Any]) -> list[Any]:
                return ["future", await future]

            # Blocking select: nothing is ready until the activity completes.
            out.append(
                await workflow.select(
                    ctx, workflow.on_receive(empty, lambda v, ok: ["receive"]), workflow.on_future(done, async_handler)
                )
            )
            await pending
            empty.close()
            out.append(await workflow.select(ctx, workflow.on_receive(empty, lambda v, ok: ["closed", v, ok])))
            return out

        h = e2e([wf], [_echo])
        assert h.result(wf) == [
            ["receive", "item", True],
            ["send", 1],
            ["default"],
            ["receive", "y"],
            ["future", "done"],
            ["closed", None, False],
        ]

    def test_go_and_wait_group(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[Any]:
            wg = workflow.WaitGroup()
            results: list[Any] = []
            for n in range(3):
                wg.add(1)

                async def work(ctx: workflow.Context, n: int = n) -> None:
                    try:
                        results.append(await workflow.execute_activity(ctx, _ONCE, _echo, n * 10))
                    finally:
                        wg.done()

                workflow.go(ctx, work)
            await wg.wait(ctx)
            return sorted(results)

        h = e2e([wf], [_echo])
        assert h.result(wf) == [0, 10, 20]

    def test_go_returns_a_future_of_the_coroutine(self, e2e: Any) -> None:
        def fails() -> None:
            raise LookupError("no such thing")

        async def wf(ctx: workflow.Context) -> list[Any]:
            async def ok(ctx: workflow.Context) -> int:
                return await workflow.execute_activity(ctx, _ONCE, _echo, 5)

            async def failing(ctx: workflow.Context) -> None:
                # A WorkflowError escaping a coroutine resolves its future, not the workflow.
                await workflow.execute_activity(ctx, _ONCE, fails)

            good = workflow.go(ctx, ok)
            bad = workflow.go(ctx, failing)
            try:
                await bad
                outcome = "no error"
            except workflow.WorkflowError as err:
                outcome = f"{err.type}: {err.message}"
            return [await good, outcome]

        h = e2e([wf], [_echo, fails])
        assert h.result(wf) == [5, "LookupError: no such thing"]

    def test_workflow_ends_only_when_every_coroutine_ends(self, e2e: Any) -> None:
        finished: list[str] = []

        async def wf(ctx: workflow.Context) -> str:
            async def background(ctx: workflow.Context) -> None:
                await workflow.sleep(ctx, 0.1)
                await workflow.execute_activity(ctx, _ONCE, _echo, "late")
                finished.append("background")

            workflow.go(ctx, background)
            return "main done"

        h = e2e([wf], [_echo])
        instance = h.run(wf)
        assert h.wait_result(instance) == "main done"
        assert "background" in finished
        types = h.types(instance)
        assert types.index(EventType.ACTIVITY_COMPLETED) < types.index(EventType.WORKFLOW_EXECUTION_FINISHED)

    def test_err_group_first_error_cancels_the_group(self, e2e: Any) -> None:
        def fails() -> None:
            raise ValueError("first failure")

        async def wf(ctx: workflow.Context) -> list[Any]:
            gctx, group = workflow.with_err_group(ctx)
            outcomes: list[str] = []

            async def failing(ctx: workflow.Context) -> None:
                await workflow.execute_activity(ctx, _ONCE, fails)

            async def waiting(ctx: workflow.Context) -> None:
                try:
                    await workflow.sleep(ctx, 30)
                    outcomes.append("slept")
                except workflow.Canceled:
                    outcomes.append("canceled")
                    raise

            group.go(failing)
            group.go(waiting)
            try:
                await group.wait(ctx)
                error = ""
            except workflow.WorkflowError as err:
                error = f"{err.type}: {err.message}"
            return [error, outcomes, gctx.err() is not None]

        h = e2e([wf], [fails])
        assert h.result(wf) == ["ValueError: first failure", ["canceled"], True]

    def test_err_group_without_errors(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[Any]:
            _, group = workflow.with_err_group(ctx)
            results: list[Any] = []

            for n in range(3):

                async def work(ctx: workflow.Context, n: int = n) -> None:
                    results.append(await workflow.execute_activity(ctx, _ONCE, _echo, n))

                group.go(work)
            await group.wait(ctx)
            return sorted(results)

        h = e2e([wf], [_echo])
        assert h.result(wf) == [0, 1, 2]

    def test_gather(self, e2e: Any) -> None:
        def fails(n: int) -> None:
            raise ValueError(f"failed {n}")

        async def wf(ctx: workflow.Context) -> list[Any]:
            values = await workflow.gather(ctx, *[workflow.execute_activity(ctx, _ONCE, _echo, n) for n in range(4)])
            futures = [
                workflow.execute_activity(ctx, _ONCE, _echo, 1),
                workflow.execute_activity(ctx, _ONCE, fails, 2),
                workflow.execute_activity(ctx, _ONCE, fails, 3),
            ]
            try:
                await workflow.gather(ctx, *futures)
                error = ""
            except workflow.WorkflowError as err:
                error = err.message
            # Every future was awaited or is done: no pending futures remain.
            await workflow.gather(ctx, *[workflow.go(ctx, _swallow(f)) for f in futures])
            return [values, error]

        h = e2e([wf], [_echo, fails])
        assert h.result(wf) == [[0, 1, 2, 3], "failed 2"]


def _swallow(future: workflow.Future[Any]) -> Any:
    async def run(ctx: workflow.Context) -> None:
        try:
            await future
        except workflow.WorkflowError:
            pass

    return run
