"""Long-poll leasing: ``wait_seconds`` on POST /queues/{queue_name}/lease (queues/longpoll.py).

Most tests run on both databases: on PostgreSQL a waiting lease is woken by
LISTEN/NOTIFY, on SQLite it polls. Tests that need another client to write
while a lease waits use real gunicorn processes; "the lease is waiting" is
read from the server's own ``openqueue_lease_waits_total`` counter, never
guessed from a sleep.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from queues import longpoll, services
from queues.models import Job, JobStatus
from queues.tests.factories import JobFactory


@pytest.fixture(scope="module", autouse=True)
def _stop_listener(django_db_blocker: Any) -> Iterator[None]:
    # In-process waits start this process's LISTEN connection: close it, or
    # the test database could not be dropped at the end of the session.
    yield
    with django_db_blocker.unblock():
        longpoll.hub.stop()


def lease(tenant: Any, queue_name: str = "default", **body: Any) -> Any:
    return tenant.api.post_json(f"/queues/{queue_name}/lease", {"worker_id": "w1", **body})


# --- Validation and the no-wait path (in process) -------------------------------------


@pytest.mark.parametrize("wait_seconds", [21, -1, "soon"])
def test_lease_wait_seconds_out_of_range_is_422(tenant, wait_seconds):
    response = lease(tenant, wait_seconds=wait_seconds)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "wait_seconds"]


def test_lease_wait_seconds_zero_answers_null_without_waiting(tenant):
    response = lease(tenant, wait_seconds=0)

    assert response.status_code == 200
    assert response.content == b"null"
    assert longpoll.hub.waiting == 0


def test_lease_wait_seconds_zero_leases_a_due_job(tenant):
    job = JobFactory(owner=tenant.user)

    response = lease(tenant, wait_seconds=0)

    assert response.json()["job"]["id"] == str(job.id)


def test_lease_wait_returns_a_due_job_without_waiting(tenant):
    job = JobFactory(owner=tenant.user)

    response = lease(tenant, wait_seconds=20)

    assert response.json()["job"]["id"] == str(job.id)


def test_lease_wait_ends_with_null_on_an_empty_queue(tenant):
    response = lease(tenant, "empty", wait_seconds=1)

    assert response.status_code == 200
    assert response.content == b"null"
    assert longpoll.hub.waiting == 0  # the waiter unsubscribed


def test_a_long_poll_that_ends_empty_counts_one_empty_lease(tenant):
    # The wait makes several lease attempts (SQLite polls every 100 ms); the
    # metric counts answers ("Lease returned null"), not attempts.
    def empty(queue: str) -> float:
        return (
            REGISTRY.get_sample_value("openqueue_jobs_lease_empty_total", {"queue_name": queue})
            or 0.0
        )

    for queue in ("drained", "drained-batch"):  # queues with jobs get their own series
        JobFactory(owner=tenant.user, queue_name=queue, run_at=timezone.now() + timedelta(days=1))
    before = (empty("drained"), empty("drained-batch"))
    assert lease(tenant, "drained", wait_seconds=1).content == b"null"
    response = tenant.api.post_json(
        "/queues/drained-batch/lease/batch", {"worker_id": "w", "wait_seconds": 1}
    )
    assert response.json() == {"leases": []}

    assert (empty("drained") - before[0], empty("drained-batch") - before[1]) == (1, 1)


def test_lease_wait_wakes_when_run_at_arrives(tenant):
    run_at = timezone.now() + timedelta(seconds=2)
    job = JobFactory(owner=tenant.user, queue_name="later", run_at=run_at)

    response = lease(tenant, "later", wait_seconds=10)

    body = response.json()
    assert body is not None, "the wait ended before the scheduled job became due"
    assert body["job"]["id"] == str(job.id)
    job.refresh_from_db()
    assert job.started_at >= run_at


def test_lease_wait_gets_a_nacked_job_once_its_backoff_ends(tenant):
    job = JobFactory(owner=tenant.user, queue_name="retry")
    first = lease(tenant, "retry").json()
    nacked = tenant.api.post_json(
        f"/jobs/{job.id}/nack", {"lease_token": first["lease_token"], "error": "boom"}
    )
    assert nacked.status_code == 200

    response = lease(tenant, "retry", wait_seconds=10)  # the backoff is 1 s

    body = response.json()
    assert body is not None
    assert body["job"]["id"] == str(job.id)
    assert body["job"]["retry_count"] == 1


def test_lease_wait_answers_at_once_when_the_process_has_too_many_waiters(tenant, settings):
    settings.OPENQUEUE_LEASE_MAX_WAITERS = 0

    response = lease(tenant, "full", wait_seconds=20)

    assert response.content == b"null"
    assert longpoll.hub.waiting == 0


def test_lease_request_schema_documents_wait_seconds(client):
    schema = client.get("/openapi.json").json()

    wait_seconds = schema["components"]["schemas"]["LeaseRequest"]["properties"]["wait_seconds"]
    # A lax integer: JSON numbers within the range, or the same as decimal text.
    (as_number,) = [branch for branch in wait_seconds["anyOf"] if branch["type"] == "integer"]
    assert (as_number["minimum"], as_number["maximum"]) == (0, 20)
    assert wait_seconds["default"] == 0


# --- The notification path itself (PostgreSQL) ----------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("make_leasable", ["enqueue", "requeue", "nack_retry", "reap"])
def test_notify_wakes_only_the_waiters_of_that_tenant_and_queue(make_tenant, make_leasable):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    owner, other = make_tenant().user, make_tenant().user
    if make_leasable == "requeue":
        done = JobFactory(owner=owner, queue_name="q", completed=True)
    elif make_leasable == "nack_retry":
        leased = JobFactory(owner=owner, queue_name="q", leased=True)
    elif make_leasable == "reap":
        JobFactory(owner=owner, queue_name="q", expired=True)

    with (
        longpoll.hub.subscribe(owner.pk, "q") as mine,
        longpoll.hub.subscribe(other.pk, "q") as theirs,
        longpoll.hub.subscribe(owner.pk, "other-queue") as elsewhere,
        longpoll.hub.subscribe(owner.pk, "fence") as fence,
    ):
        # (Re)connecting wakes everyone once; start listening for real after that.
        assert longpoll.hub.listening.wait(10)
        for waiter in (mine, theirs, elsewhere, fence):
            waiter.event.clear()
        if make_leasable == "enqueue":
            services.enqueue_jobs(owner=owner, jobs=[services.NewJob("q", {})])
        elif make_leasable == "requeue":
            assert services.requeue_jobs(Job.objects.filter(pk=done.pk)) == 1
        elif make_leasable == "nack_retry":
            services.nack_job(
                owner=owner,
                job_id=leased.id,
                lease_token=str(leased.lease_token),
                error="x",
                retry=True,
            )
        else:
            assert services.reap_expired_leases().requeued == 1
        assert mine.event.wait(10), "no notification reached the waiter"
        # Notifications arrive in commit order: once this later one is
        # dispatched, any stray one for the other waiters would have been too.
        services.enqueue_jobs(owner=owner, jobs=[services.NewJob("fence", {})])
        assert fence.event.wait(10)
        assert not theirs.event.is_set()
        assert not elsewhere.event.is_set()


@pytest.mark.django_db(transaction=True)
def test_listener_reconnects_after_its_connection_is_killed(tenant):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    with longpoll.hub.subscribe(tenant.user.pk, "q") as waiter:
        assert longpoll.hub.listening.wait(10)
        killed = longpoll.hub.backend_pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [killed])

        deadline = time.monotonic() + 30
        while not (longpoll.hub.listening.is_set() and longpoll.hub.backend_pid != killed):
            assert time.monotonic() < deadline, "the listener did not reconnect"
            time.sleep(0.05)
        waiter.event.clear()
        services.enqueue_jobs(owner=tenant.user, jobs=[services.NewJob("q", {})])

        assert waiter.event.wait(10), "no notification after the reconnect"


# --- Against real servers -------------------------------------------------------------


NO_RATE_LIMITS = {"OPENQUEUE_RATE_LIMIT_ENABLED": "false"}


def lease_waits(url: str, queue_name: str) -> float:
    """The server's openqueue_lease_waits_total for ``queue_name``."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "openqueue_lease_waits":
            return sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total") and s.labels.get("queue_name") == queue_name
            )
    return 0.0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def make_queue(url: str, token: str, queue_name: str) -> None:
    """Give the queue a job, due in 2999: only a queue with jobs has metric series of
    its own (queues.metrics.QueueLabels), and the tests count its lease waits."""
    response = httpx.post(
        f"{url}/jobs",
        json={"queue_name": queue_name, "payload": {}, "run_at": "2999-01-01T00:00:00Z"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code == 201, response.text


def start_waiters(
    url: str, token: str, queue_name: str, count: int, wait_seconds: int = 20
) -> tuple[ThreadPoolExecutor, list[Any]]:
    """``count`` clients, each sending one waiting lease; returns their futures."""
    headers = {"Authorization": f"Bearer {token}"}
    make_queue(url, token, queue_name)

    def one(n: int) -> Any:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            response = client.post(
                f"/queues/{queue_name}/lease",
                json={"worker_id": f"w{n}", "lease_seconds": 600, "wait_seconds": wait_seconds},
            )
            assert response.status_code == 200, response.text
            return response.json()

    pool = ThreadPoolExecutor(max_workers=count)
    return pool, [pool.submit(one, n) for n in range(count)]


def enqueue(url: str, token: str, queue_name: str, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}/jobs",
        json={"queue_name": queue_name, "payload": payload},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


@pytest.mark.live_server
@pytest.mark.timeout(120)
def test_waiting_lease_returns_a_job_enqueued_while_it_waits(live_server_factory, tenant):
    server = live_server_factory(workers=1, threads=8, env=NO_RATE_LIMITS)
    pool, (waiter,) = start_waiters(server.url, tenant.token, "wake", 1)
    with pool:
        wait_until(lambda: lease_waits(server.url, "wake") >= 1, "the lease to wait")

        created = enqueue(server.url, tenant.token, "wake", {"n": 1})

        assert created.status_code == 201
        result = waiter.result()
    assert result is not None, "the lease answered null although a job arrived during its wait"
    assert result["job"]["id"] == created.json()["job_id"]


def test_one_tenant_cannot_take_every_waiter_slot(tenant, other_tenant, settings):
    settings.OPENQUEUE_LEASE_MAX_WAITERS = 4
    settings.OPENQUEUE_LEASE_MAX_WAITERS_PER_TENANT = 2
    hub = longpoll.Hub()

    try:
        with ExitStack() as stack:
            mine = [stack.enter_context(hub.subscribe(tenant.user.pk, f"q{n}")) for n in range(3)]
            theirs = stack.enter_context(hub.subscribe(other_tenant.user.pk, "q"))

            assert mine[2] is None  # over this tenant's share: answers at once
            assert None not in mine[:2] and theirs is not None
        assert hub.waiting == 0
    finally:
        hub.stop()  # its LISTEN connection, on PostgreSQL


@pytest.mark.live_server
@pytest.mark.timeout(120)
def test_a_tenant_holding_many_long_polls_leaves_slots_for_others(
    live_server_factory, tenant, other_tenant
):
    limits = {"OPENQUEUE_LEASE_MAX_WAITERS": "8", "OPENQUEUE_LEASE_MAX_WAITERS_PER_TENANT": "4"}
    server = live_server_factory(workers=1, threads=16, env={**NO_RATE_LIMITS, **limits})
    hog_pool, hogs = start_waiters(server.url, tenant.token, "hog", 10, wait_seconds=15)
    with hog_pool:
        wait_until(lambda: lease_waits(server.url, "hog") >= 4, "the hog's share to wait")
        # Its other six long-polls got no slot and answered null at once.
        wait_until(lambda: sum(f.done() for f in hogs) >= 6, "the hog's extra polls to end")
        assert lease_waits(server.url, "hog") == 4

        pool, (waiter,) = start_waiters(server.url, other_tenant.token, "mine", 1)
        with pool:
            wait_until(lambda: lease_waits(server.url, "mine") >= 1, "the other tenant to wait")
            created = enqueue(server.url, other_tenant.token, "mine", {"n": 1})
            result = waiter.result()
        assert result is not None and result["job"]["id"] == created.json()["job_id"]
        for future in hogs:  # release the hog's waiters
            future.cancel()
        enqueued = [enqueue(server.url, tenant.token, "hog", {"n": n}) for n in range(4)]
        assert all(r.status_code == 201 for r in enqueued)


@pytest.mark.live_server
@pytest.mark.timeout(120)
def test_waiting_lease_ignores_another_tenants_job(live_server_factory, tenant, other_tenant):
    server = live_server_factory(workers=1, threads=8, env=NO_RATE_LIMITS)
    pool, (waiter,) = start_waiters(server.url, tenant.token, "shared", 1, wait_seconds=2)
    with pool:
        wait_until(lambda: lease_waits(server.url, "shared") >= 1, "the lease to wait")

        theirs = enqueue(server.url, other_tenant.token, "shared", {"n": 1})

        assert theirs.status_code == 201
        assert waiter.result() is None
    assert Job.objects.get(pk=theirs.json()["job_id"]).status == JobStatus.PENDING


@pytest.mark.live_server
@pytest.mark.timeout(180)
def test_waiting_workers_lease_each_job_exactly_once(live_server_factory, tenant):
    """20 long-polling workers, 200 jobs arriving in bursts: no job twice, none lost."""
    server = live_server_factory(workers=2, threads=32, env=NO_RATE_LIMITS)
    queue, jobs, workers = "bursts", 200, 20
    headers = {"Authorization": f"Bearer {tenant.token}"}
    leased: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    produced = threading.Event()

    def worker(n: int) -> None:
        body = {"worker_id": f"w{n}", "lease_seconds": 600, "wait_seconds": 2}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            while True:
                all_enqueued = produced.is_set()
                response = client.post(f"/queues/{queue}/lease", json=body)
                if response.status_code != 200:
                    failures.append(f"lease {response.status_code}: {response.text[:200]}")
                    return
                lease_ = response.json()
                if lease_ is None:
                    # Asked after the last job was enqueued, nothing due means
                    # every job is leased (for 600 s): done. Losses show in
                    # the final check.
                    if all_enqueued:
                        return
                    continue
                with lock:
                    leased.append(lease_["job"]["id"])
                acked = client.post(
                    f"/jobs/{lease_['job']['id']}/ack", json={"lease_token": lease_["lease_token"]}
                )
                if acked.status_code != 200:
                    failures.append(f"ack {acked.status_code}")

    enqueued: list[str] = []
    make_queue(server.url, tenant.token, queue)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(worker, n) for n in range(workers)]
        wait_until(lambda: lease_waits(server.url, queue) >= workers, "every worker to wait")
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as producer:
            for burst in range(10):
                batch = [
                    {"queue_name": queue, "payload": {"burst": burst, "n": n}} for n in range(20)
                ]
                response = producer.post("/jobs/batch", json={"jobs": batch})
                assert response.status_code == 201, response.text
                enqueued += response.json()["job_ids"]
                time.sleep(0.05)  # bursts, not one block: waiters wake several times
        produced.set()
        for future in futures:
            future.result()

    assert failures == []
    assert Counter(leased).most_common(1)[0][1] == 1, "a job was leased twice"
    assert sorted(leased) == sorted(enqueued)
    assert Job.objects.filter(queue_name=queue, status=JobStatus.COMPLETED).count() == jobs


@pytest.mark.live_server
@pytest.mark.timeout(180)
@pytest.mark.postgres_only
@pytest.mark.skipif(connection.vendor != "postgresql", reason="200 pollers would swamp SQLite")
def test_two_hundred_waiting_workers_leave_the_server_responsive(live_server_factory, tenant):
    """200 leases wait on an empty queue; a producer's enqueues still go through and reach them.

    If the waiters held the threads (or the database connections) producers
    need, the enqueues would stall until the waits end and every waiter
    would answer null: each waiter getting a job proves the producer was
    served while all 200 were waiting.
    """
    waiters = 200
    server = live_server_factory(
        workers=1,
        threads=256,
        env={
            **NO_RATE_LIMITS,
            "OPENQUEUE_LEASE_MAX_WAITERS": "240",
            "OPENQUEUE_LEASE_MAX_WAITERS_PER_TENANT": "240",
        },
    )
    previous = threading.stack_size(256 * 1024)
    try:
        pool, futures = start_waiters(server.url, tenant.token, "crowd", waiters)
    finally:
        threading.stack_size(previous)
    with pool:
        wait_until(lambda: lease_waits(server.url, "crowd") >= waiters, "all 200 leases to wait")

        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {tenant.token}"}, timeout=60
        ) as producer:
            responses = [
                producer.post("/jobs", json={"queue_name": "crowd", "payload": {"n": n}})
                for n in range(waiters)
            ]

        assert [r.status_code for r in responses] == [201] * waiters
        results = [future.result() for future in futures]
    assert None not in results, f"{results.count(None)} waiters answered null"
    leased = [result["job"]["id"] for result in results]
    assert Counter(leased).most_common(1)[0][1] == 1
    assert sorted(leased) == sorted(r.json()["job_id"] for r in responses)


# --- Batch lease ----------------------------------------------------------------------


def lease_batch(tenant: Any, queue_name: str = "default", **body: Any) -> Any:
    return tenant.api.post_json(f"/queues/{queue_name}/lease/batch", {"worker_id": "w1", **body})


@pytest.mark.parametrize("wait_seconds", [21, -1])
def test_lease_batch_wait_seconds_out_of_range_is_422(tenant, wait_seconds):
    response = lease_batch(tenant, wait_seconds=wait_seconds)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "wait_seconds"]


def test_lease_batch_wait_ends_with_an_empty_list(tenant):
    response = lease_batch(tenant, "empty", wait_seconds=1, max_jobs=5)

    assert response.status_code == 200
    assert response.json() == {"leases": []}


def test_lease_batch_wait_wakes_when_run_at_arrives(tenant):
    run_at = timezone.now() + timedelta(seconds=2)
    jobs = [JobFactory(owner=tenant.user, queue_name="later", run_at=run_at) for _ in range(3)]

    response = lease_batch(tenant, "later", wait_seconds=10, max_jobs=5)

    leased = {lease_["job"]["id"] for lease_ in response.json()["leases"]}
    assert leased == {str(job.id) for job in jobs}
