"""The batch API (issue 5): POST /queues/{queue}/lease/batch, /leases/ack, /leases/nack.

Limits, per-item outcomes (one bad item never fails the others), tenant
isolation per item, lease order, the poison rule, rate-limit tokens,
metrics, and exactly-once delivery against real server processes.
"""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from queues.models import DeadReason, Job, JobStatus
from queues.tests.factories import JobFactory

MISMATCH = {"status": 409, "detail": "Job not found, not leased, or lease token mismatch"}


def batch_lease(tenant, queue="default", **body):
    return tenant.api.post_json(
        f"/queues/{queue}/lease/batch", {"worker_id": "w1", "max_jobs": 10, **body}
    )


def leases_of(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["leases"]


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def unique_queue(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- POST /queues/{queue}/lease/batch ------------------------------------------------


def test_lease_batch_returns_leases_in_lease_order(tenant):
    now = timezone.now()
    low_old = JobFactory(owner=tenant.user, priority=0, created_at=now - timedelta(seconds=9))
    high = JobFactory(owner=tenant.user, priority=5, created_at=now - timedelta(seconds=1))
    low_new = JobFactory(owner=tenant.user, priority=0, created_at=now - timedelta(seconds=2))
    # An expired lease competes in the same order as the pending jobs.
    expired = JobFactory(
        owner=tenant.user, expired=True, priority=1, created_at=now - timedelta(seconds=5)
    )

    leases = leases_of(batch_lease(tenant, worker_id="w9", lease_seconds=60))

    ids = [lease["job"]["id"] for lease in leases]
    assert ids == [str(j.id) for j in (high, expired, low_old, low_new)]
    assert [list(lease) for lease in leases] == [["job", "lease_token", "lease_expires_at"]] * 4
    for lease in leases:
        job = Job.objects.get(pk=lease["job"]["id"])
        assert job.status == JobStatus.PROCESSING
        assert str(job.lease_token) == lease["lease_token"]
        assert job.locked_by == "w9"
        assert lease["job"]["status"] == "processing"
    assert len({lease["lease_token"] for lease in leases}) == 4
    # Made by the database: random UUIDs of version 4 and the RFC 4122 variant.
    tokens = [uuid.UUID(lease["lease_token"]) for lease in leases]
    assert {(t.version, t.variant) for t in tokens} == {(4, uuid.RFC_4122)}
    expired.refresh_from_db()
    assert expired.lease_lost_count == 1


def test_lease_batch_takes_at_most_max_jobs(tenant):
    JobFactory.create_batch(5, owner=tenant.user)

    assert len(leases_of(batch_lease(tenant, max_jobs=3))) == 3
    assert len(leases_of(batch_lease(tenant, max_jobs=3))) == 2
    assert Job.objects.filter(status=JobStatus.PROCESSING).count() == 5


def test_lease_batch_empty_queue_returns_empty_list(tenant):
    JobFactory(owner=tenant.user, queue_name="other")
    JobFactory(owner=tenant.user, run_at=timezone.now() + timedelta(hours=1))

    response = batch_lease(tenant)

    assert response.status_code == 200
    assert response.json() == {"leases": []}


def test_lease_batch_never_leases_another_tenants_jobs(tenant, other_tenant):
    JobFactory.create_batch(3, owner=other_tenant.user)

    assert leases_of(batch_lease(tenant)) == []
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 3


def test_lease_batch_buries_poison_jobs_and_fills_the_batch_with_others(tenant):
    now = timezone.now()
    poison = [
        JobFactory(
            owner=tenant.user,
            expired=True,
            max_retries=1,
            lease_lost_count=1,
            priority=9,
            created_at=now - timedelta(seconds=n + 1),
        )
        for n in range(2)
    ]
    healthy = JobFactory.create_batch(3, owner=tenant.user)

    leases = leases_of(batch_lease(tenant, max_jobs=3))

    assert sorted(lease["job"]["id"] for lease in leases) == sorted(str(j.id) for j in healthy)
    for job in poison:
        job.refresh_from_db()
        assert job.status == JobStatus.DEAD
        assert job.dead_reason == DeadReason.LEASE_EXPIRED
        assert job.lease_lost_count == 2


@pytest.mark.parametrize("max_jobs", [0, -1, 101])
def test_lease_batch_max_jobs_out_of_range_is_422(tenant, max_jobs):
    JobFactory(owner=tenant.user)

    response = batch_lease(tenant, max_jobs=max_jobs)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "max_jobs"]
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 1


def test_lease_batch_max_jobs_bound_follows_the_setting(tenant, settings):
    settings.OPENQUEUE_MAX_LEASE_BATCH = 2
    JobFactory.create_batch(3, owner=tenant.user)

    refused = batch_lease(tenant, max_jobs=3)
    allowed = batch_lease(tenant, max_jobs=2)

    assert refused.status_code == 422
    assert "OPENQUEUE_MAX_LEASE_BATCH" in refused.json()["detail"][0]["msg"]
    assert len(leases_of(allowed)) == 2


def test_lease_batch_validates_lease_seconds_and_worker_id(tenant):
    response = tenant.api.post_json(
        "/queues/default/lease/batch", {"lease_seconds": 3601, "max_jobs": 1}
    )

    assert response.status_code == 422
    locs = sorted(tuple(error["loc"]) for error in response.json()["detail"])
    assert locs == [("body", "lease_seconds"), ("body", "worker_id")]


def test_lease_batch_requires_a_token(db, client):
    response = client.post("/queues/default/lease/batch", {}, content_type="application/json")

    assert response.status_code == 401


def test_lease_batch_counts_leases_and_empty_leases(tenant):
    queue = unique_queue("batchmetrics")
    JobFactory.create_batch(4, owner=tenant.user, queue_name=queue)
    leased_before = counter("openqueue_jobs_leased_total", queue_name=queue)
    empty_before = counter("openqueue_jobs_lease_empty_total", queue_name=queue)

    batch_lease(tenant, queue, max_jobs=10)
    batch_lease(tenant, queue, max_jobs=10)

    assert counter("openqueue_jobs_leased_total", queue_name=queue) - leased_before == 4
    assert counter("openqueue_jobs_lease_empty_total", queue_name=queue) - empty_before == 1


# --- POST /leases/ack ----------------------------------------------------------------


def test_ack_batch_reports_each_item_and_applies_only_the_good_ones(tenant, other_tenant):
    good = JobFactory(owner=tenant.user, leased=True)
    with_result = JobFactory(owner=tenant.user, leased=True)
    stale = JobFactory(owner=tenant.user, leased=True)
    foreign = JobFactory(owner=other_tenant.user, leased=True)
    items = [
        {"job_id": str(good.id), "lease_token": str(good.lease_token)},
        {"job_id": str(stale.id), "lease_token": str(uuid.uuid4())},
        {"job_id": str(foreign.id), "lease_token": str(foreign.lease_token)},
        {"job_id": str(uuid.uuid4()), "lease_token": str(uuid.uuid4())},
        {"job_id": str(good.id), "lease_token": "not-a-uuid"},
        {
            "job_id": str(with_result.id),
            "lease_token": str(with_result.lease_token),
            "result": {"ok": 1},
        },
    ]

    response = tenant.api.post_json("/leases/ack", {"items": items})

    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {"job_id": str(good.id), "status": "completed"},
            {"job_id": str(stale.id), "error": MISMATCH},
            {"job_id": str(foreign.id), "error": MISMATCH},
            {"job_id": items[3]["job_id"], "error": MISMATCH},
            {"job_id": str(good.id), "error": MISMATCH},
            {"job_id": str(with_result.id), "status": "completed"},
        ]
    }
    for job in (good, with_result, stale, foreign):
        job.refresh_from_db()
    assert (good.status, good.result, good.lease_token) == (JobStatus.COMPLETED, None, None)
    assert (with_result.status, with_result.result) == (JobStatus.COMPLETED, {"ok": 1})
    assert stale.status == JobStatus.PROCESSING
    assert foreign.status == JobStatus.PROCESSING  # another tenant's job is untouched


