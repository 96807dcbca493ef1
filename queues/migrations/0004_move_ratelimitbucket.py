# RateLimitBucket now belongs to the ratelimits app (ratelimits.0001): only
# Django's record of the model leaves this app; the table stays.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('queues', '0003_job_idempotency_key'),
        ('ratelimits', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='RateLimitBucket')],
            database_operations=[],
        ),
    ]
