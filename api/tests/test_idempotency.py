"""Idempotent enqueue: the Idempotency-Key header, and idempotency_key per batch item."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from queues import services
from queues.models import Job

pytestmark = pytest.mark.django_db


def enqueue(tenant, key, payload=None, **extra):
    return tenant.api.post_json(
        "/jobs", {"payload": payload or {"n": 1}}, HTTP_IDEMPOTENCY_KEY=key, **extra
    )


def test_enqueue_with_a_new_key_is_201(tenant):
    response = enqueue(tenant, "order-1")
    assert response.status_code == 201
    assert response.json()["status"] == "queued"
    job = Job.objects.get(id=response.json()["job_id"])
    assert job.idempotency_key == "order-1"


def test_enqueue_repeat_with_same_key_returns_the_existing_job_with_200(tenant):
    first = enqueue(tenant, "order-1")
    again = enqueue(tenant, "order-1", payload={"different": True})
    assert again.status_code == 200
    assert again.json() == first.json()
    assert list(again.json()) == ["job_id", "status"]
    assert Job.objects.filter(owner=tenant.user).count() == 1


def test_enqueue_without_key_always_creates(tenant):
    ids = {tenant.api.post_json("/jobs", {"payload": {}}).json()["job_id"] for _ in range(3)}
    assert len(ids) == 3
    assert not Job.objects.filter(idempotency_key__isnull=False).exists()


def test_enqueue_same_key_from_two_tenants_never_collides(tenant, other_tenant):
    mine = enqueue(tenant, "shared-key")
    theirs = enqueue(other_tenant, "shared-key")
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["job_id"] != theirs.json()["job_id"]


def test_enqueue_key_is_free_again_after_the_window(tenant, settings):
    settings.OPENQUEUE_IDEMPOTENCY_WINDOW_SECONDS = 60
    old = services.enqueue_jobs_idempotent(
        owner=tenant.user,
        jobs=[services.NewJob(queue_name="default", payload={})],
        keys=["k"],
        now=timezone.now() - timedelta(seconds=61),
    )[0].job
    response = enqueue(tenant, "k")
    assert response.status_code == 201
    assert response.json()["job_id"] != str(old.id)
    old.refresh_from_db()
    # The old job stays; only its key was released.
    assert old.idempotency_key is None and old.status == "pending"


def test_enqueue_key_still_deduplicates_just_inside_the_window(tenant, settings):
    settings.OPENQUEUE_IDEMPOTENCY_WINDOW_SECONDS = 60
    old = services.enqueue_jobs_idempotent(
        owner=tenant.user,
        jobs=[services.NewJob(queue_name="default", payload={})],
        keys=["k"],
        now=timezone.now() - timedelta(seconds=50),
    )[0].job
    response = enqueue(tenant, "k")
    assert response.status_code == 200 and response.json()["job_id"] == str(old.id)


def test_enqueue_repeat_returns_the_job_whatever_its_status_now(tenant):
    first = enqueue(tenant, "k").json()["job_id"]
    tenant.api.post_json(f"/jobs/{first}/cancel")
    again = enqueue(tenant, "k")
    assert again.status_code == 200 and again.json()["job_id"] == first


@pytest.mark.parametrize(
    "key, error_type",
    [
        ("", "string_too_short"),
        ("x" * 256, "string_too_long"),
        ("tab\there", "string_pattern_mismatch"),
        ("caf\u00e9", "string_pattern_mismatch"),
    ],
)
def test_enqueue_with_malformed_key_is_422_naming_the_header(tenant, key, error_type):
    response = enqueue(tenant, key)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["header", "idempotency-key"] and error["type"] == error_type
    assert not Job.objects.exists()


def test_enqueue_key_of_255_printable_characters_is_accepted(tenant):
    key = "".join(chr(c) for c in range(0x20, 0x7F)) * 3
    assert enqueue(tenant, key[:255]).status_code == 201


def test_enqueue_malformed_key_and_body_report_both_errors(tenant):
    response = tenant.api.post_json("/jobs", {"priority": "x"}, HTTP_IDEMPOTENCY_KEY="")
    locs = [error["loc"] for error in response.json()["detail"]]
    assert ["header", "idempotency-key"] in locs and ["body", "payload"] in locs


def test_enqueue_without_key_runs_no_idempotency_query(tenant, django_assert_max_num_queries):
    # The plain path is untouched: one INSERT, no SELECT for an existing key.
    with django_assert_max_num_queries(8) as queries:
        tenant.api.post_json("/jobs", {"payload": {}})
    statements = [q["sql"] for q in queries.captured_queries]
    assert not any(sql.startswith("SELECT") and "idempotency_key" in sql for sql in statements)
    assert sum("INSERT INTO jobs" in sql or 'INSERT INTO "jobs"' in sql for sql in statements) == 1


# --- Batch -------------------------------------------------------------------------


def batch(tenant, items):
    return tenant.api.post_json("/jobs/batch", {"jobs": items})


def test_batch_items_with_keys_return_existing_ids_and_create_the_rest(tenant):
    existing = enqueue(tenant, "a").json()["job_id"]
    response = batch(
        tenant,
        [
            {"payload": {}, "idempotency_key": "a"},
            {"payload": {}, "idempotency_key": "b"},
            {"payload": {}},
        ],
    )
    assert response.status_code == 201
    ids = response.json()["job_ids"]
    assert ids[0] == existing and len(set(ids)) == 3 and response.json()["count"] == 3
    assert Job.objects.filter(owner=tenant.user).count() == 3


def test_batch_whose_every_item_matched_is_200(tenant):
    first = batch(
        tenant, [{"payload": {}, "idempotency_key": "a"}, {"payload": {}, "idempotency_key": "b"}]
    )
    again = batch(
        tenant, [{"payload": {}, "idempotency_key": "b"}, {"payload": {}, "idempotency_key": "a"}]
    )
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["job_ids"] == list(reversed(first.json()["job_ids"]))


def test_batch_with_a_key_twice_creates_one_job(tenant):
    response = batch(tenant, [{"payload": {}, "idempotency_key": "a"}] * 2)
    assert response.status_code == 201
    first, second = response.json()["job_ids"]
    assert first == second and Job.objects.count() == 1


def test_batch_header_key_and_item_key_share_one_namespace(tenant):
    single = enqueue(tenant, "shared").json()["job_id"]
    assert batch(tenant, [{"payload": {}, "idempotency_key": "shared"}]).json()["job_ids"] == [
        single
    ]


def test_batch_item_with_malformed_key_is_422_and_creates_nothing(tenant):
    response = batch(
        tenant, [{"payload": {}, "idempotency_key": "ok"}, {"payload": {}, "idempotency_key": ""}]
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "jobs", 1, "idempotency_key"]
    assert not Job.objects.exists()


def test_batch_with_keys_is_still_all_or_nothing(tenant, settings):
    settings.OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES = 50
    response = batch(
        tenant,
        [
            {"payload": {}, "idempotency_key": "a"},
            {"payload": {"x": "y" * 100}, "idempotency_key": "b"},
        ],
    )
    assert response.status_code == 413
    assert not Job.objects.exists()


# --- Concurrency, against real server processes -------------------------------------


@pytest.mark.live_server
def test_concurrent_requests_with_one_key_create_exactly_one_job(live_server_factory, make_tenant):
    server = live_server_factory(
        workers=2, threads=8, env={"OPENQUEUE_RATE_LIMIT_ENABLED": "false"}
    )
    tenant = make_tenant()
    barrier = threading.Barrier(16)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def post() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            barrier.wait()
            response = client.post(
                "/jobs",
                json={"payload": {"n": 1}},
                headers={"Authorization": f"Bearer {tenant.token}", "Idempotency-Key": "once"},
            )
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=post) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200] * 15 + [201]
    assert len({response.json()["job_id"] for response in answers}) == 1
    assert Job.objects.filter(owner=tenant.user).count() == 1
