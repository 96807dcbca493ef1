"""Job metrics (contract Part B §9 names, A.3 #9 labels) and job event logs.

Counters are recorded by ``queues/services.py``, right after the transition
they count, through the ``record_*`` functions below; each also writes the
job's INFO line on the ``openqueue.jobs`` logger. Recording in the services
means the API, the admin, the console and ``run_maintenance`` are all
counted.

Under gunicorn every worker is its own process: prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set up by gunicorn.conf.py)
keeps each worker's values in a file, and ``/metrics`` (api/probes.py) sums
them per scrape. Gauges are computed from the database at scrape time
(``DatabaseCollector``), so they need no multiprocess mode at all. The HTTP
counters live with their middleware (openqueue_site/middleware.py).

Labels are bounded: queue names (validated, 255 characters), statuses and
reasons; never a job id.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from queues.models import Job, JobStatus, QueueSettings
from queues.store import get_store

logger = logging.getLogger("openqueue.jobs")
metrics_logger = logging.getLogger("openqueue.metrics")

UNKNOWN_QUEUE = "unknown"

ENQUEUED = Counter("openqueue_jobs_enqueued_total", "Jobs created.", ["queue_name"])
LEASED = Counter("openqueue_jobs_leased_total", "Leases that returned a job.", ["queue_name"])
LEASE_EMPTY = Counter(
    "openqueue_jobs_lease_empty_total", "Leases that found no due job.", ["queue_name"]
)
LEASE_WAITS = Counter(
    "openqueue_lease_waits_total",
    "Long-poll leases (wait_seconds > 0) that found no job and started waiting.",
    ["queue_name"],
)
LEASE_REFUSED = Counter(
    "openqueue_lease_refused_total",
    "Leases that got no job because the queue is paused or at its max_in_flight "
    "(not counted in openqueue_jobs_lease_empty_total).",
    ["queue_name", "reason"],
)
SCHEDULE_RUNS = Counter(
    "openqueue_schedule_runs_total",
    "Jobs enqueued by a schedule: a cron occurrence fired, or a trigger.",
    ["schedule_name"],
)
ACKED = Counter("openqueue_jobs_acked_total", "Jobs completed by ack.", ["queue_name"])
NACKED = Counter(
    "openqueue_jobs_nacked_total",
    "Nacks, by outcome: requeued (retry after a backoff) or dead (moved to the DLQ).",
    ["queue_name", "outcome"],
)
CANCELLED = Counter(
    "openqueue_jobs_cancelled_total", "Pending jobs cancelled (API or operator).", ["queue_name"]
)
MOVED_TO_DLQ = Counter(
    "openqueue_jobs_moved_to_dlq_total",
    "Jobs moved to the dead-letter queue, by dead_reason.",
    ["queue_name", "reason"],
)
LEASE_RECOVERED = Counter(
    "openqueue_lease_expired_recovered_total",
    "Expired leases recovered: re-leased by a lease call or returned to pending by the reaper.",
    ["queue_name"],
)
PROCESSING_DURATION = Histogram(
    "openqueue_job_processing_duration_seconds",
    "From a job's first lease (started_at) to its ack or its move to the DLQ.",
    ["queue_name", "final_status"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)


class QueueLabels:
    """The ``queue_name`` label values: queues that exist, at most OPENQUEUE_METRICS_MAX_QUEUES.

    Every distinct label value is a series kept for the life of the server
    (in every worker's file), so a client must not be able to mint them:
    4,000 empty leases on random names used to add 4,000 series. A queue
    has its own series once it has jobs (an enqueue, lease, ack... says so)
    and while there is room; the names are re-read from the database every
    minute (the first N in name order, the same in every process), so the
    set cannot drift apart across workers or grow across restarts of them.
    Everything else is counted under ``other``: an empty lease on a queue
    that never had a job, and every queue past the cap.
    """

    OTHER = "other"
    REFRESH_SECONDS = 60.0

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._refreshed_at = -self.REFRESH_SECONDS
        self._lock = threading.Lock()

    def of(self, name: str | None, *, exists: bool = True) -> str:
        """The label for queue ``name``; ``exists`` when the event proves it has jobs."""
        # The original's rule: an empty or blank name is "unknown".
        label = name if name and name.strip() else UNKNOWN_QUEUE
        if label in self._names:
            return label
        self._refresh()
        if label in self._names:
            return label
        if exists and len(self._names) < settings.OPENQUEUE_METRICS_MAX_QUEUES:
            with self._lock:
                self._names.add(label)
            return label
        return self.OTHER

    def _refresh(self) -> None:
        if time.monotonic() - self._refreshed_at < self.REFRESH_SECONDS:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread is at it: use the names as they are
        try:
            self._refreshed_at = time.monotonic()
            names = get_store().queue_names(DEFAULT_DB_ALIAS, settings.OPENQUEUE_METRICS_MAX_QUEUES)
            self._names = set(names)
        except Exception:
            # Metrics must never fail the transition they count.
            logging.getLogger("openqueue.metrics").warning(
                "queue_labels_refresh_failed", exc_info=True
            )
        finally:
            self._lock.release()

    def forget(self) -> None:
        """Drop what this process learned (tests)."""
        with self._lock:
            self._names = set()
            self._refreshed_at = -self.REFRESH_SECONDS


queue_labels = QueueLabels()


def _queue(name: str | None) -> str:
    return queue_labels.of(name)


def _observe_processing(
    queue_name: str, final_status: str, started_at: datetime | None, now: datetime
) -> float | None:
    if started_at is None:
        return None
    seconds = max((now - started_at).total_seconds(), 0.0)
    PROCESSING_DURATION.labels(_queue(queue_name), final_status).observe(seconds)
    return seconds


# --- Recording transitions (called by queues/services.py) -------------------------


def record_enqueued(queue_names: Iterable[str]) -> None:
    """Jobs created, once per job (enqueue is logged by the request line, not per job)."""
    counts: dict[str, int] = {}
    for name, count in Tally(queue_names).items():
        counts[_queue(name)] = counts.get(_queue(name), 0) + count
    for name, count in counts.items():
        ENQUEUED.labels(name).inc(count)


def record_leased_batch(leases: Iterable[Any]) -> None:
    """Leases that returned a job (queues.services.Lease), with their events.

    One counter update per queue, not one per job.
    """
    leased: dict[str, int] = {}
    recovered: dict[str, int] = {}
    log = logger.isEnabledFor(logging.INFO)
    for lease in leases:
        name = _queue(lease.job.queue_name)
        leased[name] = leased.get(name, 0) + 1
        if lease.recovered:
            recovered[name] = recovered.get(name, 0) + 1
        if log:
            logger.info(
                "job_leased",
                extra={
                    "job_id": str(lease.job.id),
                    "queue_name": lease.job.queue_name,
                    "recovered": lease.recovered,
                    "lease_lost_count": lease.job.lease_lost_count,
                    "lease_expires_at": lease.lease_expires_at.isoformat().replace("+00:00", "Z"),
                },
            )
    for name, count in leased.items():
        LEASED.labels(name).inc(count)
    for name, count in recovered.items():
        LEASE_RECOVERED.labels(name).inc(count)


def record_acked_batch(finished: Iterable[Any], now: datetime) -> None:
    """Acked jobs (queues.services.Finished) of one single or batch ack, with their events."""
    acked: dict[str, int] = {}
    log = logger.isEnabledFor(logging.INFO)
    for done in finished:
        name = _queue(done.queue_name)
        acked[name] = acked.get(name, 0) + 1
        seconds = _observe_processing(done.queue_name, "completed", done.started_at, now)
        if log:
            logger.info(
                "job_acked",
                extra={
                    "job_id": str(done.job_id),
                    "queue_name": done.queue_name,
                    "processing_seconds": seconds,
                },
            )
    for name, count in acked.items():
        ACKED.labels(name).inc(count)


def record_lease_empty(queue_name: str) -> None:
    # No series for a queue that only ever saw empty leases (QueueLabels).
    LEASE_EMPTY.labels(queue_labels.of(queue_name, exists=False)).inc()


def record_lease_refused(queue_name: str, reason: str) -> None:
    """A lease answered empty because the queue is paused or at its max_in_flight."""
    LEASE_REFUSED.labels(queue_labels.of(queue_name, exists=False), reason).inc()


def record_lease_wait(queue_name: str) -> None:
    """A long-poll lease found no job and started waiting (queues/longpoll.py)."""
    LEASE_WAITS.labels(queue_labels.of(queue_name, exists=False)).inc()


def record_nacked(
    *,
    job_id: uuid.UUID,
    queue_name: str,
    dead: bool,
    dead_reason: str | None,
    started_at: datetime | None,
    now: datetime,
) -> None:
    """A nack: requeued for a retry, or dead (also counted and logged as a DLQ move)."""
    outcome = "dead" if dead else "requeued"
    NACKED.labels(_queue(queue_name), outcome).inc()
    # The error text is the worker's; it may quote the payload, so it is not logged.
    logger.info(
        "job_nacked",
        extra={"job_id": str(job_id), "queue_name": queue_name, "outcome": outcome},
    )
    if dead:
        record_dead(
            job_id=job_id,
            queue_name=queue_name,
            reason=dead_reason or "unknown",
            started_at=started_at,
            now=now,
        )


def record_dead(
    *,
    job_id: uuid.UUID,
    queue_name: str,
    reason: str,
    started_at: datetime | None,
    now: datetime,
    observe: bool = True,
) -> None:
    """A move to the DLQ, whatever caused it: nack, poison burial, reaper, operator.

    ``observe=False`` for jobs that were not being processed (an operator
    burying a pending job): their time since started_at is no processing time.
    """
    MOVED_TO_DLQ.labels(_queue(queue_name), reason).inc()
    seconds = _observe_processing(queue_name, "dead", started_at, now) if observe else None
    logger.info(
        "job_dead",
        extra={
            "job_id": str(job_id),
            "queue_name": queue_name,
            "reason": reason,
            "processing_seconds": seconds,
        },
    )


def record_reaped(*, job_id: uuid.UUID, queue_name: str) -> None:
    """The reaper returned a job with an expired lease to pending."""
    LEASE_RECOVERED.labels(_queue(queue_name)).inc()
    logger.info(
        "job_reaped",
        extra={"job_id": str(job_id), "queue_name": queue_name, "outcome": "requeued"},
    )


class BoundedLabels:
    """Label values taken as they come, at most ``cap`` of them per process; then ``other``."""

    OTHER = "other"

    def __init__(self, cap: Callable[[], int]) -> None:
        self._cap = cap
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def of(self, name: str) -> str:
        if name in self._names:
            return name
        with self._lock:
            if len(self._names) < self._cap():
                self._names.add(name)
                return name
        return self.OTHER

    def forget(self) -> None:
        with self._lock:
            self._names.clear()


# Schedule names are the tenants' to choose: bounded like queue names.
schedule_labels = BoundedLabels(lambda: settings.OPENQUEUE_METRICS_MAX_QUEUES)


def record_schedule_run(
    *, schedule_name: str, queue_name: str, job_id: uuid.UUID, occurrence: datetime | None
) -> None:
    """A schedule enqueued a job: ``occurrence`` is the cron time it fired for (None: a trigger)."""
    SCHEDULE_RUNS.labels(schedule_labels.of(schedule_name)).inc()
    logger.info(
        "schedule_fired" if occurrence is not None else "schedule_triggered",
        extra={
            "schedule_name": schedule_name,
            "queue_name": queue_name,
            "job_id": str(job_id),
            "occurrence": occurrence.isoformat() if occurrence is not None else None,
        },
    )


def record_cancelled(*, job_id: uuid.UUID, queue_name: str) -> None:
    CANCELLED.labels(_queue(queue_name)).inc()
    logger.info("job_cancelled", extra={"job_id": str(job_id), "queue_name": queue_name})


# --- Scrape time -------------------------------------------------------------------


# The statuses the scrape-time gauges count: the work in the queues. Finished
# jobs are history (millions of rows, only ever growing); the counters above
# say how many were completed or cancelled.
GAUGED_STATUSES = [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.DEAD]


class DatabaseCollector(Collector):
    """Gauges read from the jobs table: at most once per interval, however many scrape.

    One grouped query over the pending, processing and dead jobs (each
    served by an index), aggregated over tenants, by queue label
    (QueueLabels: the same bounded set as the counters). Its result is kept
    for OPENQUEUE_METRICS_GAUGE_SECONDS; concurrent scrapes while it is
    being computed wait for that one query instead of running their own, so
    16 scrapers cost what one does. When the database does not answer,
    ``openqueue_database_up`` is 0 and the job gauges are left out.
    """

    _lock = threading.Lock()
    _cached: tuple[float, list[Metric]] | None = None
    queries = 0  # how many times the gauges were read from the database (tests)

    def __init__(self, now: Callable[[], datetime] = timezone.now) -> None:
        self.now = now

    def describe(self) -> list[Metric]:
        # Nothing to check for duplicates; avoids a query at registration time.
        return []

    @classmethod
    def forget(cls) -> None:
        """Drop the cached gauges (tests)."""
        cls._cached = None

    def collect(self) -> Iterator[Metric]:
        interval = settings.OPENQUEUE_METRICS_GAUGE_SECONDS
        with self._lock:
            cached = DatabaseCollector._cached
            if cached is None or time.monotonic() - cached[0] >= interval:
                cached = (time.monotonic(), list(self._read()))
                DatabaseCollector._cached = cached
        yield from cached[1]

    def _read(self) -> Iterator[Metric]:
        DatabaseCollector.queries += 1
        now = self.now()
        jobs = GaugeMetricFamily(
            "openqueue_jobs",
            "Pending, processing and dead jobs by queue, all tenants together.",
            labels=["queue_name", "status"],
        )
        oldest = GaugeMetricFamily(
            "openqueue_oldest_pending_job_age_seconds",
            "Seconds since the oldest due pending job of each queue became due (run_at); "
            "0 when none is due.",
            labels=["queue_name"],
        )
        expired = GaugeMetricFamily(
            "openqueue_expired_leases",
            "Processing jobs whose lease has expired and that nobody has recovered yet.",
            labels=["queue_name"],
        )
        paused = GaugeMetricFamily(
            "openqueue_queue_paused",
            "Queues of this name that are paused (one per tenant: 1 or 0 with a single tenant).",
            labels=["queue_name"],
        )
        up = GaugeMetricFamily(
            "openqueue_database_up", "1 when the scrape-time job gauges could be read."
        )
        try:
            rows = list(
                Job.objects.filter(status__in=GAUGED_STATUSES)
                .order_by()
                .values("queue_name", "status")
                .annotate(
                    n=Count("pk"),
                    oldest_due=Min("run_at", filter=Q(status=JobStatus.PENDING, run_at__lte=now)),
                    expired=Count(
                        "pk", filter=Q(status=JobStatus.PROCESSING, locked_until__lt=now)
                    ),
                )
            )
            configured = list(
                QueueSettings.objects.order_by()
                .values("queue_name")
                .annotate(n=Count("pk", filter=Q(paused=True)))
            )
        except Exception:
            metrics_logger.exception("metrics_database_query_failed")
            up.add_metric([], 0)
            yield up
            return
        by_queue: dict[str, dict[str, Any]] = {}
        for row in rows:
            queue = by_queue.setdefault(
                queue_labels.of(row["queue_name"]),
                {"counts": dict.fromkeys(GAUGED_STATUSES, 0), "oldest": None, "expired": 0},
            )
            queue["counts"][row["status"]] += row["n"]
            queue["expired"] += row["expired"]
            if row["oldest_due"] is not None and (
                queue["oldest"] is None or row["oldest_due"] < queue["oldest"]
            ):
                queue["oldest"] = row["oldest_due"]
        for name, queue in sorted(by_queue.items()):
            # Every gauged status of every queue, zeros included, so that
            # "queue depth" queries never meet a missing series.
            for status, count in queue["counts"].items():
                jobs.add_metric([name, status], count)
            age = 0.0 if queue["oldest"] is None else (now - queue["oldest"]).total_seconds()
            oldest.add_metric([name], max(age, 0.0))
            expired.add_metric([name], queue["expired"])
        paused_by_label: Tally[str] = Tally()
        for row in configured:
            paused_by_label[queue_labels.of(row["queue_name"])] += row["n"]
        for name, count in sorted(paused_by_label.items()):
            paused.add_metric([name], count)
        up.add_metric([], 1)
        yield from (jobs, oldest, expired, paused, up)
