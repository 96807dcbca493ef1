"""Prometheus metrics: counters per transition with real labels, HTTP metrics by
route template, scrape-time gauges, the optional token, and the sum over
several gunicorn workers (contract Part B §9, A.3 #9)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from unittest import mock

import httpx
import pytest
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from queues import services
from queues.metrics import DatabaseCollector
from queues.models import Job, JobStatus
from queues.tests.factories import JobFactory


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Deltas:
    """Counter values before and after: the suite shares one process registry."""

    def __init__(self, *series: tuple) -> None:
        self.series = series
        self.before = {s: value(s[0], **dict(s[1:])) for s in series}

    def __call__(self) -> dict[tuple, float]:
        return {s: value(s[0], **dict(s[1:])) - self.before[s] for s in self.series}


def s(name: str, **labels: str) -> tuple:
    return (name, *sorted(labels.items()))


def unique_queue(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def lease(tenant, queue):
    response = tenant.api.post_json(f"/queues/{queue}/lease", {"worker_id": "w1"})
    assert response.status_code == 200, response.content
    return response.json()


def samples(text: str) -> dict[tuple, float]:
    """Parsed exposition text: {(name, sorted labels...): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return out


# --- Counters after a full lifecycle --------------------------------------------------


def test_lifecycle_counts_every_transition_under_its_queue_name(tenant):
    q = unique_queue("life")
    empty_q = unique_queue("empty")
    expected = {
        s("openqueue_jobs_enqueued_total", queue_name=q): 5,
        s("openqueue_jobs_leased_total", queue_name=q): 4,
        # A queue that never had a job gets no series of its own (QueueLabels).
        s("openqueue_jobs_lease_empty_total", queue_name="other"): 1,
        s("openqueue_jobs_lease_empty_total", queue_name=empty_q): 0,
        s("openqueue_jobs_acked_total", queue_name=q): 1,
        s("openqueue_jobs_nacked_total", queue_name=q, outcome="requeued"): 1,
        s("openqueue_jobs_nacked_total", queue_name=q, outcome="dead"): 2,
        s("openqueue_jobs_cancelled_total", queue_name=q): 1,
        s("openqueue_jobs_moved_to_dlq_total", queue_name=q, reason="max_retries_exhausted"): 1,
        s("openqueue_jobs_moved_to_dlq_total", queue_name=q, reason="retry_disabled"): 1,
        s("openqueue_jobs_moved_to_dlq_total", queue_name=q, reason="lease_expired"): 1,
        s("openqueue_lease_expired_recovered_total", queue_name=q): 1,
        s(
            "openqueue_job_processing_duration_seconds_count",
            queue_name=q,
            final_status="completed",
        ): 1,
        s("openqueue_job_processing_duration_seconds_count", queue_name=q, final_status="dead"): 3,
        # Never the placeholder the original used for every ack.
        s("openqueue_jobs_acked_total", queue_name="unknown"): 0,
    }
    deltas = Deltas(*expected)
    api = tenant.api

    # Enqueue: one single, one batch of three, one scheduled for later (cancelled below).
    assert (
        api.post_json("/jobs", {"queue_name": q, "payload": {}, "priority": 9}).status_code == 201
    )
    # Leased in input order: no retries left, then retries left (twice).
    batch = [{"queue_name": q, "payload": {}, "max_retries": n, "priority": 5} for n in (0, 3, 3)]
    assert api.post_json("/jobs/batch", {"jobs": batch}).status_code == 201
    later = api.post_json(
        "/jobs", {"queue_name": q, "payload": {}, "run_at": "2999-01-01T00:00:00Z"}
    )
    assert later.status_code == 201

    # Ack the first (priority 9).
    first = lease(tenant, q)
    assert (
        api.post_json(
            f"/jobs/{first['job']['id']}/ack", {"lease_token": first["lease_token"]}
        ).status_code
        == 200
    )
    # Nack with retry but no retries left: dead, max_retries_exhausted.
    second = lease(tenant, q)
    nack = {"lease_token": second["lease_token"], "error": "boom", "retry": True}
    assert api.post_json(f"/jobs/{second['job']['id']}/nack", nack).status_code == 200
    # Nack with retry=false: dead, retry_disabled.
    third = lease(tenant, q)
    nack = {"lease_token": third["lease_token"], "error": "boom", "retry": False}
    assert api.post_json(f"/jobs/{third['job']['id']}/nack", nack).status_code == 200
    # The fourth batch job stays pending; cancel the scheduled one.
    assert api.post_json(f"/jobs/{later.json()['job_id']}/cancel").status_code == 200
    # A lease on a queue with nothing due.
    assert api.post_json(f"/queues/{empty_q}/lease", {"worker_id": "w1"}).json() is None

    # A nack that requeues: a job with retries left.
    retried = JobFactory(owner=tenant.user, queue_name=q, leased=True, max_retries=3, priority=99)
    nack = {"lease_token": str(retried.lease_token), "error": "later", "retry": True}
    assert api.post_json(f"/jobs/{retried.id}/nack", nack).status_code == 200
    # An expired lease with budget left is recovered by the next lease; a
    # poison job (lost its lease max_retries times) is buried on the way.
    Job.objects.filter(queue_name=q, status=JobStatus.PENDING).update(priority=-1)
    JobFactory(
        owner=tenant.user,
        queue_name=q,
        expired=True,
        max_retries=1,
        lease_lost_count=1,
        priority=50,
    )
    recovered = JobFactory(
        owner=tenant.user, queue_name=q, expired=True, max_retries=2, priority=40
    )
    got = lease(tenant, q)
    assert got["job"]["id"] == str(recovered.id)

    assert deltas() == expected


def test_processing_duration_is_first_lease_to_ack(tenant):
    q = unique_queue("dur")
    now = timezone.now()
    job = JobFactory(
        owner=tenant.user, queue_name=q, leased=True, started_at=now - timedelta(seconds=7)
    )
    le_5 = s(
        "openqueue_job_processing_duration_seconds_bucket",
        queue_name=q,
        final_status="completed",
        le="5.0",
    )
    le_10 = s(
        "openqueue_job_processing_duration_seconds_bucket",
        queue_name=q,
        final_status="completed",
        le="10.0",
    )
    total = s(
        "openqueue_job_processing_duration_seconds_sum", queue_name=q, final_status="completed"
    )
    deltas = Deltas(le_5, le_10, total)

    services.ack_job(
        owner=tenant.user, job_id=job.id, lease_token=str(job.lease_token), result=None, now=now
    )

    assert deltas() == {le_5: 0, le_10: 1, total: 7.0}


def test_reaper_counts_recoveries_and_lease_expired_dlq_moves(db):
    q = unique_queue("reap")
    JobFactory.create_batch(2, queue_name=q, expired=True, max_retries=3)
    JobFactory(queue_name=q, expired=True, max_retries=1, lease_lost_count=1)
    recovered = s("openqueue_lease_expired_recovered_total", queue_name=q)
    dlq = s("openqueue_jobs_moved_to_dlq_total", queue_name=q, reason="lease_expired")
    dead_duration = s(
        "openqueue_job_processing_duration_seconds_count", queue_name=q, final_status="dead"
    )
    deltas = Deltas(recovered, dlq, dead_duration)

    reaped = services.reap_expired_leases()

    assert reaped == services.Reaped(requeued=2, buried=1)
    assert deltas() == {recovered: 2, dlq: 1, dead_duration: 1}


def test_operator_cancel_and_bury_are_counted_per_queue(db):
    q1, q2 = unique_queue("op"), unique_queue("op")
    JobFactory.create_batch(3, queue_name=q1)
    JobFactory.create_batch(2, queue_name=q2)
    JobFactory(queue_name=q2, completed=True)  # not cancellable, not buriable
    cancelled = s("openqueue_jobs_cancelled_total", queue_name=q1)
    buried = s("openqueue_jobs_moved_to_dlq_total", queue_name=q2, reason="operator")
    deltas = Deltas(cancelled, buried)

    assert services.cancel_jobs(Job.objects.filter(queue_name=q1), batch_size=2) == 3
    assert services.bury_jobs(Job.objects.filter(queue_name=q2)) == 2

    assert deltas() == {cancelled: 3, buried: 2}


def test_blank_queue_name_is_labelled_unknown(db):
    # The API refuses blank names; a job created by hand can still have one.
    job = JobFactory(queue_name="", leased=True)
    acked = s("openqueue_jobs_acked_total", queue_name="unknown")
    deltas = Deltas(acked)
    services.ack_job(owner=job.owner, job_id=job.id, lease_token=str(job.lease_token), result=None)
    assert deltas() == {acked: 1}


# --- HTTP metrics -----------------------------------------------------------------------


def test_http_metrics_are_labelled_by_route_template_never_by_path(tenant, client):
    job = JobFactory(owner=tenant.user)
    unknown_id = uuid.uuid4()
    series = [
        s(
            "openqueue_http_requests_total",
            method="GET",
            route="jobs/<str:job_id>",
            status_code="200",
        ),
        s(
            "openqueue_http_requests_total",
            method="GET",
            route="jobs/<str:job_id>",
            status_code="404",
        ),
        s("openqueue_http_requests_total", method="GET", route="<unmatched>", status_code="404"),
        s("openqueue_http_requests_total", method="other", route="health", status_code="405"),
        s("openqueue_http_request_duration_seconds_count", method="GET", route="jobs/<str:job_id>"),
    ]
    deltas = Deltas(*series)

    assert tenant.api.get(f"/jobs/{job.id}").status_code == 200
    assert tenant.api.get(f"/jobs/{unknown_id}").status_code == 404
    assert tenant.api.get(f"/no/such/{unknown_id}").status_code == 404
    assert client.generic("BREW", "/health").status_code == 405

    assert list(deltas().values()) == [1, 1, 1, 1, 2]
    scrape = client.get("/metrics").content.decode()
    assert 'route="jobs/<str:job_id>"' in scrape
    assert str(job.id) not in scrape
    assert str(unknown_id) not in scrape
    assert "/no/such" not in scrape
    # (django-prometheus's own django_http_requests_total_by_method does label
    # the raw method; ours maps unknown methods to "other".)


def test_request_rejected_before_routing_still_gets_its_route(tenant, settings):
    settings.OPENQUEUE_MAX_REQUEST_BYTES = 10
    rejected = s("openqueue_http_requests_total", method="POST", route="jobs", status_code="413")
    deltas = Deltas(rejected)
    assert tenant.api.post_json("/jobs", {"payload": {"x": "y" * 50}}).status_code == 413
    assert deltas() == {rejected: 1}


# --- Scrape-time gauges and the endpoint -----------------------------------------------


def test_database_gauges_aggregate_tenants_by_queue_and_status(make_tenant):
    a, b = make_tenant(), make_tenant()
    q, idle = unique_queue("gauge"), unique_queue("idle")
    now = timezone.now()
    JobFactory(owner=a.user, queue_name=q, run_at=now - timedelta(seconds=100))
    JobFactory(owner=b.user, queue_name=q, run_at=now - timedelta(seconds=40))
    JobFactory(owner=b.user, queue_name=q, run_at=now + timedelta(hours=1))  # not due yet
    JobFactory(owner=a.user, queue_name=q, expired=True)
    JobFactory(owner=b.user, queue_name=q, leased=True)
    JobFactory(owner=a.user, queue_name=q, completed=True)
    JobFactory(owner=a.user, queue_name=idle, completed=True)

    registry = CollectorRegistry()
    registry.register(DatabaseCollector(now=lambda: now))
    got = {
        key: val
        for key, val in samples(generate_latest(registry).decode()).items()
        if ("queue_name", q) in key
        or ("queue_name", idle) in key
        or key[0] == "openqueue_database_up"
    }

    # The work in the queues: finished jobs are history (counted by the
    # counters), so a queue with only finished jobs has no gauge series.
    assert got == {
        s("openqueue_jobs", queue_name=q, status="pending"): 3,
        s("openqueue_jobs", queue_name=q, status="processing"): 2,
        s("openqueue_jobs", queue_name=q, status="dead"): 0,
        s("openqueue_oldest_pending_job_age_seconds", queue_name=q): 100.0,
        s("openqueue_expired_leases", queue_name=q): 1,
        ("openqueue_database_up",): 1,
    }


def test_scrape_survives_a_database_error(db, client):
    with mock.patch("queues.metrics.Job.objects.filter", side_effect=RuntimeError("db down")):
        response = client.get("/metrics")
    assert response.status_code == 200
    got = samples(response.content.decode())
    assert got[("openqueue_database_up",)] == 0
    assert not any(key[0] == "openqueue_jobs" for key in got)


def test_metrics_endpoint_serves_prometheus_text_with_every_family(db, client):
    JobFactory(queue_name="visible")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    text = response.content.decode()
    for family in [
        "openqueue_jobs_enqueued_total",
        "openqueue_http_requests_total",
        "openqueue_job_processing_duration_seconds",
    ]:
        assert f"# TYPE {family.removesuffix('_total')}" in text, family
    # django-prometheus's duplicate django_http_* series are opt-in
    # (OPENQUEUE_DJANGO_HTTP_METRICS; the two-worker test below turns them on).
    assert "django_http_requests" not in text
    assert samples(text)[s("openqueue_jobs", queue_name="visible", status="pending")] == 1


def test_metrics_token_is_required_when_configured(db, client, settings):
    settings.OPENQUEUE_METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secreT")
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"] == "Bearer"
    assert wrong.json() == {"detail": "Not authenticated"}
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic scrape-secret").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert ok.status_code == 200
    assert b"openqueue_http_requests_total" in ok.content


def test_metrics_without_token_setting_is_open(db, client, settings):
    settings.OPENQUEUE_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


def test_metrics_refuses_other_methods(db, client):
    response = client.post("/metrics")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


# --- Several gunicorn workers -----------------------------------------------------------


def worker_pids(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def enqueued_in_file(path: Path, queue: str, tmp_path: Path) -> float:
    """One worker's value, read through prometheus_client from a copy of its file alone."""
    alone = tmp_path / uuid.uuid4().hex
    alone.mkdir(parents=True)
    shutil.copy(path, alone / path.name)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(alone))
    return registry.get_sample_value("openqueue_jobs_enqueued_total", {"queue_name": queue}) or 0.0


@pytest.mark.live_server
def test_scrape_sums_counters_over_two_gunicorn_workers(live_server_factory, make_tenant, tmp_path):
    tenant = make_tenant()
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    server = live_server_factory(
        workers=2,
        threads=2,
        config_file=True,
        env={
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
            "OPENQUEUE_RATE_LIMIT_ENABLED": "false",
            "OPENQUEUE_DJANGO_HTTP_METRICS": "true",
        },
    )
    q = unique_queue("multi")
    headers = {"Authorization": f"Bearer {tenant.token}"}

    def enqueue(_: int) -> str:
        # No shared client: a fresh connection each, so either worker may accept it.
        response = httpx.post(
            f"{server.url}/jobs", json={"queue_name": q, "payload": {}}, headers=headers
        )
        assert response.status_code == 201, response.text
        return response.json()["job_id"]

    def per_worker() -> list[float]:
        files = sorted(multiproc.glob("counter_*.db"))
        return [enqueued_in_file(f, q, tmp_path) for f in files]

    # Rounds of 20 concurrent requests until both workers have served some:
    # bounded by a count, not a clock.
    sent = 0
    with ThreadPoolExecutor(max_workers=10) as pool:
        while sent < 400:
            job_ids = list(pool.map(enqueue, range(20)))
            sent += 20
            if sum(1 for n in per_worker() if n > 0) >= 2:
                break
    counts = per_worker()
    assert sum(1 for n in counts if n > 0) == 2, counts
    assert sum(counts) == sent

    scrape = samples(httpx.get(f"{server.url}/metrics").text)
    assert scrape[s("openqueue_jobs_enqueued_total", queue_name=q)] == sent
    assert scrape[s("openqueue_jobs", queue_name=q, status="pending")] == sent
    assert (
        scrape[s("openqueue_http_requests_total", method="POST", route="jobs", status_code="201")]
        == sent
    )
    # django-prometheus's own metrics, when turned on, are summed too.
    assert scrape[s("django_http_responses_total_by_status_total", status="201")] == sent
    text = httpx.get(f"{server.url}/metrics").text
    assert not any(job_id in text for job_id in job_ids)

    # A worker that dies takes nothing with it: its counts stay in the sum.
    before = worker_pids(server.process.pid)
    os.kill(before[0], signal.SIGKILL)
    scrape = samples(httpx.get(f"{server.url}/metrics").text)
    assert scrape[s("openqueue_jobs_enqueued_total", queue_name=q)] == sent


def test_metric_names_follow_the_contract():
    names = {m.name for m in REGISTRY.collect() if m.name.startswith("openqueue_")}
    assert names >= {
        "openqueue_http_requests",
        "openqueue_http_request_duration_seconds",
        "openqueue_jobs_enqueued",
        "openqueue_jobs_leased",
        "openqueue_jobs_lease_empty",
        "openqueue_jobs_acked",
        "openqueue_jobs_nacked",
        "openqueue_jobs_cancelled",
        "openqueue_jobs_moved_to_dlq",
        "openqueue_lease_expired_recovered",
        "openqueue_job_processing_duration_seconds",
    }
    assert all(re.fullmatch(r"openqueue_[a-z_]+", n) for n in names)


# --- Hostile scrapers and label cardinality (issue 11, item 3) ---------------------------


def queue_labels_of(family: str) -> set[str]:
    return {
        sample.labels["queue_name"]
        for metric in REGISTRY.collect()
        if metric.name == family.removesuffix("_total")
        for sample in metric.samples
        if "queue_name" in sample.labels
    }


def test_a_queue_gets_its_own_series_only_while_there_is_room(tenant, settings):
    settings.OPENQUEUE_METRICS_MAX_QUEUES = 5
    before = queue_labels_of("openqueue_jobs_enqueued_total")
    names = [unique_queue(f"cap{n}") for n in range(8)]

    for name in names:
        assert tenant.api.post_json("/jobs", {"queue_name": name, "payload": {}}).status_code == 201

    new = queue_labels_of("openqueue_jobs_enqueued_total") - before
    assert new - {"other"} == set(names[:5])
    assert value("openqueue_jobs_enqueued_total", queue_name="other") >= 3


def test_empty_leases_on_made_up_queues_add_no_series(tenant):
    before = queue_labels_of("openqueue_jobs_lease_empty_total")

    for _ in range(50):
        tenant.api.post_json(f"/queues/{unique_queue('nope')}/lease", {"worker_id": "w"})

    assert queue_labels_of("openqueue_jobs_lease_empty_total") - before <= {"other"}


def test_sixteen_concurrent_scrapes_read_the_database_once(db, settings):
    from django.db import connection

    from api.probes import scrape_registry

    settings.OPENQUEUE_METRICS_GAUGE_SECONDS = 60
    JobFactory(queue_name="scraped")
    before = DatabaseCollector.queries

    def scrape(_: int) -> bytes:
        try:
            return generate_latest(scrape_registry())
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=16) as pool:
        bodies = list(pool.map(scrape, range(16)))

    assert DatabaseCollector.queries - before == 1
    assert all(b"openqueue_database_up 1.0" in body for body in bodies)