def test_ack_batch_a_repeated_job_id_counts_once(tenant):
    job = JobFactory(owner=tenant.user, leased=True)
    item = {"job_id": str(job.id), "lease_token": str(job.lease_token)}

    response = tenant.api.post_json("/leases/ack", {"items": [item, item]})

    assert response.json()["results"] == [
        {"job_id": str(job.id), "status": "completed"},
        {"job_id": str(job.id), "error": MISMATCH},
    ]


def test_ack_batch_oversized_result_fails_only_that_item(tenant, settings):
    settings.OPENQUEUE_MAX_RESULT_PAYLOAD_BYTES = 20
    big = JobFactory(owner=tenant.user, leased=True)
    small = JobFactory(owner=tenant.user, leased=True)
    items = [
        {"job_id": str(big.id), "lease_token": str(big.lease_token), "result": {"x": "y" * 50}},
        {"job_id": str(small.id), "lease_token": str(small.lease_token), "result": {"x": 1}},
    ]

    results = tenant.api.post_json("/leases/ack", {"items": items}).json()["results"]

    assert results[0]["error"]["status"] == 413
    assert "OPENQUEUE_MAX_RESULT_PAYLOAD_BYTES" in results[0]["error"]["detail"]
    assert results[1] == {"job_id": str(small.id), "status": "completed"}
    big.refresh_from_db()
    assert big.status == JobStatus.PROCESSING


