"""Every method of ``Client`` and ``AsyncClient`` against a real server, and its error mapping."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from django.conf import settings
from queues.models import Job

from openqueue_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    NewJob,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    RetryPolicy,
    ValidationError,
)

pytestmark = [pytest.mark.live_server, pytest.mark.django_db(transaction=True)]


def test_client_walks_every_route(server, token):
    with Client(server.url, token) as client:
        assert client.health() == {"status": "ok"}
        assert client.ready() == {"status": "ready"}

        first = client.enqueue("mail box", {"to": "ada"}, priority=5, max_retries=2)
        assert first.created
        again = client.enqueue("mail box", {"to": "ada"}, idempotency_key="k-1")
        replay = client.enqueue("mail box", {"to": "other"}, idempotency_key="k-1")
        assert (replay.job_id, replay.created) == (again.job_id, False)
        later = client.enqueue(
            "mail box", {"n": 0}, run_at=datetime.now(timezone.utc) + timedelta(hours=1)
        )
        ids = client.enqueue_batch(
            [NewJob("other", {"n": 1}), {"queue_name": "other", "payload": {"n": 2}}]
        )
        assert len(ids) == 2

        assert client.get_status(first.job_id) == "pending"
        job = client.get_job(first.job_id)
        assert (job.queue_name, job.payload, job.priority, job.max_retries) == (
            "mail box",
            {"to": "ada"},
            5,
            2,
        )
        assert job.created_at.tzinfo is not None
        listed = client.list_jobs(queue_name="mail box", status="pending", limit=10)
        assert listed.total == 3 and {j.id for j in listed.items} >= {first.job_id, later.job_id}

        # Lease, heartbeat, ack the highest priority job; nack the next.
        lease = client.lease("mail box", worker_id="w1", lease_seconds=60)
        assert lease.job_id == first.job_id and lease.job.status == "processing"
        client.heartbeat(lease.job_id, lease.lease_token, lease_seconds=120)
        client.ack(lease.job_id, lease.lease_token, {"sent": True})
        assert client.get_job(first.job_id).result == {"sent": True}
        second = client.lease("mail box", worker_id="w1")
        client.nack(second.job_id, second.lease_token, "smtp down", retry=False)
        assert client.get_status(second.job_id) == "dead"
        assert client.lease("mail box", worker_id="w1") is None  # only the future job is left

        attempts = client.get_attempts(first.job_id)
        assert [(a.attempt, a.worker_id, a.outcome) for a in attempts] == [(1, "w1", "acked")]

        batch = client.lease_batch("other", worker_id="w2", max_jobs=5)
        assert sorted(lease.job_id for lease in batch) == sorted(ids)
        acked = client.ack_batch([{"job_id": batch[0].job_id, "lease_token": batch[0].lease_token}])
        nacked = client.nack_batch(
            [
                {"job_id": batch[1].job_id, "lease_token": batch[1].lease_token, "error": "x"},
                {"job_id": batch[0].job_id, "lease_token": batch[0].lease_token, "error": "x"},
            ]
        )
        assert acked[0].ok and acked[0].status == "completed"
        assert nacked[0].status == "failed_or_requeued"
        assert (nacked[1].ok, nacked[1].error_status) == (False, 409)

        client.cancel(later.job_id)
        assert client.get_status(later.job_id) == "cancelled"
        with pytest.raises(NotFoundError):
            client.cancel(later.job_id)

        stats = {row.queue_name: row for row in client.queue_stats()}
        assert (stats["mail box"].completed, stats["mail box"].dead) == (1, 1)

        paused = client.pause_queue("mail box")
        assert paused.paused
        assert client.update_queue("mail box", max_in_flight=3).max_in_flight == 3
        assert client.resume_queue("mail box").paused is False
        assert client.get_queue("mail box").dead == 1
        assert [q.queue_name for q in client.list_queues()] == ["mail box", "other"]
        assert client.purge_queue("mail box", status="dead") == 1

        schedule = client.put_schedule(
            "nightly", queue_name="reports", cron="30 2 * * *", timezone="Europe/Berlin"
        )
        assert schedule.next_run_at is not None and schedule.payload == {}
        assert [s.name for s in client.list_schedules()] == ["nightly"]
        assert client.get_schedule("nightly").timezone == "Europe/Berlin"
        triggered = client.trigger_schedule("nightly")
        assert client.get_job(triggered).schedule_name == "nightly"
        client.delete_schedule("nightly")
        with pytest.raises(NotFoundError):
            client.get_schedule("nightly")

        assert "openqueue_" in client.metrics()


def test_client_provisions_a_tenant_with_the_admin_secret(live_server_factory):
    server = live_server_factory(workers=1, threads=2, env={"ADMIN_SECRET": "s3cret-for-tests"})
    with Client(server.url) as anonymous:
        provisioned = anonymous.provision("new@example.com", admin_secret="s3cret-for-tests")
    assert provisioned.created and provisioned.token.startswith("oq_live_")
    with Client(server.url, provisioned.token) as client:
        assert client.enqueue("q", {}).created

    async def rotate() -> None:
        async with AsyncClient(server.url) as anonymous:
            rotated = await anonymous.provision(
                "new@example.com", admin_secret="s3cret-for-tests", rotate=True
            )
        assert not rotated.created and rotated.token != provisioned.token

    asyncio.run(rotate())
    with Client(server.url, provisioned.token) as client, pytest.raises(AuthenticationError):
        client.get_queue("q")  # rotate=True revoked the earlier token


def test_async_client_walks_every_route(server, token):
    async def walk() -> None:
        async with AsyncClient(server.url, token) as client:
            assert (await client.health())["status"] == "ok"
            assert (await client.ready())["status"] == "ready"
            job = await client.enqueue("aq", {"n": 1}, idempotency_key="a-1")
            assert not (await client.enqueue("aq", {"n": 1}, idempotency_key="a-1")).created
            await client.enqueue_batch([NewJob("aq", {"n": 2}), NewJob("aq", {"n": 3})])
            assert await client.get_status(job.job_id) == "pending"
            assert (await client.get_job(job.job_id)).payload == {"n": 1}
            assert (await client.list_jobs(queue_name="aq")).total == 3

            lease = await client.lease("aq", worker_id="aw", wait_seconds=1)
            await client.heartbeat(lease.job_id, lease.lease_token)
            await client.ack(lease.job_id, lease.lease_token, {"ok": 1})
            batch = await client.lease_batch("aq", worker_id="aw", max_jobs=1)
            await client.nack(batch[0].job_id, batch[0].lease_token, "no", retry=False)
            last = await client.lease_batch("aq", worker_id="aw", max_jobs=5)
            done = await client.ack_batch(
                [{"job_id": last[0].job_id, "lease_token": last[0].lease_token}]
            )
            assert [r.status for r in done] == ["completed"]
            assert (await client.get_attempts(lease.job_id))[0].outcome == "acked"

            spare = await client.enqueue("aq", {"n": 4})
            await client.cancel(spare.job_id)
            again = await client.enqueue("aq", {"n": 5})
            leased = await client.lease("aq", worker_id="aw")
            results = await client.nack_batch(
                [{"job_id": leased.job_id, "lease_token": leased.lease_token, "error": "e"}]
            )
            assert results[0].job_id == again.job_id

            assert [row.queue_name for row in await client.queue_stats()] == ["aq"]
            assert (await client.pause_queue("aq")).paused
            assert not (await client.resume_queue("aq")).paused
            assert (await client.update_queue("aq", max_in_flight=None)).max_in_flight is None
            assert (await client.get_queue("aq")).queue_name == "aq"
            assert len(await client.list_queues()) == 1
            assert await client.purge_queue("aq", status="dead") == 1

            await client.put_schedule("s1", queue_name="aq", cron="@hourly", payload={"a": 1})
            assert (await client.get_schedule("s1")).cron == "@hourly"
            assert len(await client.list_schedules()) == 1
            triggered = await client.trigger_schedule("s1")
            assert (await client.get_job(triggered)).payload == {"a": 1}
            await client.delete_schedule("s1")
            assert "openqueue_" in await client.metrics()

    asyncio.run(walk())
    assert Job.objects.filter(queue_name="aq").count() == 5


def test_errors_map_to_one_class_per_status_with_the_servers_detail(server, token):
    with Client(server.url, "oq_live_" + "x" * 40) as stranger:
        with pytest.raises(AuthenticationError) as unauthorized:
            stranger.enqueue("q", {})
    assert unauthorized.value.status_code == 401
    assert unauthorized.value.detail == "Invalid API token"

    with Client(server.url, token) as client:
        with pytest.raises(NotFoundError) as missing:
            client.get_job(str(uuid.uuid4()))
        assert missing.value.detail == "Job not found"

        job = client.enqueue("q", {})
        lease = client.lease("q", worker_id="w")
        with pytest.raises(ConflictError) as conflict:
            client.ack(job.job_id, str(uuid.uuid4()))
        assert "lease token mismatch" in conflict.value.detail
        client.ack(lease.job_id, lease.lease_token)

        too_big = {"blob": "x" * (settings.OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES + 1)}
        with pytest.raises(PayloadTooLargeError) as large:
            client.enqueue("q", too_big)
        assert "OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES" in large.value.detail

        with pytest.raises(ValidationError) as invalid:
            client.lease("q", worker_id="w", lease_seconds=0)
        assert invalid.value.detail[0]["loc"] == ["body", "lease_seconds"]
        assert "lease_seconds" in str(invalid.value)
    assert Job.objects.count() == 1  # nothing refused was written


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        return response


def test_a_429_is_retried_after_retry_after_and_then_succeeds(live_server_factory, token):
    server = live_server_factory(
        workers=1,
        threads=2,
        env={"OPENQUEUE_RATE_LIMIT_ENABLED": "true", "OPENQUEUE_RATE_LIMIT_QUEUE_STATS": "1,1"},
    )
    transport = CountingTransport()
    with Client(server.url, token, transport=transport) as client:
        assert client.queue_stats() == []
        assert client.queue_stats() == []  # refused once with 429, then answered
    assert transport.statuses == [200, 429, 200]

    with Client(server.url, token, retry=RetryPolicy(retries=0)) as impatient:
        with pytest.raises(RateLimitError) as limited:
            impatient.queue_stats()
    assert limited.value.detail == "Rate limit exceeded"
    assert limited.value.retry_after >= 1
