"""The seed's quickstart, ported: ``Workflow1`` runs ``Activity1(35, 12)`` then ``Activity2``.

Registered under go-workflows' names, so ``manage.py startworkflow Workflow1 ...`` and the
admin show the same names as the Go documentation. The order flow lives in ``orders`` and the
scheduled daily summary in ``reports``; they are imported here so that autodiscovery registers
them too.
"""

from __future__ import annotations

from django_workflows import register_activity, register_workflow, workflow

from . import orders, reports  # noqa: F401  (registers the order flow and the daily summary)


@register_activity(name="Activity1")
def activity1(a: int, b: int) -> int:
    return a + b


@register_activity(name="Activity2")
def activity2() -> int:
    return 12


@register_workflow(name="Workflow1")
async def workflow1(ctx: workflow.Context, input: str) -> int:
    r1 = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, activity1, 35, 12)
    workflow.logger(ctx).info("A1 result: %s", r1)
    r2 = await workflow.execute_activity(ctx, workflow.DEFAULT_ACTIVITY_OPTIONS, activity2)
    workflow.logger(ctx).info("A2 result: %s", r2)
    return r1 + r2
