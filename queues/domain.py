"""The values the transitions of queues/services.py take and return, and their errors.

The API maps the errors to status codes (api/errors.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from queues.models import Job


class JobNotFound(Exception):
    """No job with this id belongs to the caller."""


class JobNotCancellable(Exception):
    """The job does not exist for the caller, or is not pending."""


class LeaseMismatch(Exception):
    """Unknown job, not processing, or a lease token that is not the current one."""


@dataclass(frozen=True)
class NewJob:
    queue_name: str
    payload: Any
    priority: int = 0
    max_retries: int = 3
    run_at: datetime | None = None
    # The schedule that enqueues it (schedules/services.py); None for other jobs.
    schedule_name: str | None = None

    def as_item(self, job_id: uuid.UUID) -> dict[str, Any]:
        """The values of queues/services.NEW_JOB's ``Item`` fields for this job."""
        return {
            "id": job_id,
            "queue_name": self.queue_name,
            "payload": self.payload,
            "priority": self.priority,
            "max_retries": self.max_retries,
            "run_at": self.run_at,
            "schedule_name": self.schedule_name,
        }


@dataclass(frozen=True)
class Enqueued:
    job: Job
    # False when an earlier request with the same idempotency key created it.
    created: bool


@dataclass(frozen=True)
class Lease:
    job: Job
    lease_token: uuid.UUID
    lease_expires_at: datetime
    # The job's previous lease had expired: this lease recovers it.
    recovered: bool = False


# Why a lease got no job although the queue may hold some: its settings.
REFUSED_PAUSED = "paused"
REFUSED_LIMITED = "max_in_flight"


@dataclass(frozen=True)
class LeaseRound:
    """One lease attempt's leases and, when it got none because of them, the queue's settings.

    Truthy when it leased something: long-poll waits while it is not
    (queues/longpoll.py), and ``blocked`` tells it what to wait for.
    """

    leases: list[Lease]
    blocked: str | None = None

    def __bool__(self) -> bool:
        return bool(self.leases)


@dataclass(frozen=True)
class Finished:
    """What a transition of one job changed (for the answer, metrics and logs)."""

    job_id: uuid.UUID
    queue_name: str
    status: str
    started_at: datetime | None
    dead_reason: str | None = None


@dataclass(frozen=True)
class AckItem:
    job_id: uuid.UUID
    lease_token: str
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class NackItem:
    job_id: uuid.UUID
    lease_token: str
    error: str
    retry: bool = True


@dataclass(frozen=True)
class Reaped:
    requeued: int
    buried: int


def finished(row: Mapping[str, Any]) -> Finished:
    """A ``Finished`` from a guarded update's returned row (queues/services.REPORTED)."""
    return Finished(
        job_id=row["id"],
        queue_name=row["queue_name"],
        status=row["status"],
        started_at=row["started_at"],
        dead_reason=row["dead_reason"],
    )
