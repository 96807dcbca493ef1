"""The job table and its reads (``JobQuerySet``); transitions live in queues/services.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connections, models
from django.db.models import Q
from django.db.models.functions import Cast, Now, Replace, Reverse, Right
from django.db.models.lookups import IContains
from django.db.models.sql import UpdateQuery

from queues.ids import uuid7


class JobStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD = "dead"


class DeadReason(models.TextChoices):
    MAX_RETRIES_EXHAUSTED = "max_retries_exhausted"
    RETRY_DISABLED = "retry_disabled"
    LEASE_EXPIRED = "lease_expired"
    OPERATOR = "operator"


# ``failed`` belongs to the wire contract (a key of GET /dashboard/queues, the
# SDK's enum, the status filter of GET /jobs) and to the schema's CHECK, but
# no transition sets it, as in the original. Nothing offers it to people: not
# the console's filters, the admin, retention or the operator actions.
STATUSES_IN_USE = [status for status in JobStatus.values if status != JobStatus.FAILED]
FINISHED_STATUSES = [JobStatus.COMPLETED, JobStatus.CANCELLED, JobStatus.DEAD]


QUEUE_NAME_MAX_LENGTH = 255
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)


# How many hex digits of an id's end the id-tail index holds (the lists show 8).
ID_TAIL_DIGITS = 8


def id_tail() -> models.Func:
    """The last ID_TAIL_DIGITS hex digits of the id, reversed.

    jobs_id_tail_idx (migration 0009, PostgreSQL) indexes exactly this
    expression, ``reverse(right(id::text, 8)) text_pattern_ops``: an end of
    an id becomes a beginning, which a B-tree finds with ``LIKE 'x%'``. Any
    other spelling of it and the planner reads every job of the tenant
    (test_job_search_by_the_end_of_an_id_uses_the_index).
    """
    return Reverse(Right(Cast("id", models.TextField()), ID_TAIL_DIGITS))


class ContainsText(IContains):
    """Case-insensitive "contains", as ``ILIKE '%…%'`` on PostgreSQL.

    Django's ``icontains`` writes ``UPPER(col) LIKE UPPER(…)``, which the
    trigram index on dead jobs' error text (jobs_dead_error_trgm_idx,
    migration 0011) cannot serve; ILIKE it can. Elsewhere it is
    ``icontains``. Used through ``error_text_contains``.
    """

    lookup_name = "contains_text"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        sql, params = IContains(self.lhs, self.rhs).as_sql(compiler, connection)
        return sql, list(params)

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", [*lhs_params, *rhs_params]


def error_text_contains(text: str, *, dead_only: bool = False) -> Q:
    """Jobs whose error text contains ``text``, ignoring case.

    On PostgreSQL only dead jobs' error text is in the trigram index
    (jobs_dead_error_trgm_idx): a nack that retries, the common failure,
    then writes no trigrams (a 2 KB traceback cost 230 µs more per nack,
    docs/benchmarks.md). The other jobs that have an error text (waiting
    to retry, or cancelled after a failure) are few, and found through
    jobs_erred_live_idx. So the condition names the two parts apart, each
    in the shape of its index; the rows it matches are the same.
    ``dead_only``: the caller looks at dead jobs only (the DLQ).
    """
    contains = Q(ContainsText(models.F("error_text"), text))
    dead = Q(status="dead") & contains
    if dead_only:
        return dead
    return dead | (~Q(status="dead") & Q(error_text__isnull=False) & contains)


class JobQuerySet(models.QuerySet["Job"]):
    def for_owner(self, owner: Any) -> JobQuerySet:
        """Every API read starts here: another tenant's job is simply not found."""
        return self.filter(owner=owner)

    def in_queue(self, queue_name: str) -> JobQuerySet:
        return self.filter(queue_name=queue_name)

    def with_id_ending(self, tail: str) -> JobQuerySet:
        """Jobs whose id ends with the hex digits ``tail`` (no hyphens).

        The last ID_TAIL_DIGITS digits go through the id-tail index
        (``id_tail``); digits before them, if any, are checked on the few
        rows it finds.
        """
        tail = tail.lower()
        found = self.alias(id_tail=id_tail()).filter(
            id_tail__startswith=tail[-ID_TAIL_DIGITS:][::-1]
        )
        if len(tail) > ID_TAIL_DIGITS:
            hex_id = Replace(
                Cast("id", models.TextField()),
                models.Value("-"),
                models.Value(""),
                output_field=models.TextField(),
            )
            found = found.alias(hex_id=hex_id).filter(hex_id__endswith=tail)
        return found

    def with_error_containing(self, text: str, *, dead_only: bool = False) -> JobQuerySet:
        """Jobs whose error text contains ``text``, ignoring case (``error_text_contains``)."""
        return self.filter(error_text_contains(text, dead_only=dead_only))

    def next_leasable_at(self, owner_id: int, queue_name: str, now: datetime) -> datetime | None:
        """When a job of the queue next becomes leasable without anyone writing.

        The earliest future ``run_at`` of a pending job (scheduled, or waiting
        out a backoff) or ``locked_until`` of a processing one (an expired
        lease is leasable): long-poll leases sleep until then (queues/longpoll.py).
        """
        row = self.filter(owner_id=owner_id, queue_name=queue_name).aggregate(
            run_at=models.Min("run_at", filter=Q(status=JobStatus.PENDING, run_at__gt=now)),
            expires=models.Min(
                "locked_until", filter=Q(status=JobStatus.PROCESSING, locked_until__gte=now)
            ),
        )
        times = [t for t in (row["run_at"], row["expires"]) if t is not None]
        return min(times) if times else None

    def stats_by_queue(self) -> models.QuerySet:
        """One row per queue: a count per status, the total and the oldest pending job's age.

        ``GET /dashboard/queues`` (contract 3.15) reads this, and its numbers
        are exact: it reads every job of the tenant, completed ones included
        (0.4 s for 550,000 jobs). The console's overview counts live jobs
        from indexes instead (queues/control.py, decision 0011:
        docs/decisions/0011-dashboards-count-live-jobs-from-indexes.md).
        """
        counts = {
            status: models.Count("pk", filter=Q(status=status)) for status in JobStatus.values
        }
        return (
            self.values("queue_name")
            .annotate(
                **counts,
                total=models.Count("pk"),
                oldest_pending_created_at=models.Min(
                    "created_at", filter=Q(status=JobStatus.PENDING)
                ),
            )
            .order_by("queue_name")
        )

    def update_returning(self, returning: Sequence[str], **values: Any) -> list[dict[str, Any]]:
        """``UPDATE ... RETURNING`` in one round trip: the new values of ``returning``.

        A guarded update reports what it changed without a second query that
        could see another actor's later write. PostgreSQL and SQLite >= 3.35
        both support RETURNING; Django's ``update()`` only returns a count.
        """
        query = self.query.chain(UpdateQuery)
        query.add_update_values(values)  # type: ignore[attr-defined]
        statement, params = query.get_compiler(self.db).as_sql()
        connection = connections[self.db]
        columns = [job_field(name).get_col(self.model._meta.db_table) for name in returning]
        quoted = ", ".join(connection.ops.quote_name(col.target.column) for col in columns)
        with connection.cursor() as cursor:
            cursor.execute(f"{statement} RETURNING {quoted}", params)
            rows = cursor.fetchall()
        converters = [
            connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            for col in columns
        ]
        result = []
        for row in rows:
            item = {}
            for name, col, convert, value in zip(returning, columns, converters, row, strict=True):
                for converter in convert:
                    value = converter(value, col, connection)
                item[name] = value
            result.append(item)
        return result


