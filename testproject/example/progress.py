"""Where an order stands: its row, as the workflow's activities left it, read together with the
outcome of the workflow itself.

The activities record the business steps (awaiting approval, approved, shipped, rejected). A
workflow can also end without running any more of them: an operator cancels or terminates it, or
it fails. The row then still says "Awaiting approval", so the pages ask the workflow how it
ended and show that instead, with the buttons that still make sense and no more reloading once
nothing will change.
"""

from __future__ import annotations

from dataclasses import dataclass

from django_workflows.client import Client
from django_workflows.engine.backend import InstanceInfo
from django_workflows.engine.core import InstanceState
from django_workflows.engine.errors import Canceled, InstanceNotFound, WorkflowError, WorkflowTerminated

from .models import Order

#: Rows in these states belong to a workflow that has completed: no need to ask it.
_DONE = {Order.Status.SHIPPED, Order.Status.REJECTED}


@dataclass(frozen=True, slots=True)
class OrderProgress:
    #: A machine name for the state: an ``Order.Status`` value, or ``canceled``, ``terminated``,
    #: ``failed`` when the workflow ended that way, or ``starting`` before it exists.
    state: str
    label: str
    #: Why it ended that way (the termination reason, the error), if it says.
    detail: str = ""
    #: Nothing will change any more: the page stops reloading, no buttons.
    finished: bool = False
    #: The workflow waits for the approval signal.
    can_decide: bool = False
    #: The workflow is running and can be asked to cancel.
    can_cancel: bool = False
    info: InstanceInfo | None = None


def order_progress(order: Order, client: Client | None = None) -> OrderProgress:
    if order.status in _DONE:
        return OrderProgress(order.status, order.get_status_display(), finished=True)
    client = client or Client()
    try:
        info = client.get_workflow_instance_info(order.workflow_instance_id)
    except InstanceNotFound:
        # The post_save receiver starts the workflow when the creating transaction commits.
        return OrderProgress("starting", "Starting")
    if info.state is InstanceState.ACTIVE:
        waiting = order.status == Order.Status.AWAITING_APPROVAL
        return OrderProgress(order.status, order.get_status_display(), can_decide=waiting, can_cancel=True, info=info)
    try:
        client.get_workflow_result(info.instance, timeout=0)
    except WorkflowTerminated as exc:
        return OrderProgress("terminated", "Terminated", _reason(str(exc)), finished=True, info=info)
    except Canceled:
        return OrderProgress("canceled", "Canceled", finished=True, info=info)
    except WorkflowError as exc:
        return OrderProgress("failed", "Failed", f"{exc.type}: {exc.message}", finished=True, info=info)
    # Completed, and the row has caught up by now (its last activity ran before completion).
    order.refresh_from_db(fields=["status", "tracking_number", "reminders_sent"])
    return OrderProgress(order.status, order.get_status_display(), finished=True, info=info)


def _reason(message: str) -> str:
    # "workflow terminated: <reason>" -> "<reason>"
    prefix = "workflow terminated"
    return message[len(prefix) :].lstrip(": ") if message.startswith(prefix) else message
