"""Queue control against real server processes: max_in_flight under contention, pause and resume.

- ``max_in_flight = 3`` with 16 client threads leasing through 2 gunicorn
  worker processes: a sampler reads the database all along (how many of the
  queue's jobs are processing right now, an instant of the database's own),
  and the clients log when they held each lease. Neither may ever see more
  than 3, the database must have had 3 (the limit was reached, so the test
  could fail), and every job is completed exactly once. Leases last 120 s, longer than
  the test: no lease expires, so every processing job holds a valid lease.
- A long-poll on a paused queue waits; resuming the queue wakes it, and it
  gets the job at once instead of at the end of its wait.

Both run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from django.db import connection

from queues.models import Job, JobStatus
from queues.tests.test_longpoll import lease_waits, make_queue, wait_until

pytestmark = [pytest.mark.live_server, pytest.mark.timeout(300)]

LIMIT = 3
CLIENTS = 16
NO_RATE_LIMITS = {"OPENQUEUE_RATE_LIMIT_ENABLED": "false"}


class Sampler(threading.Thread):
    """Counts the queue's processing jobs in the database, again and again, until stopped."""

    def __init__(self, owner_id: int, queue: str) -> None:
        super().__init__(daemon=True)
        self.owner_id, self.queue = owner_id, queue
        self.samples: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            jobs = Job.objects.filter(
                owner_id=self.owner_id, queue_name=self.queue, status=JobStatus.PROCESSING
            )
            while not self.stopping.is_set():
                self.samples.append(jobs.count())
        finally:
            connection.close()


def held_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that overlap at any instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    held = most = 0
    for _, step in events:
        held += step
        most = max(most, held)
    return most


def test_max_in_flight_holds_under_sixteen_clients_on_two_processes(live_server_factory, tenant):
    jobs = 240 if connection.vendor == "postgresql" else 120
    server = live_server_factory(workers=2, threads=8, env=NO_RATE_LIMITS)
    headers = {"Authorization": f"Bearer {tenant.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        batch = {"jobs": [{"queue_name": "fragile", "payload": {"n": n}} for n in range(jobs)]}
        assert client.post("/jobs/batch", json=batch).status_code == 201
        limited = client.patch("/queues/fragile", json={"max_in_flight": LIMIT})
        assert limited.json()["max_in_flight"] == LIMIT

    completed = Counter[str]()
    intervals: list[tuple[float, float]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        body = {"worker_id": f"w{n}", "lease_seconds": 120}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            while sum(completed.values()) < jobs and not failures:
                leased = client.post("/queues/fragile/lease", json=body)
                if leased.status_code != 200:
                    failures.append(f"lease {leased.status_code} {leased.text[:200]}")
                    return
                lease = leased.json()
                if lease is None:
                    continue  # at the limit (or drained): ask again
                got = time.monotonic()
                time.sleep(0.02)  # the work: long enough for leases to overlap
                done = time.monotonic()
                acked = client.post(
                    f"/jobs/{lease['job']['id']}/ack", json={"lease_token": lease["lease_token"]}
                )
                if acked.status_code != 200:
                    failures.append(f"ack {acked.status_code} {acked.text[:200]}")
                    return
                with lock:
                    completed[lease["job"]["id"]] += 1
                    intervals.append((got, done))

    sampler = Sampler(tenant.user.pk, "fragile")
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            for future in [pool.submit(worker, n) for n in range(CLIENTS)]:
                future.result()
    finally:
        sampler.stopping.set()
        sampler.join(30)

    assert failures == []
    assert len(completed) == jobs and set(completed.values()) == {1}
    assert Job.objects.filter(queue_name="fragile", status=JobStatus.COMPLETED).count() == jobs
    print(
        f"\n{jobs} jobs, {CLIENTS} clients, 2 processes: database samples {len(sampler.samples)}, "
        f"max {max(sampler.samples)}; most leases held at once by clients "
        f"{held_at_once(intervals)}"
    )
    # Reached (so the test could fail), never exceeded.
    assert max(sampler.samples) == LIMIT
    assert held_at_once(intervals) <= LIMIT


def test_resuming_a_paused_queue_wakes_its_long_poll(live_server_factory, tenant):
    server = live_server_factory(workers=1, threads=8, env=NO_RATE_LIMITS)
    headers = {"Authorization": f"Bearer {tenant.token}"}
    make_queue(server.url, tenant.token, "held")
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        assert client.patch("/queues/held", json={"paused": True}).json()["paused"] is True
        job_id = client.post("/jobs", json={"queue_name": "held", "payload": {}}).json()["job_id"]

    def long_poll() -> Any:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            body = {"worker_id": "w", "wait_seconds": 20}
            response = client.post("/queues/held/lease", json=body)
            return response.json(), time.monotonic()

    with ThreadPoolExecutor(max_workers=1) as pool:
        waiter = pool.submit(long_poll)
        wait_until(lambda: lease_waits(server.url, "held") >= 1, "the lease to wait")
        # Waiting, and not taking the paused queue's job.
        assert Job.objects.get(pk=job_id).status == JobStatus.PENDING
        assert not waiter.done()

        resumed_at = time.monotonic()
        resumed = httpx.patch(
            f"{server.url}/queues/held", json={"paused": False}, headers=headers, timeout=60
        )
        assert resumed.json()["paused"] is False
        lease, answered_at = waiter.result()

    assert lease is not None and lease["job"]["id"] == job_id
    # Woken by the resume, not by the end of its 20 s wait.
    print(f"\nlong-poll answered {answered_at - resumed_at:.3f} s after the resume")
    assert answered_at - resumed_at < 10


def test_a_long_poll_at_the_limit_gets_the_next_job_once_room_opens(live_server_factory, tenant):
    server = live_server_factory(workers=1, threads=8, env=NO_RATE_LIMITS)
    headers = {"Authorization": f"Bearer {tenant.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        batch = {"jobs": [{"queue_name": "one-at-a-time", "payload": {"n": n}} for n in range(2)]}
        assert client.post("/jobs/batch", json=batch).status_code == 201
        client.patch("/queues/one-at-a-time", json={"max_in_flight": 1})
        first = client.post("/queues/one-at-a-time/lease", json={"worker_id": "a"}).json()

    def long_poll() -> Any:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            body = {"worker_id": "b", "wait_seconds": 20}
            return client.post("/queues/one-at-a-time/lease", json=body).json(), time.monotonic()

    with ThreadPoolExecutor(max_workers=1) as pool:
        waiter = pool.submit(long_poll)
        wait_until(lambda: lease_waits(server.url, "one-at-a-time") >= 1, "the lease to wait")
        assert not waiter.done()  # the second job is ready, but the limit holds it back

        acked_at = time.monotonic()
        ack = httpx.post(
            f"{server.url}/jobs/{first['job']['id']}/ack",
            json={"lease_token": first["lease_token"]},
            headers=headers,
            timeout=60,
        )
        assert ack.status_code == 200
        second, answered_at = waiter.result()

    assert second is not None and second["job"]["id"] != first["job"]["id"]
    # Waiters at the limit look again every LIMITED_POLL_SECONDS (0.25 s), not at the deadline.
    print(f"\nlong-poll answered {answered_at - acked_at:.3f} s after the ack")
    assert answered_at - acked_at < 10
