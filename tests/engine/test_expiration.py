"""The auto-expiration system workflow, in workflow time (the end-to-end case is in the
conformance suite: ``test_auto_expiration_removes_instances_once_they_are_old_enough``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from django_workflows import workflow
from django_workflows.engine.expiration import EXPIRATION_ACTIVITY_NAME, UPDATE_SIGNAL, expire_workflow_instances
from django_workflows.testing import WorkflowTester

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _tester(calls: list[datetime]) -> WorkflowTester:
    tester = WorkflowTester(expire_workflow_instances, initial_time=START)

    def remove(finished_before: str) -> int:
        calls.append(datetime.fromisoformat(finished_before))
        return 0

    tester.on_activity(EXPIRATION_ACTIVITY_NAME).calls(remove)
    return tester


def test_removes_what_finished_a_delay_ago_every_delay_and_continues_as_new() -> None:
    calls: list[datetime] = []
    tester = _tester(calls)
    first = tester.instance
    tester.cancel_workflow(after=timedelta(hours=10, minutes=30))

    tester.execute(3600.0)

    assert calls == [START + timedelta(hours=n) for n in range(10)]
    # Ten rounds per execution, then a new execution of the same instance.
    assert tester.instance.instance_id == first.instance_id
    assert tester.instance.execution_id != first.execution_id
    with pytest.raises(workflow.Canceled):
        tester.workflow_result()


def test_an_update_restarts_the_wait_with_the_new_delay() -> None:
    calls: list[datetime] = []
    tester = _tester(calls)
    tester.signal_workflow(UPDATE_SIGNAL, 7200.0, after=timedelta(minutes=30))
    tester.cancel_workflow(after=timedelta(hours=4, minutes=45))

    tester.execute(3600.0)

    # Nothing at the old 1 h mark; then every 2 h from the update, removing what is 2 h old.
    assert calls == [START + timedelta(minutes=30), START + timedelta(hours=2, minutes=30)]