class Job(models.Model):
    """One unit of work in a tenant's queue. Transitions live in queues/services.py."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs", db_column="user_id"
    )
    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH)
    payload = models.JSONField()
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING, db_default="pending"
    )
    priority = models.IntegerField(default=0, db_default=0)
    retry_count = models.IntegerField(default=0, db_default=0)
    max_retries = models.IntegerField(default=3, db_default=3)
    run_at = models.DateTimeField(db_default=Now())
    locked_until = models.DateTimeField(null=True, blank=True)
    locked_by = models.TextField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_text = models.TextField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True)
    dead_reason = models.CharField(max_length=32, choices=DeadReason.choices, null=True, blank=True)
    lease_lost_count = models.IntegerField(default=0, db_default=0)
    # Idempotent enqueue (services.enqueue_jobs_idempotent): the client's key
    # and when it stops deduplicating. NULL for jobs enqueued without a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    idempotency_expires_at = models.DateTimeField(null=True, blank=True)
    # Leases this job has had: the number of its latest attempt (JobAttempt),
    # still counting when the oldest attempts have been dropped.
    attempt_count = models.IntegerField(default=0, db_default=0)
    # The schedule that enqueued it (schedules/), kept as text: the job
    # outlives a deleted or renamed schedule.
    schedule_name = models.CharField(max_length=100, null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        db_table = "jobs"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="jobs_status_check"
            ),
            models.CheckConstraint(
                condition=Q(retry_count__gte=0), name="jobs_retry_count_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(max_retries__gte=0), name="jobs_max_retries_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(lease_lost_count__gte=0), name="jobs_lease_lost_count_non_negative"
            ),
            # One live job per (tenant, idempotency key): the database, not a
            # check-then-insert, decides which of two concurrent requests wins.
            # Partial, so jobs without a key cost nothing here.
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="jobs_owner_idempotency_key_uniq",
            ),
        ]
        indexes = [
            # lease_job, pending probe: WHERE owner, queue, status='pending',
            # run_at <= now ORDER BY priority DESC, created_at, id LIMIT 1
            # FOR UPDATE SKIP LOCKED. The index is in that order, so the probe
            # reads the first due row instead of sorting the backlog; finished
            # jobs are outside the partial index, so it tracks the backlog, not
            # the history. run_at rides along (INCLUDE, PostgreSQL) so the
            # dashboards count ready and scheduled jobs and find the oldest
            # ready one from the index alone (queues/control.py, live_numbers).
            models.Index(
                "owner",
                "queue_name",
                models.F("priority").desc(),
                "created_at",
                "id",
                condition=Q(status="pending"),
                include=["run_at"],
                name="jobs_lease_pending_idx",
            ),
            # lease_job, recovery probe (and the reaper): WHERE owner, queue,
            # status='processing', locked_until < now.
            models.Index(
                fields=["owner", "queue_name", "locked_until"],
                condition=Q(status="processing"),
                name="jobs_lease_expired_idx",
            ),
            # GET /jobs: WHERE owner [, queue] [, status]
            # ORDER BY created_at DESC, id DESC; and the per-queue stats.
            models.Index(
                fields=["owner", "-created_at", "-id"],
                name="jobs_owner_created_idx",
            ),
            models.Index(
                fields=["owner", "queue_name", "status", "created_at"],
                name="jobs_owner_queue_status_idx",
            ),
            # The admin's job list filtered by status, and its dead-letter queue:
            # WHERE status = ? [AND dead_reason = ?] ORDER BY id DESC LIMIT 50,
            # and their counts (queues/admin.py).
            models.Index(fields=["status", "id"], name="jobs_status_id_idx"),
            # Searching error text (error_text_contains): the jobs that are not
            # dead but carry an error, the few waiting to retry or cancelled
            # after a failure. Dead jobs' error text has a trigram index
            # (migration 0011, PostgreSQL).
            models.Index(
                fields=["id"],
                condition=Q(error_text__isnull=False) & ~Q(status="dead"),
                name="jobs_erred_live_idx",
            ),
            # The dead-letter queue of one tenant (the console): its count and
            # its count per queue, from the index alone; the rest of the
            # tenant's jobs, most of its index entries elsewhere, are not in it.
            models.Index(
                fields=["owner", "queue_name"],
                condition=Q(status="dead"),
                name="jobs_dead_owner_queue_idx",
            ),
            # The admin's dead-letter queue filtered by why the jobs died:
            # WHERE status = 'dead' AND dead_reason = ? ORDER BY id DESC, and
            # its count, without reading every dead job from the table.
            models.Index(
                fields=["dead_reason", "id"],
                condition=Q(status="dead"),
                name="jobs_dead_reason_id_idx",
            ),
            # The admin's queue filter: WHERE queue_name = ? ORDER BY id DESC
            # LIMIT 50, and the loose index scan that lists the queue names.
            models.Index(fields=["queue_name", "id"], name="jobs_queue_id_idx"),
            # The admin's date filter: WHERE created_at >= ? ORDER BY id DESC,
            # counted up to 10,001 rows (queues/admin.py); a sequential scan
            # without it (0.2 s at a million jobs).
            models.Index(fields=["created_at"], name="jobs_created_idx"),
            # purge_finished_jobs (retention): WHERE status = ? AND
            # finished_at < cutoff ORDER BY finished_at LIMIT batch.
            models.Index(
                fields=["status", "finished_at"],
                condition=Q(status__in=["completed", "failed", "cancelled", "dead"]),
                name="jobs_retention_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.queue_name}/{self.id} ({self.status})"


class DeadJob(Job):
    """The dead-letter queue as its own admin entry (queues/admin.py lists only dead jobs)."""

    class Meta:
        proxy = True
        verbose_name = "dead-letter job"
        # The list's footer reads "29 dead-letter jobs", the sidebar "Dead-letter jobs".
        verbose_name_plural = "dead-letter jobs"


class AttemptOutcome(models.TextChoices):
    IN_PROGRESS = "in_progress"
    ACKED = "acked"
    NACKED = "nacked"
    LEASE_EXPIRED = "lease_expired"
    # An operator took the job from its worker (bury_jobs on a processing job).
    CANCELLED = "cancelled"


class JobAttempt(models.Model):
    """One lease of a job, from the lease to its ack, nack or expiry.

    Written by the same statements as the job's transition (queues/services.py,
    docs/decisions/0008-attempts-in-their-own-table.md): a lease inserts one,
    and what ends the lease ends it. At most OPENQUEUE_MAX_ATTEMPTS_KEPT per
    job, deleted with the job.
    """

    id = models.BigAutoField(primary_key=True)
    # The unique (job, attempt) index serves every lookup by job, the attempt a
    # transition ends (WHERE job_id = ? AND finished_at IS NULL) included: a job
    # has at most OPENQUEUE_MAX_ATTEMPTS_KEPT rows. No other index, so that
    # ending an attempt or moving its expiry is a HOT update (migration 0005
    # leaves room for them in each page on PostgreSQL).
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts", db_index=False)
    attempt = models.IntegerField()
    worker_id = models.TextField(null=True, blank=True)
    leased_at = models.DateTimeField()
    # Moved by heartbeats while the attempt is in progress.
    lease_expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    error = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "job_attempts"
        constraints = [
            models.UniqueConstraint(
                fields=["job", "attempt"], name="job_attempts_job_attempt_uniq"
            ),
            models.CheckConstraint(
                condition=Q(outcome__in=AttemptOutcome.values), name="job_attempts_outcome_check"
            ),
        ]

    def __str__(self) -> str:
        return f"attempt {self.attempt} of {self.job_id} ({self.outcome})"

    @property
    def duration_ms(self) -> int | None:
        if self.finished_at is None:
            return None
        return int((self.finished_at - self.leased_at).total_seconds() * 1000)


MAX_IN_FLIGHT_LIMIT = 100_000


class QueueSettings(models.Model):
    """A tenant's settings for one queue; the row appears on the first change.

    A queue with no row is unpaused and unlimited, so queues nobody
    configures cost nothing (the lease reads this table in its own statement).
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="queue_settings",
        db_column="user_id",
    )
    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH)
    # Leases nothing while paused; enqueues and running jobs carry on.
    paused = models.BooleanField(default=False, db_default=False)
    # At most this many of the queue's jobs hold a valid lease at once; NULL: no limit.
    max_in_flight = models.IntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_IN_FLIGHT_LIMIT)],
        help_text=f"1 to {MAX_IN_FLIGHT_LIMIT}; empty for no limit.",
    )
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "queue_settings"
        verbose_name = "queue"
        verbose_name_plural = "queues"
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "queue_name"], name="queue_settings_owner_queue_uniq"
            ),
            models.CheckConstraint(
                condition=Q(max_in_flight__isnull=True)
                | Q(max_in_flight__gte=1, max_in_flight__lte=MAX_IN_FLIGHT_LIMIT),
                name="queue_settings_max_in_flight_range",
            ),
        ]

    def __str__(self) -> str:
        return self.queue_name