def test_ack_batch_of_leased_batch_completes_everything(tenant):
    JobFactory.create_batch(5, owner=tenant.user)
    leases = leases_of(batch_lease(tenant))
    items = [{"job_id": x["job"]["id"], "lease_token": x["lease_token"]} for x in leases]

    results = tenant.api.post_json("/leases/ack", {"items": items}).json()["results"]

    assert [r.get("status") for r in results] == ["completed"] * 5
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 5


def test_ack_batch_more_items_than_the_limit_is_422(tenant, settings):
    settings.OPENQUEUE_MAX_BATCH_SIZE = 2
    job = JobFactory(owner=tenant.user, leased=True)
    item = {"job_id": str(job.id), "lease_token": str(job.lease_token)}

    response = tenant.api.post_json("/leases/ack", {"items": [item] * 3})

    assert response.status_code == 422
    assert "OPENQUEUE_MAX_BATCH_SIZE" in response.json()["detail"][0]["msg"]
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING


def test_ack_batch_malformed_job_id_is_a_whole_request_422(tenant):
    job = JobFactory(owner=tenant.user, leased=True)
    items = [
        {"job_id": str(job.id), "lease_token": str(job.lease_token)},
        {"job_id": "nope", "lease_token": str(uuid.uuid4())},
    ]

    response = tenant.api.post_json("/leases/ack", {"items": items})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "items", 1, "job_id"]
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING


@pytest.mark.parametrize("body", [{}, {"items": {}}, {"items": [1]}])
def test_ack_batch_structural_errors_are_422(tenant, body):
    assert tenant.api.post_json("/leases/ack", body).status_code == 422


def test_ack_batch_empty_items_is_an_empty_result(tenant):
    response = tenant.api.post_json("/leases/ack", {"items": []})

    assert response.status_code == 200
    assert response.json() == {"results": []}


def test_ack_batch_counts_each_completed_job(tenant):
    queue = unique_queue("ackmetrics")
    jobs = JobFactory.create_batch(3, owner=tenant.user, queue_name=queue, leased=True)
    before = counter("openqueue_jobs_acked_total", queue_name=queue)
    items = [{"job_id": str(j.id), "lease_token": str(j.lease_token)} for j in jobs]
    items.append({"job_id": str(jobs[0].id), "lease_token": str(uuid.uuid4())})

    tenant.api.post_json("/leases/ack", {"items": items})

    assert counter("openqueue_jobs_acked_total", queue_name=queue) - before == 3


# --- POST /leases/nack ---------------------------------------------------------------


