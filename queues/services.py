"""Every state transition of a job, in one place.

::

                 enqueue
                    |
                    v        lease                 ack
    cancel <--- pending ----------> processing ----------> completed
                 ^   ^                |  |  |
                 |   |  nack, retries |  |  | nack, no retries left or retry=false
                 |   +----------------+  |  +--------------------------------> dead (the DLQ)
                 |    (after backoff)    |                                       ^
                 |                       | lease expired: re-leased by lease_job |
                 |                       | or returned to pending by the reaper, |
                 |                       | lease_lost_count + 1; once it has     |
                 |                       | expired more than max_retries times --+
                 |                                                               |
                 +-- requeue_jobs (operators): dead / failed / cancelled / completed
                     bury_jobs (operators): pending / processing / failed ------+

Rules every function here follows:

- Ack, nack, heartbeat and cancel are one guarded UPDATE each: "update where
  id, owner, status (and lease token) match". The row count decides success,
  never a value read earlier, so two racing callers cannot both win.
- Leasing is a read-then-write, so it locks the candidate row with
  ``select_for_update(skip_locked=True)`` inside a short transaction:
  concurrent leasers skip each other's rows instead of waiting. SQLite
  ignores SKIP LOCKED; there the IMMEDIATE transaction (settings.py)
  serializes writers, which gives the same exclusivity.
- ``now`` is injectable so tests move time instead of sleeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from queues import metrics
from queues.models import FINISHED_STATUSES, DeadReason, Job, JobStatus

MAX_BACKOFF_SECONDS = 300


class JobNotFound(Exception):
    """No job with this id belongs to the caller."""


class JobNotCancellable(Exception):
    """The job does not exist for the caller, or is not pending."""


class LeaseMismatch(Exception):
    """Unknown job, not processing, or a lease token that is not the current one."""


@dataclass(frozen=True)
class NewJob:
    queue_name: str
    payload: dict[str, Any]
    priority: int = 0
    max_retries: int = 3
    run_at: datetime | None = None


@dataclass(frozen=True)
class Lease:
    job: Job
    lease_token: uuid.UUID
    lease_expires_at: datetime
    # The job's previous lease had expired: this lease recovers it.
    recovered: bool = False


def backoff_seconds(retry_count: int) -> int:
    """Delay before retry number ``retry_count + 1``: 1, 2, 4, ... capped at 300 s."""
    return MAX_BACKOFF_SECONDS if retry_count >= 9 else min(2**retry_count, MAX_BACKOFF_SECONDS)


def enqueue_jobs(*, owner: User, jobs: list[NewJob], now: datetime | None = None) -> list[Job]:
    """Create ``jobs`` for ``owner`` atomically: all of them or none."""
    now = now or timezone.now()
    rows = [
        Job(
            owner=owner,
            queue_name=new.queue_name,
            payload=new.payload,
            priority=new.priority,
            max_retries=new.max_retries,
            run_at=new.run_at or now,
            status=JobStatus.PENDING,
            created_at=now,
            updated_at=now,
        )
        for new in jobs
    ]
    with transaction.atomic():
        Job.objects.bulk_create(rows)
    metrics.record_enqueued(job.queue_name for job in rows)
    return rows


def lease_job(
    *,
    owner: User,
    queue_name: str,
    worker_id: str,
    lease_seconds: int,
    now: datetime | None = None,
) -> Lease | None:
    """Lease the next job of ``queue_name``, or return None when none is due.

    Order: priority DESC, then created_at ASC. A processing job whose lease
    has expired competes like a pending one; re-leasing it counts
    ``lease_lost_count``. A job whose lease has expired more than
    ``max_retries`` times is a poison job (it keeps killing its workers): it
    goes to the DLQ with ``dead_reason = "lease_expired"`` and the next
    candidate is tried.
    """
    now = now or timezone.now()
    queue = Job.objects.for_owner(owner).in_queue(queue_name)
    # Two probes, each served in order by its own partial index, instead of
    # one OR query that PostgreSQL answers by sorting the whole backlog. The
    # loser stays locked until this short transaction commits.
    probes = [queue.due(now), queue.lease_expired(now)]
    buried: list[Job] = []
    lease: Lease | None = None
    with transaction.atomic():
        while True:
            found = [
                job
                for probe in probes
                if (job := probe.in_lease_order().select_for_update(skip_locked=True).first())
            ]
            if not found:
                break
            job = min(found, key=lambda j: (-j.priority, j.created_at, j.id))
            recovered = job.status == JobStatus.PROCESSING
            if recovered and job.lease_lost_count >= job.max_retries:
                _bury(job, reason=DeadReason.LEASE_EXPIRED, now=now)
                buried.append(job)
                continue
            job.status = JobStatus.PROCESSING
            job.lease_token = uuid.uuid4()
            job.locked_by = worker_id
            job.locked_until = now + timedelta(seconds=lease_seconds)
            job.started_at = job.started_at or now
            job.updated_at = now
            if recovered:
                job.lease_lost_count += 1
            job.save(
                update_fields=[
                    "status",
                    "lease_token",
                    "locked_by",
                    "locked_until",
                    "started_at",
                    "updated_at",
                    "lease_lost_count",
                ]
            )
            lease = Lease(
                job=job,
                lease_token=job.lease_token,
                lease_expires_at=job.locked_until,
                recovered=recovered,
            )
            break
    # Recorded once the transaction is over, so a rolled-back lease is not counted.
    for dead in buried:
        metrics.record_dead(
            job_id=dead.id,
            queue_name=dead.queue_name,
            reason=DeadReason.LEASE_EXPIRED,
            started_at=dead.started_at,
            now=now,
        )
    if lease is None:
        metrics.record_lease_empty(queue_name)
    else:
        metrics.record_leased(
            job_id=lease.job.id,
            queue_name=lease.job.queue_name,
            recovered=lease.recovered,
            lease_lost_count=lease.job.lease_lost_count,
            lease_expires_at=lease.lease_expires_at,
        )
    return lease


def _bury(job: Job, *, reason: str, now: datetime) -> None:
    """Move a locked, expired job to the DLQ (caller holds the row lock)."""
    job.status = JobStatus.DEAD
    job.dead_reason = reason
    job.dead_at = job.finished_at = job.updated_at = now
    job.error_text = job.error_text or "lease_expired"
    job.lease_lost_count += 1
    job.locked_until = job.locked_by = job.lease_token = None
    job.save(
        update_fields=[
            "status",
            "dead_reason",
            "dead_at",
            "finished_at",
            "updated_at",
            "error_text",
            "lease_lost_count",
            "locked_until",
            "locked_by",
            "lease_token",
        ]
    )


def _leased(owner: User, job_id: uuid.UUID, lease_token: str) -> Any:
    """The guard shared by ack, nack and heartbeat."""
    try:
        token = uuid.UUID(lease_token)
    except (ValueError, TypeError, AttributeError):
        # Not UUID-shaped: cannot be anyone's lease (409, never 422).
        raise LeaseMismatch() from None
    return Job.objects.for_owner(owner).filter(
        pk=job_id, status=JobStatus.PROCESSING, lease_token=token
    )


@dataclass(frozen=True)
class Finished:
    """What a transition of one leased job changed (for metrics and logs)."""

    job_id: uuid.UUID
    queue_name: str
    status: str
    started_at: datetime | None
    dead_reason: str | None = None


_REPORTED = ["id", "queue_name", "status", "started_at", "dead_reason"]


def _one(rows: list[dict[str, Any]], error: type[Exception]) -> Finished:
    if len(rows) != 1:
        raise error()
    row = rows[0]
    return Finished(
        job_id=row["id"],
        queue_name=row["queue_name"],
        status=row["status"],
        started_at=row["started_at"],
        dead_reason=row["dead_reason"],
    )


def ack_job(
    *,
    owner: User,
    job_id: uuid.UUID,
    lease_token: str,
    result: dict[str, Any] | None,
    now: datetime | None = None,
) -> Finished:
    """Complete a leased job. Raises LeaseMismatch unless the lease is current."""
    now = now or timezone.now()
    rows = _leased(owner, job_id, lease_token).update_returning(
        _REPORTED,
        status=JobStatus.COMPLETED,
        result=result,
        error_text=None,
        updated_at=now,
        finished_at=now,
        locked_until=None,
        locked_by=None,
        lease_token=None,
    )
    done = _one(rows, LeaseMismatch)
    metrics.record_acked(
        job_id=done.job_id, queue_name=done.queue_name, started_at=done.started_at, now=now
    )
    return done


def nack_job(
    *,
    owner: User,
    job_id: uuid.UUID,
    lease_token: str,
    error: str,
    retry: bool,
    now: datetime | None = None,
) -> Finished:
    """Fail a leased job: back to pending after a backoff, or to the DLQ.

    It is retried when ``retry`` is true and ``retry_count < max_retries``;
    the delay is ``min(2**retry_count, 300)`` seconds. Otherwise it goes dead
    with ``max_retries_exhausted`` (no retries left) or ``retry_disabled``.
    One UPDATE decides both branches from the row's own values; the
    returned status says which one it took.
    """
    now = now or timezone.now()
    retries_left = Q(retry_count__lt=F("max_retries"))

    def if_requeued(then: Any, otherwise: Any) -> Any:
        return Case(When(retries_left, then=then), default=otherwise) if retry else otherwise

    delay = Case(
        *(
            When(retry_count=n, then=Value(now + timedelta(seconds=backoff_seconds(n))))
            for n in range(9)
        ),
        default=Value(now + timedelta(seconds=MAX_BACKOFF_SECONDS)),
    )
    rows = _leased(owner, job_id, lease_token).update_returning(
        _REPORTED,
        status=if_requeued(Value(JobStatus.PENDING), Value(JobStatus.DEAD)),
        retry_count=if_requeued(F("retry_count") + 1, F("retry_count")),
        run_at=if_requeued(delay, F("run_at")),
        dead_reason=if_requeued(
            Value(None),
            Case(
                When(retries_left, then=Value(DeadReason.RETRY_DISABLED)),
                default=Value(DeadReason.MAX_RETRIES_EXHAUSTED),
            ),
        ),
        dead_at=if_requeued(Value(None), Value(now)),
        finished_at=if_requeued(Value(None), Value(now)),
        error_text=error,
        updated_at=now,
        locked_until=None,
        locked_by=None,
        lease_token=None,
    )
    done = _one(rows, LeaseMismatch)
    metrics.record_nacked(
        job_id=done.job_id,
        queue_name=done.queue_name,
        dead=done.status == JobStatus.DEAD,
        dead_reason=done.dead_reason,
        started_at=done.started_at,
        now=now,
    )
    return done


def heartbeat_job(
    *,
    owner: User,
    job_id: uuid.UUID,
    lease_token: str,
    lease_seconds: int,
    now: datetime | None = None,
) -> datetime:
    """Extend a lease to ``now + lease_seconds`` (from now, not from the old expiry)."""
    now = now or timezone.now()
    locked_until = now + timedelta(seconds=lease_seconds)
    changed = _leased(owner, job_id, lease_token).update(locked_until=locked_until, updated_at=now)
    if changed != 1:
        raise LeaseMismatch()
    return locked_until


def cancel_job(*, owner: User, job_id: uuid.UUID, now: datetime | None = None) -> Finished:
    """Cancel a pending job (scheduled or waiting out a backoff included)."""
    now = now or timezone.now()
    rows = (
        Job.objects.for_owner(owner)
        .filter(pk=job_id, status=JobStatus.PENDING)
        .update_returning(_REPORTED, status=JobStatus.CANCELLED, updated_at=now, finished_at=now)
    )
    done = _one(rows, JobNotCancellable)
    metrics.record_cancelled(job_id=done.job_id, queue_name=done.queue_name)
    return done


def get_job(*, owner: User, job_id: uuid.UUID) -> Job:
    try:
        return Job.objects.for_owner(owner).get(pk=job_id)
    except Job.DoesNotExist:
        raise JobNotFound() from None


# --- Operators (admin, console) ---------------------------------------------------
#
# These act on a queryset the caller has already scoped (to one tenant in the
# console, to anything in the staff-only admin), a bounded batch at a time:
# one long write transaction would block every producer on SQLite and hold
# many row locks on PostgreSQL. Each batch re-applies the status guard, so a
# row that changed meanwhile is skipped, never overwritten.

REQUEUEABLE = [JobStatus.DEAD, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.COMPLETED]
BURIABLE = [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.FAILED]
DEFAULT_BATCH_SIZE = 500


def _in_batches(
    jobs: QuerySet[Job],
    apply: Callable[[QuerySet[Job]], int],
    *,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Run ``apply`` over ``jobs`` in primary-key order, one short transaction per batch."""
    done = 0
    last_pk = None
    while True:
        page = jobs.order_by("pk")
        if last_pk is not None:
            page = page.filter(pk__gt=last_pk)
        pks = list(page.values_list("pk", flat=True)[:batch_size])
        if not pks:
            return done
        with transaction.atomic():
            done += apply(Job.objects.filter(pk__in=pks))
        last_pk = pks[-1]
        if progress is not None:
            progress(done)


