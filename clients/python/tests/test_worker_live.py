"""``Worker`` against a real server: exactly once, heartbeats, retries to the DLQ, shutdown."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from queues.models import Job, JobAttempt

from openqueue_client import Client, NewJob, Permanent, Worker

pytestmark = [pytest.mark.live_server, pytest.mark.django_db(transaction=True)]


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll for a state the test waits on; fail loudly if it never comes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within the deadline")
        time.sleep(0.05)


def run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    thread.start()
    return thread


def test_worker_with_concurrency_4_drains_500_jobs_exactly_once(server, token):
    seen: list[str] = []
    lock = threading.Lock()

    def handler(job):
        with lock:
            seen.append(job.id)
        return {"double": job.payload["n"] * 2}

    with Client(server.url, token) as client:
        ids = client.enqueue_batch([NewJob("drain", {"n": n}) for n in range(500)])
        stats = Worker(client, "drain", handler, concurrency=4, burst=True).run(
            install_signal_handlers=False
        )

    assert stats.acked == 500 and stats.lost == 0
    assert Counter(seen) == Counter(ids)  # every job ran once, none twice
    jobs = Job.objects.filter(queue_name="drain")
    assert set(jobs.values_list("status", flat=True)) == {"completed"}
    assert all(job.result == {"double": job.payload["n"] * 2} for job in jobs)
    # One lease per job: no job was ever handed to two threads.
    assert JobAttempt.objects.filter(job__queue_name="drain").count() == 500


def test_heartbeats_keep_a_job_leased_longer_than_its_lease(server, token):
    lease_seconds = 2
    checked = {}

    with Client(server.url, token) as client, Client(server.url, token) as other:
        job = client.enqueue("slow", {})

        def handler(leased):
            # Run for twice the lease; past its first expiry, nobody else can take it.
            time.sleep(lease_seconds * 1.5)
            checked["other worker got"] = other.lease("slow", worker_id="thief")
            time.sleep(lease_seconds * 0.5)
            return {"done": True}

        stats = Worker(
            client, "slow", handler, lease_seconds=lease_seconds, wait_seconds=0, burst=True
        ).run(install_signal_handlers=False)

    assert checked["other worker got"] is None
    assert stats.acked == 1
    stored = Job.objects.get(pk=job.job_id)
    assert (stored.status, stored.lease_lost_count) == ("completed", 0)
    assert list(stored.attempts.values_list("outcome", flat=True)) == ["acked"]


def test_a_failing_handler_is_retried_then_lands_in_the_dlq(server, token):
    def handler(job):
        raise ValueError(f"cannot handle {job.payload['n']}")

    with Client(server.url, token) as client:
        job = client.enqueue("flaky", {"n": 7}, max_retries=1)
        worker = Worker(client, "flaky", handler, wait_seconds=1)
        thread = run_in_thread(worker)
        try:
            # The retry waits out the server's backoff (1 s after the first failure).
            wait_until(lambda: Job.objects.get(pk=job.job_id).status == "dead")
        finally:
            worker.stop()
            thread.join(timeout=30)

    stored = Job.objects.get(pk=job.job_id)
    assert stored.dead_reason == "max_retries_exhausted"
    assert stored.error_text.startswith("Traceback (most recent call last)")
    assert stored.error_text.rstrip().endswith("ValueError: cannot handle 7")
    assert list(stored.attempts.values_list("outcome", flat=True)) == ["nacked", "nacked"]
    assert (worker.stats.retried, worker.stats.dead) == (1, 1)


def test_permanent_skips_the_retries(server, token):
    def handler(job):
        raise Permanent("bad address")

    with Client(server.url, token) as client:
        job = client.enqueue("strict", {}, max_retries=5)
        Worker(client, "strict", handler, burst=True).run(install_signal_handlers=False)

    stored = Job.objects.get(pk=job.job_id)
    assert (stored.status, stored.dead_reason, stored.retry_count) == ("dead", "retry_disabled", 0)
    assert "Permanent: bad address" in stored.error_text


def test_stop_gives_back_a_job_that_outlives_the_grace_period(server, token):
    release = threading.Event()

    def handler(job):
        release.wait(30)
        return None

    with Client(server.url, token) as client:
        job = client.enqueue("stuck", {}, max_retries=3)
        worker = Worker(client, "stuck", handler, grace_seconds=0.5, wait_seconds=1)
        thread = run_in_thread(worker)
        wait_until(lambda: Job.objects.get(pk=job.job_id).status == "processing")
        worker.stop()
        thread.join(timeout=30)
        release.set()

    stored = Job.objects.get(pk=job.job_id)
    assert (stored.status, stored.retry_count) == ("pending", 1)  # another worker takes it
    assert "did not finish within its grace period" in stored.error_text
    assert worker.stats.abandoned == 1


def test_the_worker_takes_jobs_from_every_queue_it_serves(server, token):
    done: list[str] = []
    with Client(server.url, token) as client:
        client.enqueue_batch([NewJob("a", {"q": "a"}), NewJob("b", {"q": "b"})] * 3)
        Worker(client, ["a", "b"], lambda job: done.append(job.payload["q"]), burst=True).run(
            install_signal_handlers=False
        )
    assert Counter(done) == {"a": 3, "b": 3}
