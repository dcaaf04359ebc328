"""End-to-end cases: payload limits (``max_payload_size``, ``payload_warn_size``).

A payload over the limit is refused where it is made, before anything is written, with
``PayloadTooLarge`` naming its size and the limit: a start or a signal raises it from the
client, an input that workflow code passes fails the call's future, and an activity or workflow
result over it fails the attempt or the workflow at once, never retried. Payloads up to the
limit must be stored by the backend itself (on MySQL/MariaDB, under ``max_allowed_packet``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest

from ... import workflow
from ...client import InstanceNotFound, PayloadTooLarge, ScheduleNotFound
from ...engine.history import EventType, SignalReceivedAttributes
from ...engine.payloads import DEFAULT_MAX_PAYLOAD_SIZE
from .support import EndToEndFixtures

#: Small limits, so the cases move kilobytes rather than megabytes.
LIMITS = {"payload_warn_size": 1_000, "max_payload_size": 4_000}
_RETRIED = workflow.ActivityOptions(
    retry_options=workflow.RetryOptions(max_attempts=3, first_retry_interval=0.01, backoff_coefficient=1)
)


def _big(size: int = 5_000) -> str:
    return "x" * size


def _returns_big() -> str:
    return _big()


def _echo(value: Any) -> Any:
    return value


def _length(value: str) -> int:
    return len(value)


class PayloadCases(EndToEndFixtures):
    def test_a_start_over_the_limit_is_refused_before_anything_is_written(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context, value: str) -> int:
            return len(value)

        h = e2e([wf], backend=LIMITS)
        instance_id = f"big-{uuid.uuid4().hex}"
        with pytest.raises(PayloadTooLarge, match=r"workflow input 1 of workflow wf .* is 5,002 bytes, over the payload limit of 4,000 bytes") as info:
            h.run(wf, _big(), instance_id=instance_id)
        assert (info.value.size, info.value.limit, info.value.type) == (5_002, 4_000, "PayloadTooLarge")
        assert isinstance(info.value, ValueError)
        with pytest.raises(InstanceNotFound):
            h.client.get_workflow_instance_state(instance_id)
        assert h.result(wf, _big(3_000)) == 3_000  # under the limit, over the warning size
        # A schedule's arguments are start inputs too: refused when the schedule is created.
        schedule_id = f"big-{uuid.uuid4().hex}"
        with pytest.raises(PayloadTooLarge, match="workflow input 1 of the schedule's workflow wf is 5,002 bytes"):
            h.client.create_schedule(schedule_id, timedelta(hours=1), wf, _big())
        with pytest.raises(ScheduleNotFound):
            h.client.describe_schedule(schedule_id)

    def test_a_signal_over_the_limit_is_refused_before_anything_is_written(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> str:
            return str(await workflow.new_signal_channel(ctx, "note").receive(ctx))

        h = e2e([wf], backend=LIMITS)
        instance = h.run(wf)
        with pytest.raises(PayloadTooLarge, match="signal value of signal note is 5,002 bytes"):
            h.client.signal_workflow(instance.instance_id, "note", _big())
        h.client.signal_workflow(instance.instance_id, "note", "small")
        assert h.wait_result(instance) == "small"
        signals = [e for e in h.history(instance) if isinstance(e.attributes, SignalReceivedAttributes)]
        assert [e.attributes.arg for e in signals] == ['"small"']

    def test_an_activity_result_over_the_limit_fails_the_attempt_at_once(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[Any]:
            try:
                await workflow.execute_activity(ctx, _RETRIED, _returns_big)
            except workflow.PayloadTooLarge as err:
                return [err.type, err.permanent, err.message]
            return []

        h = e2e([wf], [_returns_big], backend=LIMITS)
        instance = h.run(wf)
        kind, permanent, message = h.wait_result(instance)
        assert (kind, permanent) == ("PayloadTooLarge", True)
        assert message.startswith("activity result of activity _returns_big (instance ")
        assert message.endswith("is 5,002 bytes, over the payload limit of 4,000 bytes (max_payload_size)")
        # Not retried: another attempt would return the same value.
        assert h.types(instance).count(EventType.ACTIVITY_SCHEDULED) == 1

    def test_a_workflow_result_over_the_limit_fails_the_workflow(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> str:
            return _big()

        h = e2e([wf], backend=LIMITS)
        with pytest.raises(workflow.PayloadTooLarge, match=r"workflow result in workflow wf .* is 5,002 bytes") as info:
            h.result(wf)
        assert info.value.permanent and not info.value.panic

    def test_inputs_from_workflow_code_over_the_limit_fail_the_call(self, e2e: Any) -> None:
        async def child(ctx: workflow.Context, value: str) -> int:
            return len(value)

        async def wf(ctx: workflow.Context) -> list[str]:
            out = []
            for future in (
                workflow.execute_activity(ctx, _RETRIED, _echo, _big()),
                workflow.create_sub_workflow_instance(ctx, workflow.SubWorkflowOptions(), child, _big()),
                workflow.signal_workflow(ctx, "nobody", "note", _big()),
            ):
                try:
                    await future
                except workflow.PayloadTooLarge as err:
                    out.append(err.message.split(" in workflow ")[0])
            # A later task (without the executor cache: a replay) meets the same refusals.
            await workflow.sleep(ctx, 0.01)
            return out

        h = e2e([wf, child], [_echo], backend=LIMITS)
        instance = h.run(wf)
        assert h.wait_result(instance) == ["activity input", "sub-workflow input", "signal value"]
        types = h.types(instance)
        assert EventType.ACTIVITY_SCHEDULED not in types and EventType.SUB_WORKFLOW_SCHEDULED not in types

    def test_a_side_effect_over_the_limit_fails_the_workflow(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> str:
            try:
                await workflow.side_effect(ctx, _big)
            except workflow.PayloadTooLarge:
                return "caught"  # no replay could see this raise again: the workflow fails anyway
            return "stored"

        h = e2e([wf], backend=LIMITS)
        instance = h.run(wf)
        with pytest.raises(workflow.PayloadTooLarge, match="side effect result in workflow wf"):
            h.wait_result(instance)
        assert EventType.SIDE_EFFECT_RESULT not in h.types(instance)

    def test_payloads_above_the_warning_size_are_logged(self, e2e: Any, caplog: pytest.LogCaptureFixture) -> None:
        async def wf(ctx: workflow.Context, value: str) -> str:
            return await workflow.execute_activity(ctx, _RETRIED, _echo, value)

        h = e2e([wf], [_echo], backend=LIMITS)
        with caplog.at_level(logging.WARNING, logger="django_workflows.payloads"):
            assert h.result(wf, _big(2_000)) == _big(2_000)
        # Only this logger's records: a worker of an earlier test may log (an abandoned task) meanwhile.
        warnings = [r.getMessage() for r in caplog.records if r.name == "django_workflows.payloads"]
        kinds = [message.split(" of ")[0].split(" in ")[0] for message in warnings]
        assert all("above the payload warning size of 1,000 bytes" in message for message in warnings)
        # Each payload once, where it was made (a replay does not warn again).
        assert sorted(kinds) == ["activity input", "activity result", "workflow input 1", "workflow result"]

    def test_payloads_up_to_the_default_limit_are_stored(self, e2e: Any) -> None:
        # Quotes and backslashes double in JSON and again in SQL literals: the worst case of a
        # payload's size in the statement that writes it (MySQL/MariaDB max_allowed_packet).
        value = '"\\' * (DEFAULT_MAX_PAYLOAD_SIZE // 4 - 8)

        async def wf(ctx: workflow.Context, value: str) -> int:
            echoed = await workflow.execute_activity(ctx, _RETRIED, _echo, value)
            return len(echoed)

        def returns_too_much() -> str:
            return "y" * (DEFAULT_MAX_PAYLOAD_SIZE + 1)

        async def too_much(ctx: workflow.Context) -> str:
            try:
                return await workflow.execute_activity(ctx, _RETRIED, returns_too_much)
            except workflow.PayloadTooLarge as err:
                return err.type

        h = e2e([wf, too_much], [_echo, returns_too_much])
        assert h.result(wf, value) == len(value)
        assert h.result(too_much) == "PayloadTooLarge"  # not ActivityAbandoned after five leases
        with pytest.raises(PayloadTooLarge, match="over the payload limit of 2,097,152 bytes"):
            h.run(wf, "z" * (DEFAULT_MAX_PAYLOAD_SIZE + 1))

    def test_many_payloads_near_the_limit_in_one_task_are_stored(self, e2e: Any) -> None:
        # One workflow task schedules six activities with inputs near the limit: the backend
        # writes them in one completion, whose statements must stay under the store's packet
        # limit (the ORM backend splits its inserts by size).
        value = '"\\' * (DEFAULT_MAX_PAYLOAD_SIZE // 4 - 8)

        async def fan_out(ctx: workflow.Context, count: int) -> list[int]:
            futures = [workflow.execute_activity(ctx, _RETRIED, _length, value) for _ in range(count)]
            return [await future for future in futures]

        h = e2e([fan_out], [_length])
        assert h.result(fan_out, 6) == [len(value)] * 6
