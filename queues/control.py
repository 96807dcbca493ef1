"""Queue control: a tenant's queues, their numbers, pause and resume, max_in_flight, purge.

A queue needs no creation: it exists while it has jobs, a schedule or
settings, and its ``QueueSettings`` row appears on the first change. What
the settings do to leases is a rule of the lease itself (queues/services.py,
``_lease``): a paused queue leases nothing, one with ``max_in_flight`` at
most what is left of it. This module reads and changes them (API, console,
admin) and wakes the queue's waiting long-polls when a change may let them
lease: resuming, or a limit raised or removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Aggregate, Count, Min, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from queues import services
from queues.models import Job, JobStatus, QueueSettings
from queues.store import get_store
from queues.store.spec import Cmp, Col, Const

logger = logging.getLogger("openqueue.queues")

UNCHANGED: Any = object()
PURGEABLE = (JobStatus.PENDING, JobStatus.DEAD)


@dataclass(frozen=True)
class QueueInfo:
    """The queue object of ``GET /queues/{name}`` (contract A.4)."""

    queue_name: str
    paused: bool
    max_in_flight: int | None
    # Pending and due now.
    ready: int
    # Pending with run_at in the future: scheduled, or waiting out a backoff.
    scheduled: int
    # Processing with a valid lease (what max_in_flight counts).
    in_flight: int
    dead: int
    # How late the queue is: now minus the earliest run_at of a ready job.
    oldest_ready_age_seconds: float | None
    # Every processing job, expired leases included: the console's count of
    # the status (not on the wire).
    processing: int = 0


def _live_counts(jobs: QuerySet[Job], now: datetime, by_queue: bool) -> dict[str, dict[str, Any]]:
    """The live numbers of ``jobs``, per queue name (``by_queue``) or in total (key "").

    One query per live status, each answered from an index alone on
    PostgreSQL: pending jobs from the lease index (which carries run_at),
    processing ones from the expiry index (locked_until), dead ones from
    (owner, queue, status) or (status, id). Completed and cancelled jobs,
    most of the table, are never read: one query over the three statuses
    at once reads the table itself (0.25 s for a tenant with 550,000 jobs,
    docs/benchmarks.md).
    """
    store = get_store()
    # The rules' parts without the status, which each query fixes already: a
    # filter on the status column, or counting ids, would send every row to
    # the table. COUNT(*) reads no column; a filtered count needs one, and
    # queue_name is in each of these indexes but (status, id).
    due = store.condition(services.RUN_AT_REACHED, now=now)
    parts: list[tuple[str, dict[str, Aggregate]]] = [
        (
            JobStatus.PENDING,
            {
                "ready": Count("queue_name", filter=due),
                "scheduled": Count("queue_name", filter=~due),
                "oldest_ready": Min("run_at", filter=due),
            },
        ),
        (
            JobStatus.PROCESSING,
            {
                "processing": Count("*"),
                "in_flight": Count(
                    "queue_name", filter=store.condition(services.LEASE_VALID, now=now)
                ),
            },
        ),
        (JobStatus.DEAD, {"dead": Count("*")}),
    ]
    numbers: dict[str, dict[str, Any]] = {}
    for status, counts in parts:
        of_status = jobs.filter(status=status).order_by()
        if by_queue:
            rows = list(of_status.values("queue_name").annotate(**counts))
        else:
            rows = [{"queue_name": "", **of_status.aggregate(**counts)}]
        for row in rows:
            numbers.setdefault(row.pop("queue_name"), {}).update(row)
    return numbers


def in_flight_of_each(settings: QuerySet[QueueSettings], now: datetime) -> QuerySet[QueueSettings]:
    """``settings`` with each queue's in-flight jobs as ``in_flight_now``.

    One subquery per row the page shows, each an index-only range of the
    expiry index (owner, queue, locked_until), instead of a ``queue_info``
    per row (four queries, one of them over the queue's whole backlog).
    """
    valid = get_store().condition(services.LEASE_VALID, now=now)
    leased = (
        Job.objects.filter(owner=OuterRef("owner"), queue_name=OuterRef("queue_name"))
        .filter(status=JobStatus.PROCESSING)
        .filter(valid)
        .order_by()
        .values("owner")
        .annotate(n=Count("*"))
        .values("n")
    )
    return settings.annotate(in_flight_now=Coalesce(Subquery(leased), 0))


def _numbers(owner: User, names: list[str], now: datetime) -> dict[str, dict[str, Any]]:
    """The live counts of the queues ``names`` of ``owner``.

    Naming the queues (``queue_name = ANY(...)``) makes every index scan
    one range per queue, instead of every entry of the tenant.
    """
    if not names:
        return {}
    return _live_counts(Job.objects.filter(owner=owner, queue_name__in=names), now, by_queue=True)


def _info(
    name: str, numbers: dict[str, Any] | None, row: QueueSettings | None, now: datetime
) -> QueueInfo:
    numbers = numbers or {}
    oldest = numbers.get("oldest_ready")
    return QueueInfo(
        queue_name=name,
        paused=bool(row and row.paused),
        max_in_flight=row.max_in_flight if row else None,
        ready=numbers.get("ready", 0),
        scheduled=numbers.get("scheduled", 0),
        in_flight=numbers.get("in_flight", 0),
        dead=numbers.get("dead", 0),
        processing=numbers.get("processing", 0),
        oldest_ready_age_seconds=None
        if oldest is None
        else max((now - oldest).total_seconds(), 0.0),
    )


def queue_info(*, owner: User, queue_name: str, now: datetime | None = None) -> QueueInfo:
    """One queue of ``owner``: zeros for a queue with nothing in it, never an error."""
    now = now or timezone.now()
    row = QueueSettings.objects.filter(owner=owner, queue_name=queue_name).first()
    numbers = _numbers(owner, [queue_name], now).get(queue_name)
    return _info(queue_name, numbers, row, now)


def list_queues(
    *, owner: User, also: Iterable[str] = (), now: datetime | None = None
) -> list[QueueInfo]:
    """Every queue of ``owner`` that has jobs or settings, plus ``also`` (schedules'), by name."""
    now = now or timezone.now()
    rows = {row.queue_name: row for row in QueueSettings.objects.filter(owner=owner)}
    with_jobs = get_store().queue_names(Job.objects.db, None, owner_id=owner.pk)
    names = sorted({*with_jobs, *rows, *also})
    numbers = _numbers(owner, names, now)
    return [_info(name, numbers.get(name), rows.get(name), now) for name in names]


def change_queue(
    *,
    owner: User,
    queue_name: str,
    paused: bool = UNCHANGED,
    max_in_flight: int | None = UNCHANGED,
    actor: str,
    now: datetime | None = None,
) -> QueueInfo:
    """Pause or resume the queue and/or set its ``max_in_flight`` (None: no limit).

    Creates the settings row on the first change. Each change is one JSON
    log event (``queue_paused``, ``queue_resumed``, ``queue_limit_changed``)
    naming ``actor`` ("api", "console", "admin: <user>"). A change that may
    let waiting long-polls lease wakes them, when it commits.
    """
    now = now or timezone.now()
    with transaction.atomic():
        row, _ = QueueSettings.objects.select_for_update().get_or_create(
            owner=owner, queue_name=queue_name
        )
        before = (row.paused, row.max_in_flight)
        if paused is not UNCHANGED:
            row.paused = paused
        if max_in_flight is not UNCHANGED:
            row.max_in_flight = max_in_flight
        if (row.paused, row.max_in_flight) != before:
            row.updated_at = now
            row.save(update_fields=["paused", "max_in_flight", "updated_at"])
            _log_changes(owner, queue_name, before, row, actor)
            if _may_lease_more(before, row):
                get_store().wake_queue(owner.pk, queue_name)
    return queue_info(owner=owner, queue_name=queue_name, now=now)


def _may_lease_more(before: tuple[bool, int | None], row: QueueSettings) -> bool:
    was_paused, was_limit = before
    if row.paused:
        return False
    if was_paused:
        return True
    return was_limit is not None and (row.max_in_flight is None or row.max_in_flight > was_limit)


def _log_changes(
    owner: User, queue_name: str, before: tuple[bool, int | None], row: QueueSettings, actor: str
) -> None:
    fields = {"tenant_id": owner.pk, "queue_name": queue_name, "actor": actor}
    if row.paused != before[0]:
        logger.info("queue_paused" if row.paused else "queue_resumed", extra=fields)
    if row.max_in_flight != before[1]:
        logger.info(
            "queue_limit_changed",
            extra={**fields, "max_in_flight": row.max_in_flight, "previous": before[1]},
        )


def change_queues(
    rows: QuerySet[QueueSettings],
    *,
    paused: bool = UNCHANGED,
    max_in_flight: int | None = UNCHANGED,
    actor: str,
) -> int:
    """``change_queue`` for settings rows an operator selected (admin); returns how many changed."""
    changed = 0
    for row in rows.select_related("owner"):
        info = queue_info(owner=row.owner, queue_name=row.queue_name)
        after = change_queue(
            owner=row.owner,
            queue_name=row.queue_name,
            paused=paused,
            max_in_flight=max_in_flight,
            actor=actor,
        )
        changed += (info.paused, info.max_in_flight) != (after.paused, after.max_in_flight)
    return changed


def purge_queue(
    *,
    owner: User,
    queue_name: str,
    status: str,
    actor: str,
    now: datetime | None = None,
    batch_size: int = services.DEFAULT_BATCH_SIZE,
) -> int:
    """Delete the queue's jobs in ``status`` (pending or dead), a bounded batch at a time.

    Each batch re-checks the status, so a pending job leased meanwhile
    stays; rows another transaction holds are skipped (SKIP LOCKED), not
    waited for. Attempts go with their jobs.
    """
    if status not in PURGEABLE:
        raise ValueError(f"only pending or dead jobs can be purged, not {status!r}")
    now = now or timezone.now()
    jobs = Job.objects.filter(owner=owner, queue_name=queue_name, status=status).order_by("pk")
    deleted = get_store().delete_locked(
        jobs, guard=Cmp(Col("status"), "=", Const(status)), now=now, batch_size=batch_size
    )
    logger.info(
        "queue_purged",
        extra={
            "tenant_id": owner.pk,
            "queue_name": queue_name,
            "status": status,
            "deleted": deleted,
            "actor": actor,
        },
    )
    return deleted


def health_numbers(*, now: datetime) -> dict[str, Any]:
    """Every tenant's jobs by state, for the admin's front page (from indexes alone)."""
    numbers = _live_counts(Job.objects.all(), now, by_queue=False)[""]
    oldest = numbers["oldest_ready"]
    return {
        "ready": numbers["ready"],
        "scheduled": numbers["scheduled"],
        "in_flight": numbers["in_flight"],
        "dead": numbers["dead"],
        "oldest_ready_age_seconds": None
        if oldest is None
        else max((now - oldest).total_seconds(), 0.0),
        "paused_queues": QueueSettings.objects.filter(paused=True).count(),
    }
