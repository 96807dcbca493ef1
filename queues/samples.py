"""Per-minute numbers of every queue, for the charts of the console and the admin.

``take_samples`` runs in ``run_maintenance`` (maintenance/), never on the
enqueue, lease or ack path. For each minute that has ended and is not
sampled yet (at most ``BACKFILL_MINUTES`` back), it counts per tenant and
queue the jobs created in it (``jobs_created_idx``) and the jobs that
completed or died in it (``jobs_retention_idx``: status, finished_at); the
last minute also gets the queue's depth, its pending jobs, counted from the
lease index. Rows are unique per (tenant, queue, minute) and inserted with
ON CONFLICT DO NOTHING, so several maintenance processes write each minute
once. A job inserted by a transaction that commits after its minute was
sampled is not counted; at one-minute resolution that is a rounding error.

Every sampled minute is then summed per tenant and for the whole site
into ``SampleTotal`` rows (``roll_up``), from the sample rows themselves:
the charts of every queue of a tenant, or of every tenant, read one row a
minute instead of one per queue (the admin's day chart summed 86,000 rows
at a million jobs, docs/benchmarks.md).

``series`` reads them back in buckets (1 minute for the last hour, 15 for
the last day); ``purge_samples`` deletes those past retention.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, QuerySet, Sum
from django.db.models.functions import TruncMinute

from accounts.models import User
from queues.models import Job, JobStatus, QueueSample, SampleTotal

MINUTE = timedelta(minutes=1)
# After downtime, the counts of at most this many past minutes are filled in.
BACKFILL_MINUTES = 60


def _floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def take_samples(*, now: datetime) -> int:
    """Sample every minute that ended and has no sample yet, and sum every
    sampled minute that has no totals yet; return the sample rows written."""
    last = _floor(now) - MINUTE  # the last minute that has ended
    with transaction.atomic():
        written = _sample(last)
        roll_up(start=last - (BACKFILL_MINUTES - 1) * MINUTE, end=last + MINUTE)
    return written


def _sample(last: datetime) -> int:
    newest = QueueSample.objects.aggregate(newest=Max("minute"))["newest"]
    oldest = last - (BACKFILL_MINUTES - 1) * MINUTE
    start = max(oldest, newest + MINUTE) if newest else oldest
    if start > last:
        return 0
    end = last + MINUTE
    rows: dict[tuple[int, str, datetime], dict[str, int]] = {}

    def count(jobs: QuerySet[Job], field: str, into: str) -> None:
        per_minute = (
            jobs.filter(**{f"{field}__gte": start, f"{field}__lt": end})
            .annotate(at=TruncMinute(field, tzinfo=UTC))
            .values("owner_id", "queue_name", "at")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for row in per_minute:
            key = (row["owner_id"], row["queue_name"], row["at"])
            rows.setdefault(key, {})[into] = row["n"]

    count(Job.objects.all(), "created_at", "enqueued")
    count(Job.objects.filter(status=JobStatus.COMPLETED), "finished_at", "completed")
    count(Job.objects.filter(status=JobStatus.DEAD), "finished_at", "dead")
    pending = (
        Job.objects.filter(status=JobStatus.PENDING)
        .values("owner_id", "queue_name")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in pending:
        rows.setdefault((row["owner_id"], row["queue_name"], last), {})["depth"] = row["n"]
    samples = [
        QueueSample(owner_id=owner_id, queue_name=queue_name, minute=minute, **numbers)
        for (owner_id, queue_name, minute), numbers in rows.items()
    ]
    QueueSample.objects.bulk_create(samples, batch_size=500, ignore_conflicts=True)
    return len(samples)


_SUMS = {
    "enqueued": Sum("enqueued"),
    "completed": Sum("completed"),
    "dead": Sum("dead"),
    # NULL when no queue's depth was measured in the minute.
    "depth": Sum("depth"),
}


def roll_up(*, start: datetime, end: datetime) -> int:
    """Sum the sample rows of the minutes in [start, end) that the site has no
    totals for yet, per tenant and for the site, into SampleTotal rows;
    return how many rows were offered (a row that is there already is left
    as it is: ON CONFLICT DO NOTHING).

    The minutes are found from the totals, not from what this pass sampled:
    sample rows written by a pass that failed before summing them, or by
    the previous release's maintenance during an upgrade, are summed by the
    next pass. The sums are read back from the table, so a second
    maintenance process sums the rows the first one wrote; a sample row
    that commits after its minute was summed is left out, the same rounding
    as a job that commits after its minute was sampled.
    """
    summed = SampleTotal.objects.filter(owner=None).aggregate(newest=Max("minute"))["newest"]
    if summed is not None:
        start = max(start, summed + MINUTE)
    minutes = QueueSample.objects.filter(minute__gte=start, minute__lt=end)
    # In key order, so two processes inserting the same rows lock them in
    # the same order and cannot deadlock.
    per_tenant = (
        minutes.values("owner_id", "minute").annotate(**_SUMS).order_by("owner_id", "minute")
    )
    rows = [SampleTotal(**row) for row in per_tenant.iterator()]
    site = minutes.values("minute").annotate(**_SUMS).order_by("minute")
    rows += [SampleTotal(owner=None, **row) for row in site]
    SampleTotal.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    return len(rows)


def purge_samples(*, older_than: timedelta, now: datetime) -> int:
    """Delete the samples, and their totals, of minutes older than ``older_than``."""
    cutoff = now - older_than
    deleted, _ = QueueSample.objects.filter(minute__lt=cutoff).delete()
    summed, _ = SampleTotal.objects.filter(minute__lt=cutoff).delete()
    return deleted + summed


@dataclass(frozen=True)
class Bucket:
    start: datetime
    enqueued: int = 0
    completed: int = 0
    dead: int = 0
    # Pending jobs at the bucket's last sampled minute; None when none was sampled.
    depth: int | None = None


def series(
    *,
    owner: User | None,
    queue_name: str | None = None,
    now: datetime,
    span: timedelta,
    bucket: timedelta,
) -> list[Bucket]:
    """The last ``span`` before ``now`` in buckets of ``bucket``: every bucket, zeros included.

    ``owner`` None: every tenant (the admin); ``queue_name`` None: every queue.
    """
    end = _floor(now)
    count = int(span / bucket)
    start = end - count * bucket
    per_minute: QuerySet[Any]
    if queue_name is not None:
        samples = QueueSample.objects.filter(minute__gte=start, minute__lt=end)
        if owner is not None:
            samples = samples.filter(owner=owner)
        per_minute = samples.filter(queue_name=queue_name).values("minute").annotate(**_SUMS)
    else:
        # Every queue: the minute's totals, one row each (roll_up).
        per_minute = SampleTotal.objects.filter(
            owner=owner, minute__gte=start, minute__lt=end
        ).values("minute", *_SUMS)
    totals: list[dict[str, Any]] = [
        {"enqueued": 0, "completed": 0, "dead": 0, "depth": None} for _ in range(count)
    ]
    for row in per_minute.order_by("minute"):
        index = int((row["minute"] - start) / bucket)
        if not 0 <= index < count:
            continue
        into = totals[index]
        for name in ("enqueued", "completed", "dead"):
            into[name] += row[name] or 0
        if row["depth"] is not None:
            into["depth"] = row["depth"]  # minutes come in order: the last one wins
    return [Bucket(start=start + i * bucket, **totals[i]) for i in range(count)]


def totals_by_queue(*, owner: User, now: datetime, span: timedelta) -> dict[str, dict[str, int]]:
    """Jobs enqueued, completed and dead per queue of ``owner`` in the sampled
    minutes of the last ``span`` (the minute under way is not sampled yet).

    What the console's overview shows of finished jobs: counting them in
    the jobs table reads most of it (decision 0011:
    docs/decisions/0011-dashboards-count-live-jobs-from-indexes.md).
    """
    end = _floor(now)
    rows = (
        QueueSample.objects.filter(owner=owner, minute__gte=end - span, minute__lt=end)
        .values("queue_name")
        .annotate(enqueued=Sum("enqueued"), completed=Sum("completed"), dead=Sum("dead"))
        .order_by()
    )
    return {
        row.pop("queue_name"): {name: value or 0 for name, value in row.items()} for row in rows
    }


def totals(buckets: Iterable[Bucket]) -> dict[str, int]:
    listed = list(buckets)
    return {
        name: sum(getattr(b, name) for b in listed) for name in ("enqueued", "completed", "dead")
    }
