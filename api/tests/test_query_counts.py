"""Database round trips per request on the hot path (issue 5, item 2).

Pinned, so a change cannot silently add a query to enqueue, lease or ack:
if one of these fails, either remove the new round trip or update the
number here and in docs/benchmarks.md ("Fast path: what each request
costs") with the reason. Rate limits are on, as in production. Every
statement counts, BEGIN and COMMIT included: each is a round trip.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from queues.metrics import queue_labels
from queues.tests.factories import JobFactory

# Per request, after a warm-up request (the token's last_used_at is written
# at most once a minute, so the warm-up absorbs it).
EXPECTED = {
    # On PostgreSQL the token's lookup spends the rate limit in the same
    # statement (accounts/services.py, find_active_token): one round trip.
    # auth + rate limit, one INSERT ... RETURNING + pg_notify statement.
    # Here it is wrapped in SAVEPOINT/RELEASE because the test runs inside a
    # transaction; in production (autocommit) the request makes 2 round trips.
    ("postgresql", "enqueue"): 4,
    # auth SELECT, rate-limit UPSERT, BEGIN IMMEDIATE, INSERT, COMMIT
    ("sqlite", "enqueue"): 5,
    # auth + rate limit, one CTE statement (the queue's settings, probes,
    # lock, lease, RETURNING, the attempt written)
    ("postgresql", "lease"): 2,
    # auth SELECT, rate-limit UPSERT, the queue's settings, two probes, UPDATE,
    # the attempt's INSERT. In production the lease is its own transaction
    # (BEGIN IMMEDIATE ... COMMIT: 9 statements, all in-process); inside the
    # test's transaction it takes no savepoint, so 7 are seen here.
    ("sqlite", "lease"): 7,
    # Nothing due: the same statement on PostgreSQL; no UPDATE on SQLite.
    ("postgresql", "lease_empty"): 2,
    ("sqlite", "lease_empty"): 5,
    # auth + rate limit, guarded UPDATE ... RETURNING (its attempt written by
    # the same statement)
    ("postgresql", "ack"): 2,
    # auth SELECT, rate-limit UPSERT, SAVEPOINT, UPDATE, the attempt's UPDATE,
    # RELEASE (BEGIN IMMEDIATE ... COMMIT in production)
    ("sqlite", "ack"): 6,
    # auth + rate limit, one CTE statement for the whole batch, inside a
    # transaction (SAVEPOINT/RELEASE here; BEGIN/COMMIT in production).
    ("postgresql", "lease_batch"): 4,
    # auth SELECT, rate-limit UPSERT, BEGIN, the queue's settings, two probes,
    # one bulk UPDATE, one INSERT of the attempts, COMMIT
    ("sqlite", "lease_batch"): 9,
    # auth + rate limit, one guarded UPDATE for every item (on PostgreSQL a
    # constant statement over the items as one JSON array)
    ("postgresql", "ack_batch"): 2,
    # ...and on SQLite in a transaction with one UPDATE of their attempts
    ("sqlite", "ack_batch"): 6,
}


@pytest.fixture
def api(tenant, settings):
    settings.OPENQUEUE_RATE_LIMIT_ENABLED = True
    tenant.api.get("/jobs")  # warm-up: absorbs the once-a-minute last_used_at write
    # ...and the metric labels' read of the queue names, once a minute per
    # process (queues/metrics.py, QueueLabels), never per request.
    queue_labels.of("q")
    return tenant


def assert_round_trips(action: str, queries: CaptureQueriesContext) -> None:
    statements = [q["sql"].split("\n")[0][:80] or q["sql"][:80] for q in queries]
    assert len(queries) == EXPECTED[(connection.vendor, action)], statements


def test_enqueue_round_trips_are_pinned(api):
    with CaptureQueriesContext(connection) as queries:
        response = api.api.post_json("/jobs", {"queue_name": "q", "payload": {"n": 1}})

    assert response.status_code == 201
    assert_round_trips("enqueue", queries)


def test_lease_round_trips_are_pinned(api):
    JobFactory.create_batch(2, owner=api.user, queue_name="q")

    with CaptureQueriesContext(connection) as queries:
        response = api.api.post_json("/queues/q/lease", {"worker_id": "w"})

    assert response.json()["job"]["status"] == "processing"
    assert_round_trips("lease", queries)


def test_empty_lease_round_trips_are_pinned(api):
    with CaptureQueriesContext(connection) as queries:
        response = api.api.post_json("/queues/q/lease", {"worker_id": "w"})

    assert response.content == b"null"
    assert_round_trips("lease_empty", queries)


def test_ack_round_trips_are_pinned(api):
    job = JobFactory(owner=api.user, leased=True)

    with CaptureQueriesContext(connection) as queries:
        response = api.api.post_json(f"/jobs/{job.id}/ack", {"lease_token": str(job.lease_token)})

    assert response.status_code == 200
    assert_round_trips("ack", queries)


def test_batch_round_trips_do_not_grow_with_the_batch(api):
    JobFactory.create_batch(25, owner=api.user, queue_name="q")

    with CaptureQueriesContext(connection) as leasing:
        response = api.api.post_json("/queues/q/lease/batch", {"worker_id": "w", "max_jobs": 25})
    leases = response.json()["leases"]
    items = [{"job_id": x["job"]["id"], "lease_token": x["lease_token"]} for x in leases]
    with CaptureQueriesContext(connection) as acking:
        results = api.api.post_json("/leases/ack", {"items": items}).json()["results"]

    assert len(leases) == 25
    assert [r["status"] for r in results] == ["completed"] * 25
    assert_round_trips("lease_batch", leasing)
    assert_round_trips("ack_batch", acking)


# --- What each round trip costs the server (PostgreSQL) -------------------------------------


@pytest.mark.postgres_only
def test_hot_statements_are_prepared_once_per_connection_and_converted_once_per_process(api):
    """After a few leases and acks PostgreSQL runs them as prepared statements
    (decision 0009), and each statement's text fits psycopg's cache of
    converted queries, so its placeholders are not parsed again per request."""
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

    sent: list[str] = []

    def record(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    JobFactory.create_batch(8, owner=api.user, queue_name="q")
    with connection.execute_wrapper(record):
        for _ in range(8):
            leased = api.api.post_json("/queues/q/lease", {"worker_id": "w"}).json()
            ack = {"lease_token": leased["lease_token"]}
            assert api.api.post_json(f"/jobs/{leased['job']['id']}/ack", ack).status_code == 200

    lease = {sql for sql in sent if "FOR UPDATE SKIP LOCKED" in sql}
    ack = {sql for sql in sent if sql.lstrip().startswith("WITH changed AS")}
    assert len(lease) == len(ack) == 1  # each one constant text
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = {row[0] for row in cursor.fetchall()}
    # psycopg sends the text with $1, $2... in place of %(name)s.
    assert any("FOR UPDATE SKIP LOCKED" in text for text in prepared), prepared
    assert any(text.lstrip().startswith("WITH changed AS") for text in prepared), prepared
    for sql in lease | ack:
        assert len(sql.encode()) <= MAX_CACHED_STATEMENT_LENGTH
