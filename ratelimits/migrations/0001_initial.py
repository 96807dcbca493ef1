# The model moved here from the queues app (queues.0004): its table,
# rate_limit_buckets, already exists (queues.0001 created it), so only
# Django's record of the model moves; the database is not touched.

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('queues', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='RateLimitBucket',
                    fields=[
                        ('key', models.CharField(max_length=100, primary_key=True, serialize=False)),
                        ('tokens', models.FloatField()),
                        ('refilled_at', models.FloatField(help_text='Unix time of the last refill.')),
                        ('last_allowed', models.BooleanField(default=True)),
                    ],
                    options={
                        'db_table': 'rate_limit_buckets',
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
