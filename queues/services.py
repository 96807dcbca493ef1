"""Every state transition of a job, and the rules they follow, in one place.

::

                 enqueue
                    |
                    v        lease                 ack
    cancel <--- pending ----------> processing ----------> completed
                 ^   ^                |  |  |
                 |   |  nack, retries |  |  | nack, no retries left or retry=false
                 |   +----------------+  |  +--------------------------------> dead (the DLQ)
                 |    (after backoff)    |                                       ^
                 |                       | lease expired: re-leased by a lease   |
                 |                       | or returned to pending by the reaper, |
                 |                       | lease_lost_count + 1; once it has     |
                 |                       | expired more than max_retries times --+
                 |                                                               |
                 +-- requeue_jobs (operators): dead / cancelled / completed
                     bury_jobs (operators): pending / processing ---------------+

The rules are written once, as data, in the "Rules" section below: which
jobs are due, the lease order, the backoff schedule, the poison rule, the
dead reasons and what every transition writes. They are expressed in the
small vocabulary of queues/store/spec.py, and a storage engine
(queues/store/: PostgreSQL's constant statements, or the ORM used on SQLite)
turns them into statements; no engine holds a rule of its own, and
queues/tests/test_parity.py proves the engines write the same rows.

What every transition here relies on:

- Ack, nack, heartbeat and cancel are guarded updates: "update where id,
  owner, status (and lease token) match". The row count decides success,
  never a value read earlier, so two racing callers cannot both win.
- Leasing is a read-then-write: the candidates are locked with SKIP LOCKED
  (concurrent leasers skip each other's rows instead of waiting) and written
  in the same statement or short transaction.
- A single lease is a batch of one; a single ack or nack too.
- Metrics and job events are recorded here, after the write, so the API,
  the admin, the console and the maintenance command are all counted.
- ``now`` is injectable so tests move time instead of sleeping.

``failed`` is a status of the wire contract that no transition sets
(queues/models.py, STATUSES_IN_USE).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from queues import longpoll, metrics
from queues.domain import (
    REFUSED_LIMITED,
    REFUSED_PAUSED,
    AckItem,
    Enqueued,
    Finished,
    JobNotCancellable,
    JobNotFound,
    Lease,
    LeaseMismatch,
    LeaseRound,
    NackItem,
    NewJob,
    Reaped,
    finished,
)
from queues.ids import uuid7
from queues.models import (
    FINISHED_STATUSES,
    AttemptOutcome,
    DeadReason,
    Job,
    JobAttempt,
    JobStatus,
)
from queues.store import get_store
from queues.store.spec import (
    LIMITED,
    NEW_TOKEN,
    NOW,
    PAUSED,
    UNCOUNTED,
    AfterBackoff,
    Arg,
    AttemptCol,
    Attempts,
    Branch,
    Cmp,
    Coalesce,
    Col,
    Cond,
    Const,
    Gate,
    If,
    In,
    Item,
    LeaseSpec,
    NullIfBlank,
    Or,
    Plus,
    Transition,
    Truthy,
    Unlimited,
    all_of,
)

# --- The rules --------------------------------------------------------------------------

PENDING, PROCESSING, COMPLETED = JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.COMPLETED
CANCELLED, DEAD = JobStatus.CANCELLED, JobStatus.DEAD
STATUS = Col("status")

# Retry n (n = retry_count when the job is nacked) waits BACKOFF_SECONDS[n]:
# 1, 2, 4, ... 256 s, then 300 s for every retry after the ninth (contract §5.5).
MAX_BACKOFF_SECONDS = 300
BACKOFF_SECONDS = tuple(min(2**n, MAX_BACKOFF_SECONDS) for n in range(10))

# Leasable: pending and due, or processing with an expired lease. Each is its
# own probe, served in lease order by its own partial index (queues/models.py).
IS_PENDING = Cmp(STATUS, "=", Const(PENDING))
IS_PROCESSING = Cmp(STATUS, "=", Const(PROCESSING))
# A pending job's run_at has come; with it the job is due. Apart, so a count
# over pending jobs only can read it from the lease index (queues/control.py).
RUN_AT_REACHED = Cmp(Col("run_at"), "<=", NOW)
DUE = all_of(IS_PENDING, RUN_AT_REACHED)
LEASE_EXPIRED = all_of(IS_PROCESSING, Cmp(Col("locked_until"), "<", NOW))
# Priority first, then age; the id breaks ties (UUIDv7: creation order).
LEASE_ORDER = ("-priority", "created_at", "id")
# A leasable job that is processing: its lease expired and is being recovered.
RECOVERED = IS_PROCESSING
RETRIES_LEFT = Cmp(Col("retry_count"), "<", Col("max_retries"))
# A poison job keeps killing its workers: its lease is expiring once more than
# max_retries times. It goes to the DLQ instead of being leased or reaped again.
POISON = all_of(RECOVERED, Cmp(Col("lease_lost_count"), ">=", Col("max_retries")))
# Pending, but not due yet: scheduled for later, or waiting out a retry's backoff.
DUE_LATER = all_of(IS_PENDING, Cmp(Col("run_at"), ">", NOW))
# The caller's lease is the current one (ack, nack, heartbeat).
LEASE_HELD = all_of(IS_PROCESSING, Cmp(Col("lease_token"), "=", Item("token")))
# What a queue's max_in_flight counts: its jobs holding a valid lease.
# Apart for the same reason as RUN_AT_REACHED (the expiry index holds locked_until).
LEASE_VALID = Cmp(Col("locked_until"), ">=", NOW)
IN_FLIGHT = all_of(IS_PROCESSING, LEASE_VALID)

# What a transition writes, per field. Tables, so kept as written.
# fmt: off
NO_LEASE = {"locked_until": None, "locked_by": None, "lease_token": None}
# Every way into the DLQ writes this, plus its dead_reason.
DIES = {"status": DEAD, "dead_at": NOW, "finished_at": NOW, "updated_at": NOW, **NO_LEASE}

NEW_JOB = {
    "id": Item("id"), "owner": Arg("owner"), "queue_name": Item("queue_name"),
    "payload": Item("payload"), "priority": Item("priority"), "max_retries": Item("max_retries"),
    "schedule_name": Item("schedule_name"),
    "status": PENDING, "retry_count": 0, "lease_lost_count": 0,
    "run_at": Coalesce(Item("run_at"), NOW), "created_at": NOW, "updated_at": NOW,
}
TAKE_LEASE = {
    "status": PROCESSING, "lease_token": NEW_TOKEN, "locked_by": Arg("worker_id"),
    "locked_until": Arg("until"), "started_at": Coalesce(Col("started_at"), NOW), "updated_at": NOW,
    "lease_lost_count": Plus(Col("lease_lost_count"), If(RECOVERED, Const(1), Const(0))),
    "attempt_count": Plus(Col("attempt_count"), Const(1)),
}
# A poison job's burial, when a lease or the reaper finds it. The DLQ says
# why a job died: one without an error text (NULL, or the empty string a
# worker may have sent) gets "lease_expired"; a worker's real error stays.
BURY_POISON = {
    **DIES, "dead_reason": DeadReason.LEASE_EXPIRED,
    "error_text": Coalesce(NullIfBlank(Col("error_text")), Const("lease_expired")),
    "lease_lost_count": Plus(Col("lease_lost_count"), Const(1)),
}
# The attempt history (queues.models.JobAttempt). Every lease starts an
# attempt, read from the job as the lease left it; whatever ends the lease
# ends its attempt. An expired lease's attempt ended when the lease did, so a
# re-lease, a poison burial or the reaper closes it at its expiry.
OUTCOME = AttemptOutcome
ATTEMPT_STARTS = {
    "attempt": Col("attempt_count"), "worker_id": Col("locked_by"), "leased_at": NOW,
    "lease_expires_at": Col("locked_until"), "outcome": OUTCOME.IN_PROGRESS,
}
EXPIRED = {"finished_at": AttemptCol("lease_expires_at"), "outcome": OUTCOME.LEASE_EXPIRED}
LEASE = LeaseSpec(
    candidates=(DUE, LEASE_EXPIRED), order=LEASE_ORDER,
    writes=Branch(POISON, then=BURY_POISON, otherwise=TAKE_LEASE),
    flags={"recovered": RECOVERED}, in_flight=IN_FLIGHT,
    attempts=Attempts(
        current=EXPIRED, current_flag="recovered", start=ATTEMPT_STARTS, start_when=IS_PROCESSING
    ),
)
ACKED = Attempts(current={"finished_at": NOW, "outcome": OUTCOME.ACKED})
NACKED = Attempts(current={"finished_at": NOW, "outcome": OUTCOME.NACKED, "error": Item("error")})
HEARTBEAT_MOVES = Attempts(current={"lease_expires_at": Arg("until")})
REAPED = Attempts(current=EXPIRED)
# A processing job an operator buries loses its lease; a pending one has no attempt open.
TAKEN_BY_OPERATOR = Attempts(current={"finished_at": NOW, "outcome": OUTCOME.CANCELLED})
# An operator's "run now" for a job due later.
RUN_NOW = {"run_at": NOW, "updated_at": NOW}
ACK = {
    "status": COMPLETED, "result": Item("result"), "error_text": None,
    "updated_at": NOW, "finished_at": NOW, **NO_LEASE,
}
# Requeued after a backoff while retries are left and the worker asks for a
# retry; dead otherwise. retry_count counts the retries, so a job with
# max_retries=3 runs four times. retry=false with no retries left anyway is
# "max_retries_exhausted" (as the original).
NACK_REQUEUES = all_of(Truthy(Item("retry")), RETRIES_LEFT)
NACK = Branch(
    NACK_REQUEUES,
    then={
        "status": PENDING, "retry_count": Plus(Col("retry_count"), Const(1)),
        "run_at": AfterBackoff(BACKOFF_SECONDS, Col("retry_count")),
        "dead_reason": None, "dead_at": None, "finished_at": None,
        "error_text": Item("error"), "updated_at": NOW, **NO_LEASE,
    },
    otherwise={
        **DIES, "error_text": Item("error"),
        "dead_reason": If(RETRIES_LEFT, Const(DeadReason.RETRY_DISABLED),
                          Const(DeadReason.MAX_RETRIES_EXHAUSTED)),
    },
)
# From now, not from the old expiry: a heartbeat may shorten a lease, and it
# revives an expired lease that nobody has re-leased (contract §3.14) -
# except in a queue with max_in_flight, where the revived lease could exceed
# the limit that leases were counted against: there it is lost (409).
HEARTBEAT = {"locked_until": Arg("until"), "updated_at": NOW}
HEARTBEAT_HELD = all_of(LEASE_HELD, Or((Cmp(Col("locked_until"), ">=", NOW), Unlimited())))
CANCEL = {"status": CANCELLED, "updated_at": NOW, "finished_at": NOW}
# The reaper returns an expired lease to pending (a poison job to the DLQ).
REAP = Branch(POISON, then=BURY_POISON, otherwise={
    "status": PENDING, "lease_lost_count": Plus(Col("lease_lost_count"), Const(1)),
    "updated_at": NOW, **NO_LEASE,
})

# Operators. A requeue resets the lease-loss count, or a requeued poison job
# would go straight back to the DLQ; it may also give back the retry budget.
# A buried processing job loses its lease: its worker's ack or nack gets 409.
REQUEUEABLE = (DEAD, CANCELLED, COMPLETED)
BURIABLE = (PENDING, PROCESSING)
REQUEUE = {
    "status": PENDING, "run_at": NOW, "updated_at": NOW, "finished_at": None,
    "dead_at": None, "dead_reason": None, "lease_lost_count": 0, **NO_LEASE,
}
REQUEUE_WITH_RETRIES = {**REQUEUE, "retry_count": 0}
BURY_BY_OPERATOR = {**DIES, "dead_reason": DeadReason.OPERATOR}
# fmt: on

# What guarded updates return, for the caller's answer, metrics and logs.
REPORTED = ("id", "owner", "queue_name", "status", "started_at", "dead_reason")
DEFAULT_BATCH_SIZE = 500


def backoff_seconds(retry_count: int) -> int:
    """Delay before retry number ``retry_count + 1``: 1, 2, 4, ... capped at 300 s."""
    return BACKOFF_SECONDS[min(retry_count, len(BACKOFF_SECONDS) - 1)]


# --- Enqueue ------------------------------------------------------------------------------


def enqueue(*, owner: User, jobs: list[NewJob], now: datetime | None = None) -> list[uuid.UUID]:
    """Create ``jobs`` for ``owner`` atomically (all or none); return their ids in input order.

    The API's hot path: it builds no model instances (about 40 µs each,
    more than the database spends on the row). ``enqueue_jobs`` returns the
    same jobs as models for callers that read them back. Waiting long-poll
    leases of the jobs' queues are woken when the insert commits.
    """
    now = now or timezone.now()
    ids = [uuid7() for _ in jobs]
    if jobs:
        items = [new.as_item(job_id) for job_id, new in zip(ids, jobs, strict=True)]
        get_store().insert(owner_id=owner.pk, items=items, writes=NEW_JOB, now=now)
        metrics.record_enqueued(new.queue_name for new in jobs)
    return ids


def enqueue_jobs(*, owner: User, jobs: list[NewJob], now: datetime | None = None) -> list[Job]:
    """``enqueue``, returning the created jobs, read back, in input order (tests, scripts)."""
    ids = enqueue(owner=owner, jobs=jobs, now=now)
    created = Job.objects.in_bulk(ids)
    return [created[job_id] for job_id in ids]


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
    that first used it was enqueued; after that the key is free again. The
    database's unique index decides between concurrent requests. All or
    nothing, like ``enqueue``.
    """
    now = now or timezone.now()
    window = timedelta(seconds=settings.OPENQUEUE_IDEMPOTENCY_WINDOW_SECONDS)
    results = get_store().insert_keyed(
        owner_id=owner.pk,
        items=[new.as_item(uuid7()) for new in jobs],
        keys=keys,
        writes=NEW_JOB,
        now=now,
        expires_at=now + window,
    )
    metrics.record_enqueued(job.queue_name for job, created in results if created)
    return [Enqueued(job=job, created=created) for job, created in results]


