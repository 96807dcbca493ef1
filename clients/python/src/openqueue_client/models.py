"""The API's JSON objects as small typed, read-only values.

Each ``from_json`` reads exactly the keys the server documents
(docs/api.md) and turns timestamps into aware UTC datetimes. Keys a newer
server adds are ignored, so an older client keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


def parse_time(value: str | None) -> datetime | None:
    """The server's ``2026-11-28T00:27:47.401426Z`` as an aware UTC datetime."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:  # the original server's naive UTC
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def format_time(value: datetime | str | None) -> str | None:
    """A ``run_at`` for the server: aware datetimes as ISO 8601; naive ones are UTC."""
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


@dataclass(frozen=True)
class Job:
    id: str
    queue_name: str
    status: str
    priority: int
    payload: Any
    result: Any
    error_text: str | None
    retry_count: int
    max_retries: int
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    schedule_name: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(
            id=data["id"],
            queue_name=data["queue_name"],
            status=data["status"],
            priority=data.get("priority", 0),
            payload=data.get("payload"),
            result=data.get("result"),
            error_text=data.get("error_text"),
            retry_count=data.get("retry_count", 0),
            max_retries=data.get("max_retries", 0),
            created_at=parse_time(data.get("created_at")),
            updated_at=parse_time(data.get("updated_at")),
            started_at=parse_time(data.get("started_at")),
            finished_at=parse_time(data.get("finished_at")),
            schedule_name=data.get("schedule_name"),
        )

    @property
    def attempt(self) -> int:
        """Which attempt a leased job is on: 1 for the first lease."""
        return self.retry_count + 1


@dataclass(frozen=True)
class Lease:
    """A leased job: finish it with ``lease_token`` before ``lease_expires_at``."""

    job: Job
    lease_token: str
    lease_expires_at: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lease:
        return cls(
            job=Job.from_json(data["job"]),
            lease_token=data["lease_token"],
            lease_expires_at=parse_time(data.get("lease_expires_at")),
        )

    @property
    def job_id(self) -> str:
        return self.job.id


@dataclass(frozen=True)
class JobList:
    items: list[Job]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobList:
        return cls(
            items=[Job.from_json(item) for item in data["items"]],
            total=data["total"],
            limit=data["limit"],
            offset=data["offset"],
        )


@dataclass(frozen=True)
class Enqueued:
    """What ``enqueue`` learned: the job's id, and whether this call created it.

    ``created`` is False when an ``Idempotency-Key`` matched an earlier job.
    """

    job_id: str
    created: bool


@dataclass(frozen=True)
class QueueStats:
    """One row of ``GET /dashboard/queues``: a queue's jobs counted by status."""

    queue_name: str
    pending: int
    processing: int
    completed: int
    failed: int
    cancelled: int
    dead: int
    total: int
    oldest_pending_created_at: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueueStats:
        return cls(
            queue_name=data["queue_name"],
            pending=data.get("pending", 0),
            processing=data.get("processing", 0),
            completed=data.get("completed", 0),
            failed=data.get("failed", 0),
            cancelled=data.get("cancelled", 0),
            dead=data.get("dead", 0),
            total=data.get("total", 0),
            oldest_pending_created_at=parse_time(data.get("oldest_pending_created_at")),
        )


@dataclass(frozen=True)
class Queue:
    """A queue's control settings and live numbers (``GET /queues/{name}``)."""

    queue_name: str
    paused: bool
    max_in_flight: int | None
    ready: int
    scheduled: int
    in_flight: int
    dead: int
    oldest_ready_age_seconds: float | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Queue:
        return cls(
            queue_name=data["queue_name"],
            paused=data["paused"],
            max_in_flight=data.get("max_in_flight"),
            ready=data.get("ready", 0),
            scheduled=data.get("scheduled", 0),
            in_flight=data.get("in_flight", 0),
            dead=data.get("dead", 0),
            oldest_ready_age_seconds=data.get("oldest_ready_age_seconds"),
        )


@dataclass(frozen=True)
class Attempt:
    attempt: int
    worker_id: str | None
    leased_at: datetime | None
    lease_expires_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error: str | None
    duration_ms: int | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        return cls(
            attempt=data["attempt"],
            worker_id=data.get("worker_id"),
            leased_at=parse_time(data.get("leased_at")),
            lease_expires_at=parse_time(data.get("lease_expires_at")),
            finished_at=parse_time(data.get("finished_at")),
            outcome=data["outcome"],
            error=data.get("error"),
            duration_ms=data.get("duration_ms"),
        )


@dataclass(frozen=True)
class Schedule:
    name: str
    queue_name: str
    cron: str
    timezone: str
    payload: Any
    priority: int
    max_retries: int
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        return cls(
            name=data["name"],
            queue_name=data["queue_name"],
            cron=data["cron"],
            timezone=data.get("timezone", "UTC"),
            payload=data.get("payload"),
            priority=data.get("priority", 0),
            max_retries=data.get("max_retries", 3),
            enabled=data.get("enabled", True),
            next_run_at=parse_time(data.get("next_run_at")),
            last_run_at=parse_time(data.get("last_run_at")),
            created_at=parse_time(data.get("created_at")),
            updated_at=parse_time(data.get("updated_at")),
        )


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome in a batch ack or nack: a status, or an error."""

    job_id: str
    status: str | None = None
    error_status: int | None = None
    error_detail: Any = None

    @property
    def ok(self) -> bool:
        return self.error_status is None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ItemResult:
        error = data.get("error")
        if error:
            return cls(
                job_id=data["job_id"],
                error_status=error.get("status"),
                error_detail=error.get("detail"),
            )
        return cls(job_id=data["job_id"], status=data.get("status"))


@dataclass(frozen=True)
class Provisioned:
    token: str
    email: str
    created: bool


@dataclass(frozen=True)
class NewJob:
    """One job of ``enqueue_batch``; plain dicts with the same keys work too."""

    queue_name: str
    payload: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    max_retries: int = 3
    run_at: datetime | str | None = None
    idempotency_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "queue_name": self.queue_name,
            "payload": self.payload,
            "priority": self.priority,
            "max_retries": self.max_retries,
        }
        if self.run_at is not None:
            body["run_at"] = format_time(self.run_at)
        if self.idempotency_key is not None:
            body["idempotency_key"] = self.idempotency_key
        return body
