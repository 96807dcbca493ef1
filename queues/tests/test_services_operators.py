"""Operator actions and maintenance, through queues/services.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from queues import services
from queues.models import DeadReason, Job, JobStatus
from queues.tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_requeue_sends_dead_jobs_back_to_pending_and_skips_others():
    now = timezone.now()
    dead = JobFactory.create_batch(3, dead=True, retry_count=3, lease_lost_count=2)
    pending = JobFactory()
    leased = JobFactory(leased=True)
    changed = services.requeue_jobs(Job.objects.all(), now=now, batch_size=2)
    assert changed == 3
    for job in dead:
        job.refresh_from_db()
        assert job.status == JobStatus.PENDING
        assert job.run_at == now
        assert job.dead_reason is None and job.dead_at is None and job.finished_at is None
        assert job.retry_count == 3  # kept unless asked to reset
        assert job.lease_lost_count == 0
    pending.refresh_from_db()
    leased.refresh_from_db()
    assert pending.status == JobStatus.PENDING and leased.status == JobStatus.PROCESSING
    assert leased.lease_token is not None


def test_requeue_can_reset_the_retry_budget():
    job = JobFactory(dead=True, retry_count=3)
    assert services.requeue_jobs(Job.objects.filter(pk=job.pk), reset_retries=True) == 1
    job.refresh_from_db()
    assert job.retry_count == 0


def test_requeue_reports_progress_per_batch():
    JobFactory.create_batch(5, completed=True)
    seen: list[int] = []
    assert services.requeue_jobs(Job.objects.all(), batch_size=2, progress=seen.append) == 5
    assert seen == [2, 4, 5]


def test_bury_moves_pending_and_processing_jobs_to_the_dlq_and_voids_leases():
    now = timezone.now()
    pending, leased, done = JobFactory(), JobFactory(leased=True), JobFactory(completed=True)
    token = str(leased.lease_token)
    assert services.bury_jobs(Job.objects.all(), now=now) == 2
    for job in (pending, leased):
        job.refresh_from_db()
        assert job.status == JobStatus.DEAD
        assert job.dead_reason == DeadReason.OPERATOR
        assert job.dead_at == now
    done.refresh_from_db()
    assert done.status == JobStatus.COMPLETED
    with pytest.raises(services.LeaseMismatch):
        services.ack_job(owner=leased.owner, job_id=leased.id, lease_token=token, result=None)


def test_cancel_jobs_cancels_only_pending_ones():
    pending, leased = JobFactory(), JobFactory(leased=True)
    assert services.cancel_jobs(Job.objects.all()) == 1
    pending.refresh_from_db()
    leased.refresh_from_db()
    assert pending.status == JobStatus.CANCELLED
    assert leased.status == JobStatus.PROCESSING


def test_delete_jobs_deletes_in_batches():
    owner = UserFactory()
    JobFactory.create_batch(7, owner=owner)
    keep = JobFactory()
    assert services.delete_jobs(Job.objects.filter(owner=owner), batch_size=3) == 7
    assert list(Job.objects.values_list("pk", flat=True)) == [keep.pk]


def test_reaper_returns_expired_leases_to_pending_and_counts_the_loss():
    now = timezone.now()
    expired = JobFactory(expired=True, max_retries=3)
    held = JobFactory(leased=True)
    result = services.reap_expired_leases(now=now)
    assert result == services.Reaped(requeued=1, buried=0)
    expired.refresh_from_db()
    assert expired.status == JobStatus.PENDING
    assert expired.lease_lost_count == 1
    assert expired.lease_token is None and expired.locked_until is None
    held.refresh_from_db()
    assert held.status == JobStatus.PROCESSING


def test_reaper_moves_poison_jobs_to_the_dlq():
    now = timezone.now()
    poison = JobFactory(expired=True, max_retries=2, lease_lost_count=2)
    assert services.reap_expired_leases(now=now) == services.Reaped(requeued=0, buried=1)
    poison.refresh_from_db()
    assert poison.status == JobStatus.DEAD
    assert poison.dead_reason == DeadReason.LEASE_EXPIRED
    assert poison.error_text == "lease_expired"
    assert poison.lease_lost_count == 3


def test_reaper_respects_the_grace_period():
    now = timezone.now()
    JobFactory(expired=True)  # expired about a second ago
    assert services.reap_expired_leases(now=now, grace=timedelta(minutes=1)).requeued == 0
    assert (
        services.reap_expired_leases(
            now=now + timedelta(minutes=2), grace=timedelta(minutes=1)
        ).requeued
        == 1
    )


def test_reaper_works_through_more_jobs_than_one_batch():
    now = timezone.now()
    JobFactory.create_batch(7, expired=True)
    assert services.reap_expired_leases(now=now, batch_size=3).requeued == 7
    assert not Job.objects.filter(status=JobStatus.PROCESSING).exists()


def test_purge_deletes_only_old_jobs_of_the_given_status():
    now = timezone.now()
    old = JobFactory.create_batch(5, completed=True, finished_at=now - timedelta(days=8))
    recent = JobFactory(completed=True, finished_at=now - timedelta(days=6))
    old_dead = JobFactory(dead=True, finished_at=now - timedelta(days=30))
    seen: list[int] = []
    deleted = services.purge_finished_jobs(
        status="completed",
        older_than=timedelta(days=7),
        now=now,
        batch_size=2,
        progress=seen.append,
    )
    assert deleted == 5
    assert seen == [2, 4, 5]
    remaining = set(Job.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, old_dead.pk}
    assert not remaining & {job.pk for job in old}


def test_purge_refuses_unfinished_statuses():
    with pytest.raises(ValueError, match="finished"):
        services.purge_finished_jobs(status="pending", older_than=timedelta(days=1))


def test_run_now_makes_jobs_due_later_due_now_and_leaves_the_rest():
    now = timezone.now()
    later = JobFactory(run_at=now + timedelta(days=7))
    backoff = JobFactory(run_at=now + timedelta(seconds=30), retry_count=1)
    due = JobFactory(run_at=now - timedelta(seconds=5))
    dead = JobFactory(dead=True, run_at=now + timedelta(days=1))

    changed = services.run_now_jobs(Job.objects.all(), now=now)

    assert changed == 2
    for job in (later, backoff):
        job.refresh_from_db()
        assert job.run_at == now and job.status == JobStatus.PENDING
    assert Job.objects.get(pk=due.pk).run_at == due.run_at
    assert Job.objects.get(pk=dead.pk).status == JobStatus.DEAD
    # Due now means leasable now.
    leased = services.lease_jobs(
        owner=later.owner, queue_name=later.queue_name, worker_id="w", lease_seconds=30, max_jobs=5
    )
    assert [lease.job.pk for lease in leased] == [later.pk]