# --- Lease ------------------------------------------------------------------------------


def lease_jobs(
    *,
    owner: User,
    queue_name: str,
    worker_id: str,
    lease_seconds: int,
    max_jobs: int,
    wait_seconds: int = 0,
    now: datetime | None = None,
) -> list[Lease]:
    """Lease up to ``max_jobs`` due jobs of ``queue_name``, in lease order.

    Order: priority DESC, then created_at ASC. A processing job whose lease
    has expired competes like a pending one; re-leasing it counts
    ``lease_lost_count``. A poison job goes to the DLQ with ``dead_reason =
    "lease_expired"`` instead, and does not count: the next candidates are
    tried for the gap. A paused queue leases nothing; one with
    ``max_in_flight`` at most what is left of it (queues/control.py).

    With ``wait_seconds``, a lease that finds nothing waits up to that long
    for a job (queues/longpoll.py) before it answers empty. An empty answer
    counts once, however many attempts the wait made: in
    ``openqueue_lease_refused_total`` when the queue's settings held it
    back, in ``openqueue_jobs_lease_empty_total`` otherwise.
    """
    found = longpoll.wait_for(
        owner_id=owner.pk,
        queue_name=queue_name,
        wait_seconds=wait_seconds,
        attempt=lambda: _lease(owner, queue_name, worker_id, lease_seconds, max_jobs, now),
    )
    if not found.leases:
        if found.blocked:
            metrics.record_lease_refused(queue_name, found.blocked)
        else:
            metrics.record_lease_empty(queue_name)
    return found.leases