@pytest.mark.parametrize(
    ("public", "token", "sent", "status"),
    [
        (False, "", None, 403),  # production's default: no anonymous scrapes
        (True, "", None, 200),  # the operator said so
        (False, "scrape-me", None, 401),
        (False, "scrape-me", "scrape-me", 200),
        (True, "scrape-me", "wrong", 401),  # a token, once set, is always required
    ],
)
def test_who_may_scrape(db, client, settings, public, token, sent, status):
    settings.OPENQUEUE_METRICS_PUBLIC = public
    settings.OPENQUEUE_METRICS_TOKEN = token
    headers = {"Authorization": f"Bearer {sent}"} if sent else {}

    response = client.get("/metrics", headers=headers)

    assert response.status_code == status
    if status == 403:
        assert "OPENQUEUE_METRICS_TOKEN" in response.json()["detail"]


# --- Queue control and schedules (issue 12) ------------------------------------------------


def test_refused_leases_are_counted_apart_from_empty_ones(tenant):
    q = unique_queue("refused")
    JobFactory(owner=tenant.user, queue_name=q)
    empty = s("openqueue_jobs_lease_empty_total", queue_name=q)
    paused = s("openqueue_lease_refused_total", queue_name=q, reason="paused")
    limited = s("openqueue_lease_refused_total", queue_name=q, reason="max_in_flight")
    deltas = Deltas(empty, paused, limited)

    patch = {"content_type": "application/json"}
    tenant.api.patch(f"/queues/{q}", {"paused": True}, **patch)
    assert lease(tenant, q) is None
    tenant.api.patch(f"/queues/{q}", {"paused": False, "max_in_flight": 1}, **patch)
    assert lease(tenant, q) is not None
    assert lease(tenant, q) is None  # at its limit
    tenant.api.patch(f"/queues/{q}", {"max_in_flight": None}, **patch)
    assert lease(tenant, q) is None  # nothing left: an empty lease

    assert deltas() == {paused: 1, limited: 1, empty: 1}


def test_paused_queues_have_a_gauge(make_tenant):
    a, b = make_tenant(), make_tenant()
    q, other = unique_queue("paused"), unique_queue("running")
    for tenant in (a, b):
        tenant.api.patch(f"/queues/{q}", {"paused": True}, content_type="application/json")
    a.api.patch(f"/queues/{other}", {"max_in_flight": 2}, content_type="application/json")

    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    got = samples(generate_latest(registry).decode())

    assert got[s("openqueue_queue_paused", queue_name=q)] == 2  # both tenants' queue q
    assert got[s("openqueue_queue_paused", queue_name=other)] == 0


def test_schedule_runs_are_counted_by_schedule_name(tenant):
    name = f"nightly-{uuid.uuid4().hex[:8]}"
    runs = s("openqueue_schedule_runs_total", schedule_name=name)
    deltas = Deltas(runs)
    body = {"queue_name": "reports", "cron": "@daily"}
    created = tenant.api.put(f"/schedules/{name}", body, content_type="application/json")
    assert created.status_code == 201

    tenant.api.post_json(f"/schedules/{name}/trigger")
    tenant.api.post_json(f"/schedules/{name}/trigger")

    assert deltas() == {runs: 2}
