"""The console's queue page: its numbers, pause and resume, its max in flight.

Changes go through queues/control.py, as from the API and the admin (logged
with ``actor = "console: <email>"``; resuming wakes waiting long-polls).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from console.jobs import age, user_of
from openqueue_site import audit
from openqueue_site.charts import dashboard_charts
from queues import control
from queues.control import PURGEABLE
from queues.models import (
    MAX_IN_FLIGHT_LIMIT,
    QUEUE_NAME_MAX_LENGTH,
    Job,
    JobStatus,
    QueueSettings,
)
from schedules.models import Schedule


def _queue_name(name: str) -> str:
    # Names no job can have (NUL, too long) are not a queue of anyone's.
    if not name or "\x00" in name or len(name) > QUEUE_NAME_MAX_LENGTH:
        raise Http404("No such queue")
    return name


@login_required
@require_GET
def queue_detail(request: HttpRequest, queue_name: str) -> HttpResponse:
    name = _queue_name(queue_name)
    now = timezone.now()
    info = control.queue_info(owner=user_of(request), queue_name=name, now=now)
    oldest = (
        None
        if info.oldest_ready_age_seconds is None
        else age(now - timedelta(seconds=info.oldest_ready_age_seconds), now)
    )
    retrying = (
        Job.objects.for_owner(user_of(request))
        .filter(queue_name=name, status=JobStatus.PENDING, run_at__gt=now, retry_count__gt=0)
        .count()
    )
    return render(
        request,
        "console/queue_detail.html",
        {
            "queue": info,
            "retrying": retrying,
            "charts": dashboard_charts(owner=user_of(request), queue_name=name, now=now),
            "purgeable": PURGEABLE,
            "oldest_ready": oldest,
            "schedules": Schedule.objects.filter(owner=user_of(request), queue_name=name).order_by(
                "name"
            ),
            "limit_max": MAX_IN_FLIGHT_LIMIT,
            "now": now,
        },
    )


@login_required
@require_POST
def queue_control(request: HttpRequest, queue_name: str) -> HttpResponse:
    """``action``: pause, resume, limit (with ``max_in_flight``) or unlimit."""
    name = _queue_name(queue_name)
    back = HttpResponseRedirect(reverse("console-queue", args=[name]))
    action = request.POST.get("action", "")
    actor = f"console: {user_of(request)}"
    if action in ("pause", "resume"):
        control.change_queue(
            owner=user_of(request), queue_name=name, paused=action == "pause", actor=actor
        )
        done = "paused: nothing is leased until you resume it" if action == "pause" else "resumed"
        messages.success(request, f"Queue {name} {done}.")
    elif action == "limit":
        text = request.POST.get("max_in_flight", "").strip()
        try:
            limit = int(text)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_IN_FLIGHT_LIMIT:
            messages.error(
                request, f"Max in flight must be a whole number from 1 to {MAX_IN_FLIGHT_LIMIT}."
            )
            return back
        control.change_queue(
            owner=user_of(request), queue_name=name, max_in_flight=limit, actor=actor
        )
        messages.success(request, f"At most {limit} jobs of {name} run at once now.")
    elif action == "purge":
        status = request.POST.get("status", "")
        if status not in PURGEABLE:
            messages.error(request, "Only pending or dead jobs can be purged.")
            return back
        if request.POST.get("confirm") != "yes":
            count = (
                Job.objects.for_owner(user_of(request))
                .filter(queue_name=name, status=status)
                .count()
            )
            return render(
                request,
                "console/queue_purge.html",
                {"queue_name": name, "status": status, "count": count},
            )
        deleted = control.purge_queue(
            owner=user_of(request), queue_name=name, status=status, actor=actor
        )
        audit.record(
            request,
            action=f"purged the {status} jobs of queue {name}:",
            model=Job,
            count=deleted,
            kind="deleted",
        )
        messages.success(request, f"{deleted} {status} job{'s' if deleted != 1 else ''} deleted.")
        return back
    elif action == "unlimit":
        control.change_queue(
            owner=user_of(request), queue_name=name, max_in_flight=None, actor=actor
        )
        messages.success(request, f"Queue {name} has no limit now.")
    else:
        messages.error(request, "Unknown action.")
        return back
    settings_row = QueueSettings.objects.filter(owner=user_of(request), queue_name=name).first()
    audit.record(
        request,
        action={
            "pause": "paused",
            "resume": "resumed",
            "limit": f"set max_in_flight={settings_row.max_in_flight if settings_row else ''} on",
            "unlimit": "removed the max_in_flight limit of",
        }[action],
        model=QueueSettings,
        count=1,
        obj=settings_row,
        detail=f"queue {name}",
    )
    return back