def lease_job(
    *,
    owner: User,
    queue_name: str,
    worker_id: str,
    lease_seconds: int,
    wait_seconds: int = 0,
    now: datetime | None = None,
) -> Lease | None:
    """Lease the next due job of ``queue_name`` (``lease_jobs`` for one), or None."""
    leases = lease_jobs(
        owner=owner,
        queue_name=queue_name,
        worker_id=worker_id,
        lease_seconds=lease_seconds,
        max_jobs=1,
        wait_seconds=wait_seconds,
        now=now,
    )
    return leases[0] if leases else None


def _lease(
    owner: User,
    queue_name: str,
    worker_id: str,
    lease_seconds: int,
    max_jobs: int,
    now: datetime | None,
) -> LeaseRound:
    """One attempt of ``lease_jobs``: rounds of the engine's lease until nothing is buried.

    A queue with ``max_in_flight`` answers ``uncounted`` to a plain lease
    statement; the attempt then runs again in a transaction that holds the
    queue's lock, so leasers of that queue count one after the other. Queues
    without a limit never take that lock or pay for that second statement.
    """
    now = now or timezone.now()
    store = get_store()
    until = now + timedelta(seconds=lease_seconds)
    args = {"worker_id": worker_id, "until": until}
    keep = settings.OPENQUEUE_MAX_ATTEMPTS_KEPT
    leases: list[Lease] = []
    buried: list[Job] = []
    gate = Gate(UNCOUNTED, 0)
    for exclusive in (False, True):
        # A round that buried poison jobs leaves a gap, filled by the next round.
        # Rounds after the first run in a batch's transaction, so a failure cannot
        # leave the first round's leases without anyone holding their tokens.
        with transaction.atomic() if max_jobs > 1 or exclusive else nullcontext():
            while (need := max_jobs - len(leases)) > 0:
                leased = store.lease(
                    spec=LEASE,
                    owner_id=owner.pk,
                    queue_name=queue_name,
                    limit=need,
                    now=now,
                    args=args,
                    keep=keep,
                    exclusive=exclusive,
                )
                gate = leased.gate
                for job, flags in leased.rows:
                    if job.status == DEAD:
                        buried.append(job)
                    else:
                        token = cast(uuid.UUID, job.lease_token)  # a leased job has one
                        leases.append(Lease(job, token, until, flags["recovered"]))
                if not any(job.status == DEAD for job, _ in leased.rows):
                    break
        if gate.state != UNCOUNTED:
            break
    # Recorded once the transaction is over, so a rolled-back lease is not counted.
    for job in buried:
        metrics.record_dead(
            job_id=job.id,
            queue_name=job.queue_name,
            reason=DeadReason.LEASE_EXPIRED,
            started_at=job.started_at,
            now=now,
        )
    metrics.record_leased_batch(leases)
    blocked = None
    if gate.room == 0 and gate.state == PAUSED:
        blocked = REFUSED_PAUSED
    elif gate.room == 0 and gate.state == LIMITED:
        blocked = REFUSED_LIMITED
    return LeaseRound(leases, blocked)


