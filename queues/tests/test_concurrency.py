"""Exactly-once leasing under contention, against real server processes.

Two gunicorn workers (4 threads each) serve 16 client threads that drain one
queue. Every lease is 120 s long, far longer than the test, so no lease can
expire while it runs: a job id that shows up in two leases is a double
delivery, never a legitimate redelivery. The same tests run on SQLite
(writers serialized by IMMEDIATE transactions) and on PostgreSQL (row locks
with SKIP LOCKED).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from queues.models import Job, JobStatus

CLIENT_THREADS = 16
LEASE_SECONDS = 120

pytestmark = [pytest.mark.live_server, pytest.mark.timeout(240)]


@dataclass
class WorkerLog:
    """What one client thread saw, in the order it saw it."""

    leases: list[tuple[str, str]] = field(default_factory=list)  # (job_id, lease_token)
    ack_statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _enqueue(url: str, token: str, jobs: list[dict], batch_size: int = 250) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    ids: list[str] = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for start in range(0, len(jobs), batch_size):
            response = client.post("/jobs/batch", json={"jobs": jobs[start : start + batch_size]})
            assert response.status_code == 201, response.text
            ids += response.json()["job_ids"]
    return ids


def _drain(url: str, token: str, queue: str, worker: int) -> WorkerLog:
    """Lease and ack until the queue answers null (or something goes wrong)."""
    log = WorkerLog()
    headers = {"Authorization": f"Bearer {token}"}
    body = {"worker_id": f"worker-{worker}", "lease_seconds": LEASE_SECONDS}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        while True:
            leased = client.post(f"/queues/{queue}/lease", json=body)
            if leased.status_code != 200:
                log.failures.append(f"lease {leased.status_code}: {leased.text[:200]}")
                return log
            lease = leased.json()
            if lease is None:
                return log
            job_id, lease_token = lease["job"]["id"], lease["lease_token"]
            log.leases.append((job_id, lease_token))
            acked = client.post(
                f"/jobs/{job_id}/ack", json={"lease_token": lease_token, "result": {"by": worker}}
            )
            log.ack_statuses.append(acked.status_code)
            if acked.status_code != 200:
                log.failures.append(f"ack {job_id} {acked.status_code}: {acked.text[:200]}")


def _drain_concurrently(url: str, token: str, queue: str) -> list[WorkerLog]:
    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        futures = [pool.submit(_drain, url, token, queue, n) for n in range(CLIENT_THREADS)]
        return [future.result() for future in futures]


def _assert_each_job_delivered_once(logs: list[WorkerLog], enqueued: list[str]) -> None:
    assert [failure for log in logs for failure in log.failures] == []
    leased_ids = [job_id for log in logs for job_id, _ in log.leases]
    delivered_twice = {job_id: n for job_id, n in Counter(leased_ids).items() if n > 1}
    assert delivered_twice == {}
    assert sorted(leased_ids) == sorted(enqueued)  # none lost, none invented
    ack_statuses = Counter(status for log in logs for status in log.ack_statuses)
    assert ack_statuses == {200: len(enqueued)}
    tokens = [lease_token for log in logs for _, lease_token in log.leases]
    assert len(set(tokens)) == len(tokens)


@pytest.fixture
def server(live_server_factory):
    return live_server_factory(workers=2, threads=4, env={"OPENQUEUE_RATE_LIMIT_ENABLED": "false"})


def test_lease_under_contention_delivers_every_job_exactly_once(server, make_tenant):
    tenant = make_tenant()
    jobs = [{"queue_name": "contended", "payload": {"n": n}} for n in range(1000)]
    enqueued = _enqueue(server.url, tenant.token, jobs)
    assert len(set(enqueued)) == 1000

    logs = _drain_concurrently(server.url, tenant.token, "contended")

    _assert_each_job_delivered_once(logs, enqueued)
    # Work really was spread over the client threads (the test is not a serial drain).
    assert sum(1 for log in logs if log.leases) > 1
    rows = Job.objects.filter(owner=tenant.user)
    assert rows.count() == 1000
    assert Counter(rows.values_list("status", flat=True)) == {JobStatus.COMPLETED: 1000}
    assert set(rows.values_list("lease_lost_count", flat=True)) == {0}
    assert not rows.filter(lease_token__isnull=False).exists()


def test_lease_under_contention_with_mixed_priorities_keeps_order_and_never_double_leases(
    server, make_tenant
):
    tenant = make_tenant()
    priorities = [0, 10, -5, 3, 10, 0, 7, 3]
    # Four batches, so created_at differs between batches and ties within one.
    jobs = [
        {"queue_name": "mixed", "payload": {"n": n}, "priority": priorities[n % len(priorities)]}
        for n in range(400)
    ]
    enqueued = _enqueue(server.url, tenant.token, jobs, batch_size=100)

    logs = _drain_concurrently(server.url, tenant.token, "mixed")

    _assert_each_job_delivered_once(logs, enqueued)
    # All jobs were due before the first lease, and a lease only ever skips a
    # row another lease has locked; so each thread's own leases must follow
    # the lease order: priority DESC, then created_at ASC (id breaks ties).
    order = {
        str(job_id): (-priority, created_at, str(job_id))
        for job_id, priority, created_at in Job.objects.filter(owner=tenant.user).values_list(
            "id", "priority", "created_at"
        )
    }
    for log in logs:
        keys = [order[job_id] for job_id, _ in log.leases]
        assert keys == sorted(keys)
    statuses = Job.objects.filter(owner=tenant.user).values_list("status", flat=True)
    assert Counter(statuses) == {JobStatus.COMPLETED: 400}
