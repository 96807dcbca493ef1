"""The tenant console: server-rendered pages over the signed-in user's own jobs.

Every view requires a login and starts from ``Job.objects.for_owner(...)``, so
another user's job is a 404, never a 403 that would confirm it exists. State
changes call queues/services.py, like the API and the admin.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max, QuerySet, Value
from django.db.models.functions import Coalesce, Left
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_POST

from accounts.models import User
from openqueue_site import audit
from openqueue_site.charts import dashboard_charts
from queues import control, samples, services
from queues.ids import short_id
from queues.models import (
    QUEUE_NAME_MAX_LENGTH,
    STATUSES_IN_USE,
    Job,
    JobQuerySet,
    JobStatus,
)
from queues.paging import EstimatedCountPaginator
from queues.store import get_store
from schedules.models import Schedule

PER_PAGE = 50
# Newest first; served by jobs_owner_created_idx / jobs_owner_queue_status_idx.
NEWEST_FIRST = ["-created_at", "-id"]


def age(since: datetime | None, now: datetime) -> str:
    """A short human age: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    if since is None:
        return ""
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def pretty(value: Any) -> str | None:
    return None if value is None else json.dumps(value, indent=2, ensure_ascii=False)


def _uuids(values: list[str]) -> list[uuid.UUID]:
    """The well-formed ids among ``values`` (anything else cannot be a job)."""
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    return ids


_HEX = re.compile(r"[0-9a-f]+")
# The DLQ's grouping by error: the first characters of each error text.
ERROR_HEAD = 120
# The job list's views of pending jobs due later, beside the statuses.
WAITING = {"scheduled": "scheduled for later", "retrying": "waiting to retry"}
# The in-flight page lists at most this many leases.
MAX_IN_FLIGHT_SHOWN = 500
MAX_ERROR_GROUPS = 50
ID_SEARCH_HELP = (
    "A job id: whole, its beginning, its end, or the 019ad5c2…9e3f04aa form the lists show."
)


def _matching_id(jobs: JobQuerySet, text: str) -> JobQuerySet | None:
    """``jobs`` whose id matches ``text``; None when ``text`` cannot be part of an id.

    A whole id or a beginning is a range of the primary key (an index
    probe); ``first…last`` narrows that range by its end; a fragment that
    begins no id is tried as an end (the random part the lists show),
    through the index on the ids' last 8 digits (``with_id_ending``).
    """
    text = text.strip().lower().replace("-", "").replace("...", "…")
    head, dots, tail = text.partition("…")
    parts = [part for part in (head, tail) if part]
    if not parts or len(head) + len(tail) > 32 or not all(_HEX.fullmatch(p) for p in parts):
        return None

    def starting(prefix: str) -> JobQuerySet:
        low, high = uuid.UUID(prefix.ljust(32, "0")), uuid.UUID(prefix.ljust(32, "f"))
        return jobs.filter(pk__gte=low, pk__lte=high)

    if dots:
        found = starting(head) if head else jobs
        return found.with_id_ending(tail) if tail else found
    by_start = starting(head)
    if len(head) == 32 or by_start.exists():
        return by_start
    return jobs.with_id_ending(head)


def _in_queue(jobs: JobQuerySet, queue: str) -> JobQuerySet:
    """``jobs`` of the queue a query or form field names (all of them for "").

    No job's queue name holds NUL (PostgreSQL refuses it even in a query:
    that was a 500) or is longer than QUEUE_NAME_MAX_LENGTH, so such a name
    matches nothing and never reaches the database.
    """
    if not queue:
        return jobs
    if "\x00" in queue or len(queue) > QUEUE_NAME_MAX_LENGTH:
        return jobs.none()
    return jobs.filter(queue_name=queue)


def user_of(request: HttpRequest) -> User:
    """The signed-in user (every view here is ``login_required``)."""
    return cast(User, request.user)


