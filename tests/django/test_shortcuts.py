"""``start_workflow`` and friends: deferred to commit, idempotent with an instance id."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connections, transaction

from django_workflows import acancel_workflow, asignal_workflow, astart_workflow, cancel_workflow, signal_workflow, start_workflow
from django_workflows.client import Client
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import InstanceNotFound
from django_workflows.engine.history import EventType
from django_workflows.engine.registry import ArgumentMismatch
from testproject.example.workflows import workflow1

pytestmark = pytest.mark.django_db(transaction=True)


def events(instance_id: str) -> list[EventType]:
    client = Client()
    instance = client.backend.get_latest_execution(instance_id)
    info = client.get_workflow_instance_info(instance)
    assert info.workflow_name == "Workflow1"
    return [e.type for e in client.backend.get_workflow_instance_history(instance)]


def test_start_outside_a_transaction_starts_at_once():
    instance = start_workflow(workflow1, "x", instance_id="now-1")
    assert Client().get_workflow_instance_state(instance) is InstanceState.ACTIVE


def test_start_inside_a_transaction_waits_for_the_commit():
    with transaction.atomic():
        instance = start_workflow(workflow1, "x", instance_id="deferred-1")
        with pytest.raises(InstanceNotFound):
            Client().get_workflow_instance_state(instance)
    assert Client().get_workflow_instance_state(instance) is InstanceState.ACTIVE


def test_a_rolled_back_transaction_starts_nothing():
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with transaction.atomic():
            start_workflow(workflow1, "x", instance_id="rolled-back")
            raise Boom
    with pytest.raises(InstanceNotFound):
        Client().get_workflow_instance_state("rolled-back")


def test_bad_arguments_fail_in_the_view_before_anything_is_written():
    with pytest.raises(ArgumentMismatch, match="mismatched argument count: expected 1, got 2"):
        start_workflow(workflow1, "x", "y", instance_id="bad")
    with pytest.raises(TypeError, match="mismatched argument type: expected str, got set"):
        start_workflow(workflow1, {1, 2}, instance_id="bad")
    # By name there is no signature to check, but the value still cannot be stored.
    with pytest.raises(TypeError, match="value of type set is not JSON serializable"):
        start_workflow("Workflow1", {1, 2}, instance_id="bad")
    with pytest.raises(InstanceNotFound):
        Client().get_workflow_instance_state("bad")


def test_a_given_instance_id_makes_a_retried_request_idempotent():
    first = start_workflow(workflow1, "x", instance_id="order-7")
    again = start_workflow(workflow1, "x", instance_id="order-7")
    assert again == first
    with transaction.atomic():
        start_workflow(workflow1, "x", instance_id="order-7")
    assert Client().backend.get_latest_execution("order-7") == first


def test_signal_and_cancel_shortcuts():
    instance = start_workflow(workflow1, "x", instance_id="steer-1")
    signal_workflow("steer-1", "note", {"hello": 1})
    cancel_workflow(instance)
    with pytest.raises(InstanceNotFound):
        signal_workflow("nobody", "note")


def test_async_twins():
    async def run() -> None:
        instance = await astart_workflow(workflow1, "x", instance_id="async-1")
        await asignal_workflow("async-1", "note", 1)
        await acancel_workflow(instance)
        # The shortcuts ran in asgiref's thread for sync code, which outlives the test: close its
        # connection, or PostgreSQL refuses to drop the test database at the end of the run.
        await sync_to_async(connections.close_all)()

    asyncio.run(run())
    assert Client().get_workflow_instance_state("async-1") is InstanceState.ACTIVE
