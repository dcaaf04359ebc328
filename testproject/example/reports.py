"""An example schedule: a summary of the orders by status, every morning at 06:00 in Berlin.

The schedule is declared in code (``schedule=``); every ``manage.py runworkflows`` writes it to
the backend when it starts, and one of them fires it each morning, however many run. It shows up
in the admin under *Schedules*, where it can be paused, triggered now or deleted.
"""

from __future__ import annotations

from django.db.models import Count

from django_workflows import register_activity, register_workflow, workflow
from django_workflows.schedules import Schedule, ScheduleSpec

from .models import Order


@register_activity
def count_orders_by_status() -> dict[str, int]:
    rows = Order.objects.values("status").annotate(n=Count("id")).order_by("status")
    return {row["status"]: row["n"] for row in rows}


@register_workflow(
    schedule=Schedule(
        ScheduleSpec(cron="0 6 * * *", time_zone="Europe/Berlin"),
        schedule_id="daily-order-summary",
        catchup_window=3600,  # a worker that was down at 06:00 still sends it until 07:00
    )
)
async def daily_order_summary(ctx: workflow.Context) -> dict[str, int]:
    counts = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, count_orders_by_status)
    workflow.logger(ctx).info("orders by status: %s", counts)
    return counts