def _back(request: HttpRequest, default: str) -> HttpResponseRedirect:
    """Redirect to the form's ``next`` when it is one of our own URLs."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return HttpResponseRedirect(target)


def _report(
    request: HttpRequest, verb: str, changed: int, selected: int, job: Job | None = None
) -> None:
    """Tell the user what happened, and write it to the audit trail (openqueue_site/audit.py)."""
    level = messages.SUCCESS if changed else messages.WARNING
    messages.add_message(request, level, f"{changed} {verb}, {selected - changed} skipped.")
    audit.record(
        request,
        action=verb,
        model=Job,
        count=changed,
        obj=job,
        detail=f"{selected} selected, {selected - changed} skipped",
        kind="deleted" if verb == "discarded" else "changed",
    )


# The overview's counts: the statuses a job is still in, counted from
# indexes. Finished jobs are most of the table; the overview shows what went
# through each queue in the last day instead (decision 0011,
# docs/decisions/0011-dashboards-count-live-jobs-from-indexes.md).
LIVE_STATUSES = [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.DEAD]
THROUGHPUT_SPAN = timedelta(days=1)


@login_required
@require_GET
def queue_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    user = user_of(request)
    # Queues with settings or a schedule but no jobs are queues too (contract A.4).
    scheduled = Schedule.objects.filter(owner=user).values_list("queue_name", flat=True)
    went_through = samples.totals_by_queue(owner=user, now=now, span=THROUGHPUT_SPAN)
    queues: list[dict[str, Any]] = []
    for info in control.list_queues(owner=user, also=scheduled, now=now):
        # Ready and scheduled apart: a queue whose only job is due next week has
        # nothing waiting, and its "oldest" must not climb (queues/control.py).
        oldest = info.oldest_ready_age_seconds
        counts: dict[str, int] = {
            JobStatus.PENDING: info.ready + info.scheduled,
            JobStatus.PROCESSING: info.processing,
            JobStatus.DEAD: info.dead,
        }
        queues.append(
            {
                "queue_name": info.queue_name,
                **counts,
                "counts": list(counts.items()),
                "scheduled": info.scheduled,
                "oldest_ready_age": ""
                if oldest is None
                else age(now - timedelta(seconds=oldest), now),
                "paused": info.paused,
                "max_in_flight": info.max_in_flight,
                "last_day": went_through.get(info.queue_name, {}),
            }
        )
    return render(
        request,
        "console/queue_list.html",
        {
            "queues": queues,
            "statuses": LIVE_STATUSES,
            "now": now,
            "charts": dashboard_charts(owner=user, now=now),
        },
    )


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    mine = Job.objects.for_owner(request.user)
    queue = request.GET.get("queue", "")
    status = request.GET.get("status", "")
    search = request.GET.get("q", "").strip()[:80]
    jobs = _in_queue(mine.order_by(*NEWEST_FIRST), queue)
    if status in STATUSES_IN_USE:
        jobs = jobs.filter(status=status)
    elif status not in WAITING:
        status = ""
    waiting = status if status in WAITING else ""
    if waiting:
        # Pending jobs due later: scheduled ones, and those waiting out a retry's backoff.
        jobs = jobs.filter(status=JobStatus.PENDING, run_at__gt=timezone.now())
        jobs = jobs.filter(retry_count__gt=0) if waiting == "retrying" else jobs
        jobs = jobs.filter(retry_count=0) if waiting == "scheduled" else jobs
        jobs = jobs.order_by("run_at", "pk")
        status = waiting
    search_error = ""
    if search:
        matched = _matching_id(jobs, search)
        if matched is None:
            search_error = ID_SEARCH_HELP
            jobs = jobs.none()
        else:
            jobs = matched
    page = EstimatedCountPaginator(jobs, PER_PAGE).get_page(request.GET.get("page"))
    filters = urlencode(
        {
            key: value
            for key, value in {"queue": queue, "status": status, "q": search}.items()
            if value
        }
    )
    return render(
        request,
        "console/job_list.html",
        {
            "page": page,
            "queue": queue,
            "status": status,
            "statuses": STATUSES_IN_USE,
            "waiting": WAITING,
            "due_later": bool(waiting),
            "search": search,
            "search_error": search_error,
            "search_help": ID_SEARCH_HELP,
            # One index probe per queue, not a DISTINCT over every job of the tenant.
            "queue_names": get_store().queue_names(mine.db, None, owner_id=request.user.pk),
            "filters": filters,
        },
    )


@login_required
@require_GET
def job_detail(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    job = get_object_or_404(Job.objects.for_owner(request.user), pk=job_id)
    attempts = list(job.attempts.order_by("attempt"))
    return render(
        request,
        "console/job_detail.html",
        {
            "job": job,
            "payload": pretty(job.payload),
            "result": pretty(job.result),
            "can_requeue": job.status in services.REQUEUEABLE,
            "can_cancel": job.status == JobStatus.PENDING,
            "can_run_now": job.status == JobStatus.PENDING and job.run_at > timezone.now(),
            "attempts": attempts,
            "dropped_attempts": job.attempt_count - len(attempts),
        },
    )


def _act_on_one(
    request: HttpRequest, job_id: uuid.UUID, verb: str, act: Callable[[QuerySet[Job]], int]
) -> HttpResponse:
    """Run a bulk service on one of the user's jobs, report it, and go back to its page."""
    job = get_object_or_404(Job.objects.for_owner(request.user), pk=job_id)
    changed = act(Job.objects.for_owner(request.user).filter(pk=job.pk))
    _report(request, verb, changed, 1, job)
    return _back(request, reverse("console-job", args=[job.pk]))