def test_nack_batch_retries_buries_and_reports_per_item(tenant):
    retried = JobFactory(owner=tenant.user, leased=True, retry_count=0, max_retries=3)
    exhausted = JobFactory(owner=tenant.user, leased=True, retry_count=3, max_retries=3)
    disabled = JobFactory(owner=tenant.user, leased=True, retry_count=0, max_retries=3)
    stale = JobFactory(owner=tenant.user, leased=True)
    items = [
        {"job_id": str(retried.id), "lease_token": str(retried.lease_token), "error": "e1"},
        {"job_id": str(exhausted.id), "lease_token": str(exhausted.lease_token), "error": "e2"},
        {
            "job_id": str(disabled.id),
            "lease_token": str(disabled.lease_token),
            "error": "e3",
            "retry": False,
        },
        {"job_id": str(stale.id), "lease_token": str(uuid.uuid4()), "error": "e4"},
    ]
    before = timezone.now()

    response = tenant.api.post_json("/leases/nack", {"items": items})

    assert response.status_code == 200
    assert response.json()["results"] == [
        {"job_id": str(retried.id), "status": "failed_or_requeued"},
        {"job_id": str(exhausted.id), "status": "failed_or_requeued"},
        {"job_id": str(disabled.id), "status": "failed_or_requeued"},
        {"job_id": str(stale.id), "error": MISMATCH},
    ]
    for job in (retried, exhausted, disabled, stale):
        job.refresh_from_db()
    assert (retried.status, retried.retry_count, retried.error_text) == ("pending", 1, "e1")
    assert retried.run_at >= before + timedelta(seconds=1)
    assert (exhausted.status, exhausted.dead_reason, exhausted.error_text) == (
        "dead",
        DeadReason.MAX_RETRIES_EXHAUSTED,
        "e2",
    )
    assert (disabled.status, disabled.dead_reason, disabled.error_text) == (
        "dead",
        DeadReason.RETRY_DISABLED,
        "e3",
    )
    assert stale.status == JobStatus.PROCESSING


def test_nack_batch_another_tenants_job_is_a_mismatch(tenant, other_tenant):
    foreign = JobFactory(owner=other_tenant.user, leased=True)
    item = {"job_id": str(foreign.id), "lease_token": str(foreign.lease_token), "error": "x"}

    results = tenant.api.post_json("/leases/nack", {"items": [item]}).json()["results"]

    assert results == [{"job_id": str(foreign.id), "error": MISMATCH}]
    foreign.refresh_from_db()
    assert foreign.status == JobStatus.PROCESSING


def test_nack_batch_oversized_error_fails_only_that_item(tenant, settings):
    settings.OPENQUEUE_MAX_ERROR_TEXT_BYTES = 5
    big = JobFactory(owner=tenant.user, leased=True)
    small = JobFactory(owner=tenant.user, leased=True)
    items = [
        {"job_id": str(big.id), "lease_token": str(big.lease_token), "error": "x" * 6},
        {"job_id": str(small.id), "lease_token": str(small.lease_token), "error": "x" * 5},
    ]

    results = tenant.api.post_json("/leases/nack", {"items": items}).json()["results"]

    assert results[0]["error"]["status"] == 413
    assert results[1] == {"job_id": str(small.id), "status": "failed_or_requeued"}


def test_nack_batch_counts_outcomes(tenant):
    queue = unique_queue("nackmetrics")
    requeue = JobFactory(owner=tenant.user, queue_name=queue, leased=True)
    dead = JobFactory(owner=tenant.user, queue_name=queue, leased=True)
    labels = {"queue_name": queue}
    before_requeued = counter("openqueue_jobs_nacked_total", **labels, outcome="requeued")
    before_dead = counter("openqueue_jobs_nacked_total", **labels, outcome="dead")
    items = [
        {"job_id": str(requeue.id), "lease_token": str(requeue.lease_token), "error": "x"},
        {
            "job_id": str(dead.id),
            "lease_token": str(dead.lease_token),
            "error": "x",
            "retry": False,
        },
    ]

    tenant.api.post_json("/leases/nack", {"items": items})

    assert (
        counter("openqueue_jobs_nacked_total", **labels, outcome="requeued") - before_requeued == 1
    )
    assert counter("openqueue_jobs_nacked_total", **labels, outcome="dead") - before_dead == 1


# --- Rate limits ---------------------------------------------------------------------


