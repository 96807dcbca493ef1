"""The worker side of the REST API: lease, ack, nack, heartbeat.

Contract Part B §3.11-3.14 and §5 (lease order, expired-lease recovery,
retry backoff, dead reasons), plus the 413 guardrails of Part A.3 #6.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from queues.models import DeadReason, Job, JobStatus
from queues.tests.factories import JobFactory

LEASE_MISMATCH = {"detail": "Job not found, not leased, or lease token mismatch"}


def parse_iso(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def lease(tenant, queue_name="default", **body):
    return tenant.api.post_json(f"/queues/{queue_name}/lease", {"worker_id": "w1", **body})


def leased_job(tenant, **fields) -> Job:
    return JobFactory(owner=tenant.user, leased=True, **fields)


# --- POST /queues/{queue_name}/lease ------------------------------------------------


def test_lease_returns_job_token_and_expiry(tenant):
    job = JobFactory(owner=tenant.user, payload={"x": 1})

    before = timezone.now()
    response = lease(tenant, worker_id="worker-7", lease_seconds=90)
    after = timezone.now()

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["job", "lease_token", "lease_expires_at"]
    assert body["job"]["id"] == str(job.id)
    assert body["job"]["status"] == "processing"
    assert body["job"]["payload"] == {"x": 1}
    expires = parse_iso(body["lease_expires_at"])
    assert before + timedelta(seconds=90) <= expires <= after + timedelta(seconds=90)
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING
    assert job.lease_token == uuid.UUID(body["lease_token"])
    assert job.locked_by == "worker-7"
    assert job.locked_until == expires
    assert before <= job.started_at <= after
    assert parse_iso(body["job"]["started_at"]) == job.started_at


def test_lease_of_empty_queue_is_200_with_json_null(tenant):
    response = lease(tenant)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == b"null"


def test_lease_picks_highest_priority_then_oldest(tenant):
    t0 = timezone.now() - timedelta(minutes=10)
    low_oldest = JobFactory(owner=tenant.user, priority=0, created_at=t0)
    high_newer = JobFactory(owner=tenant.user, priority=5, created_at=t0 + timedelta(minutes=2))
    high_older = JobFactory(owner=tenant.user, priority=5, created_at=t0 + timedelta(minutes=1))
    negative = JobFactory(owner=tenant.user, priority=-1, created_at=t0 - timedelta(minutes=1))

    leased_ids = [lease(tenant).json()["job"]["id"] for _ in range(4)]

    assert leased_ids == [str(j.id) for j in (high_older, high_newer, low_oldest, negative)]
    assert lease(tenant).content == b"null"


def test_lease_only_takes_jobs_of_the_named_queue(tenant):
    JobFactory(owner=tenant.user, queue_name="other")
    mine = JobFactory(owner=tenant.user, queue_name="mine")

    assert lease(tenant, "mine").json()["job"]["id"] == str(mine.id)
    assert lease(tenant, "mine").content == b"null"


def test_lease_skips_jobs_scheduled_in_the_future(tenant):
    future = JobFactory(owner=tenant.user, priority=10, run_at=timezone.now() + timedelta(hours=1))
    due = JobFactory(owner=tenant.user, priority=0, run_at=timezone.now() - timedelta(seconds=1))

    first = lease(tenant)
    second = lease(tenant)

    assert first.json()["job"]["id"] == str(due.id)
    assert second.content == b"null"
    future.refresh_from_db()
    assert future.status == JobStatus.PENDING


def test_lease_recovers_expired_lease_and_invalidates_old_token(tenant):
    job = JobFactory(owner=tenant.user, expired=True)
    old_token = str(job.lease_token)

    response = lease(tenant, worker_id="rescuer")

    assert response.status_code == 200
    assert response.json()["job"]["id"] == str(job.id)
    new_token = response.json()["lease_token"]
    assert new_token != old_token
    job.refresh_from_db()
    assert job.lease_lost_count == 1
    assert job.retry_count == 0
    assert job.locked_by == "rescuer"
    stale = tenant.api.post_json(f"/jobs/{job.id}/ack", {"lease_token": old_token})
    assert stale.status_code == 409
    assert stale.json() == LEASE_MISMATCH
    fresh = tenant.api.post_json(f"/jobs/{job.id}/ack", {"lease_token": new_token})
    assert fresh.status_code == 200


def test_lease_does_not_take_a_live_lease(tenant):
    JobFactory(owner=tenant.user, leased=True)

    assert lease(tenant).content == b"null"


@pytest.mark.parametrize("lease_seconds", [0, -5, 3601])
def test_lease_rejects_lease_seconds_out_of_range(tenant, lease_seconds):
    job = JobFactory(owner=tenant.user)

    response = lease(tenant, lease_seconds=lease_seconds)

    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "lease_seconds"]]
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


@pytest.mark.parametrize("lease_seconds", [1, 3600])
def test_lease_accepts_lease_seconds_bounds(tenant, lease_seconds):
    JobFactory(owner=tenant.user)

    before = timezone.now()
    response = lease(tenant, lease_seconds=lease_seconds)
    after = timezone.now()

    assert response.status_code == 200
    expires = parse_iso(response.json()["lease_expires_at"])
    span = timedelta(seconds=lease_seconds)
    assert before + span <= expires <= after + span


def test_lease_without_worker_id_is_422(tenant):
    JobFactory(owner=tenant.user)

    response = tenant.api.post_json("/queues/default/lease", {"lease_seconds": 30})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["type"] == "missing"
    assert error["loc"] == ["body", "worker_id"]


def test_lease_without_body_is_422(tenant):
    response = tenant.api.post_json("/queues/default/lease")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_lease_with_queue_name_over_255_characters_is_422(tenant):
    response = lease(tenant, "q" * 256)

    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["path", "queue_name"]]


def test_lease_accepts_queue_name_of_255_characters(tenant):
    job = JobFactory(owner=tenant.user, queue_name="q" * 255)

    response = lease(tenant, "q" * 255)

    assert response.status_code == 200
    assert response.json()["job"]["id"] == str(job.id)


# --- POST /jobs/{id}/ack ------------------------------------------------------------


def test_ack_completes_job_and_stores_result(tenant):
    job = leased_job(tenant, error_text="failed last time", retry_count=1)

    before = timezone.now()
    response = tenant.api.post_json(
        f"/jobs/{job.id}/ack", {"lease_token": str(job.lease_token), "result": {"ok": True}}
    )
    after = timezone.now()

    assert response.status_code == 200
    assert response.json() == {"job_id": str(job.id), "status": "completed"}
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.result == {"ok": True}
    assert job.error_text is None
    assert before <= job.finished_at <= after
    assert (job.lease_token, job.locked_by, job.locked_until) == (None, None, None)
    detail = tenant.api.get(f"/jobs/{job.id}/detail").json()
    assert detail["result"] == {"ok": True}
    assert detail["error_text"] is None


def test_ack_without_result_stores_null(tenant):
    job = leased_job(tenant)

    response = tenant.api.post_json(f"/jobs/{job.id}/ack", {"lease_token": str(job.lease_token)})

    assert response.status_code == 200
    assert tenant.api.get(f"/jobs/{job.id}/detail").json()["result"] is None


def test_ack_twice_is_409(tenant):
    job = leased_job(tenant)
    body = {"lease_token": str(job.lease_token), "result": {"n": 1}}

    first = tenant.api.post_json(f"/jobs/{job.id}/ack", body)
    second = tenant.api.post_json(f"/jobs/{job.id}/ack", {**body, "result": {"n": 2}})

    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json() == LEASE_MISMATCH
    job.refresh_from_db()
    assert job.result == {"n": 1}


@pytest.mark.parametrize(
    "token", [str(uuid.uuid4()), "invalid-token-123", ""], ids=["other-uuid", "non-uuid", "empty"]
)
def test_ack_with_wrong_token_is_409_and_leaves_job_leased(tenant, token):
    job = leased_job(tenant)

    response = tenant.api.post_json(f"/jobs/{job.id}/ack", {"lease_token": token})

    assert response.status_code == 409
    assert response.json() == LEASE_MISMATCH
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING


def test_ack_of_pending_job_is_409(tenant):
    job = JobFactory(owner=tenant.user)

    response = tenant.api.post_json(f"/jobs/{job.id}/ack", {"lease_token": str(uuid.uuid4())})

    assert response.status_code == 409
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_ack_with_list_result_is_422(tenant):
    job = leased_job(tenant)

    response = tenant.api.post_json(
        f"/jobs/{job.id}/ack", {"lease_token": str(job.lease_token), "result": [1, 2]}
    )

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["type"] == "dict_type"
    assert error["loc"] == ["body", "result"]
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING


def test_ack_with_oversize_result_is_413_naming_the_setting(tenant, settings):
    settings.OPENQUEUE_MAX_RESULT_PAYLOAD_BYTES = 64
    job = leased_job(tenant)

    response = tenant.api.post_json(
        f"/jobs/{job.id}/ack", {"lease_token": str(job.lease_token), "result": {"x": "y" * 100}}
    )

    assert response.status_code == 413
    assert "OPENQUEUE_MAX_RESULT_PAYLOAD_BYTES" in response.json()["detail"]
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING
    assert job.result is None


def test_ack_after_lease_expired_but_before_release_succeeds(tenant):
    # Contract §5.4: expiry is not enforced until someone re-leases the job.
    job = JobFactory(owner=tenant.user, expired=True)

    response = tenant.api.post_json(f"/jobs/{job.id}/ack", {"lease_token": str(job.lease_token)})

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED


# --- POST /jobs/{id}/nack -----------------------------------------------------------


def nack(tenant, job, **body):
    return tenant.api.post_json(
        f"/jobs/{job.id}/nack", {"lease_token": str(job.lease_token), "error": "boom", **body}
    )


def test_nack_with_retries_left_requeues_after_one_second(tenant):
    job = leased_job(tenant, retry_count=0, max_retries=3)

    before = timezone.now()
    response = nack(tenant, job, error="timeout talking to smtp")
    after = timezone.now()

    assert response.status_code == 200
    assert response.json() == {"job_id": str(job.id), "status": "failed_or_requeued"}
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert job.retry_count == 1
    assert before + timedelta(seconds=1) <= job.run_at <= after + timedelta(seconds=1)
    assert job.error_text == "timeout talking to smtp"
    assert (job.lease_token, job.locked_by, job.locked_until) == (None, None, None)
    assert job.finished_at is None
    assert job.started_at is not None
    assert job.dead_reason is None
    assert tenant.api.get(f"/jobs/{job.id}/detail").json()["error_text"] == (
        "timeout talking to smtp"
    )


@pytest.mark.parametrize(
    ("retry_count", "delay"), [(1, 2), (2, 4), (3, 8), (8, 256), (9, 300), (15, 300)]
)
def test_nack_backs_off_exponentially_up_to_300_seconds(tenant, retry_count, delay):
    job = leased_job(tenant, retry_count=retry_count, max_retries=20)

    before = timezone.now()
    response = nack(tenant, job)
    after = timezone.now()

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.retry_count == retry_count + 1
    assert before + timedelta(seconds=delay) <= job.run_at <= after + timedelta(seconds=delay)


def test_nack_requeued_job_is_not_leased_before_its_backoff(tenant):
    job = leased_job(tenant)
    nack(tenant, job)

    assert lease(tenant).content == b"null"


def test_nack_with_retry_false_moves_job_to_dlq_as_retry_disabled(tenant):
    job = leased_job(tenant, retry_count=0, max_retries=3)
    run_at = job.run_at

    before = timezone.now()
    response = nack(tenant, job, retry=False, error="bad input")
    after = timezone.now()

    assert response.status_code == 200
    assert response.json()["status"] == "failed_or_requeued"
    job.refresh_from_db()
    assert job.status == JobStatus.DEAD
    assert job.dead_reason == DeadReason.RETRY_DISABLED
    assert job.retry_count == 0
    assert job.run_at == run_at
    assert job.error_text == "bad input"
    assert before <= job.dead_at <= after
    assert job.finished_at == job.dead_at
    assert job.lease_token is None


def test_nack_after_last_retry_moves_job_to_dlq(tenant):
    job = leased_job(tenant, retry_count=3, max_retries=3)

    response = nack(tenant, job, retry=True)

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.DEAD
    assert job.dead_reason == DeadReason.MAX_RETRIES_EXHAUSTED
    assert job.retry_count == 3


def test_nack_without_retries_and_retry_false_records_max_retries_exhausted(tenant):
    job = leased_job(tenant, retry_count=0, max_retries=0)

    response = nack(tenant, job, retry=False)

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.DEAD
    assert job.dead_reason == DeadReason.MAX_RETRIES_EXHAUSTED


def test_nack_job_runs_max_retries_plus_one_times_then_dies(tenant):
    tenant.api.post_json("/jobs", {"payload": {}, "max_retries": 2})
    attempts = 0
    for _ in range(10):
        Job.objects.filter(status=JobStatus.PENDING).update(run_at=timezone.now())
        leased = lease(tenant)
        if leased.content == b"null":
            break
        attempts += 1
        token = leased.json()["lease_token"]
        job_id = leased.json()["job"]["id"]
        tenant.api.post_json(f"/jobs/{job_id}/nack", {"lease_token": token, "error": "again"})

    assert attempts == 3
    job = Job.objects.get()
    assert job.status == JobStatus.DEAD
    assert job.retry_count == 2
    assert job.dead_reason == DeadReason.MAX_RETRIES_EXHAUSTED


def test_nack_with_wrong_token_is_409(tenant):
    job = leased_job(tenant)

    response = tenant.api.post_json(
        f"/jobs/{job.id}/nack", {"lease_token": "invalid-token-123", "error": "x"}
    )

    assert response.status_code == 409
    assert response.json() == LEASE_MISMATCH
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING


def test_nack_twice_is_409(tenant):
    job = leased_job(tenant)

    assert nack(tenant, job).status_code == 200
    second = nack(tenant, job)

    assert second.status_code == 409
    job.refresh_from_db()
    assert job.retry_count == 1


def test_nack_with_oversize_error_is_413_counting_bytes(tenant, settings):
    settings.OPENQUEUE_MAX_ERROR_TEXT_BYTES = 100
    job = leased_job(tenant)

    # 51 characters but 102 bytes of UTF-8: the limit is in bytes.
    response = nack(tenant, job, error="é" * 51)

    assert response.status_code == 413
    assert "OPENQUEUE_MAX_ERROR_TEXT_BYTES" in response.json()["detail"]
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING
    assert job.error_text is None


def test_nack_with_error_at_the_limit_is_accepted(tenant, settings):
    settings.OPENQUEUE_MAX_ERROR_TEXT_BYTES = 100
    job = leased_job(tenant)

    response = nack(tenant, job, error="é" * 50)

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.error_text == "é" * 50


def test_nack_without_error_is_422(tenant):
    job = leased_job(tenant)

    response = tenant.api.post_json(f"/jobs/{job.id}/nack", {"lease_token": str(job.lease_token)})

    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "error"]]


# --- POST /jobs/{id}/heartbeat ------------------------------------------------------


def heartbeat(tenant, job, token=None, **body):
    token = str(job.lease_token) if token is None else token
    return tenant.api.post_json(f"/jobs/{job.id}/heartbeat", {"lease_token": token, **body})


def test_heartbeat_extends_lease_from_now(tenant):
    job = leased_job(tenant, locked_until=timezone.now() + timedelta(seconds=5))

    before = timezone.now()
    response = heartbeat(tenant, job, lease_seconds=120)
    after = timezone.now()

    assert response.status_code == 200
    assert response.json() == {"job_id": str(job.id), "status": "lease_extended"}
    job.refresh_from_db()
    assert before + timedelta(seconds=120) <= job.locked_until <= after + timedelta(seconds=120)
    assert before <= job.updated_at <= after
    assert job.status == JobStatus.PROCESSING


def test_heartbeat_can_shorten_a_long_lease(tenant):
    # From now, not added to the old expiry (contract §5.6).
    job = leased_job(tenant, locked_until=timezone.now() + timedelta(hours=1))

    before = timezone.now()
    heartbeat(tenant, job, lease_seconds=10)
    after = timezone.now()

    job.refresh_from_db()
    assert before + timedelta(seconds=10) <= job.locked_until <= after + timedelta(seconds=10)


def test_heartbeat_defaults_to_30_seconds(tenant):
    job = leased_job(tenant)

    before = timezone.now()
    heartbeat(tenant, job)
    after = timezone.now()

    job.refresh_from_db()
    assert before + timedelta(seconds=30) <= job.locked_until <= after + timedelta(seconds=30)


@pytest.mark.parametrize("token", [str(uuid.uuid4()), "invalid-token-123"])
def test_heartbeat_with_wrong_token_is_409_and_keeps_expiry(tenant, token):
    job = leased_job(tenant)
    locked_until = job.locked_until

    response = heartbeat(tenant, job, token=token, lease_seconds=600)

    assert response.status_code == 409
    assert response.json() == LEASE_MISMATCH
    job.refresh_from_db()
    assert job.locked_until == locked_until


def test_heartbeat_revives_expired_lease_nobody_re_leased(tenant):
    job = JobFactory(owner=tenant.user, expired=True)

    before = timezone.now()
    response = heartbeat(tenant, job, lease_seconds=60)

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.locked_until >= before + timedelta(seconds=60)
    # Revived: no other worker can take it now.
    assert lease(tenant).content == b"null"


def test_heartbeat_after_re_lease_is_409(tenant):
    job = JobFactory(owner=tenant.user, expired=True)
    assert lease(tenant).status_code == 200

    response = heartbeat(tenant, job)

    assert response.status_code == 409


@pytest.mark.parametrize("lease_seconds", [0, 3601])
def test_heartbeat_rejects_lease_seconds_out_of_range(tenant, lease_seconds):
    job = leased_job(tenant)

    response = heartbeat(tenant, job, lease_seconds=lease_seconds)

    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "lease_seconds"]]


@pytest.mark.parametrize("route", ["ack", "nack", "heartbeat"])
def test_worker_routes_with_malformed_job_id_are_422(tenant, route):
    body = {"lease_token": str(uuid.uuid4()), "error": "x"}

    response = tenant.api.post_json(f"/jobs/not-a-valid-uuid/{route}", body)

    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["path", "job_id"]]
