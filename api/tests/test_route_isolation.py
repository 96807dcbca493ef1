"""Tenant isolation over EVERY route, and a guard that keeps it so.

``ROUTE_COVERAGE`` names, for each URL pattern of the site (api/urls.py,
console/urls.py, openqueue_site/urls.py), the test that proves a stranger
cannot see or change another tenant's data through it (or why the route
holds no tenant data). A new route fails ``test_every_route_has_an_isolation_test``
until it is added here.
"""

from __future__ import annotations

import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from queues.models import Job
from queues.tests.factories import JobFactory

pytestmark = pytest.mark.django_db

API = "api/tests/test_tenant_isolation.py::test_tenant_sees_another_tenants_job_as_missing"
HERE = "api/tests/test_route_isolation.py"
TOKENS = "console/tests/test_tokens.py"
CONSOLE = "console/tests/test_jobs.py::test_another_users_job_is_404_everywhere"
CONTROL = "console/tests/test_control.py"
QUEUES = "api/tests/test_queue_control.py"
SCHEDULES = (
    "api/tests/test_schedules_api.py::test_another_tenants_schedule_behaves_like_a_missing_one"
)
ROUTE_COVERAGE = {
    "jobs": API + "[list] (GET); api/tests/test_idempotency.py two-tenant key test (POST)",
    "jobs-batch": HERE + "::test_batch_enqueue_keys_of_another_tenant_never_match",
    "job-status": API + "[status]",
    "job-detail": API + "[detail]",
    "job-cancel": API + "[cancel]",
    "job-ack": API + "[ack]",
    "job-nack": API + "[nack]",
    "job-heartbeat": API + "[heartbeat]",
    "queue-lease": API + "[lease]",
    "queue-lease-batch": HERE + "::test_batch_lease_never_returns_another_tenants_job",
    "leases-ack": HERE + "::test_batch_ack_and_nack_treat_a_foreign_job_as_unknown",
    "leases-nack": HERE + "::test_batch_ack_and_nack_treat_a_foreign_job_as_unknown",
    "queue-stats": API + "[stats]",
    "queues": QUEUES + "::test_another_tenants_queue_is_an_empty_queue_of_your_own",
    "queue": QUEUES
    + "::test_another_tenants_queue_is_an_empty_queue_of_your_own (GET); "
    + QUEUES
    + "::test_pausing_is_per_tenant (PATCH)",
    "queue-purge": QUEUES + "::test_purge_deletes_the_queues_jobs_in_that_status_only",
    "job-attempts": "queues/tests/test_attempts.py::"
    "test_another_tenants_job_attempts_are_not_found",
    "schedules": SCHEDULES,
    "schedule": SCHEDULES,
    "schedule-trigger": SCHEDULES,
    # Not tenant data: guarded by the admin secret (api/tests/test_provision.py).
    "provision": "api/tests/test_provision.py::test_provisioned_users_are_separate_tenants",
    # No tenant data at all.
    "health": "public",
    "ready": "public",
    "metrics": "aggregate counters only; queues/tests/test_metrics.py",
    "openapi": "public",
    "docs": "public",
    "home": "redirect",
    "login": "Django's auth view",
    "logout": "Django's auth view",
    # Operators only (is_staff): queues/tests/test_admin.py.
    "admin": "queues/tests/test_admin.py (staff only)",
    "console-queues": HERE + "::test_console_pages_show_only_the_users_own_jobs",
    "console-jobs": HERE + "::test_console_pages_show_only_the_users_own_jobs",
    "console-dlq": HERE + "::test_console_pages_show_only_the_users_own_jobs",
    "console-in-flight": "console/tests/test_jobs.py::"
    "test_in_flight_groups_my_leases_by_worker_and_shows_no_one_elses",
    "console-job": CONSOLE,
    "console-job-requeue": CONSOLE,
    "console-job-cancel": CONSOLE,
    "console-job-run-now": CONSOLE,
    "console-dlq-action": "console/tests/test_jobs.py::"
    "test_dlq_requeue_selected_skips_other_users_and_live_jobs",
    "console-queue": CONTROL + "::test_queue_pages_are_per_user",
    "console-queue-control": CONTROL + "::test_queue_pages_are_per_user",
    "console-schedules": CONTROL + "::test_another_users_schedule_is_not_found",
    "console-schedule": CONTROL + "::test_another_users_schedule_is_not_found",
    "console-schedule-action": CONTROL + "::test_another_users_schedule_is_not_found",
    "console-tokens": TOKENS + "::test_list_shows_only_my_tokens",
    "console-token-revoke": TOKENS + "::test_another_users_token_is_404",
}


def _route_names(resolver: URLResolver) -> set[str]:
    names = set()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            # The admin site: one entry, staff only.
            if pattern.app_name == "admin":
                names.add("admin")
            else:
                names |= _route_names(pattern)
        elif isinstance(pattern, URLPattern):
            names.add(pattern.name or str(pattern.pattern))
    return names


def test_every_route_has_an_isolation_test():
    routes = _route_names(get_resolver())
    assert routes - ROUTE_COVERAGE.keys() == set(), "add the new routes to ROUTE_COVERAGE"
    assert ROUTE_COVERAGE.keys() - routes == set(), "ROUTE_COVERAGE names a route that is gone"


def test_batch_enqueue_keys_of_another_tenant_never_match(tenant, other_tenant):
    theirs = other_tenant.api.post_json(
        "/jobs/batch", {"jobs": [{"payload": {"secret": 1}, "idempotency_key": "k"}]}
    )
    mine = tenant.api.post_json("/jobs/batch", {"jobs": [{"payload": {}, "idempotency_key": "k"}]})
    assert theirs.status_code == mine.status_code == 201
    assert theirs.json()["job_ids"] != mine.json()["job_ids"]
    assert Job.objects.get(id=mine.json()["job_ids"][0]).owner == tenant.user


def test_batch_lease_never_returns_another_tenants_job(tenant, other_tenant):
    foreign = JobFactory(owner=other_tenant.user, queue_name="default")
    response = tenant.api.post_json("/queues/default/lease/batch", {"worker_id": "w"})
    assert response.status_code == 200
    assert response.json()["leases"] == []
    foreign.refresh_from_db()
    assert foreign.status == "pending" and foreign.lease_token is None


@pytest.mark.parametrize(
    "path, extra",
    [
        ("/leases/ack", {"result": {"stolen": True}}),
        ("/leases/nack", {"error": "x", "retry": False}),
    ],
)
def test_batch_ack_and_nack_treat_a_foreign_job_as_unknown(tenant, other_tenant, path, extra):
    foreign = JobFactory(owner=other_tenant.user, leased=True)
    items = [
        {"job_id": str(foreign.id), "lease_token": str(foreign.lease_token), **extra},
        {"job_id": str(uuid.uuid4()), "lease_token": str(uuid.uuid4()), **extra},
    ]
    response = tenant.api.post_json(path, {"items": items})
    assert response.status_code == 200
    stolen, unknown = response.json()["results"]
    assert stolen["error"] == unknown["error"] and stolen["error"]["status"] == 409
    foreign.refresh_from_db()
    assert foreign.status == "processing" and foreign.result is None


def test_console_pages_show_only_the_users_own_jobs(tenant, other_tenant, client):
    JobFactory(owner=other_tenant.user, queue_name="their-queue", dead=True)
    JobFactory(owner=tenant.user, queue_name="my-queue", dead=True)
    client.force_login(tenant.user)
    for url in ["/console/", "/console/jobs/", "/console/dlq/"]:
        body = client.get(url).content.decode()
        assert "my-queue" in body, url
        assert "their-queue" not in body, url
