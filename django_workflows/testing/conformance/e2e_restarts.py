"""End-to-end conformance cases for workers that stop and start while instances run: a worker
that stops gracefully hands its sticky instances back, so a rolling restart does not stall them
for ``sticky_timeout``."""

from __future__ import annotations

import time
from typing import Any

from ... import workflow
from ...engine.history import EventType
from .support import WAIT, EndToEndFixtures, wait_until

#: Far longer than any case waits: an instance still sticky to a stopped worker could not finish.
_STICKY = 600.0


class RestartCases(EndToEndFixtures):
    def test_rolling_restart_hands_sticky_instances_over(self, e2e: Any) -> None:
        async def wf(ctx: workflow.Context) -> list[Any]:
            channel = workflow.new_signal_channel(ctx, "next")
            return [await channel.receive(ctx), await channel.receive(ctx)]

        h = e2e([wf], backend={"worker_name": "worker-a", "sticky_timeout": _STICKY})
        instance = h.run(wf)
        h.wait_for_event(instance, EventType.WORKFLOW_TASK_STARTED)  # sticky to worker-a now
        running = h.worker
        # Restart worker-a while worker-b runs, then worker-b while the new worker-a runs: each
        # time the instance is sticky to the worker that stops, and the signal sent during the
        # restart must be handled by the other one, long before the stickiness would run out.
        for step, (signal, other_name) in enumerate((("one", "worker-b"), ("two", "worker-a-restarted"))):
            other = h.add_worker([wf], backend=h.other_backend(worker_name=other_name, sticky_timeout=_STICKY))
            h.stop_worker(running)
            sent = time.monotonic()
            h.client.signal_workflow(instance.instance_id, "next", signal)
            def handled(count: int = step + 1) -> bool:
                return len([e for e in h.history(instance) if e.type is EventType.SIGNAL_RECEIVED]) >= count

            wait_until(handled, timeout=WAIT, what=f"signal {signal!r} handled by {other_name} while the sticky worker restarts")
            assert time.monotonic() - sent < _STICKY
            running = other
        assert h.wait_result(instance) == ["one", "two"]
