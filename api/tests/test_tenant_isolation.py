"""Another tenant's job behaves exactly like a job that does not exist (contract §5.8)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from queues.models import Job
from queues.tests.factories import JobFactory

# The columns any route could write; none may change when a stranger calls.
WATCHED = [
    "status",
    "lease_token",
    "locked_by",
    "locked_until",
    "updated_at",
    "finished_at",
    "result",
    "error_text",
    "retry_count",
    "run_at",
    "lease_lost_count",
]


@dataclass
class Route:
    # call(api, job_id, lease_token) -> response
    call: Callable[[Any, str, str], Any]
    status: int
    job_state: dict[str, Any] = field(default_factory=dict)


ROUTES = {
    "status": Route(lambda api, job_id, token: api.get(f"/jobs/{job_id}"), 404),
    "detail": Route(lambda api, job_id, token: api.get(f"/jobs/{job_id}/detail"), 404),
    "cancel": Route(lambda api, job_id, token: api.post_json(f"/jobs/{job_id}/cancel"), 404),
    "ack": Route(
        lambda api, job_id, token: api.post_json(
            f"/jobs/{job_id}/ack", {"lease_token": token, "result": {"stolen": True}}
        ),
        409,
        {"leased": True},
    ),
    "nack": Route(
        lambda api, job_id, token: api.post_json(
            f"/jobs/{job_id}/nack", {"lease_token": token, "error": "x", "retry": False}
        ),
        409,
        {"leased": True},
    ),
    "heartbeat": Route(
        lambda api, job_id, token: api.post_json(
            f"/jobs/{job_id}/heartbeat", {"lease_token": token, "lease_seconds": 3600}
        ),
        409,
        {"leased": True},
    ),
    "list": Route(lambda api, job_id, token: api.get("/jobs"), 200),
    "stats": Route(lambda api, job_id, token: api.get("/dashboard/queues"), 200),
    "lease": Route(
        lambda api, job_id, token: api.post_json("/queues/default/lease", {"worker_id": "w"}),
        200,
    ),
}


def snapshot(job: Job) -> dict[str, Any]:
    job.refresh_from_db()
    return {name: getattr(job, name) for name in WATCHED}


@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
def test_tenant_sees_another_tenants_job_as_missing(tenant, other_tenant, route):
    # What a job that does not exist looks like (collection routes: before it exists).
    missing = route.call(tenant.api, str(uuid.uuid4()), str(uuid.uuid4()))
    foreign_job = JobFactory(owner=other_tenant.user, queue_name="default", **route.job_state)
    before = snapshot(foreign_job)

    # The stranger even holds the real lease token: ownership alone must decide.
    foreign = route.call(tenant.api, str(foreign_job.id), str(foreign_job.lease_token))

    assert missing.status_code == route.status
    assert foreign.status_code == missing.status_code
    assert foreign.content == missing.content
    assert snapshot(foreign_job) == before
    # The job really exists for its owner.
    assert other_tenant.api.get(f"/jobs/{foreign_job.id}").status_code == 200


def test_tenants_each_have_their_own_default_queue(tenant, other_tenant):
    mine = tenant.api.post_json("/jobs", {"payload": {"who": "me"}}).json()["job_id"]
    theirs = other_tenant.api.post_json("/jobs", {"payload": {"who": "them"}}).json()["job_id"]

    my_lease = tenant.api.post_json("/queues/default/lease", {"worker_id": "a"})
    my_second = tenant.api.post_json("/queues/default/lease", {"worker_id": "a"})
    their_lease = other_tenant.api.post_json("/queues/default/lease", {"worker_id": "b"})

    assert my_lease.json()["job"]["id"] == mine
    assert my_second.content == b"null"
    assert their_lease.json()["job"]["id"] == theirs
    for who, job_id in ((tenant, mine), (other_tenant, theirs)):
        (stats,) = who.api.get("/dashboard/queues").json()
        assert (stats["queue_name"], stats["processing"], stats["total"]) == ("default", 1, 1)
        listed = who.api.get("/jobs", {"queue_name": "default"}).json()
        assert [item["id"] for item in listed["items"]] == [job_id]
