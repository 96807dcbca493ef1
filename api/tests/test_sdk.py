"""The published Python SDK (openqueue-pg 0.1.0), unchanged, against a real server.

Contract A.1: every SDK method and its error mapping must keep working. The
server runs with rate limiting on and the default limits, as in production;
one gunicorn serves the whole module (starting one per test would double the
module's run time), and every test gets a fresh tenant on a flushed database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from openqueue import (
    AuthenticationError,
    JobNotFoundError,
    LeaseTokenError,
    OpenQueue,
    RateLimitError,
)
from openqueue.models import Job as SdkJob
from openqueue.models import JobStatus as SdkStatus

from conftest import ServerProcess, Tenant, start_server
from queues.models import DeadReason, Job, JobStatus

pytestmark = [pytest.mark.live_server, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def server(django_db_setup: None, django_db_blocker: object) -> Iterator[ServerProcess]:
    # Module-scoped, so it outlives each test's flush; it is stopped before
    # the session tears the test database down.
    process = start_server(workers=1, threads=4, env={"OPENQUEUE_RATE_LIMIT_ENABLED": "true"})
    yield process
    process.stop()


@pytest.fixture
def sdk(server: ServerProcess, make_tenant: Callable[..., Tenant]) -> Iterator[OpenQueue]:
    """An SDK client for a fresh tenant; ``sdk.tenant`` is that tenant."""
    tenant = make_tenant()
    client = OpenQueue(server.url, tenant.token, max_retries=1)
    client.tenant = tenant  # type: ignore[attr-defined]
    yield client
    client.close()


def test_sdk_enqueue_returns_the_new_job_id(sdk):
    job_id = sdk.enqueue("sdk-queue", {"task": "simple"})

    job = Job.objects.get(pk=uuid.UUID(job_id))
    assert job.owner == sdk.tenant.user
    assert (job.queue_name, job.payload, job.status) == ("sdk-queue", {"task": "simple"}, "pending")


def test_sdk_enqueue_stores_priority_max_retries_and_run_at(sdk):
    job_id = sdk.enqueue(
        "sdk-queue", {"task": "later"}, priority=10, max_retries=5, run_at="2999-01-02T03:04:05Z"
    )

    job = Job.objects.get(pk=job_id)
    assert (job.priority, job.max_retries) == (10, 5)
    assert job.run_at == datetime(2999, 1, 2, 3, 4, 5, tzinfo=UTC)
    # Scheduled in the future, so it is not leasable yet.
    assert sdk.lease("sdk-queue", "worker-1") is None


def test_sdk_enqueue_batch_returns_ids_in_input_order(sdk):
    ids = sdk.enqueue_batch(
        [
            {"queue_name": "batch-a", "payload": {"n": 1}},
            {"queue_name": "batch-b", "payload": {"n": 2}, "priority": 4, "max_retries": 0},
            {"queue_name": "batch-a", "payload": {"n": 3}, "run_at": "2999-01-01T00:00:00Z"},
        ]
    )

    assert len(ids) == 3
    jobs = [Job.objects.get(pk=job_id) for job_id in ids]
    assert [(j.queue_name, j.payload) for j in jobs] == [
        ("batch-a", {"n": 1}),
        ("batch-b", {"n": 2}),
        ("batch-a", {"n": 3}),
    ]
    assert (jobs[1].priority, jobs[1].max_retries) == (4, 0)
    assert jobs[2].run_at == datetime(2999, 1, 1, tzinfo=UTC)


def test_sdk_get_status_returns_the_status_string(sdk):
    job_id = sdk.enqueue("sdk-queue", {"x": 1})

    assert sdk.get_status(job_id) == "pending"
    sdk.cancel_job(job_id)
    assert sdk.get_status(job_id) == "cancelled"


def test_sdk_get_job_round_trips_the_payload(sdk):
    payload = {"text": "héllo ✓", "nested": {"list": [1, 2.5, None, True]}, "empty": {}}
    job_id = sdk.enqueue("detail-queue", payload, priority=3)

    job = sdk.get_job(job_id)

    assert isinstance(job, SdkJob)
    assert (job.id, job.queue_name, job.priority) == (job_id, "detail-queue", 3)
    assert job.status is SdkStatus.PENDING
    assert job.payload == payload
    # Timestamps parse (A.3.2: ISO 8601 with Z), rather than silently becoming None.
    assert job.created_at is not None and job.created_at.tzinfo is not None


def test_sdk_list_jobs_pages_and_reports_totals(sdk):
    ids = [sdk.enqueue("list-test", {"n": n}) for n in range(3)]
    sdk.enqueue("other-queue", {"n": 99})

    page = sdk.list_jobs(queue_name="list-test", limit=2, offset=1)

    assert (page.total, page.limit, page.offset) == (3, 2, 1)
    # Newest first: offset 1 skips the newest one.
    assert [job.id for job in page.items] == [ids[1], ids[0]]
    assert sdk.list_jobs().total == 4


def test_sdk_list_jobs_filters_by_status(sdk):
    kept = sdk.enqueue("filter-test", {"n": 1})
    cancelled = sdk.enqueue("filter-test", {"n": 2})
    assert sdk.cancel_job(cancelled) is True

    pending = sdk.list_jobs(status="pending")
    only_cancelled = sdk.list_jobs(status="cancelled")

    assert [job.id for job in pending.items] == [kept]
    assert pending.total == 1
    assert [(job.id, job.status) for job in only_cancelled.items] == [
        (cancelled, SdkStatus.CANCELLED)
    ]


def test_sdk_cancel_job_is_true_once_then_false(sdk):
    job_id = sdk.enqueue("cancel-test", {"n": 1})

    assert sdk.cancel_job(job_id) is True
    assert sdk.cancel_job(job_id) is False
    assert Job.objects.get(pk=job_id).status == JobStatus.CANCELLED


def test_sdk_lease_on_an_empty_queue_returns_none(sdk):
    assert sdk.lease(f"empty-{uuid.uuid4().hex}", "worker-1") is None


def test_sdk_lease_then_ack_completes_the_job_with_its_result(sdk):
    job_id = sdk.enqueue("work", {"task": "ack"})

    leased = sdk.lease("work", "worker-1", lease_seconds=60)
    assert leased is not None
    assert (leased.job.id, leased.job.status) == (job_id, SdkStatus.PROCESSING)
    assert leased.job.payload == {"task": "ack"}
    assert leased.lease_expires_at is not None
    assert sdk.ack(job_id, leased.lease_token, result={"answer": 42}) is True

    job = sdk.get_job(job_id)
    assert job.status is SdkStatus.COMPLETED
    assert job.result == {"answer": 42}


def test_sdk_nack_with_retry_returns_the_job_to_pending(sdk):
    job_id = sdk.enqueue("work", {"task": "retry"})
    leased = sdk.lease("work", "worker-1")

    assert sdk.nack(job_id, leased.lease_token, "boom", retry=True) is True

    job = sdk.get_job(job_id)
    assert job.status is SdkStatus.PENDING
    assert (job.retry_count, job.error_text) == (1, "boom")


def test_sdk_nack_without_retry_moves_the_job_to_dead(sdk):
    job_id = sdk.enqueue("work", {"task": "die"}, max_retries=0)
    leased = sdk.lease("work", "worker-1")

    assert sdk.nack(job_id, leased.lease_token, "fatal", retry=False) is True

    assert sdk.get_job(job_id).status is SdkStatus.DEAD
    assert Job.objects.get(pk=job_id).dead_reason in {
        DeadReason.MAX_RETRIES_EXHAUSTED,
        DeadReason.RETRY_DISABLED,
    }


def test_sdk_heartbeat_extends_the_lease(sdk):
    job_id = sdk.enqueue("work", {"task": "long"})
    leased = sdk.lease("work", "worker-1", lease_seconds=5)

    assert sdk.heartbeat(job_id, leased.lease_token, lease_seconds=600) is True

    job = Job.objects.get(pk=job_id)
    assert job.locked_until > leased.lease_expires_at
    assert job.status == JobStatus.PROCESSING


def test_sdk_get_queue_stats_counts_jobs_per_queue(sdk):
    sdk.enqueue_batch([{"queue_name": "stats-test", "payload": {"n": n}} for n in range(3)])
    sdk.enqueue("stats-other", {"n": 0})
    leased = sdk.lease("stats-test", "worker-1")
    sdk.ack(leased.job.id, leased.lease_token)

    stats = {entry.queue_name: entry for entry in sdk.get_queue_stats()}

    assert set(stats) == {"stats-test", "stats-other"}
    main = stats["stats-test"]
    assert (main.pending, main.processing, main.completed, main.total) == (2, 0, 1, 3)
    assert main.oldest_pending_created_at is not None
    other = stats["stats-other"]
    assert (other.pending, other.total) == (1, 1)


def test_sdk_bad_token_raises_authentication_error(server):
    with OpenQueue(server.url, "oq_live_" + "x" * 40, max_retries=1) as client:
        with pytest.raises(AuthenticationError):
            client.enqueue("sdk-queue", {"n": 1})


def test_sdk_unknown_job_raises_job_not_found_error(sdk):
    with pytest.raises(JobNotFoundError):
        sdk.get_job("00000000-0000-0000-0000-000000000000")


def test_sdk_another_tenants_job_raises_job_not_found_error(sdk, server, make_tenant):
    job_id = sdk.enqueue("private", {"secret": True})
    with OpenQueue(server.url, make_tenant().token, max_retries=1) as intruder:
        with pytest.raises(JobNotFoundError):
            intruder.get_job(job_id)


def test_sdk_ack_with_a_wrong_lease_token_raises_lease_token_error(sdk):
    job_id = sdk.enqueue("work", {"task": "x"})
    sdk.lease("work", "worker-1")

    with pytest.raises(LeaseTokenError):
        sdk.ack(job_id, "invalid-token-123")

    assert Job.objects.get(pk=job_id).status == JobStatus.PROCESSING


def test_sdk_enqueue_past_the_burst_raises_rate_limit_error(live_server_factory, make_tenant):
    # A negligible refill rate makes the count exact: burst 20, the 21st is refused.
    server = live_server_factory(
        workers=1,
        threads=2,
        env={"OPENQUEUE_RATE_LIMIT_ENABLED": "true", "OPENQUEUE_RATE_LIMIT_ENQUEUE": "0.001,20"},
    )
    tenant = make_tenant()
    with OpenQueue(server.url, tenant.token, max_retries=1) as client:
        for n in range(20):
            client.enqueue("burst", {"n": n})
        with pytest.raises(RateLimitError):
            client.enqueue("burst", {"n": 20})

    assert Job.objects.filter(owner=tenant.user).count() == 20