# --- Ack, nack, heartbeat, cancel -------------------------------------------------------


def _lease_items(items: Sequence[AckItem | NackItem]) -> dict[int, uuid.UUID]:
    """The items that can match a lease: index -> the lease token as a UUID.

    A token that is not UUID-shaped cannot be anyone's lease, and an item
    repeating a job id seen earlier in the request cannot match either (the
    first one takes the lease): both fail like a stale token (409, never 422).
    """
    covered: dict[int, uuid.UUID] = {}
    seen: set[uuid.UUID] = set()
    for index, item in enumerate(items):
        try:
            token = uuid.UUID(item.lease_token)
        except (ValueError, TypeError, AttributeError):
            continue
        if item.job_id in seen:
            continue
        seen.add(item.job_id)
        covered[index] = token
    return covered


def _per_item(
    items: Sequence[AckItem | NackItem], covered: Mapping[int, Any], rows: list[dict[str, Any]]
) -> list[Finished | None]:
    done = {row["id"]: finished(row) for row in rows}
    return [done.get(item.job_id) if i in covered else None for i, item in enumerate(items)]


def ack_jobs(
    *, owner: User, items: list[AckItem], now: datetime | None = None
) -> list[Finished | None]:
    """Complete many leased jobs in one guarded UPDATE; one outcome per item, in order.

    An outcome is None where ``ack_job`` would raise LeaseMismatch (unknown
    job, another tenant's, not processing, stale or malformed token). The
    others are unaffected: each row is matched by its own (id, token) pair.
    """
    now = now or timezone.now()
    covered = _lease_items(items)
    rows = get_store().update_items(
        owner_id=owner.pk,
        items=[
            {"id": items[i].job_id, "token": token, "result": items[i].result}
            for i, token in covered.items()
        ],
        guard=LEASE_HELD,
        writes=ACK,
        returning=REPORTED,
        now=now,
        attempts=ACKED,
    )
    outcomes = _per_item(items, covered, rows)
    metrics.record_acked_batch([done for done in outcomes if done is not None], now)
    return outcomes


