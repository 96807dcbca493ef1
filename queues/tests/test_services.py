"""The job lifecycle, driven through queues/services.py with injected time."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from queues import services
from queues.models import DeadReason, Job, JobStatus
from queues.tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db


def enqueue(owner, queue="q", now=None, **fields) -> Job:
    (job,) = services.enqueue_jobs(
        owner=owner,
        jobs=[services.NewJob(queue_name=queue, payload={"k": "v"}, **fields)],
        now=now,
    )
    return job


def lease(owner, now, queue="q", seconds=30) -> services.Lease | None:
    return services.lease_job(
        owner=owner, queue_name=queue, worker_id="w", lease_seconds=seconds, now=now
    )


def nack(owner, leased: services.Lease, now, retry=True) -> Job:
    services.nack_job(
        owner=owner,
        job_id=leased.job.id,
        lease_token=str(leased.lease_token),
        error="boom",
        retry=retry,
        now=now,
    )
    return Job.objects.get(pk=leased.job.id)


def test_backoff_seconds_double_from_one_and_cap_at_300():
    assert [services.backoff_seconds(n) for n in range(11)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300,
    ]  # fmt: skip
    assert services.backoff_seconds(60) == 300


def test_nack_retries_after_1_2_4_seconds_then_moves_job_to_dlq():
    owner = UserFactory()
    now = timezone.now()
    job = enqueue(owner, now=now, max_retries=3)
    for expected_delay, expected_retries in [(1, 1), (2, 2), (4, 3)]:
        leased = lease(owner, now)
        assert leased is not None and leased.job.id == job.id
        job = nack(owner, leased, now)
        assert job.status == JobStatus.PENDING
        assert job.retry_count == expected_retries
        assert job.run_at == now + timedelta(seconds=expected_delay)
        assert job.error_text == "boom"
        assert job.lease_token is None and job.locked_until is None
        # Not leasable during the backoff, leasable when it ends.
        assert (
            lease(owner, now + timedelta(seconds=expected_delay) - timedelta(microseconds=1))
            is None
        )
        now = now + timedelta(seconds=expected_delay)

    leased = lease(owner, now)
    job = nack(owner, leased, now)
    assert job.status == JobStatus.DEAD
    assert job.dead_reason == DeadReason.MAX_RETRIES_EXHAUSTED
    assert job.retry_count == 3  # four runs in all: one attempt plus three retries
    assert job.dead_at == now and job.finished_at == now
    assert lease(owner, now + timedelta(days=1)) is None


def test_nack_without_retry_moves_job_to_dlq_as_retry_disabled():
    owner = UserFactory()
    now = timezone.now()
    enqueue(owner, now=now, max_retries=5)
    job = nack(owner, lease(owner, now), now, retry=False)
    assert job.status == JobStatus.DEAD
    assert job.dead_reason == DeadReason.RETRY_DISABLED
    assert job.retry_count == 0


def test_nack_without_retry_and_no_retries_left_records_exhaustion():
    owner = UserFactory()
    now = timezone.now()
    enqueue(owner, now=now, max_retries=0)
    job = nack(owner, lease(owner, now), now, retry=False)
    assert job.dead_reason == DeadReason.MAX_RETRIES_EXHAUSTED


def test_backoff_is_capped_at_300_seconds_for_late_retries():
    owner = UserFactory()
    now = timezone.now()
    job = JobFactory(owner=owner, queue_name="q", leased=True, retry_count=12, max_retries=20)
    leased = services.Lease(job=job, lease_token=job.lease_token, lease_expires_at=now)
    job = nack(owner, leased, now)
    assert job.run_at == now + timedelta(seconds=300)


def test_ack_completes_job_and_clears_lease():
    owner = UserFactory()
    now = timezone.now()
    enqueue(owner, now=now)
    leased = lease(owner, now)
    later = now + timedelta(seconds=3)
    services.ack_job(
        owner=owner,
        job_id=leased.job.id,
        lease_token=str(leased.lease_token),
        result={"ok": True},
        now=later,
    )
    job = Job.objects.get(pk=leased.job.id)
    assert job.status == JobStatus.COMPLETED
    assert job.result == {"ok": True}
    assert job.finished_at == later and job.started_at == now
    assert job.lease_token is None and job.locked_by is None and job.locked_until is None
    with pytest.raises(services.LeaseMismatch):
        services.ack_job(
            owner=owner, job_id=job.id, lease_token=str(leased.lease_token), result=None
        )


def test_lease_orders_by_priority_then_age():
    owner = UserFactory()
    now = timezone.now()
    old_low = enqueue(owner, now=now - timedelta(seconds=3), priority=0)
    new_high = enqueue(owner, now=now - timedelta(seconds=1), priority=5)
    old_high = enqueue(owner, now=now - timedelta(seconds=2), priority=5)
    order = [lease(owner, now).job.id for _ in range(3)]
    assert order == [old_high.id, new_high.id, old_low.id]
    assert lease(owner, now) is None


def test_lease_skips_jobs_scheduled_in_the_future():
    owner = UserFactory()
    now = timezone.now()
    job = enqueue(owner, now=now, run_at=now + timedelta(minutes=5))
    assert lease(owner, now) is None
    assert lease(owner, now + timedelta(minutes=5)).job.id == job.id


def test_expired_lease_is_leased_again_and_counted():
    owner = UserFactory()
    now = timezone.now()
    job = enqueue(owner, now=now, max_retries=3)
    first = lease(owner, now, seconds=30)
    assert lease(owner, now + timedelta(seconds=29)) is None  # still held
    second = lease(owner, now + timedelta(seconds=31))
    assert second.job.id == job.id
    assert second.lease_token != first.lease_token
    assert second.job.lease_lost_count == 1
    assert second.job.started_at == now  # kept from the first lease
    # The first holder's token is dead now.
    with pytest.raises(services.LeaseMismatch):
        services.ack_job(
            owner=owner, job_id=job.id, lease_token=str(first.lease_token), result=None
        )


def test_job_whose_lease_expires_more_than_max_retries_times_goes_to_dlq():
    owner = UserFactory()
    now = timezone.now()
    poison = enqueue(owner, now=now, max_retries=2)
    # Three runs (one plus two retries) each lose their lease...
    for expected_lost in range(3):
        leased = lease(owner, now, seconds=10)
        assert leased.job.id == poison.id
        assert leased.job.lease_lost_count == expected_lost
        now += timedelta(seconds=11)
    # ...the third expiry is one more than max_retries: dead, not leased again.
    assert lease(owner, now) is None
    poison.refresh_from_db()
    assert poison.status == JobStatus.DEAD
    assert poison.dead_reason == DeadReason.LEASE_EXPIRED
    assert poison.lease_lost_count == 3
    assert poison.lease_token is None


def test_poison_job_does_not_block_the_next_job():
    owner = UserFactory()
    now = timezone.now()
    poison = JobFactory(owner=owner, queue_name="q", expired=True, max_retries=0, priority=9)
    healthy = enqueue(owner, now=now)
    leased = lease(owner, now)
    assert leased.job.id == healthy.id
    poison.refresh_from_db()
    assert poison.status == JobStatus.DEAD


def test_heartbeat_extends_lease_from_now():
    owner = UserFactory()
    now = timezone.now()
    enqueue(owner, now=now)
    leased = lease(owner, now, seconds=30)
    later = now + timedelta(seconds=20)
    until = services.heartbeat_job(
        owner=owner,
        job_id=leased.job.id,
        lease_token=str(leased.lease_token),
        lease_seconds=60,
        now=later,
    )
    assert until == later + timedelta(seconds=60)
    assert Job.objects.get(pk=leased.job.id).locked_until == until
    # Past the original expiry but inside the extension: nobody can take it.
    assert lease(owner, now + timedelta(seconds=45)) is None


def test_heartbeat_can_shorten_a_lease():
    owner = UserFactory()
    now = timezone.now()
    enqueue(owner, now=now)
    leased = lease(owner, now, seconds=600)
    services.heartbeat_job(
        owner=owner,
        job_id=leased.job.id,
        lease_token=str(leased.lease_token),
        lease_seconds=5,
        now=now,
    )
    assert lease(owner, now + timedelta(seconds=6)).job.id == leased.job.id


@pytest.mark.parametrize("state", ["leased", "completed", "dead"])
def test_cancel_refuses_jobs_that_are_not_pending(state):
    job = JobFactory(**{state: True})
    with pytest.raises(services.JobNotCancellable):
        services.cancel_job(owner=job.owner, job_id=job.id)
    job.refresh_from_db()
    assert job.status != JobStatus.CANCELLED


def test_cancel_stops_a_job_waiting_out_its_backoff():
    owner = UserFactory()
    now = timezone.now()
    enqueue(owner, now=now)
    job = nack(owner, lease(owner, now), now)
    services.cancel_job(owner=owner, job_id=job.id, now=now)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at == now
    assert lease(owner, now + timedelta(hours=1)) is None


def test_transitions_never_touch_another_tenants_job():
    owner, stranger = UserFactory(), UserFactory()
    now = timezone.now()
    enqueue(owner, now=now)
    leased = lease(owner, now)
    token = str(leased.lease_token)
    assert lease(stranger, now) is None
    with pytest.raises(services.LeaseMismatch):
        services.ack_job(owner=stranger, job_id=leased.job.id, lease_token=token, result=None)
    with pytest.raises(services.LeaseMismatch):
        services.heartbeat_job(
            owner=stranger, job_id=leased.job.id, lease_token=token, lease_seconds=5
        )
    with pytest.raises(services.JobNotFound):
        services.get_job(owner=stranger, job_id=leased.job.id)
    assert Job.objects.get(pk=leased.job.id).status == JobStatus.PROCESSING


def test_lease_token_that_is_not_a_uuid_is_a_mismatch_not_an_error():
    owner = UserFactory()
    with pytest.raises(services.LeaseMismatch):
        services.ack_job(
            owner=owner, job_id=uuid.uuid4(), lease_token="invalid-token-123", result=None
        )


def test_batch_enqueue_is_all_or_nothing():
    owner = UserFactory()
    bad = services.NewJob(queue_name="q", payload={}, max_retries=-1)  # violates the CHECK
    good = services.NewJob(queue_name="q", payload={})
    with pytest.raises(Exception):  # noqa: B017 - any database error; what matters is the rollback
        services.enqueue_jobs(owner=owner, jobs=[good, good, bad])
    assert Job.objects.count() == 0


def test_batch_jobs_are_leased_in_input_order():
    owner = UserFactory()
    now = timezone.now()
    jobs = services.enqueue_jobs(
        owner=owner,
        jobs=[services.NewJob(queue_name="q", payload={"n": n}) for n in range(20)],
        now=now,
    )
    leased = [lease(owner, now).job.id for _ in range(20)]
    assert leased == [job.id for job in jobs]


def test_expired_lease_competes_with_pending_jobs_on_priority_and_age():
    owner = UserFactory()
    now = timezone.now()
    old_pending = JobFactory(owner=owner, queue_name="q", created_at=now - timedelta(hours=2))
    expired = JobFactory(
        owner=owner, queue_name="q", expired=True, created_at=now - timedelta(hours=1)
    )
    urgent_expired = JobFactory(
        owner=owner, queue_name="q", expired=True, priority=5, created_at=now
    )
    order = [lease(owner, now).job.id for _ in range(3)]
    assert order == [urgent_expired.id, old_pending.id, expired.id]


def test_transitions_report_what_they_changed():
    owner = UserFactory()
    now = timezone.now()
    enqueue(owner, queue="reports", now=now, max_retries=1)
    leased = lease(owner, now, queue="reports")
    requeued = services.nack_job(
        owner=owner, job_id=leased.job.id, lease_token=str(leased.lease_token),
        error="e", retry=True, now=now,
    )  # fmt: skip
    assert (requeued.status, requeued.queue_name, requeued.dead_reason) == (
        "pending", "reports", None,
    )  # fmt: skip
    assert requeued.started_at == now  # an aware datetime on both databases
    leased = lease(owner, now + timedelta(seconds=1), queue="reports")
    dead = services.nack_job(
        owner=owner, job_id=leased.job.id, lease_token=str(leased.lease_token),
        error="e", retry=True, now=now,
    )  # fmt: skip
    assert (dead.status, dead.dead_reason) == ("dead", "max_retries_exhausted")
    assert dead.job_id == leased.job.id


# The batch calls have their own statements on PostgreSQL (one UPDATE over
# the items as JSON): they must write exactly what the single calls write.
_COMPARED = [
    "status",
    "retry_count",
    "run_at",
    "dead_reason",
    "dead_at",
    "finished_at",
    "error_text",
    "result",
    "locked_until",
    "locked_by",
    "lease_token",
    "updated_at",
]


@pytest.mark.parametrize(
    ("retry_count", "max_retries", "retry"),
    [(0, 3, True), (1, 3, True), (5, 20, True), (8, 20, True), (9, 20, True), (15, 20, True)]
    + [(3, 3, True), (0, 3, False), (3, 3, False)],
)
def test_batch_nack_writes_what_single_nack_writes(retry_count, max_retries, retry):
    owner = UserFactory()
    now = timezone.now()
    one, many = (
        JobFactory(
            owner=owner,
            leased=True,
            retry_count=retry_count,
            max_retries=max_retries,
            created_at=now - timedelta(hours=1),
        )
        for _ in range(2)
    )
    services.nack_job(
        owner=owner,
        job_id=one.id,
        lease_token=str(one.lease_token),
        error="boom",
        retry=retry,
        now=now,
    )
    (outcome,) = services.nack_jobs(
        owner=owner,
        items=[services.NackItem(many.id, str(many.lease_token), "boom", retry)],
        now=now,
    )
    one.refresh_from_db()
    many.refresh_from_db()
    assert outcome is not None and outcome.status == one.status
    assert {f: getattr(many, f) for f in _COMPARED} == {f: getattr(one, f) for f in _COMPARED}
    if one.status == JobStatus.PENDING:
        assert one.run_at == now + timedelta(seconds=services.backoff_seconds(retry_count))


@pytest.mark.parametrize("result", [None, {"rows": 3, "nested": {"ok": [1, 2.5, "é"]}}])
def test_batch_ack_writes_what_single_ack_writes(result):
    owner = UserFactory()
    now = timezone.now()
    one, many = (
        JobFactory(owner=owner, leased=True, created_at=now - timedelta(hours=1)) for _ in range(2)
    )
    services.ack_job(
        owner=owner, job_id=one.id, lease_token=str(one.lease_token), result=result, now=now
    )
    (outcome,) = services.ack_jobs(
        owner=owner, items=[services.AckItem(many.id, str(many.lease_token), result)], now=now
    )
    one.refresh_from_db()
    many.refresh_from_db()
    assert outcome is not None and outcome.status == JobStatus.COMPLETED
    assert {f: getattr(many, f) for f in _COMPARED} == {f: getattr(one, f) for f in _COMPARED}
    assert many.result == result


def test_batch_lease_writes_what_single_lease_writes():
    owner = UserFactory()
    now = timezone.now()
    JobFactory(owner=owner, queue_name="one", expired=True, lease_lost_count=1, max_retries=3)
    JobFactory(owner=owner, queue_name="many", expired=True, lease_lost_count=1, max_retries=3)
    single = lease(owner, now, queue="one", seconds=45)
    (batch,) = services.lease_jobs(
        owner=owner, queue_name="many", worker_id="w", lease_seconds=45, max_jobs=5, now=now
    )
    for leased in (single, batch):
        leased.job.refresh_from_db()
        assert leased.recovered
        assert leased.job.lease_token == leased.lease_token
        assert (leased.job.status, leased.job.locked_by) == (JobStatus.PROCESSING, "w")
        assert leased.job.locked_until == leased.lease_expires_at == now + timedelta(seconds=45)
        assert leased.job.lease_lost_count == 2
        assert leased.job.updated_at == now
