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

import functools
import json
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import (
    BooleanField,
    Case,
    F,
    Func,
    JSONField,
    Q,
    QuerySet,
    TextField,
    UUIDField,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from queues import metrics, notify
from queues.ids import uuid7
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


def enqueue(*, owner: User, jobs: list[NewJob], now: datetime | None = None) -> list[uuid.UUID]:
    """Create ``jobs`` for ``owner`` atomically (all or none); return their ids in input order.

    The API's hot path: it builds no model instances (about 40 µs each,
    more than the database spends on the row). ``enqueue_jobs`` returns the
    same jobs as models for callers that read them back.
    """
    now = now or timezone.now()
    ids = [uuid7() for _ in jobs]
    if not jobs:
        return ids
    if connection.vendor == "postgresql":
        _insert_and_notify(owner.pk, ids, jobs, now)
    else:
        with transaction.atomic():
            Job.objects.bulk_create(
                [_new_row(owner, new, now, job_id) for job_id, new in zip(ids, jobs, strict=True)]
            )
            # Wakes long-poll leases when this transaction commits (queues/notify.py).
            notify.notify_jobs(owner.pk, [new.queue_name for new in jobs])
    metrics.record_enqueued(new.queue_name for new in jobs)
    return ids


def enqueue_jobs(*, owner: User, jobs: list[NewJob], now: datetime | None = None) -> list[Job]:
    """``enqueue``, returning the created jobs as (saved) model instances."""
    now = now or timezone.now()
    ids = enqueue(owner=owner, jobs=jobs, now=now)
    rows = [_new_row(owner, new, now, job_id) for job_id, new in zip(ids, jobs, strict=True)]
    for row in rows:
        row._state.adding = False
        row._state.db = connection.alias
    return rows


# Enqueue on PostgreSQL: one statement whatever the batch size. The rows travel
# as ONE JSON array of arrays, which jsonb_array_elements() takes apart, so
# the statement text never changes (psycopg parses it once per process; a
# batch of 100 no longer becomes 1,200 placeholders) and Python encodes the
# whole batch with one C-speed json.dumps instead of adapting each value
# (bench/: 33 -> 9 ms of CPU per 100-job request). The payload rides inside as
# JSON, not as an encoded string. The CTE's RETURNING feeds pg_notify: a
# single statement is atomic on its own, and the notification is delivered
# only if the insert commits; its payload is queues.notify.notify_jobs'
# ``<owner_id>:<count>:<queue_name>``. Columns left out keep their NULL or
# database default.
_ENQUEUE_SQL = """
WITH ins AS (
    INSERT INTO jobs (id, user_id, queue_name, payload, status, priority, retry_count,
                      max_retries, run_at, created_at, updated_at, lease_lost_count)
    SELECT (r->>0)::uuid, %(owner)s, r->>1, r->2, 'pending', (r->>3)::integer, 0,
           (r->>4)::integer, COALESCE((r->>5)::timestamptz, %(now)s), %(now)s, %(now)s, 0
    FROM jsonb_array_elements(%(rows)s::jsonb) AS r
    RETURNING queue_name
)
SELECT pg_notify(%(channel)s, %(owner_text)s || ':' || count(*) || ':' || queue_name)
FROM ins GROUP BY queue_name
"""


def _insert_and_notify(
    owner_id: int, ids: list[uuid.UUID], jobs: list[NewJob], now: datetime
) -> None:
    """Insert ``jobs`` and wake long-poll leases in ONE autocommit statement (PostgreSQL)."""
    rows = [
        [
            str(job_id),
            new.queue_name,
            new.payload,
            new.priority,
            new.max_retries,
            None if new.run_at is None else new.run_at.isoformat(),
        ]
        for job_id, new in zip(ids, jobs, strict=True)
    ]
    params = {
        "owner": owner_id,
        "owner_text": str(owner_id),
        "now": now,
        "rows": json.dumps(rows, ensure_ascii=False, separators=(",", ":")),
        "channel": notify.CHANNEL,
    }
    # Inside a caller's transaction a failed insert must not abort it: use a
    # savepoint there (the API runs in autocommit and pays nothing for this).
    with transaction.atomic() if connection.in_atomic_block else nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(_ENQUEUE_SQL, params)


@dataclass(frozen=True)
class Enqueued:
    job: Job
    # False when an earlier request with the same idempotency key created it.
    created: bool


def enqueue_jobs_idempotent(
    *,
    owner: User,
    jobs: list[NewJob],
    keys: list[str | None],
    now: datetime | None = None,
) -> list[Enqueued]:
    """Like ``enqueue_jobs``, but a job whose key ``owner`` already used returns that job.

    ``keys[i]`` is the idempotency key of ``jobs[i]`` (None: always create). A
    key deduplicates for OPENQUEUE_IDEMPOTENCY_WINDOW_SECONDS after the job
    that first used it was enqueued; after that the key is free again.

    Concurrency: the partial unique index (owner, idempotency_key) decides.
    Each keyed insert runs in a savepoint; the loser of a race gets an
    IntegrityError (on PostgreSQL only once the winner has committed) and
    returns the winner's row. ``bulk_create(ignore_conflicts=True)`` cannot
    tell which rows it skipped, so it is not used. All or nothing, like
    ``enqueue_jobs``.
    """
    now = now or timezone.now()
    window = timedelta(seconds=settings.OPENQUEUE_IDEMPOTENCY_WINDOW_SECONDS)
    results: list[Enqueued] = []
    with transaction.atomic():
        for new, key in zip(jobs, keys, strict=True):
            if key is None:
                row = _new_row(owner, new, now)
                row.save(force_insert=True)
                results.append(Enqueued(job=row, created=True))
            else:
                results.append(_insert_or_existing(owner, new, key, now, now + window))
        notify.notify_jobs(owner.pk, [item.job.queue_name for item in results if item.created])
    metrics.record_enqueued(item.job.queue_name for item in results if item.created)
    return results


def _new_row(owner: User, new: NewJob, now: datetime, job_id: uuid.UUID | None = None) -> Job:
    return Job(
        id=job_id or uuid7(),
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


def _insert_or_existing(
    owner: User, new: NewJob, key: str, now: datetime, expires_at: datetime
) -> Enqueued:
    # Three rounds cover every interleaving: the conflicting row can vanish
    # (purged) or expire between our insert and our read; each round either
    # returns or has removed the obstacle it saw.
    for _ in range(3):
        row = _new_row(owner, new, now)
        row.idempotency_key = key
        row.idempotency_expires_at = expires_at
        try:
            with transaction.atomic():  # a savepoint: the conflict must not abort the batch
                row.save(force_insert=True)
        except IntegrityError:
            pass
        else:
            return Enqueued(job=row, created=True)
        existing = Job.objects.for_owner(owner).filter(idempotency_key=key).first()
        if existing is None:
            continue
        if existing.idempotency_expires_at is not None and existing.idempotency_expires_at > now:
            return Enqueued(job=existing, created=False)
        # The window is over: release the old job's key (the job itself stays)
        # in this same transaction, then insert again.
        Job.objects.filter(pk=existing.pk, idempotency_key=key).update(
            idempotency_key=None, idempotency_expires_at=None
        )
    raise IntegrityError(f"could not enqueue with idempotency key {key!r}")


def lease_job(
    *,
    owner: User,
    queue_name: str,
    worker_id: str,
    lease_seconds: int,
    now: datetime | None = None,
    count_empty: bool = True,
) -> Lease | None:
    """Lease the next job of ``queue_name``, or return None when none is due.

    ``count_empty=False`` leaves an empty result out of
    ``openqueue_jobs_lease_empty_total``: a long-poll makes several attempts
    for one request and counts its final answer itself.

    Order: priority DESC, then created_at ASC. A processing job whose lease
    has expired competes like a pending one; re-leasing it counts
    ``lease_lost_count``. A job whose lease has expired more than
    ``max_retries`` times is a poison job (it keeps killing its workers): it
    goes to the DLQ with ``dead_reason = "lease_expired"`` and the next
    candidate is tried.
    """
    now = now or timezone.now()
    lease: Lease | None
    if connection.vendor == "postgresql":
        leases, buried = _lease_statement(
            owner=owner,
            queue_name=queue_name,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            now=now,
            limit=1,
        )
        lease = leases[0] if leases else None
    else:
        lease, buried = _lease_one_orm(
            owner=owner,
            queue_name=queue_name,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            now=now,
        )
    # Recorded once the transaction is over, so a rolled-back lease is not counted.
    _record_buried(buried, now)
    if lease is None:
        if count_empty:
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


def _record_buried(buried: list[Job], now: datetime) -> None:
    """Count and log the poison jobs a lease moved to the DLQ."""
    for dead in buried:
        metrics.record_dead(
            job_id=dead.id,
            queue_name=dead.queue_name,
            reason=DeadReason.LEASE_EXPIRED,
            started_at=dead.started_at,
            now=now,
        )


def _lease_one_orm(
    *, owner: User, queue_name: str, worker_id: str, lease_seconds: int, now: datetime
) -> tuple[Lease | None, list[Job]]:
    """``lease_job`` with the ORM, in one short transaction (SQLite; any database)."""
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
    return lease, buried


# One statement on PostgreSQL: both probes, the choice between them, the lease
# (or, for a poison job, the burial) and RETURNING, in one round trip and in
# autocommit, instead of BEGIN, two SELECTs, an UPDATE and COMMIT. Each probe
# is served in order by its partial index, like the ORM path; SKIP LOCKED
# skips rows other leasers hold, and the rows not chosen are unlocked when
# the statement (or the batch's transaction) ends. ``limit`` is 1 for
# lease_job and max_jobs for lease_jobs; the database makes each lease token.
_LEASE_SQL = """
WITH due AS (
    SELECT id, priority, created_at, status, lease_lost_count, max_retries FROM jobs
    WHERE user_id = %(owner)s AND queue_name = %(queue)s
      AND status = 'pending' AND run_at <= %(now)s
    ORDER BY priority DESC, created_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), expired AS (
    SELECT id, priority, created_at, status, lease_lost_count, max_retries FROM jobs
    WHERE user_id = %(owner)s AND queue_name = %(queue)s
      AND status = 'processing' AND locked_until < %(now)s
    ORDER BY priority DESC, created_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), pick AS (
    -- FOR UPDATE is not allowed in a UNION, so each probe is its own CTE.
    SELECT id, status = 'processing' AS recovered,
           status = 'processing' AND lease_lost_count >= max_retries AS poison
    FROM (SELECT * FROM due UNION ALL SELECT * FROM expired) AS candidates
    ORDER BY priority DESC, created_at, id LIMIT %(limit)s
)
UPDATE jobs SET
    status = CASE WHEN pick.poison THEN 'dead' ELSE 'processing' END,
    lease_token = CASE WHEN pick.poison THEN NULL ELSE gen_random_uuid() END,
    locked_by = CASE WHEN pick.poison THEN NULL ELSE %(worker)s END,
    locked_until = CASE WHEN pick.poison THEN NULL ELSE %(until)s END,
    started_at = COALESCE(jobs.started_at, %(now)s),
    updated_at = %(now)s,
    lease_lost_count = jobs.lease_lost_count + CASE WHEN pick.recovered THEN 1 ELSE 0 END,
    dead_reason = CASE WHEN pick.poison THEN %(dead_reason)s ELSE jobs.dead_reason END,
    dead_at = CASE WHEN pick.poison THEN %(now)s ELSE jobs.dead_at END,
    finished_at = CASE WHEN pick.poison THEN %(now)s ELSE jobs.finished_at END,
    error_text = CASE WHEN pick.poison
        THEN COALESCE(jobs.error_text, 'lease_expired') ELSE jobs.error_text END
FROM pick
WHERE jobs.id = pick.id
RETURNING jobs.*, pick.recovered
"""


def _lease_statement(
    *,
    owner: User,
    queue_name: str,
    worker_id: str,
    lease_seconds: int,
    now: datetime,
    limit: int,
) -> tuple[list[Lease], list[Job]]:
    """Lease up to ``limit`` jobs on PostgreSQL with ``_LEASE_SQL``, in lease order.

    Poison jobs the statement buried do not count: it runs again for the gap
    (one statement per round; a round without a burial is the last).
    """
    buried: list[Job] = []
    leases: list[Lease] = []
    until = now + timedelta(seconds=lease_seconds)
    params = {
        "owner": owner.pk,
        "queue": queue_name,
        "now": now,
        "until": until,
        "worker": worker_id,
        "dead_reason": DeadReason.LEASE_EXPIRED.value,
    }
    while (need := limit - len(leases)) > 0:
        with connection.cursor() as cursor:
            cursor.execute(_LEASE_SQL, {**params, "limit": need})
            columns = tuple(col.name for col in cursor.description)
            rows = [_job_from_row(columns, row) for row in cursor.fetchall()]
        # RETURNING has no order: restore the lease order.
        rows.sort(key=lambda j: (-j.priority, j.created_at, j.id))
        for job in rows:
            if job.status == JobStatus.DEAD:
                buried.append(job)
            else:
                leases.append(
                    Lease(
                        job=job,
                        lease_token=job.lease_token,
                        lease_expires_at=until,
                        recovered=job.recovered,
                    )
                )
        if not any(job.status == JobStatus.DEAD for job in rows):
            break
    return leases, buried


@functools.cache
def _row_plan(columns: tuple[str, ...], vendor: str) -> tuple[list[int], list[Any], list[str]]:
    """How to turn a ``RETURNING jobs.*, ...`` row into a Job, worked out once per shape.

    Returns, in the model's field order, the row index of each field's
    column and that field's converters (with the column they need), plus the
    names of the extra columns. ``Job.objects.raw()`` redid this per query:
    about a third of a single lease's Python calls.
    """
    index = {name: i for i, name in enumerate(columns)}
    positions: list[int] = []
    converters: list[Any] = []
    for field in Job._meta.concrete_fields:
        positions.append(index[field.column])
        col = field.get_col(Job._meta.db_table)
        found = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
        converters.append((found, col) if found else None)
    known = {field.column for field in Job._meta.concrete_fields}
    return positions, converters, [name for name in columns if name not in known]


def _job_from_row(columns: tuple[str, ...], row: tuple[Any, ...]) -> Job:
    """A Job from a raw row; extra columns (such as ``recovered``) become attributes."""
    positions, converters, extras = _row_plan(columns, connection.vendor)
    values = []
    for position, conversion in zip(positions, converters, strict=True):
        value = row[position]
        if conversion is not None:
            found, col = conversion
            for convert in found:
                value = convert(value, col, connection)
        values.append(value)
    job = Job.from_db(connection.alias, _JOB_ATTNAMES, values)
    for name in extras:
        setattr(job, name, row[columns.index(name)])
    return job


_JOB_ATTNAMES = [field.attname for field in Job._meta.concrete_fields]


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
    if connection.vendor == "postgresql":
        # The batch ack's constant statement with one item: no ORM compile.
        item = AckItem(job_id, lease_token, result)
        _, rows = _batch_statement(_ACK_SQL, owner, [item], _ack_values, now)
    else:
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
    if connection.vendor == "postgresql":
        item = NackItem(job_id, lease_token, error, retry)
        _, rows = _batch_statement(_NACK_SQL, owner, [item], _nack_values_of, now)
    else:
        rows = _leased(owner, job_id, lease_token).update_returning(
            _REPORTED, **_nack_values(retry=retry, error=error, now=now)
        )
    done = _one(rows, LeaseMismatch)
    if done.status == JobStatus.PENDING:
        # A waiting lease then sleeps until the backoff ends (its new run_at).
        notify.notify_jobs(owner.pk, [done.queue_name])
    metrics.record_nacked(
        job_id=done.job_id,
        queue_name=done.queue_name,
        dead=done.status == JobStatus.DEAD,
        dead_reason=done.dead_reason,
        started_at=done.started_at,
        now=now,
    )
    return done


def _nack_values(*, retry: bool, error: Any, now: datetime) -> dict[str, Any]:
    """The UPDATE values of a nack (shared by nack_job and nack_jobs)."""
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
    return dict(
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


# --- Batches (POST /queues/{queue}/lease/batch, /leases/ack, /leases/nack) -----------


def lease_jobs(
    *,
    owner: User,
    queue_name: str,
    worker_id: str,
    lease_seconds: int,
    max_jobs: int,
    now: datetime | None = None,
    count_empty: bool = True,
) -> list[Lease]:
    """Lease up to ``max_jobs`` due jobs of ``queue_name`` in one transaction, in lease order.

    The same rules as ``lease_job``: pending and expired-lease candidates
    compete in one order, poison jobs go to the DLQ and do not count, rows
    another leaser holds are skipped. Each probe fetches at most the number
    still needed; a round that buried poison jobs probes again for the gap.
    """
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        # One statement per round; the transaction keeps a second round (after
        # a burial) from leaving the first round's leases without an owner.
        with transaction.atomic():
            leases, buried = _lease_statement(
                owner=owner,
                queue_name=queue_name,
                worker_id=worker_id,
                lease_seconds=lease_seconds,
                now=now,
                limit=max_jobs,
            )
    else:
        leases, buried = _lease_batch_orm(
            owner=owner,
            queue_name=queue_name,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            max_jobs=max_jobs,
            now=now,
        )
    _record_buried(buried, now)
    if not leases and count_empty:  # see lease_job
        metrics.record_lease_empty(queue_name)
    metrics.record_leased_batch(leases)
    return leases


def _lease_batch_orm(
    *,
    owner: User,
    queue_name: str,
    worker_id: str,
    lease_seconds: int,
    max_jobs: int,
    now: datetime,
) -> tuple[list[Lease], list[Job]]:
    """``lease_jobs`` with the ORM, in one transaction (SQLite; any database)."""
    queue = Job.objects.for_owner(owner).in_queue(queue_name)
    probes = [queue.due(now), queue.lease_expired(now)]
    buried: list[Job] = []
    leased: list[Job] = []
    recovered_ids: set[uuid.UUID] = set()
    locked_until = now + timedelta(seconds=lease_seconds)
    with transaction.atomic():
        while (need := max_jobs - len(leased)) > 0:
            # Rows taken in an earlier round are written at the end, so they
            # still look leasable: leave them out.
            taken = [job.id for job in leased]
            found = [
                job
                for probe in probes
                for job in probe.exclude(pk__in=taken)
                .in_lease_order()
                .select_for_update(skip_locked=True)[:need]
            ]
            if not found:
                break
            found.sort(key=lambda j: (-j.priority, j.created_at, j.id))
            poisoned = False
            for job in found[:need]:
                recovered = job.status == JobStatus.PROCESSING
                if recovered and job.lease_lost_count >= job.max_retries:
                    _bury(job, reason=DeadReason.LEASE_EXPIRED, now=now)
                    buried.append(job)
                    poisoned = True
                    continue
                if recovered:
                    recovered_ids.add(job.id)
                leased.append(job)
            # Without a burial every candidate was taken: fewer than needed
            # means the queue has no more, and a full round means we are done.
            if not poisoned:
                break
        if leased:
            # One plain UPDATE for the whole batch; the database makes each
            # row's token. (bulk_update's CASE per row and column cost 1 ms
            # per job to compile: docs/benchmarks.md, "Fast path".)
            rows = Job.objects.filter(pk__in=[job.id for job in leased]).update_returning(
                ["id", "lease_token", "lease_lost_count", "started_at"],
                status=JobStatus.PROCESSING,
                lease_token=RandomUUID(),
                locked_by=worker_id,
                locked_until=locked_until,
                started_at=Coalesce(F("started_at"), Value(now)),
                updated_at=now,
                lease_lost_count=F("lease_lost_count")
                + Case(When(status=JobStatus.PROCESSING, then=Value(1)), default=Value(0)),
            )
            written = {row["id"]: row for row in rows}
            for job in leased:
                job.status = JobStatus.PROCESSING
                job.lease_token = written[job.id]["lease_token"]
                job.lease_lost_count = written[job.id]["lease_lost_count"]
                job.started_at = written[job.id]["started_at"]
                job.locked_by, job.locked_until, job.updated_at = worker_id, locked_until, now
    leases = [
        Lease(
            job=job,
            lease_token=job.lease_token,
            lease_expires_at=locked_until,
            recovered=job.id in recovered_ids,
        )
        for job in leased
    ]
    return leases, buried


class RandomUUID(Func):
    """A fresh random UUID (version 4) per row, made by the database."""

    output_field = UUIDField()

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        return "gen_random_uuid()", []  # PostgreSQL 13+

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        # 32 hex digits (UUIDField's SQLite storage) with the version 4 and
        # RFC 4122 variant bits set. %% because the statement is %-formatted.
        return (
            "lower(hex(randomblob(4)) || hex(randomblob(2)) || '4'"
            " || substr(hex(randomblob(2)), 2) || substr('89ab', 1 + (abs(random()) %% 4), 1)"
            " || substr(hex(randomblob(2)), 2) || hex(randomblob(6)))",
            [],
        )


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


def _batch_guard(owner: User, items: list[Any]) -> tuple[QuerySet[Job] | None, list[int]]:
    """The guard of ack, nack and heartbeat for many (job, token) pairs at once.

    Returns the guarded queryset (None when no item can match) and the
    indexes of the items it covers. Items with a token that is not
    UUID-shaped, or repeating a job id seen earlier in the request, can
    never match and are left out: they fail with 409 like a stale token.
    """
    covered: list[int] = []
    params: list[Any] = []
    seen: set[uuid.UUID] = set()
    id_field, token_field = Job._meta.pk, Job._meta.get_field("lease_token")
    db = connections[Job.objects.db]
    for index, item in enumerate(items):
        try:
            token = uuid.UUID(item.lease_token)
        except (ValueError, TypeError, AttributeError):
            continue
        if item.job_id in seen:
            continue
        seen.add(item.job_id)
        params += [
            id_field.get_db_prep_value(item.job_id, db),
            token_field.get_db_prep_value(token, db),
        ]
        covered.append(index)
    if not covered:
        return None, []
    # A row-value IN (PostgreSQL; SQLite >= 3.15) instead of an OR of
    # (id AND token) Q objects, which cost more to build and compile than the
    # UPDATE took to run (docs/benchmarks.md, "Fast path").
    # Only column names are interpolated; every value is a bound parameter.
    table = db.ops.quote_name(Job._meta.db_table)
    columns = ", ".join(f"{table}.{db.ops.quote_name(f.column)}" for f in (id_field, token_field))
    pairs = RawSQL(  # noqa: S611
        f"({columns}) IN ({', '.join(['(%s, %s)'] * len(covered))})",
        params,
        output_field=BooleanField(),
    )
    return Job.objects.for_owner(owner).filter(pairs, status=JobStatus.PROCESSING), covered


def _by_id(rows: list[dict[str, Any]]) -> dict[uuid.UUID, Finished]:
    return {
        row["id"]: Finished(
            job_id=row["id"],
            queue_name=row["queue_name"],
            status=row["status"],
            started_at=row["started_at"],
            dead_reason=row["dead_reason"],
        )
        for row in rows
    }


def _per_item(items: list[Any], covered: list[int], done: dict[uuid.UUID, Finished]) -> list:
    outcomes: list[Finished | None] = [None] * len(items)
    for index in covered:
        outcomes[index] = done.get(items[index].job_id)
    return outcomes


def ack_jobs(
    *, owner: User, items: list[AckItem], now: datetime | None = None
) -> list[Finished | None]:
    """Complete many leased jobs in one guarded UPDATE; one outcome per item, in order.

    An outcome is None where ``ack_job`` would raise LeaseMismatch (unknown
    job, another tenant's, not processing, stale or malformed token). The
    others are unaffected: each row is matched by its own (id, token) pair.
    """
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        covered, rows = _batch_statement(
            _ACK_SQL,
            owner,
            items,
            _ack_values,
            now,
        )
        done = _by_id(rows)
        metrics.record_acked_batch(done.values(), now)
        return _per_item(items, covered, done)
    guarded, covered = _batch_guard(owner, items)
    if guarded is None:
        return [None] * len(items)
    with_result = [
        When(pk=items[i].job_id, then=Value(items[i].result, output_field=JSONField()))
        for i in covered
        if items[i].result is not None
    ]
    result: Any = (
        Case(*with_result, default=Value(None, output_field=JSONField())) if with_result else None
    )
    rows = guarded.update_returning(
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
    done = _by_id(rows)
    metrics.record_acked_batch(done.values(), now)
    return _per_item(items, covered, done)


def nack_jobs(
    *, owner: User, items: list[NackItem], now: datetime | None = None
) -> list[Finished | None]:
    """Fail many leased jobs with ``nack_job``'s rules; one outcome per item, in order.

    One guarded UPDATE per value of ``retry`` in the request (at most two),
    the error texts chosen per row by id. None marks an item ``nack_job``
    would refuse with LeaseMismatch.
    """
    now = now or timezone.now()
    outcomes: list[Finished | None] = [None] * len(items)
    if connection.vendor == "postgresql":
        covered, rows = _batch_statement(
            _NACK_SQL,
            owner,
            items,
            _nack_values_of,
            now,
        )
        done = _by_id(rows)
    else:
        guarded, covered = _batch_guard(owner, items)
        if guarded is None:
            return outcomes
        done = _nack_batch_orm(guarded, items, covered, now)
    notify.notify_jobs(
        owner.pk, [f.queue_name for f in done.values() if f.status == JobStatus.PENDING]
    )
    for finished in done.values():
        metrics.record_nacked(
            job_id=finished.job_id,
            queue_name=finished.queue_name,
            dead=finished.status == JobStatus.DEAD,
            dead_reason=finished.dead_reason,
            started_at=finished.started_at,
            now=now,
        )
    return _per_item(items, covered, done)


def _nack_batch_orm(
    guarded: QuerySet[Job], items: list[NackItem], covered: list[int], now: datetime
) -> dict[uuid.UUID, Finished]:
    """``nack_jobs``' UPDATEs with the ORM (SQLite): one per value of ``retry``."""
    done: dict[uuid.UUID, Finished] = {}
    for retry in (True, False):
        group = [i for i in covered if items[i].retry is retry]
        if not group:
            continue
        error = Case(
            *(When(pk=items[i].job_id, then=Value(items[i].error)) for i in group),
            output_field=TextField(),
        )
        ids = [items[i].job_id for i in group]
        rows = guarded.filter(pk__in=ids).update_returning(
            _REPORTED, **_nack_values(retry=retry, error=error, now=now)
        )
        done.update(_by_id(rows))
    return done


# Batch ack and nack on PostgreSQL: one UPDATE whose text never changes. The
# items travel as one JSON array that jsonb_to_recordset() turns into rows
# joined on (id, lease token); building a CASE per item through the ORM cost
# more than 0.5 ms of CPU per job (bench/). The guard is the single ack's:
# the caller's job, processing, with exactly this lease token.
_BATCH_GUARD_SQL = """
WHERE jobs.id = item.id AND jobs.lease_token = item.token
  AND jobs.user_id = %(owner)s AND jobs.status = 'processing'
RETURNING jobs.id, jobs.queue_name, jobs.status, jobs.started_at, jobs.dead_reason
"""

_ACK_SQL = (
    """
UPDATE jobs SET
    status = 'completed', result = item.result, error_text = NULL,
    updated_at = %(now)s, finished_at = %(now)s,
    locked_until = NULL, locked_by = NULL, lease_token = NULL
FROM jsonb_to_recordset(%(items)s::jsonb) AS item(id uuid, token uuid, result jsonb)
"""
    + _BATCH_GUARD_SQL
)

# nack_job's rules (_nack_values) per row: requeued after the backoff of its
# own retry_count while retries are left and the item asks for a retry,
# otherwise dead. In an UPDATE, jobs.* on the right are the values before it.
_NACK_REQUEUE = "(item.retry AND jobs.retry_count < jobs.max_retries)"
_NACK_SQL = (
    f"""
UPDATE jobs SET
    status = CASE WHEN {_NACK_REQUEUE} THEN 'pending' ELSE 'dead' END,
    retry_count = jobs.retry_count + CASE WHEN {_NACK_REQUEUE} THEN 1 ELSE 0 END,
    run_at = CASE WHEN {_NACK_REQUEUE}
        THEN %(now)s + make_interval(secs => CASE WHEN jobs.retry_count >= 9
            THEN {MAX_BACKOFF_SECONDS} ELSE LEAST(1 << jobs.retry_count, {MAX_BACKOFF_SECONDS}) END)
        ELSE jobs.run_at END,
    dead_reason = CASE WHEN {_NACK_REQUEUE} THEN NULL
        WHEN jobs.retry_count < jobs.max_retries THEN '{DeadReason.RETRY_DISABLED.value}'
        ELSE '{DeadReason.MAX_RETRIES_EXHAUSTED.value}' END,
    dead_at = CASE WHEN {_NACK_REQUEUE} THEN NULL ELSE %(now)s END,
    finished_at = CASE WHEN {_NACK_REQUEUE} THEN NULL ELSE %(now)s END,
    error_text = item.error, updated_at = %(now)s,
    locked_until = NULL, locked_by = NULL, lease_token = NULL
FROM jsonb_to_recordset(%(items)s::jsonb)
    AS item(id uuid, token uuid, error text, retry boolean)
"""  # noqa: S608 - only constants are interpolated; every value is a parameter
    + _BATCH_GUARD_SQL
)


def _ack_values(item: AckItem) -> dict[str, Any]:
    return {"result": item.result}


def _nack_values_of(item: NackItem) -> dict[str, Any]:
    return {"error": item.error, "retry": item.retry}


def _batch_statement(
    sql: str,
    owner: User,
    items: list[Any],
    values: Callable[[Any], dict[str, Any]],
    now: datetime,
) -> tuple[list[int], list[dict[str, Any]]]:
    """Run ``_ACK_SQL`` or ``_NACK_SQL`` over ``items``; return the covered indexes and rows.

    Items whose token is not UUID-shaped, or that repeat a job id seen
    earlier in the request, can never match and are left out: they fail with
    409 like a stale token (as ``_batch_guard``).
    """
    covered: list[int] = []
    payload: list[dict[str, Any]] = []
    seen: set[uuid.UUID] = set()
    for index, item in enumerate(items):
        try:
            token = uuid.UUID(item.lease_token)
        except (ValueError, TypeError, AttributeError):
            continue
        if item.job_id in seen:
            continue
        seen.add(item.job_id)
        payload.append({"id": str(item.job_id), "token": str(token), **values(item)})
        covered.append(index)
    if not covered:
        return [], []
    params = {
        "owner": owner.pk,
        "now": now,
        "items": json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [col.name for col in cursor.description]
        return covered, [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


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
        lambda page: _requeue_page(page, values),
        batch_size=batch_size,
        progress=progress,
    )


def _requeue_page(page: QuerySet[Job], values: dict[str, Any]) -> int:
    rows = page.filter(status__in=REQUEUEABLE).update_returning(["owner", "queue_name"], **values)
    notify.notify_rows(rows)  # inside the batch's transaction: delivered on commit
    return len(rows)


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
            reported = ["id", "owner", "queue_name", "started_at"]
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
                notify.notify_rows(back)
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