def ack_job(
    *,
    owner: User,
    job_id: uuid.UUID,
    lease_token: str,
    result: dict[str, Any] | None,
    now: datetime | None = None,
) -> Finished:
    """Complete a leased job. Raises LeaseMismatch unless the lease is current."""
    (done,) = ack_jobs(owner=owner, items=[AckItem(job_id, lease_token, result)], now=now)
    if done is None:
        raise LeaseMismatch()
    return done


def nack_jobs(
    *, owner: User, items: list[NackItem], now: datetime | None = None
) -> list[Finished | None]:
    """Fail many leased jobs: back to pending after a backoff, or to the DLQ (``NACK``).

    One guarded UPDATE decides every item's branch from its row's own
    values; the returned status says which it took. None marks an item
    ``nack_job`` would refuse with LeaseMismatch. Waiting long-poll leases
    learn about the requeued jobs (they sleep until the backoff ends).
    """
    now = now or timezone.now()
    store = get_store()
    covered = _lease_items(items)
    rows = store.update_items(
        owner_id=owner.pk,
        items=[
            {
                "id": items[i].job_id,
                "token": token,
                "error": items[i].error,
                "retry": items[i].retry,
            }
            for i, token in covered.items()
        ],
        guard=LEASE_HELD,
        writes=NACK,
        returning=REPORTED,
        now=now,
        attempts=NACKED,
    )
    store.notify(owner.pk, [row["queue_name"] for row in rows if row["status"] == PENDING])
    outcomes = _per_item(items, covered, rows)
    for done in outcomes:
        if done is not None:
            metrics.record_nacked(
                job_id=done.job_id,
                queue_name=done.queue_name,
                dead=done.status == DEAD,
                dead_reason=done.dead_reason,
                started_at=done.started_at,
                now=now,
            )
    return outcomes