def job_field(name: str) -> models.Field[Any, Any]:
    """The concrete ``Job`` field ``name`` (for code that renders SQL from field names)."""
    field = Job._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise TypeError(f"Job.{name} is not a concrete field")
    return field


class MinuteCounts(models.Model):
    """What a chart reads of one minute: the jobs enqueued, completed and dead in it."""

    # The minute's start (UTC); the counts cover [minute, minute + 1 min).
    minute = models.DateTimeField()
    enqueued = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    dead = models.PositiveIntegerField(default=0)
    # Pending jobs when the minute was sampled; None for a minute filled in
    # later (after maintenance was down), whose depth nobody saw.
    depth = models.PositiveIntegerField(null=True)

    class Meta:
        abstract = True


class QueueSample(MinuteCounts):
    """One queue's numbers for one minute, for the dashboards' charts (queues/samples.py).

    Taken by ``run_maintenance`` from indexed counts after the minute ends,
    never by the enqueue, lease or ack path; kept for
    ``OPENQUEUE_RETENTION_SAMPLES_HOURS``.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH)

    class Meta:
        db_table = "queue_samples"
        constraints = [
            # Each minute of a queue is sampled once, however many maintenance
            # processes run (the others' inserts are ignored).
            models.UniqueConstraint(
                fields=["owner", "queue_name", "minute"], name="queue_samples_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["owner", "minute"], name="queue_samples_owner_minute_idx"),
            models.Index(fields=["minute"], name="queue_samples_minute_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.queue_name} {self.minute:%Y-%m-%d %H:%M}"


class SampleTotal(MinuteCounts):
    """One minute of QueueSample rows summed for a tenant, or for every tenant (owner None).

    Written by ``take_samples`` (``roll_up``) from the sample rows in the
    table, so the charts of all of a tenant's queues, or of the site's, read
    one row a minute instead of one per queue (1,440 rows for a day, however
    many queues and tenants there are). Purged with the samples.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        null=True,
    )
    # depth: the sum of the minute's measured depths; None when none was measured.

    class Meta:
        db_table = "queue_sample_totals"
        constraints = [
            # One row per tenant and minute, and one per minute for the site
            # (a NULL owner is distinct from every other in a plain unique
            # constraint, so the site's rows have their own).
            models.UniqueConstraint(
                fields=["owner", "minute"],
                condition=Q(owner__isnull=False),
                name="queue_sample_totals_owner_uniq",
            ),
            models.UniqueConstraint(
                fields=["minute"],
                condition=Q(owner__isnull=True),
                name="queue_sample_totals_site_uniq",
            ),
        ]
        # The purge: WHERE minute < cutoff.
        indexes = [models.Index(fields=["minute"], name="queue_sample_totals_minute_idx")]

    def __str__(self) -> str:
        whose = "every tenant" if self.owner_id is None else f"tenant {self.owner_id}"
        return f"{whose} {self.minute:%Y-%m-%d %H:%M}"
