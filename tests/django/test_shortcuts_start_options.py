"""``start_workflow(..., start_delay=, execution_timeout=)`` from views: the options reach the
execution (scheduled for later, with its deadline), and bad values fail in the view."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from django_workflows import cancel_workflow, start_workflow
from django_workflows.client import Client
from django_workflows.engine.clock import utcnow
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import Canceled, InstanceNotFound
from django_workflows.models import WorkflowInstance
from testproject.example.workflows import workflow1

pytestmark = pytest.mark.django_db(transaction=True)


def test_start_delay_and_execution_timeout_from_a_view() -> None:
    before = utcnow()
    with transaction.atomic():
        instance = start_workflow(
            workflow1, "x", instance_id="later-1", start_delay=timedelta(hours=1), execution_timeout=60
        )
    client = Client()
    scheduled_for = client.get_workflow_instance_info(instance).scheduled_for
    assert scheduled_for is not None and scheduled_for >= before + timedelta(hours=1)
    row = WorkflowInstance.objects.get(instance_id="later-1")
    # The timeout counts from the delayed start.
    assert row.timeout_at is not None and row.timeout_at >= before + timedelta(hours=1, seconds=60)
    # Canceled before it starts: it ends at once, as canceled, without running.
    cancel_workflow("later-1")
    assert client.get_workflow_instance_state(instance) is InstanceState.FINISHED
    with pytest.raises(Canceled):
        client.get_workflow_result(instance, timeout=5)
    assert WorkflowInstance.objects.get(instance_id="later-1").outcome == "canceled"


def test_bad_start_options_fail_in_the_view() -> None:
    with pytest.raises(ValueError, match="start_delay must be positive"):
        start_workflow(workflow1, "x", instance_id="bad-delay", start_delay=-5)
    with pytest.raises(TypeError, match="execution_timeout must be seconds"):
        start_workflow(workflow1, "x", instance_id="bad-timeout", execution_timeout="1 hour")
    with pytest.raises(InstanceNotFound):
        Client().get_workflow_instance_state("bad-delay")