def requeue_jobs(
    jobs: QuerySet[Job],
    *,
    reset_retries: bool = False,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send dead, failed, cancelled or completed jobs back to pending, due now.

    Returns how many changed; jobs in other states are skipped. The lease-loss
    count is reset, or a requeued poison job would go straight back to the
    DLQ; ``reset_retries`` also gives it its full retry budget again.
    """
    now = now or timezone.now()
    values: dict[str, Any] = {
        "status": JobStatus.PENDING,
        "run_at": now,
        "updated_at": now,
        "finished_at": None,
        "dead_at": None,
        "dead_reason": None,
        "locked_until": None,
        "locked_by": None,
        "lease_token": None,
        "lease_lost_count": 0,
    }
    if reset_retries:
        values["retry_count"] = 0
    return _in_batches(
        jobs.filter(status__in=REQUEUEABLE),
        lambda page: page.filter(status__in=REQUEUEABLE).update(**values),
        batch_size=batch_size,
        progress=progress,
    )


def cancel_jobs(
    jobs: QuerySet[Job],
    *,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Cancel the pending jobs among ``jobs``; returns how many changed."""
    now = now or timezone.now()

    def cancel(page: QuerySet[Job]) -> int:
        rows = page.filter(status=JobStatus.PENDING).update_returning(
            ["id", "queue_name"], status=JobStatus.CANCELLED, updated_at=now, finished_at=now
        )
        for row in rows:
            metrics.record_cancelled(job_id=row["id"], queue_name=row["queue_name"])
        return len(rows)

    return _in_batches(
        jobs.filter(status=JobStatus.PENDING), cancel, batch_size=batch_size, progress=progress
    )


def bury_jobs(
    jobs: QuerySet[Job],
    *,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Move pending, processing or failed jobs to the DLQ (``dead_reason = "operator"``).

    A processing job loses its lease: its worker's ack or nack then gets 409.
    """
    now = now or timezone.now()

    def bury(page: QuerySet[Job]) -> int:
        rows = page.filter(status__in=BURIABLE).update_returning(
            ["id", "queue_name"],
            status=JobStatus.DEAD,
            dead_reason=DeadReason.OPERATOR,
            dead_at=now,
            finished_at=now,
            updated_at=now,
            locked_until=None,
            locked_by=None,
            lease_token=None,
        )
        for row in rows:
            # Not a processing time: the job may never have been leased.
            metrics.record_dead(
                job_id=row["id"],
                queue_name=row["queue_name"],
                reason=DeadReason.OPERATOR,
                started_at=None,
                now=now,
                observe=False,
            )
        return len(rows)

    return _in_batches(
        jobs.filter(status__in=BURIABLE), bury, batch_size=batch_size, progress=progress
    )


def delete_jobs(
    jobs: QuerySet[Job],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete ``jobs`` for good; returns how many were deleted."""
    return _in_batches(
        jobs,
        lambda page: page.delete()[0],
        batch_size=batch_size,
        progress=progress,
    )


# --- Maintenance (manage.py run_maintenance) ------------------------------------------


@dataclass(frozen=True)
class Reaped:
    requeued: int
    buried: int


def reap_expired_leases(
    *,
    now: datetime | None = None,
    grace: timedelta = timedelta(0),
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Reaped:
    """Return jobs whose lease expired (more than ``grace`` ago) to pending.

    Leasing already recovers expired jobs lazily; reaping makes them visible
    as pending again and moves poison jobs (leases lost more than
    ``max_retries`` times) to the DLQ even when nobody leases that queue.
    Rows are locked with SKIP LOCKED, so two reapers, or a reaper and a
    leaser, never process the same job.
    """
    now = now or timezone.now()
    requeued = buried = 0
    expired = Job.objects.lease_expired(now - grace).order_by("locked_until", "pk")
    while True:
        with transaction.atomic():
            batch = list(
                expired.select_for_update(skip_locked=True).values_list(
                    "pk", "lease_lost_count", "max_retries"
                )[:batch_size]
            )
            if not batch:
                return Reaped(requeued=requeued, buried=buried)
            poison = [pk for pk, lost, limit in batch if lost >= limit]
            healthy = [pk for pk, lost, limit in batch if lost < limit]
            cleared = {"locked_until": None, "locked_by": None, "lease_token": None}
            lost = F("lease_lost_count") + 1
            # RETURNING gives the queue names and start times for metrics
            # and job logs without a second query.
            reported = ["id", "queue_name", "started_at"]
            back: list[dict[str, Any]] = []
            dead: list[dict[str, Any]] = []
            if healthy:
                back = Job.objects.filter(
                    pk__in=healthy, status=JobStatus.PROCESSING
                ).update_returning(
                    reported,
                    status=JobStatus.PENDING,
                    lease_lost_count=lost,
                    updated_at=now,
                    **cleared,
                )
                requeued += len(back)
            if poison:
                dead = Job.objects.filter(
                    pk__in=poison, status=JobStatus.PROCESSING
                ).update_returning(
                    reported,
                    status=JobStatus.DEAD,
                    dead_reason=DeadReason.LEASE_EXPIRED,
                    error_text=Coalesce(F("error_text"), Value("lease_expired")),
                    dead_at=now,
                    finished_at=now,
                    updated_at=now,
                    lease_lost_count=lost,
                    **cleared,
                )
                buried += len(dead)
        # Recorded once the batch has committed.
        for row in back:
            metrics.record_reaped(job_id=row["id"], queue_name=row["queue_name"])
        for row in dead:
            metrics.record_dead(
                job_id=row["id"],
                queue_name=row["queue_name"],
                reason=DeadReason.LEASE_EXPIRED,
                started_at=row["started_at"],
                now=now,
            )
        if len(batch) < batch_size:
            return Reaped(requeued=requeued, buried=buried)


def _purgeable(*, status: str, older_than: timedelta, now: datetime | None) -> QuerySet[Job]:
    if status not in FINISHED_STATUSES:
        raise ValueError(f"only finished jobs can be purged, not {status!r}")
    return Job.objects.filter(status=status, finished_at__lt=(now or timezone.now()) - older_than)


def purge_finished_jobs(
    *,
    status: str,
    older_than: timedelta,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete jobs in ``status`` that finished more than ``older_than`` ago.

    Oldest first, a bounded batch per transaction, with SKIP LOCKED so two
    runs at once split the work instead of waiting on each other.
    """
    old = _purgeable(status=status, older_than=older_than, now=now).order_by("finished_at", "pk")
    deleted = 0
    while True:
        with transaction.atomic():
            pks = list(
                old.select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch_size]
            )
            if pks:
                deleted += Job.objects.filter(pk__in=pks, status=status).delete()[0]
        if progress is not None and pks:
            progress(deleted)
        if len(pks) < batch_size:
            return deleted


# Dry-run counterparts: the same selections as above, counted, nothing locked or changed.


def count_expired_leases(*, now: datetime | None = None, grace: timedelta = timedelta(0)) -> Reaped:
    """What ``reap_expired_leases`` would do right now: jobs it would requeue and bury."""
    expired = Job.objects.lease_expired((now or timezone.now()) - grace)
    poison = Q(lease_lost_count__gte=F("max_retries"))
    return Reaped(requeued=expired.exclude(poison).count(), buried=expired.filter(poison).count())


def count_purgeable_jobs(*, status: str, older_than: timedelta, now: datetime | None = None) -> int:
    """How many jobs ``purge_finished_jobs`` would delete right now."""
    return _purgeable(status=status, older_than=older_than, now=now).count()