def nack_job(
    *,
    owner: User,
    job_id: uuid.UUID,
    lease_token: str,
    error: str,
    retry: bool,
    now: datetime | None = None,
) -> Finished:
    """Fail a leased job (``nack_jobs`` for one); LeaseMismatch unless the lease is current."""
    (done,) = nack_jobs(owner=owner, items=[NackItem(job_id, lease_token, error, retry)], now=now)
    if done is None:
        raise LeaseMismatch()
    return done


def heartbeat_job(
    *,
    owner: User,
    job_id: uuid.UUID,
    lease_token: str,
    lease_seconds: int,
    now: datetime | None = None,
) -> datetime:
    """Extend a lease to ``now + lease_seconds``; returns the new expiry."""
    now = now or timezone.now()
    until = now + timedelta(seconds=lease_seconds)
    covered = _lease_items([AckItem(job_id, lease_token)])
    rows = get_store().update_items(
        owner_id=owner.pk,
        items=[{"id": job_id, "token": token} for token in covered.values()],
        guard=HEARTBEAT_HELD,
        writes=HEARTBEAT,
        returning=("id",),
        now=now,
        args={"until": until},
        attempts=HEARTBEAT_MOVES,
    )
    if len(rows) != 1:
        raise LeaseMismatch()
    return until


