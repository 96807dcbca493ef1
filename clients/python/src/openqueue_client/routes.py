"""Every route of the OpenQueue API as a ``Call``: the request and how to read its answer.

docs/api.md in the server's repository documents each route; the names
here follow it. ``Client`` and ``AsyncClient`` send these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from openqueue_client._core import Call, segment
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
    format_time,
)

UNSET: Any = object()


def _json(response: httpx.Response) -> Any:
    return response.json()


def _nothing(response: httpx.Response) -> None:
    return None


# --- Probes ---------------------------------------------------------------------


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health", _json, idempotent=True)


def ready() -> Call[dict[str, Any]]:
    return Call("GET", "/ready", _json, idempotent=True)


def metrics() -> Call[str]:
    return Call("GET", "/metrics", lambda r: r.text, idempotent=True)


def provision(email: str, admin_secret: str, rotate: bool) -> Call[Provisioned]:
    def parse(response: httpx.Response) -> Provisioned:
        data = response.json()
        return Provisioned(token=data["token"], email=data["email"], created=data["created"])

    body: dict[str, Any] = {"email": email}
    if rotate:
        body["rotate"] = True
    return Call(
        "POST", "/admin/provision", parse, body=body, headers={"X-Admin-Secret": admin_secret}
    )


# --- Jobs -----------------------------------------------------------------------


def enqueue(
    queue_name: str,
    payload: Mapping[str, Any],
    *,
    priority: int,
    max_retries: int,
    run_at: datetime | str | None,
    idempotency_key: str | None,
) -> Call[Enqueued]:
    body: dict[str, Any] = {
        "queue_name": queue_name,
        "payload": dict(payload),
        "priority": priority,
        "max_retries": max_retries,
    }
    if run_at is not None:
        body["run_at"] = format_time(run_at)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
    return Call(
        "POST",
        "/jobs",
        lambda r: Enqueued(job_id=r.json()["job_id"], created=r.status_code == 201),
        body=body,
        headers=headers,
        idempotent=idempotency_key is not None,
    )


def enqueue_batch(jobs: Iterable[NewJob | Mapping[str, Any]]) -> Call[list[str]]:
    items = [job.to_json() if isinstance(job, NewJob) else dict(job) for job in jobs]
    for item in items:
        if "run_at" in item:
            item["run_at"] = format_time(item["run_at"])
    every_item_keyed = bool(items) and all(item.get("idempotency_key") for item in items)
    return Call(
        "POST",
        "/jobs/batch",
        lambda r: list(r.json()["job_ids"]),
        body={"jobs": items},
        idempotent=every_item_keyed,
    )


def get_status(job_id: str) -> Call[str]:
    return Call("GET", f"/jobs/{segment(job_id)}", lambda r: r.json()["status"], idempotent=True)


def get_job(job_id: str) -> Call[Job]:
    return Call(
        "GET",
        f"/jobs/{segment(job_id)}/detail",
        lambda r: Job.from_json(r.json()),
        idempotent=True,
    )


def list_jobs(queue_name: str | None, status: str | None, limit: int, offset: int) -> Call[JobList]:
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if queue_name is not None:
        params["queue_name"] = queue_name
    if status is not None:
        params["status"] = status
    return Call(
        "GET", "/jobs", lambda r: JobList.from_json(r.json()), params=params, idempotent=True
    )


def cancel(job_id: str) -> Call[None]:
    return Call("POST", f"/jobs/{segment(job_id)}/cancel", _nothing)


def get_attempts(job_id: str) -> Call[list[Attempt]]:
    return Call(
        "GET",
        f"/jobs/{segment(job_id)}/attempts",
        lambda r: [Attempt.from_json(item) for item in r.json()["attempts"]],
        idempotent=True,
    )


# --- Leases ---------------------------------------------------------------------


def lease(
    queue_name: str, worker_id: str, lease_seconds: int, wait_seconds: int
) -> Call[Lease | None]:
    def parse(response: httpx.Response) -> Lease | None:
        data = response.json()
        return None if data is None else Lease.from_json(data)

    return Call(
        "POST",
        f"/queues/{segment(queue_name)}/lease",
        parse,
        body={"worker_id": worker_id, "lease_seconds": lease_seconds, "wait_seconds": wait_seconds},
        holds_for=wait_seconds,
    )


def lease_batch(
    queue_name: str, worker_id: str, max_jobs: int, lease_seconds: int, wait_seconds: int
) -> Call[list[Lease]]:
    return Call(
        "POST",
        f"/queues/{segment(queue_name)}/lease/batch",
        lambda r: [Lease.from_json(item) for item in r.json()["leases"]],
        body={
            "worker_id": worker_id,
            "max_jobs": max_jobs,
            "lease_seconds": lease_seconds,
            "wait_seconds": wait_seconds,
        },
        holds_for=wait_seconds,
    )


def ack(job_id: str, lease_token: str, result: Mapping[str, Any] | None) -> Call[None]:
    body: dict[str, Any] = {"lease_token": lease_token}
    if result is not None:
        body["result"] = dict(result)
    return Call("POST", f"/jobs/{segment(job_id)}/ack", _nothing, body=body)


def nack(job_id: str, lease_token: str, error: str, retry: bool) -> Call[None]:
    body = {"lease_token": lease_token, "error": error, "retry": retry}
    return Call("POST", f"/jobs/{segment(job_id)}/nack", _nothing, body=body)


def heartbeat(job_id: str, lease_token: str, lease_seconds: int) -> Call[None]:
    body = {"lease_token": lease_token, "lease_seconds": lease_seconds}
    # Sending it twice only sets the same expiry again.
    return Call("POST", f"/jobs/{segment(job_id)}/heartbeat", _nothing, body=body, idempotent=True)


def _item_results(response: httpx.Response) -> list[ItemResult]:
    return [ItemResult.from_json(item) for item in response.json()["results"]]


def ack_batch(items: Iterable[Mapping[str, Any]]) -> Call[list[ItemResult]]:
    return Call("POST", "/leases/ack", _item_results, body={"items": [dict(i) for i in items]})


def nack_batch(items: Iterable[Mapping[str, Any]]) -> Call[list[ItemResult]]:
    return Call("POST", "/leases/nack", _item_results, body={"items": [dict(i) for i in items]})


# --- Queues ---------------------------------------------------------------------


def queue_stats() -> Call[list[QueueStats]]:
    return Call(
        "GET",
        "/dashboard/queues",
        lambda r: [QueueStats.from_json(item) for item in r.json()],
        idempotent=True,
    )


def list_queues() -> Call[list[Queue]]:
    return Call(
        "GET", "/queues", lambda r: [Queue.from_json(item) for item in r.json()], idempotent=True
    )


def get_queue(queue_name: str) -> Call[Queue]:
    return Call(
        "GET",
        f"/queues/{segment(queue_name)}",
        lambda r: Queue.from_json(r.json()),
        idempotent=True,
    )


def update_queue(queue_name: str, paused: Any, max_in_flight: Any) -> Call[Queue]:
    body: dict[str, Any] = {}
    if paused is not UNSET:
        body["paused"] = paused
    if max_in_flight is not UNSET:
        body["max_in_flight"] = max_in_flight
    return Call(
        "PATCH",
        f"/queues/{segment(queue_name)}",
        lambda r: Queue.from_json(r.json()),
        body=body,
        idempotent=True,
    )


def purge_queue(queue_name: str, status: str) -> Call[int]:
    return Call(
        "POST",
        f"/queues/{segment(queue_name)}/purge",
        lambda r: int(r.json()["deleted"]),
        body={"status": status},
        # Purging twice deletes what the first left (nothing, or new arrivals).
        idempotent=True,
    )


# --- Schedules ------------------------------------------------------------------


def put_schedule(
    name: str,
    *,
    queue_name: str,
    cron: str,
    timezone: str,
    payload: Any,
    priority: int,
    max_retries: int,
    enabled: bool,
) -> Call[Schedule]:
    body = {
        "queue_name": queue_name,
        "cron": cron,
        "timezone": timezone,
        "payload": payload,
        "priority": priority,
        "max_retries": max_retries,
        "enabled": enabled,
    }
    return Call(
        "PUT",
        f"/schedules/{segment(name)}",
        lambda r: Schedule.from_json(r.json()),
        body=body,
        idempotent=True,
    )


def list_schedules() -> Call[list[Schedule]]:
    return Call(
        "GET",
        "/schedules",
        lambda r: [Schedule.from_json(item) for item in r.json()],
        idempotent=True,
    )


def get_schedule(name: str) -> Call[Schedule]:
    return Call(
        "GET",
        f"/schedules/{segment(name)}",
        lambda r: Schedule.from_json(r.json()),
        idempotent=True,
    )


def delete_schedule(name: str) -> Call[None]:
    return Call("DELETE", f"/schedules/{segment(name)}", _nothing, idempotent=True)


def trigger_schedule(name: str) -> Call[str]:
    return Call("POST", f"/schedules/{segment(name)}/trigger", lambda r: r.json()["job_id"])
