"""Schedules over REST: PUT|GET|DELETE /schedules/{name}, GET /schedules, POST .../trigger.

Contract A.4: declarative PUT (201 then 200), the schedule object, 422 for
bad cron, time zone or name, 404 for another tenant's schedule, trigger,
and schedule_name in the job's detail (only there).
"""

from __future__ import annotations

import pytest

from queues.models import Job
from schedules.models import Schedule

pytestmark = pytest.mark.django_db

NIGHTLY = {
    "queue_name": "reports",
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "payload": {"report": "nightly"},
    "priority": 5,
    "max_retries": 2,
    "enabled": True,
}


def put(tenant, name, body):
    return tenant.api.put(f"/schedules/{name}", body, content_type="application/json")


def test_put_creates_then_replaces_and_answers_the_schedule_object(tenant):
    created = put(tenant, "nightly", NIGHTLY)

    assert created.status_code == 201
    body = created.json()
    assert list(body) == [
        "name",
        "queue_name",
        "cron",
        "timezone",
        "payload",
        "priority",
        "max_retries",
        "enabled",
        "next_run_at",
        "last_run_at",
        "created_at",
        "updated_at",
    ]
    assert {k: body[k] for k in NIGHTLY} == NIGHTLY
    assert body["name"] == "nightly"
    assert body["next_run_at"].endswith("Z") and body["last_run_at"] is None

    replaced = put(tenant, "nightly", {**NIGHTLY, "payload": {"report": "v2"}})

    assert replaced.status_code == 200
    assert replaced.json()["payload"] == {"report": "v2"}
    assert replaced.json()["created_at"] == body["created_at"]
    assert replaced.json()["next_run_at"] == body["next_run_at"]
    assert Schedule.objects.count() == 1


def test_defaults_of_a_minimal_schedule(tenant):
    body = put(tenant, "tick", {"queue_name": "q", "cron": "@hourly"}).json()

    assert {k: body[k] for k in ("timezone", "payload", "priority", "max_retries", "enabled")} == {
        "timezone": "UTC",
        "payload": {},
        "priority": 0,
        "max_retries": 3,
        "enabled": True,
    }
    assert body["cron"] == "@hourly"  # as given
    assert body["next_run_at"].endswith(":00:00.000000Z")


def test_a_disabled_schedule_has_no_next_run(tenant):
    body = put(tenant, "off", {**NIGHTLY, "enabled": False}).json()

    assert body["enabled"] is False and body["next_run_at"] is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({**NIGHTLY, "cron": "61 * * * *"}, ["body", "cron"]),
        ({**NIGHTLY, "cron": "* * * *"}, ["body", "cron"]),
        ({**NIGHTLY, "cron": "@reboot"}, ["body", "cron"]),
        ({**NIGHTLY, "timezone": "Mars/Olympus"}, ["body", "timezone"]),
        ({**NIGHTLY, "queue_name": ""}, ["body", "queue_name"]),
        ({**NIGHTLY, "queue_name": "a/b"}, ["body", "queue_name"]),
        ({**NIGHTLY, "priority": 2**31}, ["body", "priority"]),
        ({**NIGHTLY, "max_retries": -1}, ["body", "max_retries"]),
        ({**NIGHTLY, "payload": {"bad": "\u0000"}}, ["body", "payload"]),
        ({"cron": "@daily"}, ["body", "queue_name"]),
        ({"queue_name": "q"}, ["body", "cron"]),
    ],
)
def test_bad_schedules_are_422_naming_the_field(tenant, body, loc):
    response = put(tenant, "s", body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("name", ["a" * 101, "with space", "at@sign", "ümlaut"])
def test_bad_names_are_422(tenant, name):
    response = put(tenant, name, NIGHTLY)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "name"]


def test_names_may_use_letters_digits_and_dot_colon_dash_underscore(tenant):
    assert put(tenant, "Billing:nightly-run_2.v1", NIGHTLY).status_code == 201


def test_get_list_and_delete(tenant):
    put(tenant, "b", NIGHTLY)
    put(tenant, "a", {**NIGHTLY, "cron": "@daily"})

    assert [s["name"] for s in tenant.api.get("/schedules").json()] == ["a", "b"]
    assert tenant.api.get("/schedules/a").json()["cron"] == "@daily"

    deleted = tenant.api.delete("/schedules/a")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert tenant.api.get("/schedules/a").status_code == 404
    assert tenant.api.delete("/schedules/a").json() == {"detail": "Schedule not found"}


def test_another_tenants_schedule_behaves_like_a_missing_one(tenant, other_tenant):
    put(other_tenant, "nightly", NIGHTLY)

    assert tenant.api.get("/schedules").json() == []
    for response in (
        tenant.api.get("/schedules/nightly"),
        tenant.api.delete("/schedules/nightly"),
        tenant.api.post_json("/schedules/nightly/trigger"),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": "Schedule not found"}
    # ...and a PUT of the same name makes the caller's own.
    assert put(tenant, "nightly", NIGHTLY).status_code == 201
    assert Schedule.objects.count() == 2


def test_trigger_enqueues_a_job_whose_detail_names_the_schedule(tenant):
    put(tenant, "nightly", {**NIGHTLY, "enabled": False})

    response = tenant.api.post_json("/schedules/nightly/trigger")

    assert response.status_code == 201
    job_id = response.json()["job_id"]
    assert response.json() == {"job_id": job_id, "status": "queued"}
    detail = tenant.api.get(f"/jobs/{job_id}/detail").json()
    assert list(detail)[-1] == "schedule_name"  # appended after the existing keys
    assert detail["schedule_name"] == "nightly"
    assert detail["queue_name"] == "reports" and detail["payload"] == {"report": "nightly"}
    job = Job.objects.get(pk=job_id)
    assert (job.priority, job.max_retries) == (5, 2)


def test_schedule_name_is_null_for_other_jobs_and_only_in_the_detail(tenant):
    job_id = tenant.api.post_json("/jobs", {"queue_name": "q", "payload": {}}).json()["job_id"]

    assert tenant.api.get(f"/jobs/{job_id}/detail").json()["schedule_name"] is None
    assert "schedule_name" not in tenant.api.get("/jobs").json()["items"][0]
    leased = tenant.api.post_json("/queues/q/lease", {"worker_id": "w"}).json()
    assert "schedule_name" not in leased["job"]


def test_any_json_payload_is_kept(tenant):
    body = put(tenant, "list", {**NIGHTLY, "payload": [1, "two", None]}).json()

    assert body["payload"] == [1, "two", None]
    job_id = tenant.api.post_json("/schedules/list/trigger").json()["job_id"]
    assert tenant.api.get(f"/jobs/{job_id}/detail").json()["payload"] == [1, "two", None]


def test_schedule_routes_have_their_own_rate_limits(tenant, settings):
    settings.OPENQUEUE_RATE_LIMIT_ENABLED = True
    settings.OPENQUEUE_RATE_LIMITS = {
        **settings.OPENQUEUE_RATE_LIMITS,
        "schedule_control": (0.01, 1),
    }

    assert put(tenant, "a", NIGHTLY).status_code == 201
    assert put(tenant, "b", NIGHTLY).status_code == 429
    assert tenant.api.get("/schedules").status_code == 200


def test_a_payload_over_the_enqueue_limit_is_413(tenant, settings):
    settings.OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES = 100

    response = put(tenant, "big", {**NIGHTLY, "payload": {"blob": "x" * 200}})

    assert response.status_code == 413
    assert "OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES" in response.json()["detail"]
    assert not Schedule.objects.exists()