def cancel_job(*, owner: User, job_id: uuid.UUID, now: datetime | None = None) -> Finished:
    """Cancel a pending job (scheduled or waiting out a backoff included)."""
    now = now or timezone.now()
    rows = get_store().update_items(
        owner_id=owner.pk,
        items=[{"id": job_id}],
        guard=IS_PENDING,
        writes=CANCEL,
        returning=REPORTED,
        now=now,
    )
    if len(rows) != 1:
        raise JobNotCancellable()
    done = finished(rows[0])
    metrics.record_cancelled(job_id=done.job_id, queue_name=done.queue_name)
    return done


def get_job(*, owner: User, job_id: uuid.UUID) -> Job:
    try:
        return Job.objects.for_owner(owner).get(pk=job_id)
    except Job.DoesNotExist:
        raise JobNotFound() from None


def job_attempts(*, owner: User, job_id: uuid.UUID) -> tuple[Job, list[JobAttempt]]:
    """The job and its kept attempts, oldest first (JobNotFound for another tenant's)."""
    job = get_job(owner=owner, job_id=job_id)
    return job, list(job.attempts.order_by("attempt"))


# --- Operators (admin, console) -----------------------------------------------------------
#
# These act on a queryset the caller has already scoped (to one tenant in the
# console, to anything in the staff-only admin), a bounded batch at a time,
# re-applying the status guard per batch: a row that changed meanwhile is
# skipped, never overwritten. Each returns how many rows changed.

Progress = Callable[[int], None] | None


def _wake(rows: Iterable[Mapping[str, Any]]) -> None:
    """Wake long-poll leases for rows (with ``owner``) that became pending."""
    by_owner: dict[int, list[str]] = {}
    for row in rows:
        if row["status"] == PENDING:
            by_owner.setdefault(row["owner"], []).append(row["queue_name"])
    for owner_id, names in by_owner.items():
        get_store().notify(owner_id, names)


def _operate(jobs: QuerySet[Job], guard: Cond, writes: Transition, **options: Any) -> int:
    return get_store().update_selection(
        jobs, guard=guard, writes=writes, returning=REPORTED, **options
    )


def requeue_jobs(
    jobs: QuerySet[Job],
    *,
    reset_retries: bool = False,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress = None,
) -> int:
    """Send dead, cancelled or completed jobs back to pending, due now.

    ``reset_retries`` also gives them their full retry budget again.
    """
    writes = REQUEUE_WITH_RETRIES if reset_retries else REQUEUE
    now = now or timezone.now()
    return _operate(
        jobs,
        In(STATUS, REQUEUEABLE),
        writes,
        now=now,
        batch_size=batch_size,
        on_batch=_wake,
        progress=progress,
    )


def run_now_jobs(
    jobs: QuerySet[Job],
    *,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress = None,
) -> int:
    """Make the pending jobs due later (scheduled, or waiting out a retry's backoff) due now."""
    now = now or timezone.now()
    return _operate(
        jobs, DUE_LATER, RUN_NOW, now=now, batch_size=batch_size, on_batch=_wake, progress=progress
    )


