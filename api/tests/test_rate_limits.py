"""Per-tenant, per-action token buckets (contract Part B §7.1, §1.1).

In-process tests pin the HTTP behaviour with a negligible refill rate, so a
bucket's count is exact without sleeping. ``take_token`` is tested with an
injected clock. The last test starts two server processes on one database to
prove the bucket is shared between processes, not kept per process.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from queues.models import Job
from ratelimits.buckets import take_token

# A refill of one token per 1000 s: nothing refills during a test.
NO_REFILL = 0.001
ZERO_UUID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def limits(settings):
    """Rate limiting on, with ``list_jobs`` limited to a burst of 10 and no refill."""
    settings.OPENQUEUE_RATE_LIMIT_ENABLED = True
    settings.OPENQUEUE_RATE_LIMITS = {
        **settings.OPENQUEUE_RATE_LIMITS,
        "list_jobs": (NO_REFILL, 10),
    }
    return settings


def _spend(api, n, path="/jobs"):
    return [api.get(path).status_code for _ in range(n)]


def test_rate_limit_refuses_the_request_after_the_burst(limits, tenant):
    assert _spend(tenant.api, 10) == [200] * 10

    refused = tenant.api.get("/jobs")

    assert refused.status_code == 429
    assert refused.json() == {"detail": "Rate limit exceeded"}
    retry_after = refused.headers["Retry-After"]
    assert retry_after.isdigit()
    # One token at 0.001/s takes at most 1000 s to refill.
    assert 1 <= int(retry_after) <= 1000


def test_rate_limit_buckets_are_separate_per_action(limits, tenant):
    _spend(tenant.api, 11)
    assert tenant.api.get("/jobs").status_code == 429

    assert tenant.api.post_json("/jobs", {"payload": {"n": 1}}).status_code == 201
    assert tenant.api.get("/dashboard/queues").status_code == 200


def test_rate_limit_buckets_are_separate_per_tenant(limits, tenant, other_tenant):
    _spend(tenant.api, 11)
    assert tenant.api.get("/jobs").status_code == 429

    assert _spend(other_tenant.api, 10) == [200] * 10


def test_rate_limit_never_applies_to_status_detail_and_cancel(limits, tenant):
    limits.OPENQUEUE_RATE_LIMITS = {
        action: (NO_REFILL, 1) for action in limits.OPENQUEUE_RATE_LIMITS
    }
    job_id = tenant.api.post_json("/jobs", {"payload": {"n": 1}}).json()["job_id"]
    assert tenant.api.post_json("/jobs", {"payload": {"n": 2}}).status_code == 429

    codes = set()
    for _ in range(15):
        codes.add(tenant.api.get(f"/jobs/{job_id}").status_code)
        codes.add(tenant.api.get(f"/jobs/{job_id}/detail").status_code)
        codes.add(tenant.api.post_json(f"/jobs/{ZERO_UUID}/cancel").status_code)
    codes.add(tenant.api.post_json(f"/jobs/{job_id}/cancel").status_code)

    assert codes == {200, 404}


def test_rate_limit_disabled_never_refuses(limits, tenant):
    limits.OPENQUEUE_RATE_LIMIT_ENABLED = False
    limits.OPENQUEUE_RATE_LIMITS = {
        action: (NO_REFILL, 1) for action in limits.OPENQUEUE_RATE_LIMITS
    }

    assert set(_spend(tenant.api, 25)) == {200}
    assert {tenant.api.post_json("/jobs", {"payload": {}}).status_code for _ in range(5)} == {201}


def test_rate_limit_invalid_requests_still_spend_tokens(limits, tenant):
    # Contract §1.1: the bucket is consumed before validation.
    assert _spend(tenant.api, 10, path="/jobs?limit=abc") == [422] * 10

    assert tenant.api.get("/jobs").status_code == 429


def test_rate_limit_unauthenticated_requests_spend_no_tokens(limits, tenant, client):
    for _ in range(15):
        response = client.get("/jobs", HTTP_AUTHORIZATION="Bearer oq_live_" + "x" * 40)
        assert response.status_code == 401

    assert _spend(tenant.api, 10) == [200] * 10


# --- take_token with an injected clock --------------------------------------------


@pytest.mark.django_db
def test_take_token_spends_the_burst_then_reports_the_wait():
    key = f"unit:{uuid.uuid4()}"

    assert [take_token(key, rate=2, burst=3, now=1000.0) for _ in range(3)] == [0, 0, 0]
    # Empty bucket, 2 tokens/s: one token is (1 - 0) / 2 seconds away.
    assert take_token(key, rate=2, burst=3, now=1000.0) == pytest.approx(0.5)


@pytest.mark.django_db
def test_take_token_refills_at_rate_over_time():
    key = f"unit:{uuid.uuid4()}"
    for _ in range(3):
        take_token(key, rate=2, burst=3, now=1000.0)

    # A quarter second refills half a token: still refused, wait (1 - 0.5) / 2.
    assert take_token(key, rate=2, burst=3, now=1000.25) == pytest.approx(0.25)
    # Another quarter second completes the token, which is spent at once.
    assert take_token(key, rate=2, burst=3, now=1000.5) == 0
    assert take_token(key, rate=2, burst=3, now=1000.5) == pytest.approx(0.5)


@pytest.mark.django_db
def test_take_token_never_refills_above_the_burst():
    key = f"unit:{uuid.uuid4()}"
    take_token(key, rate=2, burst=3, now=1000.0)

    # An hour idle would be 7200 tokens uncapped; the bucket holds only 3.
    later = 1000.0 + 3600
    assert [take_token(key, rate=2, burst=3, now=later) for _ in range(3)] == [0, 0, 0]
    assert take_token(key, rate=2, burst=3, now=later) == pytest.approx(0.5)


@pytest.mark.django_db
def test_take_token_keeps_buckets_apart_by_key():
    first, second = f"unit:{uuid.uuid4()}", f"unit:{uuid.uuid4()}"
    take_token(first, rate=1, burst=1, now=50.0)

    assert take_token(first, rate=1, burst=1, now=50.0) == pytest.approx(1.0)
    assert take_token(second, rate=1, burst=1, now=50.0) == 0


# --- Several processes, one bucket ----------------------------------------------


@pytest.mark.live_server
def test_rate_limit_is_shared_between_server_processes(live_server_factory, make_tenant):
    env = {"OPENQUEUE_RATE_LIMIT_ENABLED": "true", "OPENQUEUE_RATE_LIMIT_ENQUEUE": "0.001,10"}
    servers = [live_server_factory(workers=1, threads=2, env=env) for _ in range(2)]
    tenant = make_tenant()
    headers = {"Authorization": f"Bearer {tenant.token}"}

    codes: list[list[int]] = [[], []]
    with httpx.Client(headers=headers, timeout=30) as client:
        for n in range(30):
            which = n % 2
            response = client.post(f"{servers[which].url}/jobs", json={"payload": {"n": n}})
            codes[which].append(response.status_code)

    # Per-process buckets would let 10 through on each server (20 in all).
    everything = [code for pair in zip(*codes, strict=True) for code in pair]
    assert everything == [201] * 10 + [429] * 20
    assert codes[0].count(201) == codes[1].count(201) == 5
    assert Job.objects.filter(owner=tenant.user).count() == 10
