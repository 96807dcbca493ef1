"""Queue control over REST: GET /queues, GET|PATCH /queues/{name}, POST /queues/{name}/purge.

Contract A.4: the queue object's numbers, pause (leases nothing, enqueues
go on), max_in_flight (a lease that would exceed it answers as if empty;
a batch gets the room left), purge, validation and tenant isolation.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from queues.models import Job, JobAttempt, JobStatus, QueueSettings
from queues.tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def lease(tenant, queue="q", **body):
    return tenant.api.post_json(f"/queues/{queue}/lease", {"worker_id": "w", **body})


def patch(tenant, queue, body):
    return tenant.api.patch(f"/queues/{queue}", body, content_type="application/json")


ZEROS = {
    "queue_name": "q",
    "paused": False,
    "max_in_flight": None,
    "ready": 0,
    "scheduled": 0,
    "in_flight": 0,
    "dead": 0,
    "oldest_ready_age_seconds": None,
}


# --- GET /queues/{name}, GET /queues -----------------------------------------------------


def test_a_queue_with_nothing_in_it_answers_zeros(tenant):
    response = tenant.api.get("/queues/q")

    assert response.status_code == 200
    assert response.json() == ZEROS
    assert list(response.json()) == list(ZEROS)  # the contract's key order


def test_queue_numbers_count_each_state_and_the_age_of_the_oldest_ready_job(tenant):
    now = timezone.now()
    owner = tenant.user
    JobFactory(owner=owner, queue_name="q", run_at=now - timedelta(seconds=90))
    JobFactory(owner=owner, queue_name="q", run_at=now - timedelta(seconds=10))
    # Scheduled, and waiting out a backoff: both pending with run_at in the future.
    JobFactory(owner=owner, queue_name="q", run_at=now + timedelta(hours=1))
    JobFactory(owner=owner, queue_name="q", retry_count=2, run_at=now + timedelta(seconds=4))
    JobFactory(owner=owner, queue_name="q", leased=True)
    JobFactory(owner=owner, queue_name="q", expired=True)  # not in flight: its lease ran out
    JobFactory(owner=owner, queue_name="q", dead=True)
    JobFactory(owner=owner, queue_name="q", completed=True)
    JobFactory(owner=owner, queue_name="other")

    body = tenant.api.get("/queues/q").json()

    assert {k: body[k] for k in ("ready", "scheduled", "in_flight", "dead")} == {
        "ready": 2,
        "scheduled": 2,
        "in_flight": 1,
        "dead": 1,
    }
    assert 90 <= body["oldest_ready_age_seconds"] < 120


def test_list_has_every_queue_with_jobs_settings_or_a_schedule_sorted_by_name(tenant):
    JobFactory(owner=tenant.user, queue_name="b-jobs", completed=True)
    patch(tenant, "c-paused", {"paused": True})
    put = tenant.api.put(
        "/schedules/nightly",
        {"queue_name": "a-scheduled", "cron": "@daily"},
        content_type="application/json",
    )
    assert put.status_code == 201

    response = tenant.api.get("/queues")

    assert response.status_code == 200
    assert [q["queue_name"] for q in response.json()] == ["a-scheduled", "b-jobs", "c-paused"]
    assert response.json()[2]["paused"] is True


def test_another_tenants_queue_is_an_empty_queue_of_your_own(tenant, other_tenant):
    JobFactory(owner=other_tenant.user, queue_name="q")
    JobFactory(owner=other_tenant.user, queue_name="theirs")
    patch(other_tenant, "q", {"paused": True, "max_in_flight": 3})

    assert tenant.api.get("/queues/q").json() == ZEROS
    assert tenant.api.get("/queues").json() == []


def test_queue_name_in_the_path_is_validated(tenant):
    response = tenant.api.get("/queues/" + "x" * 256)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "queue_name"]


# --- PATCH: pause and resume -------------------------------------------------------------


def test_a_paused_queue_accepts_enqueues_and_leases_nothing(tenant):
    JobFactory(owner=tenant.user, queue_name="q")

    response = patch(tenant, "q", {"paused": True})

    assert response.status_code == 200
    assert response.json()["paused"] is True
    assert lease(tenant).content == b"null"
    batch = tenant.api.post_json("/queues/q/lease/batch", {"worker_id": "w", "max_jobs": 5})
    assert batch.json() == {"leases": []}
    enqueued = tenant.api.post_json("/jobs", {"queue_name": "q", "payload": {}})
    assert enqueued.status_code == 201
    assert tenant.api.get("/queues/q").json()["ready"] == 2


def test_resuming_lets_leases_through_again(tenant):
    job = JobFactory(owner=tenant.user, queue_name="q")
    patch(tenant, "q", {"paused": True})

    response = patch(tenant, "q", {"paused": False})

    assert response.json()["paused"] is False
    assert lease(tenant).json()["job"]["id"] == str(job.id)


def test_jobs_leased_before_the_pause_finish_normally(tenant):
    JobFactory(owner=tenant.user, queue_name="q")
    leased = lease(tenant).json()
    patch(tenant, "q", {"paused": True})

    ack = tenant.api.post_json(
        f"/jobs/{leased['job']['id']}/ack", {"lease_token": leased["lease_token"]}
    )

    assert ack.status_code == 200
    assert Job.objects.get(pk=leased["job"]["id"]).status == JobStatus.COMPLETED


def test_a_key_left_out_is_left_as_it_is(tenant):
    patch(tenant, "q", {"paused": True, "max_in_flight": 4})

    assert patch(tenant, "q", {"max_in_flight": 7}).json()["paused"] is True
    assert patch(tenant, "q", {"paused": False}).json()["max_in_flight"] == 7
    assert patch(tenant, "q", {}).json() == {**ZEROS, "max_in_flight": 7}
    assert patch(tenant, "q", {"max_in_flight": None}).json()["max_in_flight"] is None


def test_the_settings_row_appears_on_the_first_change_only(tenant):
    tenant.api.get("/queues/q")
    lease(tenant)
    assert not QueueSettings.objects.exists()

    patch(tenant, "q", {"paused": False})

    assert QueueSettings.objects.filter(owner=tenant.user, queue_name="q").count() == 1


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"max_in_flight": 0}, ["body", "max_in_flight"]),
        ({"max_in_flight": 100_001}, ["body", "max_in_flight"]),
        ({"max_in_flight": "lots"}, ["body", "max_in_flight"]),
        ({"max_in_flight": 1.5}, ["body", "max_in_flight"]),
        ({"paused": "maybe"}, ["body", "paused"]),
        ({"paused": None}, ["body", "paused"]),
        ([{"paused": True}], ["body"]),
    ],
)
def test_bad_patches_are_422_naming_the_field_and_change_nothing(tenant, body, loc):
    response = patch(tenant, "q", body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
    assert not QueueSettings.objects.exists()


def test_patch_without_a_body_changes_nothing(tenant):
    patch(tenant, "q", {"paused": True})

    response = tenant.api.patch("/queues/q", b"", content_type="application/json")

    assert response.status_code == 200
    assert response.json()["paused"] is True


def test_pausing_is_per_tenant(tenant, other_tenant):
    JobFactory(owner=other_tenant.user, queue_name="q")
    patch(tenant, "q", {"paused": True})

    assert lease(other_tenant).json()["job"]["queue_name"] == "q"


# --- PATCH: max_in_flight -----------------------------------------------------------------


def test_max_in_flight_holds_back_leases_beyond_the_limit(tenant):
    JobFactory.create_batch(4, owner=tenant.user, queue_name="q")
    assert patch(tenant, "q", {"max_in_flight": 2}).json()["max_in_flight"] == 2

    first, second = lease(tenant).json(), lease(tenant).json()
    assert lease(tenant).content == b"null"
    assert tenant.api.get("/queues/q").json()["in_flight"] == 2

    tenant.api.post_json(f"/jobs/{first['job']['id']}/ack", {"lease_token": first["lease_token"]})
    assert lease(tenant).status_code == 200
    assert lease(tenant).content == b"null"
    assert second["job"]["id"] != first["job"]["id"]


def test_a_batch_lease_gets_the_room_that_is_left(tenant):
    JobFactory.create_batch(10, owner=tenant.user, queue_name="q")
    patch(tenant, "q", {"max_in_flight": 5})
    lease(tenant)
    lease(tenant)

    batch = tenant.api.post_json("/queues/q/lease/batch", {"worker_id": "w", "max_jobs": 10})

    assert len(batch.json()["leases"]) == 3
    assert Job.objects.filter(status=JobStatus.PROCESSING).count() == 5


def test_an_expired_lease_leaves_room_and_is_recovered_within_the_limit(tenant):
    JobFactory(owner=tenant.user, queue_name="q", expired=True)
    JobFactory(owner=tenant.user, queue_name="q")
    patch(tenant, "q", {"max_in_flight": 1})

    first = lease(tenant).json()

    assert first["job"]["status"] == "processing"
    assert lease(tenant).content == b"null"


def test_a_heartbeat_cannot_revive_an_expired_lease_in_a_limited_queue(tenant):
    expired = JobFactory(owner=tenant.user, queue_name="q", expired=True)
    unlimited = JobFactory(owner=tenant.user, queue_name="free", expired=True)
    patch(tenant, "q", {"max_in_flight": 1})

    limited_beat = tenant.api.post_json(
        f"/jobs/{expired.id}/heartbeat", {"lease_token": str(expired.lease_token)}
    )
    free_beat = tenant.api.post_json(
        f"/jobs/{unlimited.id}/heartbeat", {"lease_token": str(unlimited.lease_token)}
    )

    # Reviving it could make two leases valid where the limit counted one.
    assert limited_beat.status_code == 409
    assert free_beat.status_code == 200  # the original's rule, elsewhere (contract §3.14)


def test_a_heartbeat_on_a_valid_lease_in_a_limited_queue_extends_it(tenant):
    JobFactory(owner=tenant.user, queue_name="q")
    patch(tenant, "q", {"max_in_flight": 1})
    leased = lease(tenant).json()

    beat = tenant.api.post_json(
        f"/jobs/{leased['job']['id']}/heartbeat",
        {"lease_token": leased["lease_token"], "lease_seconds": 600},
    )

    assert beat.status_code == 200


# --- POST /queues/{name}/purge -------------------------------------------------------------


def test_purge_deletes_the_queues_jobs_in_that_status_only(tenant, other_tenant):
    JobFactory.create_batch(3, owner=tenant.user, queue_name="q")
    JobFactory(owner=tenant.user, queue_name="q", dead=True)
    JobFactory(owner=tenant.user, queue_name="q", leased=True)
    JobFactory(owner=tenant.user, queue_name="other")
    JobFactory(owner=other_tenant.user, queue_name="q")

    response = tenant.api.post_json("/queues/q/purge", {"status": "pending"})

    assert response.status_code == 200
    assert response.json() == {"deleted": 3}
    left = Job.objects.filter(owner=tenant.user, queue_name="q")
    assert sorted(left.values_list("status", flat=True)) == ["dead", "processing"]
    assert Job.objects.filter(queue_name="other").count() == 1
    assert Job.objects.filter(owner=other_tenant.user).count() == 1


def test_purging_dead_jobs_deletes_their_attempts_too(tenant):
    JobFactory(owner=tenant.user, queue_name="q")
    leased = lease(tenant).json()
    tenant.api.post_json(
        f"/jobs/{leased['job']['id']}/nack",
        {"lease_token": leased["lease_token"], "error": "bad", "retry": False},
    )
    assert JobAttempt.objects.count() == 1

    response = tenant.api.post_json("/queues/q/purge", {"status": "dead"})

    assert response.json() == {"deleted": 1}
    assert not JobAttempt.objects.exists()


@pytest.mark.parametrize("body", [{"status": "completed"}, {"status": "processing"}, {}, None])
def test_purge_only_takes_pending_or_dead(tenant, body):
    JobFactory(owner=tenant.user, queue_name="q", completed=True)

    response = tenant.api.post_json("/queues/q/purge", body)

    assert response.status_code == 422
    assert Job.objects.count() == 1


# --- Rate limits ----------------------------------------------------------------------------


def test_queue_routes_have_their_own_rate_limits(tenant, settings):
    settings.OPENQUEUE_RATE_LIMIT_ENABLED = True
    settings.OPENQUEUE_RATE_LIMITS = {**settings.OPENQUEUE_RATE_LIMITS, "queue_control": (0.01, 1)}

    assert patch(tenant, "q", {"paused": True}).status_code == 200
    refused = patch(tenant, "q", {"paused": False})

    assert refused.status_code == 429
    assert refused.json() == {"detail": "Rate limit exceeded"}
    assert tenant.api.get("/queues/q").status_code == 200  # "queues": a bucket of its own
    assert QueueSettings.objects.get().paused is True
