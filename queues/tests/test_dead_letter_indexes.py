"""The dead-letter queue's counts fit its partial indexes (migration 0010).

The console's DLQ counts a tenant's dead jobs, and counts them per queue,
on every view; the admin's DLQ counts the dead jobs of one reason. Without
jobs_dead_owner_queue_idx and jobs_dead_reason_id_idx, PostgreSQL read each
of those dead jobs from the table (25 ms for a tenant with 16,500 dead
jobs); with them, a count is an index-only scan (2 ms, docs/benchmarks.md).

The planner picks them at that size, not with a test's few rows (where any
index is as good), so these tests pin the two halves of the fit instead:
each index is what the migration made, and each count reads no column the
index lacks (a count of ids, or any other column, would send it back to
the table). The pages' numbers are checked elsewhere (console/tests).
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from queues.tests.factories import JobFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres_only]


def _definition(index: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [index])
        (definition,) = cursor.fetchone()
    return definition


def _counts_on_page(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return [
        q["sql"]
        for q in queries.captured_queries
        if "COUNT(" in q["sql"] and '"jobs"' in q["sql"] and "EXPLAIN" not in q["sql"]
    ]


def _columns_read(sql: str) -> set[str]:
    """The jobs columns ``sql`` reads, but the id a capped count's subquery
    names and PostgreSQL never fetches (its outer COUNT(*) ignores it)."""
    sql = sql.replace('SELECT "jobs"."id" AS "col1" FROM', "SELECT FROM")
    return set(re.findall(r'"jobs"\."(\w+)"', sql))


def test_the_consoles_dead_letter_counts_read_only_what_their_index_holds(client):
    owner = UserFactory()
    JobFactory.create_batch(3, owner=owner, queue_name="emails", dead=True)
    JobFactory(owner=owner, queue_name="sms", dead=True)
    JobFactory(owner=owner, queue_name="emails")
    client.force_login(owner)

    counts = _counts_on_page(client, "/console/dlq/")

    assert _definition("jobs_dead_owner_queue_idx").endswith(
        "USING btree (user_id, queue_name) WHERE ((status)::text = 'dead'::text)"
    )
    # The list's count (capped) and the count per queue.
    assert len(counts) == 2
    for sql in counts:
        assert _columns_read(sql) <= {"user_id", "status", "queue_name"}, sql


def test_the_admins_dead_letter_reason_count_reads_only_what_its_index_holds(admin_client):
    JobFactory.create_batch(2, dead=True, dead_reason="operator")
    JobFactory(dead=True, dead_reason="lease_expired")

    counts = _counts_on_page(admin_client, "/admin/queues/deadjob/?dead_reason__exact=operator")

    assert _definition("jobs_dead_reason_id_idx").endswith(
        "USING btree (dead_reason, id) WHERE ((status)::text = 'dead'::text)"
    )
    assert counts
    for sql in counts:
        assert _columns_read(sql) <= {"status", "dead_reason", "id"}, sql
