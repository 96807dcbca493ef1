"""Only dead jobs' error text in the trigram index (issue 14).

Migration 0009 indexed the error text of every job, so each nack that
retries, the common failure, wrote its traceback's trigrams: 230 µs more
per nack for a 2 KB traceback (docs/benchmarks.md). Searches of error text
are searches of the dead-letter queue; the few other jobs with an error
text (waiting to retry, or cancelled after a failure) get a plain partial
index instead (``queues.models.error_text_contains`` searches both).
"""

from django.conf import settings
from django.db import migrations, models

DEAD_ERROR_INDEX = (
    "CREATE INDEX IF NOT EXISTS jobs_dead_error_trgm_idx ON jobs"
    " USING gin (error_text gin_trgm_ops) WHERE status = 'dead' AND error_text IS NOT NULL"
)
EVERY_ERROR_INDEX = (
    "CREATE INDEX IF NOT EXISTS jobs_error_text_trgm_idx"
    " ON jobs USING gin (error_text gin_trgm_ops) WHERE error_text IS NOT NULL"
)


def _has_trgm(schema_editor) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        return cursor.fetchone() is not None


# The new index is built before the old one is dropped: building holds off
# writes to jobs, but DROP INDEX takes a lock that holds off reads too (leases
# included), and the migration's transaction keeps it until it commits, so it
# comes last.


def index_dead_errors_only(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    if _has_trgm(schema_editor):  # 0009 created it where the server has it
        schema_editor.execute(DEAD_ERROR_INDEX)
    schema_editor.execute("DROP INDEX IF EXISTS jobs_error_text_trgm_idx")


def index_every_error(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    if _has_trgm(schema_editor):
        schema_editor.execute(EVERY_ERROR_INDEX)
    schema_editor.execute("DROP INDEX IF EXISTS jobs_dead_error_trgm_idx")


class Migration(migrations.Migration):

    dependencies = [
        ('queues', '0010_dead_letter_indexes_sample_totals'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('error_text__isnull', False), models.Q(('status', 'dead'), _negated=True)), fields=['id'], name='jobs_erred_live_idx'),
        ),
        migrations.RunPython(index_dead_errors_only, index_every_error),
    ]
