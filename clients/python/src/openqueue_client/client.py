"""``Client``: one typed method per route of the OpenQueue API, over one httpx connection pool."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from openqueue_client import routes
from openqueue_client._core import BaseClient, Call, RetryPolicy
from openqueue_client.models import (
    Attempt,
    Enqueued,
    ItemResult,
    Job,
    JobList,
    Lease,
    NewJob,
    Provisioned,
    Queue,
    QueueStats,
    Schedule,
)
from openqueue_client.routes import UNSET

T = TypeVar("T")


class Client(BaseClient):
    """A thread-safe client for one OpenQueue server and one API token.

    ``timeout`` is per request, in seconds; a long-poll lease gets its
    ``wait_seconds`` on top. ``retry`` decides what is tried again
    (``RetryPolicy``: 429s, and connection errors on idempotent calls).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout=timeout, retry=retry, headers=headers)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        """Send one request, retrying as ``self.retry`` allows, and read its answer."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(**self._request_args(call))
            except httpx.TransportError as error:
                delay = self.retry.after_error(attempt, error, call)
                if delay is None:
                    raise self._transport_error(error, call) from error
                time.sleep(delay)
                continue
            delay = self.retry.after_response(attempt, response)
            if delay is None:
                return self._result(call, response)
            time.sleep(delay)

    # --- Probes and provisioning ----------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.send(routes.health())

    def ready(self) -> dict[str, Any]:
        return self.send(routes.ready())

    def metrics(self) -> str:
        return self.send(routes.metrics())

    def provision(self, email: str, *, admin_secret: str, rotate: bool = False) -> Provisioned:
        """Create the user if needed and issue a token (``ADMIN_SECRET`` on the server)."""
        return self.send(routes.provision(email, admin_secret, rotate))

    # --- Jobs -----------------------------------------------------------------

    def enqueue(
        self,
        queue_name: str,
        payload: Mapping[str, Any],
        *,
        priority: int = 0,
        max_retries: int = 3,
        run_at: datetime | str | None = None,
        idempotency_key: str | None = None,
    ) -> Enqueued:
        """Add a job; with ``idempotency_key`` a repeat returns the first job (not ``created``)."""
        return self.send(
            routes.enqueue(
                queue_name,
                payload,
                priority=priority,
                max_retries=max_retries,
                run_at=run_at,
                idempotency_key=idempotency_key,
            )
        )

    def enqueue_batch(self, jobs: Iterable[NewJob | Mapping[str, Any]]) -> list[str]:
        """Add several jobs atomically; the ids come back in input order."""
        return self.send(routes.enqueue_batch(jobs))

    def get_status(self, job_id: str) -> str:
        return self.send(routes.get_status(job_id))

    def get_job(self, job_id: str) -> Job:
        return self.send(routes.get_job(job_id))

    def list_jobs(
        self,
        *,
        queue_name: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JobList:
        return self.send(routes.list_jobs(queue_name, status, limit, offset))

    def cancel(self, job_id: str) -> None:
        """Cancel a pending job; ``NotFoundError`` if it is not yours or not pending."""
        self.send(routes.cancel(job_id))

    def get_attempts(self, job_id: str) -> list[Attempt]:
        return self.send(routes.get_attempts(job_id))

    # --- Leases ---------------------------------------------------------------

    def lease(
        self,
        queue_name: str,
        *,
        worker_id: str,
        lease_seconds: int = 30,
        wait_seconds: int = 0,
    ) -> Lease | None:
        """Lease the next due job, waiting up to ``wait_seconds`` (0–20) for one; None if none."""
        return self.send(routes.lease(queue_name, worker_id, lease_seconds, wait_seconds))

    def lease_batch(
        self,
        queue_name: str,
        *,
        worker_id: str,
        max_jobs: int = 10,
        lease_seconds: int = 30,
        wait_seconds: int = 0,
    ) -> list[Lease]:
        return self.send(
            routes.lease_batch(queue_name, worker_id, max_jobs, lease_seconds, wait_seconds)
        )

    def ack(self, job_id: str, lease_token: str, result: Mapping[str, Any] | None = None) -> None:
        self.send(routes.ack(job_id, lease_token, result))

    def nack(self, job_id: str, lease_token: str, error: str, *, retry: bool = True) -> None:
        self.send(routes.nack(job_id, lease_token, error, retry))

    def heartbeat(self, job_id: str, lease_token: str, *, lease_seconds: int = 30) -> None:
        """Extend a lease to ``lease_seconds`` from now."""
        self.send(routes.heartbeat(job_id, lease_token, lease_seconds))

    def ack_batch(self, items: Iterable[Mapping[str, Any]]) -> list[ItemResult]:
        """Items ``{"job_id", "lease_token", "result"?}``; one outcome per item, in order."""
        return self.send(routes.ack_batch(items))

    def nack_batch(self, items: Iterable[Mapping[str, Any]]) -> list[ItemResult]:
        """Items ``{"job_id", "lease_token", "error", "retry"?}``; one outcome per item."""
        return self.send(routes.nack_batch(items))

    # --- Queues ---------------------------------------------------------------

    def queue_stats(self) -> list[QueueStats]:
        """``GET /dashboard/queues``: every queue's jobs counted by status."""
        return self.send(routes.queue_stats())

    def list_queues(self) -> list[Queue]:
        return self.send(routes.list_queues())

    def get_queue(self, queue_name: str) -> Queue:
        return self.send(routes.get_queue(queue_name))

    def update_queue(
        self, queue_name: str, *, paused: bool = UNSET, max_in_flight: int | None = UNSET
    ) -> Queue:
        """Pause/resume and set the in-flight limit (None: no limit); omitted keys stay."""
        return self.send(routes.update_queue(queue_name, paused, max_in_flight))

    def pause_queue(self, queue_name: str) -> Queue:
        return self.update_queue(queue_name, paused=True)

    def resume_queue(self, queue_name: str) -> Queue:
        return self.update_queue(queue_name, paused=False)

    def purge_queue(self, queue_name: str, *, status: str) -> int:
        """Delete the queue's ``pending`` or ``dead`` jobs; returns how many."""
        return self.send(routes.purge_queue(queue_name, status))

    # --- Schedules ------------------------------------------------------------

    def put_schedule(
        self,
        name: str,
        *,
        queue_name: str,
        cron: str,
        timezone: str = "UTC",
        payload: Any = None,
        priority: int = 0,
        max_retries: int = 3,
        enabled: bool = True,
    ) -> Schedule:
        """Create or replace a cron schedule (declarative: safe to send on every deploy)."""
        return self.send(
            routes.put_schedule(
                name,
                queue_name=queue_name,
                cron=cron,
                timezone=timezone,
                payload={} if payload is None else payload,
                priority=priority,
                max_retries=max_retries,
                enabled=enabled,
            )
        )

    def list_schedules(self) -> list[Schedule]:
        return self.send(routes.list_schedules())

    def get_schedule(self, name: str) -> Schedule:
        return self.send(routes.get_schedule(name))

    def delete_schedule(self, name: str) -> None:
        self.send(routes.delete_schedule(name))

    def trigger_schedule(self, name: str) -> str:
        """Enqueue one job of the schedule now; returns its id."""
        return self.send(routes.trigger_schedule(name))