def cancel_jobs(
    jobs: QuerySet[Job],
    *,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress = None,
) -> int:
    """Cancel the pending jobs among ``jobs``."""

    def record(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            metrics.record_cancelled(job_id=row["id"], queue_name=row["queue_name"])

    now = now or timezone.now()
    return _operate(
        jobs, IS_PENDING, CANCEL, now=now, batch_size=batch_size, on_batch=record, progress=progress
    )


def bury_jobs(
    jobs: QuerySet[Job],
    *,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress = None,
) -> int:
    """Move pending or processing jobs to the DLQ (``dead_reason = "operator"``)."""
    now = now or timezone.now()

    def record(rows: list[dict[str, Any]]) -> None:
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

    guard = In(STATUS, BURIABLE)
    return _operate(
        jobs,
        guard,
        BURY_BY_OPERATOR,
        now=now,
        batch_size=batch_size,
        on_batch=record,
        progress=progress,
        attempts=TAKEN_BY_OPERATOR,
    )


def delete_jobs(
    jobs: QuerySet[Job],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress = None,
) -> int:
    """Delete ``jobs`` for good."""
    return get_store().delete_selection(jobs, batch_size=batch_size, progress=progress)


# --- Maintenance (manage.py run_maintenance) ---------------------------------------------


def reap_expired_leases(
    *,
    now: datetime | None = None,
    grace: timedelta = timedelta(0),
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Reaped:
    """Return jobs whose lease expired (more than ``grace`` ago) to pending.

    Leasing already recovers expired jobs lazily; reaping makes them visible
    as pending again and moves poison jobs to the DLQ even when nobody
    leases that queue (``REAP``). Rows are locked with SKIP LOCKED, so two
    reapers, or a reaper and a leaser, never process the same job.
    """
    now = now or timezone.now()
    counts = {PENDING: 0, DEAD: 0}

    def record(rows: list[dict[str, Any]]) -> None:
        _wake(rows)
        for row in rows:
            counts[row["status"]] += 1
            if row["status"] == PENDING:
                metrics.record_reaped(job_id=row["id"], queue_name=row["queue_name"])
            else:
                metrics.record_dead(
                    job_id=row["id"],
                    queue_name=row["queue_name"],
                    reason=DeadReason.LEASE_EXPIRED,
                    started_at=row["started_at"],
                    now=now,
                )

    store = get_store()
    expired = store.where(Job.objects.all(), LEASE_EXPIRED, now=now - grace)
    store.update_locked(
        expired.order_by("locked_until", "pk"),
        guard=RECOVERED,
        writes=REAP,
        returning=REPORTED,
        now=now,
        batch_size=batch_size,
        on_batch=record,
        attempts=REAPED,
    )
    return Reaped(requeued=counts[PENDING], buried=counts[DEAD])


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
    progress: Progress = None,
) -> int:
    """Delete jobs in ``status`` that finished more than ``older_than`` ago, oldest first.

    Two runs at once split the work (SKIP LOCKED) instead of waiting on each other.
    """
    now = now or timezone.now()
    old = _purgeable(status=status, older_than=older_than, now=now)
    return get_store().delete_locked(
        old.order_by("finished_at", "pk"),
        guard=Cmp(STATUS, "=", Const(status)),
        now=now,
        batch_size=batch_size,
        progress=progress,
    )


# Dry-run counterparts: the same selections as above, counted, nothing locked or changed.


def count_expired_leases(*, now: datetime | None = None, grace: timedelta = timedelta(0)) -> Reaped:
    """What ``reap_expired_leases`` would do right now: jobs it would requeue and bury."""
    now = now or timezone.now()
    store = get_store()
    expired = store.where(Job.objects.all(), LEASE_EXPIRED, now=now - grace)
    buried = store.where(expired, POISON, now=now).count()
    return Reaped(requeued=expired.count() - buried, buried=buried)


def count_purgeable_jobs(*, status: str, older_than: timedelta, now: datetime | None = None) -> int:
    """How many jobs ``purge_finished_jobs`` would delete right now."""
    return _purgeable(status=status, older_than=older_than, now=now).count()
