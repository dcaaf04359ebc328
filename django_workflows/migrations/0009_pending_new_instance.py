"""Pending events say whether they start a new instance, indexed with the queue and ready time, so
that claims take the ready work of running executions before the starts of new ones (issue 21).

Additive: the column has a database default (False: "part of running work"), so a worker of the
previous version keeps inserting rows while this migration runs and after it; its rows are then
claimed in ready order as before. The old ready index stays (the previous version's claims and
the backlog figures read it)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_workflows', '0008_admin_scale'),
    ]

    operations = [
        migrations.AddField(
            model_name='pendingevent',
            name='new_instance',
            field=models.BooleanField(db_default=False, editable=False, verbose_name='new instance'),
        ),
        migrations.AddIndex(
            model_name='pendingevent',
            index=models.Index(fields=['queue', 'new_instance', 'ready_at'], name='dj_wf_pending_claim_idx'),
        ),
    ]
