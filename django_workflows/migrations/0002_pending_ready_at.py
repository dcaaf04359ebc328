"""Pending events get their execution's queue and the time they become ready, indexed, so that
workflow-task claims find ready work without scanning the instances that wait (issue 21).

Additive: both columns are nullable, so a worker of the previous version can still insert rows
while this migration runs or after it (the new backend fills those in); existing rows are filled
here in one statement."""

from django.db import migrations, models

_FILL = """
UPDATE django_workflows_pendingevent
SET ready_at = COALESCE(visible_at, timestamp),
    queue = (SELECT i.queue FROM django_workflows_workflowinstance i
             WHERE i.id = django_workflows_pendingevent.instance_id)
WHERE ready_at IS NULL
"""


class Migration(migrations.Migration):
    dependencies = [
        ("django_workflows", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="pendingevent",
            name="queue",
            field=models.CharField(blank=True, editable=False, max_length=128, null=True, verbose_name="queue"),
        ),
        migrations.AddField(
            model_name="pendingevent",
            name="ready_at",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="ready at"),
        ),
        migrations.RunSQL(_FILL, reverse_sql=migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="pendingevent",
            index=models.Index(fields=["queue", "ready_at"], name="dj_wf_pending_ready_idx"),
        ),
    ]
