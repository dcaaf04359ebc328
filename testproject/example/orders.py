"""The example order flow: an approval step, a reminder timer and a shipping sub-workflow.

``order_workflow`` marks the order as awaiting approval, then waits for an ``approval`` signal
(the order page's buttons send it). Every ``REMINDER_SECONDS`` without a decision a reminder goes
out; after ``MAX_REMINDERS`` the order is rejected. An approved order is shipped by the
``ship_order`` sub-workflow. Activities update the ``Order`` row with the ORM.

The carrier takes at most ``MAX_SHIPMENT_QUANTITY`` items: ``book_shipment`` refuses larger
orders with a ``PermanentError``, which fails the shipping sub-workflow and with it the order's
workflow. That is on purpose, to show a failed workflow on the order page and in the admin.

A ``post_save`` receiver starts the workflow when an order is created, through
``start_workflow``: it runs after the creating transaction commits, and the instance id
``order-<pk>`` makes it idempotent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from django_workflows import register_activity, register_workflow, start_workflow, workflow

from .models import Order

REMINDER_SECONDS = getattr(settings, "EXAMPLE_REMINDER_SECONDS", 30)
MAX_REMINDERS = 3
MAX_SHIPMENT_QUANTITY = 10


@register_activity
def set_order_status(order_id: int, status: str) -> str:
    Order.objects.filter(pk=order_id).update(status=status)
    return status


@register_activity
def send_reminder(order_id: int) -> int:
    # A real shop would e-mail the approver here.
    order = Order.objects.get(pk=order_id)
    order.reminders_sent += 1
    order.save(update_fields=["reminders_sent"])
    return order.reminders_sent


@register_activity
def book_shipment(order_id: int) -> str:
    quantity = Order.objects.values_list("quantity", flat=True).get(pk=order_id)
    if quantity > MAX_SHIPMENT_QUANTITY:
        # Retrying would not help: fail the workflow at once.
        raise workflow.PermanentError(f"the carrier takes at most {MAX_SHIPMENT_QUANTITY} items per shipment, not {quantity}")
    tracking = f"TRACK-{order_id:06d}"
    Order.objects.filter(pk=order_id).update(tracking_number=tracking, status=Order.Status.SHIPPED)
    return tracking


@register_workflow
async def ship_order(ctx: workflow.Context, order_id: int) -> str:
    return await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, book_shipment, order_id)


async def _wait_for_decision(ctx: workflow.Context, order_id: int) -> dict[str, Any]:
    approvals = workflow.new_signal_channel(ctx, "approval")
    for _ in range(MAX_REMINDERS):
        timer_ctx, cancel_timer = workflow.with_cancel(ctx)
        reminder = workflow.schedule_timer(timer_ctx, timedelta(seconds=REMINDER_SECONDS), name="reminder")
        decision = await workflow.select(
            ctx,
            workflow.on_receive(approvals, lambda value, ok: value),
            workflow.on_future(reminder, lambda future: None),
        )
        if decision is not None:
            cancel_timer()  # no reminder needed any more; nothing may be left pending
            return dict(decision)
        await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, send_reminder, order_id)
    return {"approved": False, "reason": f"no decision after {MAX_REMINDERS} reminders"}


@register_workflow
async def order_workflow(ctx: workflow.Context, order_id: int) -> dict[str, Any]:
    options = workflow.DEFAULT_ACTIVITY_OPTIONS
    await workflow.execute_activity(ctx, options, set_order_status, order_id, Order.Status.AWAITING_APPROVAL)
    decision = await _wait_for_decision(ctx, order_id)
    if not decision.get("approved"):
        await workflow.execute_activity(ctx, options, set_order_status, order_id, Order.Status.REJECTED)
        return {"order": order_id, "status": "rejected", "reason": decision.get("reason", "")}
    await workflow.execute_activity(ctx, options, set_order_status, order_id, Order.Status.APPROVED)
    tracking = await workflow.create_sub_workflow_instance(
        ctx, workflow.SubWorkflowOptions(instance_id=f"shipping-{order_id}"), ship_order, order_id
    )
    return {"order": order_id, "status": "shipped", "tracking": tracking}


@receiver(post_save, sender=Order, dispatch_uid="example.start_order_workflow")
def start_order_workflow(sender: type[Order], instance: Order, created: bool, **kwargs: Any) -> None:
    if created:
        start_workflow(order_workflow, instance.pk, instance_id=instance.workflow_instance_id)