def test_batch_routes_spend_one_token_per_call(tenant, settings):
    settings.OPENQUEUE_RATE_LIMIT_ENABLED = True
    settings.OPENQUEUE_RATE_LIMITS = {
        **settings.OPENQUEUE_RATE_LIMITS,
        "lease": (0.001, 2),
        "ack": (0.001, 1),
        "nack": (0.001, 1),
    }
    JobFactory.create_batch(20, owner=tenant.user)

    first = batch_lease(tenant, max_jobs=10)
    second = batch_lease(tenant, max_jobs=10)
    third = batch_lease(tenant, max_jobs=10)
    items = [{"job_id": x["job"]["id"], "lease_token": x["lease_token"]} for x in leases_of(first)]
    acked = tenant.api.post_json("/leases/ack", {"items": items})
    ack_refused = tenant.api.post_json("/leases/ack", {"items": items})
    nacked = tenant.api.post_json("/leases/nack", {"items": []})
    nack_refused = tenant.api.post_json("/leases/nack", {"items": []})

    assert [second.status_code, third.status_code] == [200, 429]
    assert len(leases_of(second)) == 10
    assert [acked.status_code, ack_refused.status_code] == [200, 429]
    assert [nacked.status_code, nack_refused.status_code] == [200, 429]


# --- Exactly once under real concurrency -----------------------------------------------

CLIENT_THREADS = 8
JOBS = 1000


def _drain_in_batches(url: str, token: str, queue: str, worker: int) -> tuple[list, list, list]:
    """Batch-lease 10 and batch-ack them until the queue answers an empty list."""
    leased, acked, failures = [], [], []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        while True:
            response = client.post(
                f"/queues/{queue}/lease/batch",
                json={"worker_id": f"w{worker}", "lease_seconds": 300, "max_jobs": 10},
            )
            if response.status_code != 200:
                failures.append(f"lease {response.status_code}: {response.text[:200]}")
                return leased, acked, failures
            leases = response.json()["leases"]
            if not leases:
                return leased, acked, failures
            items = [{"job_id": x["job"]["id"], "lease_token": x["lease_token"]} for x in leases]
            leased += [item["job_id"] for item in items]
            response = client.post("/leases/ack", json={"items": items})
            if response.status_code != 200:
                failures.append(f"ack {response.status_code}: {response.text[:200]}")
                return leased, acked, failures
            for result in response.json()["results"]:
                (acked if result.get("status") == "completed" else failures).append(
                    result["job_id"] if "status" in result else str(result)
                )


@pytest.mark.live_server
@pytest.mark.timeout(240)
def test_batch_lease_and_ack_under_contention_deliver_every_job_once(
    live_server_factory, make_tenant
):
    server = live_server_factory(
        workers=2, threads=4, env={"OPENQUEUE_RATE_LIMIT_ENABLED": "false"}
    )
    tenant = make_tenant()
    headers = {"Authorization": f"Bearer {tenant.token}"}
    enqueued: list[str] = []
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        for start in range(0, JOBS, 250):
            jobs = [{"queue_name": "bulk", "payload": {"n": n}} for n in range(start, start + 250)]
            response = client.post("/jobs/batch", json={"jobs": jobs})
            assert response.status_code == 201, response.text
            enqueued += response.json()["job_ids"]

    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        futures = [
            pool.submit(_drain_in_batches, server.url, tenant.token, "bulk", n)
            for n in range(CLIENT_THREADS)
        ]
        outcomes = [future.result() for future in futures]

    assert [failure for _, _, failures in outcomes for failure in failures] == []
    leased = [job_id for ids, _, _ in outcomes for job_id in ids]
    acked = [job_id for _, ids, _ in outcomes for job_id in ids]
    assert {k: n for k, n in Counter(leased).items() if n > 1} == {}
    assert sorted(leased) == sorted(enqueued)
    assert sorted(acked) == sorted(enqueued)
    assert sum(1 for ids, _, _ in outcomes if ids) > 1  # really concurrent
    rows = Job.objects.filter(owner=tenant.user)
    assert Counter(rows.values_list("status", flat=True)) == {JobStatus.COMPLETED: JOBS}
    assert set(rows.values_list("lease_lost_count", flat=True)) == {0}
