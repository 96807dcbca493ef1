"""The dead-letter queue's indexes and the samples' per-minute totals (issue 14).

The totals of the minutes already sampled are summed here, so the charts
keep their past day across the upgrade.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import Sum

SUMS = {
    "enqueued": Sum("enqueued"),
    "completed": Sum("completed"),
    "dead": Sum("dead"),
    "depth": Sum("depth"),
}


def sum_past_samples(apps, schema_editor):
    QueueSample = apps.get_model("queues", "QueueSample")
    SampleTotal = apps.get_model("queues", "SampleTotal")
    db = schema_editor.connection.alias
    samples = QueueSample.objects.using(db).order_by()
    rows = [SampleTotal(**row) for row in samples.values("owner_id", "minute").annotate(**SUMS)]
    rows += [SampleTotal(owner=None, **row) for row in samples.values("minute").annotate(**SUMS)]
    SampleTotal.objects.using(db).bulk_create(rows, batch_size=500, ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ('queues', '0009_search_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='SampleTotal',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('minute', models.DateTimeField()),
                ('enqueued', models.PositiveIntegerField(default=0)),
                ('completed', models.PositiveIntegerField(default=0)),
                ('dead', models.PositiveIntegerField(default=0)),
                ('depth', models.PositiveIntegerField(null=True)),
            ],
            options={
                'db_table': 'queue_sample_totals',
            },
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('status', 'dead')), fields=['owner', 'queue_name'], name='jobs_dead_owner_queue_idx'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('status', 'dead')), fields=['dead_reason', 'id'], name='jobs_dead_reason_id_idx'),
        ),
        migrations.AddField(
            model_name='sampletotal',
            name='owner',
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='sampletotal',
            index=models.Index(fields=['minute'], name='queue_sample_totals_minute_idx'),
        ),
        migrations.AddConstraint(
            model_name='sampletotal',
            constraint=models.UniqueConstraint(condition=models.Q(('owner__isnull', False)), fields=('owner', 'minute'), name='queue_sample_totals_owner_uniq'),
        ),
        migrations.AddConstraint(
            model_name='sampletotal',
            constraint=models.UniqueConstraint(condition=models.Q(('owner__isnull', True)), fields=('minute',), name='queue_sample_totals_site_uniq'),
        ),
        migrations.RunPython(sum_past_samples, migrations.RunPython.noop),
    ]
