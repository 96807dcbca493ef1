"""Attempt history: every lease starts an attempt, and whatever ends the lease ends it.

Each outcome of contract A.4 (acked, nacked, lease_expired by a re-lease, by
the reaper and by a poison burial, cancelled by an operator's burial, and
in_progress), single and batch, through the services with injected time;
the cap per job; and that attempts go with their job. GET /jobs/{id}/attempts
renders them (the route tests at the bottom).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from queues import services
from queues.domain import AckItem, NackItem, NewJob
from queues.models import Job, JobAttempt

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def enqueue(owner, n=1, **fields):
    return services.enqueue(
        owner=owner, jobs=[NewJob(queue_name="q", payload={}, **fields) for _ in range(n)], now=T0
    )


def lease(owner, when, worker="w", seconds=30, max_jobs=1):
    return services.lease_jobs(
        owner=owner,
        queue_name="q",
        worker_id=worker,
        lease_seconds=seconds,
        max_jobs=max_jobs,
        now=at(when),
    )


def history(job_id: uuid.UUID) -> list[tuple]:
    return [
        (a.attempt, a.worker_id, a.leased_at, a.lease_expires_at, a.finished_at, a.outcome, a.error)
        for a in JobAttempt.objects.filter(job_id=job_id).order_by("attempt")
    ]


def test_a_lease_starts_an_attempt_in_progress(tenant):
    (job_id,) = enqueue(tenant.user)

    lease(tenant.user, 1, worker="w-1", seconds=30)

    assert history(job_id) == [(1, "w-1", at(1), at(31), None, "in_progress", None)]
    assert Job.objects.get(pk=job_id).attempt_count == 1


def test_ack_ends_it_as_acked(tenant):
    (job_id,) = enqueue(tenant.user)
    (leased,) = lease(tenant.user, 1)

    token = str(leased.lease_token)
    services.ack_job(owner=tenant.user, job_id=job_id, lease_token=token, result=None, now=at(3))

    assert history(job_id) == [(1, "w", at(1), at(31), at(3), "acked", None)]
    assert JobAttempt.objects.get().duration_ms == 2000


def test_nack_ends_it_as_nacked_with_the_error_and_the_retry_starts_the_next(tenant):
    (job_id,) = enqueue(tenant.user)
    (first,) = lease(tenant.user, 1, worker="a")
    services.nack_job(
        owner=tenant.user,
        job_id=job_id,
        lease_token=str(first.lease_token),
        error="timeout talking to S3",
        retry=True,
        now=at(2),
    )
    lease(tenant.user, 10, worker="b")  # after the 1 s backoff

    assert history(job_id) == [
        (1, "a", at(1), at(31), at(2), "nacked", "timeout talking to S3"),
        (2, "b", at(10), at(40), None, "in_progress", None),
    ]


def test_a_heartbeat_moves_the_attempts_expiry(tenant):
    (job_id,) = enqueue(tenant.user)
    (leased,) = lease(tenant.user, 1, seconds=30)

    services.heartbeat_job(
        owner=tenant.user,
        job_id=job_id,
        lease_token=str(leased.lease_token),
        lease_seconds=120,
        now=at(20),
    )

    assert history(job_id)[0][3] == at(140)


def test_an_expired_lease_ends_as_lease_expired_at_its_expiry_when_leased_again(tenant):
    (job_id,) = enqueue(tenant.user)
    lease(tenant.user, 1, worker="lost", seconds=30)

    lease(tenant.user, 100, worker="rescuer")

    assert history(job_id) == [
        (1, "lost", at(1), at(31), at(31), "lease_expired", None),
        (2, "rescuer", at(100), at(130), None, "in_progress", None),
    ]


def test_the_reaper_ends_an_expired_attempt(tenant):
    (job_id,) = enqueue(tenant.user)
    lease(tenant.user, 1, seconds=30)

    services.reap_expired_leases(now=at(60))

    assert history(job_id) == [(1, "w", at(1), at(31), at(31), "lease_expired", None)]
    assert Job.objects.get(pk=job_id).status == "pending"


def test_a_poison_burial_ends_the_last_attempt_and_starts_none(tenant):
    (job_id,) = enqueue(tenant.user, max_retries=1)
    lease(tenant.user, 1, seconds=10)  # expires at 11
    lease(tenant.user, 20, seconds=10)  # recovered once; expires at 30

    assert lease(tenant.user, 40) == []  # lost more than max_retries times: buried

    assert Job.objects.get(pk=job_id).status == "dead"
    assert [(a[0], a[4], a[5]) for a in history(job_id)] == [
        (1, at(11), "lease_expired"),
        (2, at(30), "lease_expired"),
    ]


def test_an_operator_burial_ends_a_running_attempt_as_cancelled(tenant):
    running, waiting = enqueue(tenant.user, 2)
    lease(tenant.user, 1)

    services.bury_jobs(Job.objects.filter(owner=tenant.user), now=at(5))

    assert history(running) == [(1, "w", at(1), at(31), at(5), "cancelled", None)]
    assert history(waiting) == []


def test_batches_record_one_attempt_per_job(tenant):
    ids = enqueue(tenant.user, 4)
    leases = lease(tenant.user, 1, max_jobs=4)
    by_id = {item.job.id: item for item in leases}

    services.ack_jobs(
        owner=tenant.user,
        items=[AckItem(i, str(by_id[i].lease_token)) for i in ids[:2]],
        now=at(2),
    )
    services.nack_jobs(
        owner=tenant.user,
        items=[
            NackItem(ids[2], str(by_id[ids[2]].lease_token), "first", retry=True),
            NackItem(ids[3], str(by_id[ids[3]].lease_token), "second", retry=False),
            # A stale token changes nothing, its attempt included.
            NackItem(ids[0], str(uuid.uuid4()), "stale", retry=True),
        ],
        now=at(3),
    )

    assert [history(i)[0][5:] for i in ids] == [
        ("acked", None),
        ("acked", None),
        ("nacked", "first"),
        ("nacked", "second"),
    ]
    assert JobAttempt.objects.count() == 4


def test_a_stale_ack_leaves_the_attempt_running(tenant):
    (job_id,) = enqueue(tenant.user)
    lease(tenant.user, 1)

    with pytest.raises(services.LeaseMismatch):
        services.ack_job(
            owner=tenant.user, job_id=job_id, lease_token=str(uuid.uuid4()), result=None, now=at(2)
        )

    assert history(job_id)[0][5] == "in_progress"


def test_only_the_newest_attempts_are_kept_and_the_numbers_keep_counting(tenant, settings):
    settings.OPENQUEUE_MAX_ATTEMPTS_KEPT = 3
    (job_id,) = enqueue(tenant.user, max_retries=10)
    when = 0.0
    for _ in range(5):
        (leased,) = lease(tenant.user, when + 1)
        services.nack_job(
            owner=tenant.user,
            job_id=job_id,
            lease_token=str(leased.lease_token),
            error="again",
            retry=True,
            now=at(when + 2),
        )
        when += 600  # past any backoff

    kept = history(job_id)
    assert [a[0] for a in kept] == [3, 4, 5]
    assert Job.objects.get(pk=job_id).attempt_count == 5


def test_attempts_are_deleted_with_their_job(tenant):
    ids = enqueue(tenant.user, 2)
    for leased in lease(tenant.user, 1, max_jobs=2):
        services.ack_job(
            owner=tenant.user,
            job_id=leased.job.id,
            lease_token=str(leased.lease_token),
            result=None,
            now=at(2),
        )

    deleted = services.purge_finished_jobs(
        status="completed", older_than=timedelta(days=1), now=at(2) + timedelta(days=2)
    )

    assert deleted == 2  # jobs, not jobs and attempts
    assert not Job.objects.filter(pk__in=ids).exists()
    assert not JobAttempt.objects.exists()


def test_operator_delete_takes_the_attempts_too(tenant):
    (job_id,) = enqueue(tenant.user)
    lease(tenant.user, 1)

    assert services.delete_jobs(Job.objects.filter(pk=job_id)) == 1

    assert not JobAttempt.objects.exists()


# --- GET /jobs/{id}/attempts ---------------------------------------------------------------


def test_the_route_lists_attempts_oldest_first_with_durations(tenant):
    body = tenant.api.post_json("/jobs", {"queue_name": "q", "payload": {}}).json()
    first = tenant.api.post_json("/queues/q/lease", {"worker_id": "w-1"}).json()
    tenant.api.post_json(
        f"/jobs/{body['job_id']}/nack",
        {"lease_token": first["lease_token"], "error": "flaky", "retry": False},
    )

    response = tenant.api.get(f"/jobs/{body['job_id']}/attempts")

    assert response.status_code == 200
    payload = response.json()
    assert payload["job_id"] == body["job_id"]
    (attempt,) = payload["attempts"]
    assert list(attempt) == [
        "attempt",
        "worker_id",
        "leased_at",
        "lease_expires_at",
        "finished_at",
        "outcome",
        "error",
        "duration_ms",
    ]
    assert attempt["attempt"] == 1
    assert attempt["worker_id"] == "w-1"
    assert attempt["outcome"] == "nacked"
    assert attempt["error"] == "flaky"
    assert attempt["leased_at"].endswith("Z") and attempt["finished_at"].endswith("Z")
    assert isinstance(attempt["duration_ms"], int) and attempt["duration_ms"] >= 0


def test_a_job_never_leased_has_no_attempts(tenant):
    body = tenant.api.post_json("/jobs", {"queue_name": "q", "payload": {}}).json()

    response = tenant.api.get(f"/jobs/{body['job_id']}/attempts")

    assert response.json() == {"job_id": body["job_id"], "attempts": []}


def test_another_tenants_job_attempts_are_not_found(tenant, other_tenant):
    body = other_tenant.api.post_json("/jobs", {"queue_name": "q", "payload": {}}).json()
    other_tenant.api.post_json("/queues/q/lease", {"worker_id": "w"})

    response = tenant.api.get(f"/jobs/{body['job_id']}/attempts")
    missing = tenant.api.get(f"/jobs/{uuid.uuid4()}/attempts")

    assert response.status_code == 404
    assert response.json() == missing.json() == {"detail": "Job not found"}


def test_a_malformed_job_id_is_422(tenant):
    response = tenant.api.get("/jobs/not-a-uuid/attempts")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "job_id"]
