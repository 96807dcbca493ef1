"""Search indexes the console and the admin need at a million jobs (issue 14)."""

from django.db import migrations

# PostgreSQL only: SQLite has no trigram index, and an expression index
# there would tie the file to Django's SQL functions. Both serve searches of
# the console and the admin (queues/models.py, ``id_tail`` and
# ``ContainsText``); the expressions must stay exactly what those write.
ID_TAIL_INDEX = (
    "CREATE INDEX IF NOT EXISTS jobs_id_tail_idx"
    " ON jobs (reverse(right(id::text, 8)) text_pattern_ops)"
)
ERROR_TEXT_INDEX = (
    "CREATE INDEX IF NOT EXISTS jobs_error_text_trgm_idx"
    " ON jobs USING gin (error_text gin_trgm_ops) WHERE error_text IS NOT NULL"
)


def create_search_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(ID_TAIL_INDEX)
    # The planner needs the expression's statistics to pick the index over
    # walking the tenant's jobs by time; ANALYZE gathers them now instead of
    # whenever autovacuum next analyzes the table.
    schema_editor.execute("ANALYZE jobs")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        available = cursor.fetchone() is not None
    if not available:
        # A server without the contrib package: error-text searches still
        # work, they read the candidate rows (docs/operations.md).
        print("\n  pg_trgm is not installed: no trigram index on jobs.error_text")
        return
    # Trusted since PostgreSQL 13: the database's owner may create it.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(ERROR_TEXT_INDEX)


def drop_search_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS jobs_error_text_trgm_idx")
    schema_editor.execute("DROP INDEX IF EXISTS jobs_id_tail_idx")


class Migration(migrations.Migration):

    dependencies = [
        ('queues', '0008_lease_index_run_at'),
    ]

    operations = [
        migrations.RunPython(create_search_indexes, drop_search_indexes),
    ]
