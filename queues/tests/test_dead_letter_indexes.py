"""The dead-letter queue's counts come from its partial indexes (migration 0010).

The console's DLQ counts a tenant's dead jobs, and counts them per queue,
on every view; the admin's DLQ counts the dead jobs of one reason. Without
jobs_dead_owner_queue_idx and jobs_dead_reason_id_idx, PostgreSQL reads
each of those dead jobs from the table (25 ms for a tenant with 16,500 dead
jobs, docs/benchmarks.md); with them, from the index alone (2 ms) once
vacuum has marked the pages visible, which a test's transaction cannot.
So these tests check what the pages stay right without: that the counts
look the rows up in those indexes, and read no column the indexes lack.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from queues.tests.factories import JobFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres_only]


def _counts_on_page(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return [
        q["sql"]
        for q in queries.captured_queries
        if "COUNT(" in q["sql"] and '"jobs"' in q["sql"] and "EXPLAIN" not in q["sql"]
    ]


def _plan(sql: str) -> str:
    """EXPLAIN of ``sql`` with sequential scans priced out (a test has few
    rows), after ANALYZE, so the planner knows how few jobs are dead."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_consoles_dead_letter_counts_use_the_dead_letter_index(client):
    owner = UserFactory()
    # Other tenants' dead jobs: the planner must have some to skip.
    JobFactory.create_batch(150, dead=True, owner=UserFactory())
    JobFactory.create_batch(3, owner=owner, queue_name="emails", dead=True)
    JobFactory(owner=owner, queue_name="sms", dead=True)
    JobFactory.create_batch(2, owner=owner, queue_name="emails")
    client.force_login(owner)

    counts = _counts_on_page(client, "/console/dlq/")

    # The list's count (capped) and the count per queue.
    assert len(counts) == 2
    for sql in counts:
        plan = _plan(sql)
        assert "on jobs_dead_owner_queue_idx" in plan and "Index Cond: (user_id = " in plan, plan
        # COUNT(*): a count of ids would need the table.
        assert '"id")' not in sql.split(" FROM ")[0], sql


def test_the_admins_dead_letter_reason_filter_counts_with_its_index(admin_client):
    JobFactory.create_batch(2, dead=True, dead_reason="operator")
    JobFactory.create_batch(150, dead=True, dead_reason="lease_expired", owner=UserFactory())

    counts = _counts_on_page(admin_client, "/admin/queues/deadjob/?dead_reason__exact=operator")

    assert counts
    for sql in counts:
        plan = _plan(sql)
        assert "on jobs_dead_reason_id_idx" in plan, plan
        assert "Index Cond: ((dead_reason)::text = 'operator'" in plan, plan