@login_required
@require_POST
def job_requeue(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    if request.POST.get("reset_retries") == "on":
        return _act_on_one(
            request,
            job_id,
            "requeued with its retries reset",
            lambda jobs: services.requeue_jobs(jobs, reset_retries=True),
        )
    return _act_on_one(request, job_id, "requeued", services.requeue_jobs)


@login_required
@require_POST
def job_run_now(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """A pending job due later (scheduled, or in a retry's backoff) becomes due now."""
    return _act_on_one(request, job_id, "made due now", services.run_now_jobs)


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    return _act_on_one(request, job_id, "cancelled", services.cancel_jobs)


@login_required
@require_GET
def in_flight(request: HttpRequest) -> HttpResponse:
    """The user's current leases, grouped by worker: the job, how long it has run, its expiry.

    Up to MAX_IN_FLIGHT_SHOWN rows, so each row's text and links are made
    here, once, rather than by template tags and filters per cell (rendering
    500 rows that way took most of the page's 100 ms).
    """
    now = timezone.now()
    leased = (
        Job.objects.for_owner(request.user)
        .filter(status=JobStatus.PROCESSING)
        .only("id", "queue_name", "attempt_count", "started_at", "locked_until", "locked_by")
        .order_by("locked_by", "started_at", "pk")[:MAX_IN_FLIGHT_SHOWN]
    )
    queue_urls: dict[str, str] = {}
    workers: dict[str, list[dict[str, Any]]] = {}
    for job in leased:
        expired = job.locked_until is not None and job.locked_until < now
        if job.queue_name not in queue_urls:
            queue_urls[job.queue_name] = reverse("console-queue", args=[job.queue_name])
        workers.setdefault(job.locked_by or "", []).append(
            {
                "job": job,
                "id": str(job.pk),
                "short_id": short_id(job.pk),
                "url": reverse("console-job", args=[job.pk]),
                "queue_name": job.queue_name,
                "queue_url": queue_urls[job.queue_name],
                "attempt": job.attempt_count,
                "running": age(job.started_at, now),
                "started": _utc(job.started_at),
                "until": _utc(job.locked_until),
                "expires_in": "" if expired else age(now, job.locked_until or now),
                "expired": expired,
            }
        )
    return render(
        request,
        "console/in_flight.html",
        {
            "workers": sorted(workers.items()),
            "count": sum(len(jobs) for jobs in workers.values()),
            "capped": len(leased) == MAX_IN_FLIGHT_SHOWN,
        },
    )


def _utc(moment: datetime | None) -> str:
    """``2026-11-30 21:04:05``, in UTC, as the templates' ``|date:'Y-m-d H:i:s'`` writes it."""
    return "" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def _dead(request: HttpRequest) -> JobQuerySet:
    return Job.objects.for_owner(request.user).filter(status=JobStatus.DEAD)


@login_required
@require_GET
def dlq_list(request: HttpRequest) -> HttpResponse:
    queue = request.GET.get("queue", "")
    # Words of the error text; "error" is one group's whole first line (below).
    search = request.GET.get("q", "").replace("\x00", "").strip()[:200]
    error = request.GET.get("error", "").replace("\x00", "")[:ERROR_HEAD]
    grouped = request.GET.get("group") == "error"
    dead = _dead(request)
    # COUNT(*), not of the ids: the tenant's dead jobs per queue are then
    # counted from jobs_dead_owner_queue_idx alone, without the table.
    by_queue = dead.values("queue_name").annotate(count=Count("*")).order_by("queue_name")
    jobs = _in_queue(dead.order_by(*NEWEST_FIRST), queue)
    if search:
        # ILIKE, so the trigram index of dead jobs' error text serves it (PostgreSQL).
        jobs = jobs.with_error_containing(search, dead_only=True)
    if error:
        jobs = jobs.filter(error_text__startswith=error)
    # One line per distinct beginning of the error: one bad deploy reads as
    # one line with its count, not as 500 rows.
    groups = (
        jobs.order_by()
        .annotate(head=Left(Coalesce("error_text", Value("")), ERROR_HEAD))
        .values("head")
        .annotate(count=Count("pk"), last=Max("dead_at"))
        .order_by("-count", "head")[:MAX_ERROR_GROUPS]
        if grouped
        else None
    )
    page = EstimatedCountPaginator(jobs, PER_PAGE).get_page(request.GET.get("page"))
    filters = {"queue": queue, "q": search, "error": error, "group": "error" if grouped else ""}
    return render(
        request,
        "console/dlq_list.html",
        {
            "page": page,
            "queue": queue,
            "search": search,
            "error": error,
            "grouped": grouped,
            "groups": groups,
            "by_queue": by_queue,
            "filters": urlencode({key: value for key, value in filters.items() if value}),
            "here": request.get_full_path(),
        },
    )


DLQ_VERBS = {"requeue": "requeued", "discard": "discarded"}


@login_required
@require_POST
def dlq_action(request: HttpRequest) -> HttpResponse:
    """Requeue or discard dead jobs: one (``job``), the ``selected``, or ``all`` of a queue.

    Discarding, and anything applied to a whole queue, asks for confirmation first.
    """
    post = request.POST
    queue = post.get("queue", "")
    back = reverse("console-dlq") + (f"?{urlencode({'queue': queue})}" if queue else "")
    dead = _dead(request)
    one: Job | None = None
    if "requeue_one" in post or "discard_one" in post:
        action = "requeue" if "requeue_one" in post else "discard"
        job_id = _uuids([post.get(f"{action}_one", "")])
        job = get_object_or_404(
            Job.objects.for_owner(request.user), pk=job_id[0] if job_id else None
        )
        jobs, selected, scope, one = dead.filter(pk=job.pk), 1, "one", job
    else:
        action = post.get("action", "")
        if post.get("all") == "1" and queue:
            jobs = _in_queue(dead, queue)
            selected, scope = jobs.count(), "all"
        else:
            ids = set(_uuids(post.getlist("selected")))
            if not ids:
                messages.warning(request, "Select at least one job first.")
                return _back(request, back)
            jobs, selected, scope = dead.filter(pk__in=ids), len(ids), "selected"
    if action not in DLQ_VERBS:
        messages.error(request, "Unknown action.")
        return _back(request, back)

    if (action == "discard" or scope == "all") and post.get("confirm") != "yes":
        return render(
            request,
            "console/dlq_confirm.html",
            {
                "action": action,
                "queue": queue,
                "scope": scope,
                "count": jobs.count(),
                "sample": jobs.order_by(*NEWEST_FIRST)[:10],
                "hidden": [
                    (key, value)
                    for key in (
                        "action",
                        "queue",
                        "all",
                        "selected",
                        "requeue_one",
                        "discard_one",
                        "next",
                    )
                    for value in post.getlist(key)
                ],
                "back": post.get("next") or back,
            },
        )
    if action == "requeue":
        changed = services.requeue_jobs(jobs)
    else:
        changed = services.delete_jobs(jobs)
    _report(request, DLQ_VERBS[action], changed, selected, one)
    return _back(request, back)
