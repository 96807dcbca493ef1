"""The job routes of the REST API: enqueue, batch, list, status, detail, cancel, stats.

Contract Part B §3.5-3.10 and §3.15, with the Part A improvements (UTC
timestamps with ``Z``, offsets converted, atomic batches, 422 on bad input).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from queues.models import Job, JobStatus
from queues.tests.factories import JobFactory

JOB_KEYS = [
    "id",
    "queue_name",
    "status",
    "priority",
    "payload",
    "result",
    "error_text",
    "retry_count",
    "max_retries",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
]
STATS_KEYS = [
    "queue_name",
    "pending",
    "processing",
    "completed",
    "failed",
    "cancelled",
    "dead",
    "total",
    "oldest_pending_created_at",
]
UTC_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def parse_iso(value: str) -> datetime:
    assert UTC_ISO.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def locs(response) -> list[list]:
    return [error["loc"] for error in response.json()["detail"]]


# --- POST /jobs ---------------------------------------------------------------------


def test_enqueue_returns_201_with_job_id_and_queued(tenant):
    response = tenant.api.post_json("/jobs", {"queue_name": "emails", "payload": {"to": "a@b.c"}})

    assert response.status_code == 201
    body = response.json()
    assert list(body) == ["job_id", "status"]
    assert body["status"] == "queued"
    job = Job.objects.get(pk=body["job_id"])
    assert body["job_id"] == str(job.id)
    assert job.owner == tenant.user
    assert job.status == JobStatus.PENDING
    assert job.queue_name == "emails"
    assert job.payload == {"to": "a@b.c"}


def test_enqueue_applies_defaults_and_schedules_now(tenant):
    before = timezone.now()
    response = tenant.api.post_json("/jobs", {"payload": {}})
    after = timezone.now()

    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.queue_name == "default"
    assert job.priority == 0
    assert job.max_retries == 3
    assert job.retry_count == 0
    assert before <= job.run_at <= after
    assert before <= job.created_at <= after


def test_enqueue_stores_priority_max_retries_and_run_at(tenant):
    response = tenant.api.post_json(
        "/jobs",
        {
            "payload": {"k": "v"},
            "priority": -7,
            "max_retries": 11,
            "run_at": "2030-06-01T12:34:56.789012Z",
        },
    )

    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.priority == -7
    assert job.max_retries == 11
    assert job.run_at == datetime(2030, 6, 1, 12, 34, 56, 789012, tzinfo=UTC)


def test_enqueue_converts_run_at_offset_to_utc(tenant):
    response = tenant.api.post_json("/jobs", {"payload": {}, "run_at": "2030-01-01T05:30:00+05:30"})

    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.run_at == datetime(2030, 1, 1, 0, 0, tzinfo=UTC)


def test_enqueue_takes_naive_run_at_as_utc(tenant):
    response = tenant.api.post_json("/jobs", {"payload": {}, "run_at": "2030-01-01T05:30:00"})

    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.run_at == datetime(2030, 1, 1, 5, 30, tzinfo=UTC)


@pytest.mark.parametrize("run_at", ["", None], ids=["empty-string", "null"])
def test_enqueue_with_empty_or_null_run_at_runs_now(tenant, run_at):
    before = timezone.now()
    response = tenant.api.post_json("/jobs", {"payload": {}, "run_at": run_at})
    after = timezone.now()

    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["job_id"])
    assert before <= job.run_at <= after


def test_enqueue_accepts_date_only_run_at_as_utc_midnight(tenant):
    response = tenant.api.post_json("/jobs", {"payload": {}, "run_at": "2030-01-01"})

    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.run_at == datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("run_at", "next tuesday"),
        ("max_retries", -1),
        ("priority", 2**31),
        ("payload", [1, 2]),
        ("queue_name", "a/b"),
    ],
)
def test_enqueue_rejects_bad_field_with_422_naming_it(tenant, field, value):
    response = tenant.api.post_json("/jobs", {"payload": {}, field: value})

    assert response.status_code == 422
    assert locs(response) == [["body", field]]
    assert not Job.objects.exists()


def test_enqueue_rejects_oversize_payload_with_413_naming_the_setting(tenant, settings):
    settings.OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES = 100

    response = tenant.api.post_json("/jobs", {"payload": {"blob": "x" * 200}})

    assert response.status_code == 413
    assert "OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES" in response.json()["detail"]
    assert not Job.objects.exists()


# --- POST /jobs/batch ---------------------------------------------------------------


def test_batch_enqueue_returns_ids_in_input_order(tenant):
    jobs = [{"queue_name": "batch", "payload": {"i": i}} for i in range(5)]

    response = tenant.api.post_json("/jobs/batch", {"jobs": jobs})

    assert response.status_code == 201
    body = response.json()
    assert list(body) == ["job_ids", "count"]
    assert body["count"] == 5
    assert len(body["job_ids"]) == 5
    stored = [Job.objects.get(pk=job_id) for job_id in body["job_ids"]]
    assert [job.payload for job in stored] == [{"i": i} for i in range(5)]
    assert all(job.owner == tenant.user and job.queue_name == "batch" for job in stored)


def test_batch_enqueue_item_defaults_match_single_enqueue(tenant):
    response = tenant.api.post_json("/jobs/batch", {"jobs": [{"payload": {}}]})

    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["job_ids"][0])
    assert (job.queue_name, job.priority, job.max_retries) == ("default", 0, 3)


def test_batch_enqueue_of_empty_list_creates_nothing(tenant):
    response = tenant.api.post_json("/jobs/batch", {"jobs": []})

    assert response.status_code == 201
    assert response.json() == {"job_ids": [], "count": 0}
    assert not Job.objects.exists()


def test_batch_enqueue_with_one_bad_item_creates_no_job(tenant):
    jobs = [{"payload": {"i": 0}}, {"payload": [1]}, {"payload": {"i": 2}}]

    response = tenant.api.post_json("/jobs/batch", {"jobs": jobs})

    assert response.status_code == 422
    assert locs(response) == [["body", "jobs", 1, "payload"]]
    assert not Job.objects.exists()


def test_batch_enqueue_with_one_oversize_payload_creates_no_job(tenant, settings):
    settings.OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES = 100
    jobs = [{"payload": {"i": 0}}, {"payload": {"blob": "x" * 200}}]

    response = tenant.api.post_json("/jobs/batch", {"jobs": jobs})

    assert response.status_code == 413
    assert "OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES" in response.json()["detail"]
    assert not Job.objects.exists()


def test_batch_enqueue_over_max_batch_size_is_422(tenant, settings):
    settings.OPENQUEUE_MAX_BATCH_SIZE = 2

    too_many = tenant.api.post_json("/jobs/batch", {"jobs": [{"payload": {}}] * 3})
    at_limit = tenant.api.post_json("/jobs/batch", {"jobs": [{"payload": {}}] * 2})

    assert too_many.status_code == 422
    assert locs(too_many) == [["body", "jobs"]]
    assert "OPENQUEUE_MAX_BATCH_SIZE" in too_many.json()["detail"][0]["msg"]
    assert at_limit.status_code == 201
    assert Job.objects.count() == 2


# --- GET /jobs ----------------------------------------------------------------------


def test_list_jobs_returns_items_total_limit_offset(tenant):
    job = JobFactory(owner=tenant.user)

    response = tenant.api.get("/jobs")

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["items", "total", "limit", "offset"]
    assert body["total"] == 1
    assert body["limit"] == 50
    assert body["offset"] == 0
    assert [item["id"] for item in body["items"]] == [str(job.id)]
    assert list(body["items"][0]) == JOB_KEYS


def test_list_jobs_orders_newest_first_then_id_desc(tenant):
    t0 = timezone.now() - timedelta(minutes=10)

    def job(id_prefix: str, minutes: int) -> Job:
        job_id = uuid.UUID(f"{id_prefix}0000000-0000-4000-8000-000000000000")
        return JobFactory(owner=tenant.user, id=job_id, created_at=t0 + timedelta(minutes=minutes))

    # Inserted out of order; equal created_at values are broken by id DESC.
    older_low = job("1", 0)
    newer_high = job("e", 5)
    older_high = job("f", 0)
    newest = job("5", 9)
    newer_low = job("2", 5)
    expected = [newest, newer_high, newer_low, older_high, older_low]

    response = tenant.api.get("/jobs")

    assert [item["id"] for item in response.json()["items"]] == [str(j.id) for j in expected]


def test_list_jobs_pages_with_limit_and_offset(tenant):
    t0 = timezone.now() - timedelta(minutes=10)
    jobs = [JobFactory(owner=tenant.user, created_at=t0 + timedelta(seconds=i)) for i in range(5)]
    newest_first = [str(job.id) for job in reversed(jobs)]

    response = tenant.api.get("/jobs", {"limit": 2, "offset": 1})

    body = response.json()
    assert [item["id"] for item in body["items"]] == newest_first[1:3]
    assert body["total"] == 5
    assert (body["limit"], body["offset"]) == (2, 1)


def test_list_jobs_offset_past_the_end_returns_no_items(tenant):
    JobFactory(owner=tenant.user)

    response = tenant.api.get("/jobs", {"offset": 2**62})

    assert response.status_code == 200
    assert response.json()["items"] == []
    assert response.json()["total"] == 1


def test_list_jobs_filters_by_queue_name_and_status(tenant):
    a_pending = JobFactory(owner=tenant.user, queue_name="a")
    a_dead = JobFactory(owner=tenant.user, queue_name="a", dead=True)
    b_dead = JobFactory(owner=tenant.user, queue_name="b", dead=True)

    def ids(query):
        response = tenant.api.get("/jobs", query)
        assert response.status_code == 200
        assert response.json()["total"] == len(response.json()["items"])
        return {item["id"] for item in response.json()["items"]}

    assert ids({"queue_name": "a"}) == {str(a_pending.id), str(a_dead.id)}
    assert ids({"status": "dead"}) == {str(a_dead.id), str(b_dead.id)}
    assert ids({"queue_name": "a", "status": "dead"}) == {str(a_dead.id)}
    assert ids({"queue_name": "nope"}) == set()


def test_list_jobs_empty_filter_values_mean_no_filter(tenant):
    JobFactory(owner=tenant.user, queue_name="a")
    JobFactory(owner=tenant.user, queue_name="b", dead=True)

    response = tenant.api.get("/jobs?queue_name=&status=")

    assert response.status_code == 200
    assert response.json()["total"] == 2


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("limit=0", ["query", "limit"]),
        ("limit=201", ["query", "limit"]),
        ("limit=ten", ["query", "limit"]),
        ("offset=-1", ["query", "offset"]),
        ("status=exploded", ["query", "status"]),
    ],
)
def test_list_jobs_rejects_out_of_bounds_query_with_422(tenant, query, loc):
    response = tenant.api.get(f"/jobs?{query}")

    assert response.status_code == 422
    assert locs(response) == [loc]


@pytest.mark.parametrize("limit", [1, 200])
def test_list_jobs_accepts_limit_bounds(tenant, limit):
    response = tenant.api.get("/jobs", {"limit": limit})

    assert response.status_code == 200
    assert response.json()["limit"] == limit


# --- GET /jobs/{id} and /jobs/{id}/detail -------------------------------------------


def test_job_status_returns_id_and_status(tenant):
    job = JobFactory(owner=tenant.user, dead=True)

    response = tenant.api.get(f"/jobs/{job.id}")

    assert response.status_code == 200
    assert response.json() == {"job_id": str(job.id), "status": "dead"}
    assert list(response.json()) == ["job_id", "status"]


def test_job_detail_returns_job_keys_in_contract_order(tenant):
    created = datetime(2026, 11, 28, 0, 27, 47, 401426, tzinfo=UTC)
    job = JobFactory(
        owner=tenant.user,
        completed=True,
        queue_name="reports",
        priority=4,
        payload={"report": 7, "ünï": "cödé"},
        result={"rows": [1, 2]},
        retry_count=1,
        max_retries=5,
        created_at=created,
        updated_at=created + timedelta(seconds=3),
        started_at=created + timedelta(seconds=1),
        finished_at=datetime(2026, 11, 28, 0, 28, tzinfo=UTC),
    )

    response = tenant.api.get(f"/jobs/{job.id}/detail")

    assert response.status_code == 200
    body = response.json()
    # The contract's keys in its order, then schedule_name appended (contract A.4).
    assert list(body) == [*JOB_KEYS, "schedule_name"]
    assert body == {
        "id": str(job.id),
        "queue_name": "reports",
        "status": "completed",
        "priority": 4,
        "payload": {"report": 7, "ünï": "cödé"},
        "result": {"rows": [1, 2]},
        "error_text": None,
        "retry_count": 1,
        "max_retries": 5,
        "created_at": "2026-11-28T00:27:47.401426Z",
        "updated_at": "2026-11-28T00:27:50.401426Z",
        "started_at": "2026-11-28T00:27:48.401426Z",
        # Microseconds are always written, even when they are zero.
        "finished_at": "2026-11-28T00:28:00.000000Z",
        "schedule_name": None,
    }


def test_job_detail_of_fresh_job_has_null_start_and_finish(tenant):
    response = tenant.api.post_json("/jobs", {"payload": {"a": 1}})
    job_id = response.json()["job_id"]

    body = tenant.api.get(f"/jobs/{job_id}/detail").json()

    assert body["status"] == "pending"
    assert body["started_at"] is None
    assert body["finished_at"] is None
    assert body["result"] is None
    parse_iso(body["created_at"])
    parse_iso(body["updated_at"])


UUID_FORMS = {
    "upper-case": lambda u: str(u).upper(),
    "no-hyphens": lambda u: u.hex,
    "urn": lambda u: f"urn:uuid:{u}",
    "braces": lambda u: "{" + str(u) + "}",
}


@pytest.mark.parametrize("form", UUID_FORMS.values(), ids=UUID_FORMS.keys())
@pytest.mark.parametrize(("suffix", "key"), [("", "job_id"), ("/detail", "id")])
def test_job_lookup_accepts_lenient_uuid_forms_and_echoes_canonical(tenant, form, suffix, key):
    job = JobFactory(owner=tenant.user)

    response = tenant.api.get(f"/jobs/{quote(form(job.id))}{suffix}")

    assert response.status_code == 200
    assert response.json()[key] == str(job.id)


def test_job_cancel_accepts_lenient_uuid_and_echoes_canonical(tenant):
    job = JobFactory(owner=tenant.user)

    response = tenant.api.post_json(f"/jobs/{str(job.id).upper()}/cancel")

    assert response.status_code == 200
    assert response.json()["job_id"] == str(job.id)


@pytest.mark.parametrize(
    ("method", "suffix"), [("get", ""), ("get", "/detail"), ("post", "/cancel")]
)
@pytest.mark.parametrize("bad_id", ["not-a-valid-uuid", "1234", "g" * 32])
def test_job_lookup_with_malformed_id_is_422_uuid_parsing(tenant, method, suffix, bad_id):
    if method == "get":
        response = tenant.api.get(f"/jobs/{bad_id}{suffix}")
    else:
        response = tenant.api.post_json(f"/jobs/{bad_id}{suffix}")

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["type"] == "uuid_parsing"
    assert error["loc"] == ["path", "job_id"]
    assert error["input"] == bad_id


@pytest.mark.parametrize("suffix", ["", "/detail"])
def test_job_lookup_of_unknown_id_is_404(tenant, suffix):
    JobFactory(owner=tenant.user)

    response = tenant.api.get(f"/jobs/{uuid.uuid4()}{suffix}")

    assert response.status_code == 404
    assert response.json() == {"detail": "Job not found"}


# --- POST /jobs/{id}/cancel ---------------------------------------------------------


def test_cancel_pending_job_marks_it_cancelled(tenant):
    job = JobFactory(owner=tenant.user)

    before = timezone.now()
    response = tenant.api.post(f"/jobs/{job.id}/cancel")
    after = timezone.now()

    assert response.status_code == 200
    assert response.json() == {"job_id": str(job.id), "status": "cancelled"}
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert before <= job.finished_at <= after
    assert job.updated_at == job.finished_at
    assert tenant.api.get(f"/jobs/{job.id}").json()["status"] == "cancelled"


def test_cancel_future_scheduled_job_is_allowed(tenant):
    job = JobFactory(owner=tenant.user, run_at=timezone.now() + timedelta(days=30))

    response = tenant.api.post_json(f"/jobs/{job.id}/cancel")

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_cancel_with_empty_json_body_works(tenant):
    # The SDKs send exactly this: no body, Content-Type: application/json.
    job = JobFactory(owner=tenant.user)

    response = tenant.api.generic(
        "POST", f"/jobs/{job.id}/cancel", b"", content_type="application/json"
    )

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


@pytest.mark.parametrize(
    "state",
    [
        {"leased": True},
        {"completed": True},
        {"dead": True},
        {"status": JobStatus.CANCELLED},
    ],
    ids=["processing", "completed", "dead", "cancelled"],
)
def test_cancel_of_non_pending_job_is_404_and_leaves_it_unchanged(tenant, state):
    job = JobFactory(owner=tenant.user, **state)
    status_before = job.status

    response = tenant.api.post_json(f"/jobs/{job.id}/cancel")

    assert response.status_code == 404
    assert response.json() == {"detail": "Job not found or not cancellable"}
    job.refresh_from_db()
    assert job.status == status_before


def test_cancel_of_unknown_job_is_404(tenant):
    response = tenant.api.post_json(f"/jobs/{uuid.uuid4()}/cancel")

    assert response.status_code == 404
    assert response.json() == {"detail": "Job not found or not cancellable"}


# --- GET /dashboard/queues ----------------------------------------------------------


def test_queue_stats_counts_each_status_per_queue_sorted_by_name(tenant):
    t0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    JobFactory(owner=tenant.user, queue_name="gamma", completed=True)
    JobFactory(owner=tenant.user, queue_name="alpha", created_at=t0 + timedelta(hours=1))
    JobFactory(owner=tenant.user, queue_name="alpha", created_at=t0)
    # Older than every pending job, but not pending: it must not count as oldest.
    JobFactory(owner=tenant.user, queue_name="alpha", dead=True, created_at=t0 - timedelta(1))
    JobFactory(owner=tenant.user, queue_name="alpha", leased=True)
    JobFactory(owner=tenant.user, queue_name="alpha", status=JobStatus.FAILED)
    JobFactory(owner=tenant.user, queue_name="alpha", status=JobStatus.CANCELLED)
    JobFactory(owner=tenant.user, queue_name="beta", dead=True)
    JobFactory(owner=tenant.user, queue_name="beta", dead=True)

    response = tenant.api.get("/dashboard/queues")

    assert response.status_code == 200
    rows = response.json()
    assert [row["queue_name"] for row in rows] == ["alpha", "beta", "gamma"]
    assert all(list(row) == STATS_KEYS for row in rows)
    assert rows[0] == {
        "queue_name": "alpha",
        "pending": 2,
        "processing": 1,
        "completed": 0,
        "failed": 1,
        "cancelled": 1,
        "dead": 1,
        "total": 6,
        "oldest_pending_created_at": "2026-01-02T03:04:05.678901Z",
    }
    assert rows[1]["dead"] == 2
    assert rows[1]["total"] == 2
    assert rows[1]["oldest_pending_created_at"] is None
    assert rows[2]["completed"] == 1


def test_queue_stats_of_empty_account_is_empty_list(tenant):
    response = tenant.api.get("/dashboard/queues")

    assert response.status_code == 200
    assert response.json() == []
