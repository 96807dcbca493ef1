"""The operators' dashboard: jobs, the dead-letter queue and bulk actions.

Read-mostly: no field that holds state is editable. Every state change is an
admin action that calls the same queues/services.py function as the API,
shows a confirmation page first, and reports how many rows changed and how
many were skipped. Actions accept Django's "Select all N" (the whole filtered
queryset); the services walk it in bounded primary-key batches, so nothing
here loads more than a page of rows.

The lists stay fast on a million jobs: no full count (``show_full_result_count``,
facets off, an estimated count on PostgreSQL), the default order is the
primary key (time-ordered UUIDv7, so newest first without a sort), and every
filter has an index behind it (queues/models.py).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal

from accounts.models import User
from queues import control, services
from queues.ids import short_id
from queues.models import (
    MAX_IN_FLIGHT_LIMIT,
    STATUSES_IN_USE,
    DeadJob,
    Job,
    JobAttempt,
    JobStatus,
    QueueSettings,
    error_text_contains,
)
from queues.paging import EstimatedCountPaginator
from queues.store import get_store


class StatusFilter(admin.SimpleListFilter):
    """The statuses a job can be in (``failed`` is never set: queues/models.py)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(status, status) for status in STATUSES_IN_USE]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value():
            return queryset.filter(status=self.value())
        return queryset


class QueueFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # The distinct names without reading every job (a loose index scan on PostgreSQL).
        names = get_store(model_admin.model.objects.db).queue_names(
            model_admin.model.objects.db, 200
        )
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value():
            return queryset.filter(queue_name=self.value())
        return queryset


STATUS_COLOURS = {
    JobStatus.PENDING: "#1d4ed8",
    JobStatus.PROCESSING: "#7c3aed",
    JobStatus.COMPLETED: "#15803d",
    JobStatus.CANCELLED: "#4b5563",
    JobStatus.DEAD: "#b91c1c",
}


def pretty_json(value: Any) -> str:
    if value is None:
        return "—"
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return format_html('<pre class="oq-json">{}</pre>', text)


def search_words(jobs: QuerySet[Job], term: str, *, dead_only: bool = False) -> QuerySet[Job]:
    """Jobs that match every word of ``term`` (quotes keep words together, as
    in Django's admin search): as the exact name of their queue, their
    owner's email (any case), or a part of their error text (any case).

    Each alternative has an index behind it: the queue's (jobs_queue_id_idx),
    the owner's, and for error text the trigram index of dead jobs and the
    index of the other jobs with an error (``error_text_contains``); so the
    planner ORs index scans instead of reading every job. ``dead_only``:
    ``jobs`` are dead jobs (the DLQ), and only their index is asked.
    """
    for word in smart_split(term):
        if word[:1] in {'"', "'"} and word[-1] == word[0]:
            word = unescape_string_literal(word)
        if not word:
            continue
        owners = User.objects.filter(email__iexact=word).values_list("pk", flat=True)
        matches = Q(queue_name=word) | error_text_contains(word, dead_only=dead_only)
        if ids := list(owners):
            matches |= Q(owner_id__in=ids)
        jobs = jobs.filter(matches)
    return jobs


class BaseJobAdmin(admin.ModelAdmin):
    """What the job list and the DLQ share: read-only detail page, speed settings."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    # The list holds dead jobs only (the DLQ): its searches ask only their indexes.
    dead_only = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    list_select_related = ["owner"]
    # The primary key is a UUIDv7, so its order is creation order and needs no sort.
    ordering = ["-pk"]
    sortable_by = ["job_id"]
    list_display_links = ["job_id"]
    # Shows the search box; get_search_results does the matching (search_words).
    search_fields = ["=queue_name", "=owner__email", "error_text"]
    search_help_text = (
        "A job id, an exact queue name or owner email, or words of the error text (any case)."
    )
    fieldsets = [
        (None, {"fields": ["id", "status_badge", "queue_name", "owner", "priority", "retries"]}),
        ("Payload and result", {"fields": ["payload_pretty", "result_pretty", "error_pretty"]}),
        ("Lease", {"fields": ["locked_by", "locked_until", "lease_token", "lease_lost_count"]}),
        ("Dead letter", {"fields": ["dead_reason", "dead_at"]}),
        (
            "Timestamps (UTC)",
            {"fields": ["run_at", "created_at", "updated_at", "started_at", "finished_at"]},
        ),
    ]
    readonly_fields = [str(field) for _, options in fieldsets for field in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # The detail page is view-only; the list keeps "change" for the actions.
        return obj is None and super().has_change_permission(request)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # Django's delete_selected loads every selected row; ours deletes in batches.
        actions.pop("delete_selected", None)
        return actions

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        term = search_term.strip()
        try:
            job_id = uuid.UUID(term)
        except ValueError:
            pass
        else:
            return queryset.filter(pk=job_id), False  # one primary-key probe
        if "@" in term and " " not in term:
            # An owner's email: the owner's id first, then the jobs through their
            # index (a join on the email made PostgreSQL walk every job by id).
            owner = User.objects.filter(email__iexact=term).first()
            if owner is not None:
                return queryset.filter(owner=owner), False
        return search_words(queryset, term, dead_only=self.dead_only), False

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> str:
        return format_html(
            '<span class="oq-badge" style="background:{}">{}</span>',
            STATUS_COLOURS.get(JobStatus(job.status), "#4b5563"),
            job.status,
        )

    @admin.display(description="job id", ordering="pk")
    def job_id(self, job: Job) -> str:
        # The first and last 8 hex digits (the first are the creation time); the
        # full id on hover, on the job's page, and searchable.
        return format_html('<code class="oq-id" title="{}">{}</code>', job.pk, short_id(job.pk))

    @admin.display(description="retries")
    def retries(self, job: Job) -> str:
        return f"{job.retry_count}/{job.max_retries}"

    @admin.display(description="payload")
    def payload_pretty(self, job: Job) -> str:
        return pretty_json(job.payload)

    @admin.display(description="result")
    def result_pretty(self, job: Job) -> str:
        return pretty_json(job.result)

    @admin.display(description="error text")
    def error_pretty(self, job: Job) -> str:
        if not job.error_text:
            return "—"
        return format_html('<pre class="oq-json oq-error">{}</pre>', job.error_text)

    @admin.display(description="owner", ordering="owner__email")
    def owner_email(self, job: Job) -> str:
        # Wraps inside its column: a long address must not push the list off screen.
        return format_html('<span class="oq-wrap">{}</span>', job.owner.email)

    @admin.display(description="error")
    def error_excerpt(self, job: Job) -> str:
        text = job.error_text or ""
        excerpt = text if len(text) <= 80 else text[:79] + "…"
        return format_html('<span class="oq-excerpt" title="{}">{}</span>', text[:500], excerpt)

    # --- Actions ------------------------------------------------------------------

    def _confirm_then_run(
        self,
        request: HttpRequest,
        queryset: QuerySet[Job],
        *,
        eligible: QuerySet[Job],
        **action: Any,
    ) -> HttpResponse | None:
        """The site's confirmation step (openqueue_site/admin.py) with a sample of jobs."""
        return self.admin_site.confirm_then_run(  # type: ignore[attr-defined]
            self,
            request,
            queryset,
            nouns=("job", "jobs"),
            eligible=eligible.select_related("owner").order_by("-pk"),
            headings=["Job", "Queue", "Owner", "Status", "Created (UTC)"],
            row=lambda job: (
                job.pk,
                job.queue_name,
                job.owner,
                job.status,
                f"{job.created_at:%Y-%m-%d %H:%M:%S}",
            ),
            skip_reason="their status does not allow it",
            **action,
        )

    @admin.action(
        description="Requeue (dead, cancelled, completed → pending now)",
        permissions=["change"],
    )
    def requeue(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        reset = request.POST.get("reset_retries") == "on"
        return self._confirm_then_run(
            request,
            queryset,
            verb="requeue",
            done="requeued",
            eligible=queryset.filter(status__in=services.REQUEUEABLE),
            run=lambda jobs: services.requeue_jobs(jobs, reset_retries=reset),
            options=[("reset_retries", "Also reset the retry count to 0")],
        )

    @admin.action(description="Cancel pending jobs", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        return self._confirm_then_run(
            request,
            queryset,
            verb="cancel",
            done="cancelled",
            eligible=queryset.filter(status=JobStatus.PENDING),
            run=services.cancel_jobs,
        )

    @admin.action(description="Send to the dead-letter queue", permissions=["change"])
    def bury(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        return self._confirm_then_run(
            request,
            queryset,
            verb="bury",
            done="sent to the DLQ",
            eligible=queryset.filter(status__in=services.BURIABLE),
            run=services.bury_jobs,
            warning="Processing jobs lose their lease: their worker's ack or nack will get 409.",
        )

    @admin.action(description="Delete for good", permissions=["delete"])
    def delete(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        return self._confirm_then_run(
            request,
            queryset,
            verb="delete",
            done="deleted",
            eligible=queryset,
            run=services.delete_jobs,
            warning="Deleted jobs cannot be recovered.",
        )


class AttemptInline(admin.TabularInline):
    """The job's attempts, oldest first, on its page (read-only)."""

    model = JobAttempt
    fields = readonly_fields = (
        "attempt",
        "outcome",
        "worker_id",
        "leased_at",
        "lease_expires_at",
        "finished_at",
        "duration",
        "error",
    )
    ordering = ["attempt"]
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = "attempts (the newest OPENQUEUE_MAX_ATTEMPTS_KEPT)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="duration")
    def duration(self, attempt: JobAttempt) -> str:
        ms = attempt.duration_ms
        return "—" if ms is None else f"{ms / 1000:.3f} s"


@admin.register(Job)
class JobAdmin(BaseJobAdmin):
    # Readable at 1280 px next to the filters: the columns an operator scans.
    # Priority, run_at and finished_at are on the job's page.
    list_display = ["job_id", "status_badge", "queue_name", "owner_email", "retries", "created_at"]
    # No owner filter: it would list every user. Search by the owner's email.
    list_filter = [StatusFilter, QueueFilter, "created_at"]
    actions = ["requeue", "cancel", "bury", "delete"]
    inlines = [AttemptInline]


@admin.register(DeadJob)
class DeadJobAdmin(BaseJobAdmin):
    """The dead-letter queue: only dead jobs, requeue first."""

    list_display = [
        "job_id",
        "queue_name",
        "owner_email",
        "dead_reason",
        "error_excerpt",
        "retries",
        "dead_at",
    ]
    list_filter = [QueueFilter, "dead_reason", "dead_at"]
    actions = ["requeue", "delete"]
    dead_only = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return super().get_queryset(request).filter(status=JobStatus.DEAD)


@admin.register(QueueSettings)
class QueueSettingsAdmin(admin.ModelAdmin):
    """Queues with settings: pause, resume and max_in_flight (queues/control.py).

    Every change goes through ``control.change_queue``, as from the API and
    the console: it is logged with the operator's name, and resuming wakes
    the queue's waiting long-polls. A queue gets a row here on its first
    change; "Add" creates one for a queue that has none yet.
    """

    list_per_page = 50  # as the job lists: Django's 100 rows cost ~50 ms (docs/benchmarks.md)
    list_display = ["queue_name", "owner", "paused", "max_in_flight", "in_flight", "updated_at"]
    list_filter = ["paused"]
    list_select_related = ["owner"]
    search_fields = ["=queue_name", "=owner__email"]
    ordering = ["owner", "queue_name"]
    fields = ["owner", "queue_name", "paused", "max_in_flight", "created_at", "updated_at"]
    readonly_fields = ["created_at", "updated_at"]
    actions = ["pause", "resume", "set_max_in_flight", "remove_limit"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Which queue a row is about never changes.
        fixed = ["owner", "queue_name"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # a queue's settings are changed, not deleted
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: QueueSettings, form: Any, change: bool) -> None:
        control.change_queue(
            owner=obj.owner,
            queue_name=obj.queue_name,
            paused=obj.paused,
            max_in_flight=obj.max_in_flight,
            actor=f"admin: {request.user}",
        )
        # The row change_queue wrote (created on an "add"): the admin links to it.
        obj.pk = QueueSettings.objects.get(owner=obj.owner, queue_name=obj.queue_name).pk

    def get_queryset(self, request: HttpRequest) -> QuerySet[QueueSettings]:
        # Each row's in-flight count in the list's own query (a count per row was 220 ms).
        return control.in_flight_of_each(super().get_queryset(request), timezone.now())

    @admin.display(description="in flight", ordering="in_flight_now")
    def in_flight(self, row: QueueSettings) -> int:
        return row.in_flight_now  # type: ignore[attr-defined]

    def _confirm(
        self, request: HttpRequest, queryset: QuerySet[QueueSettings], **action: Any
    ) -> HttpResponse | None:
        return self.admin_site.confirm_then_run(  # type: ignore[attr-defined]
            self,
            request,
            queryset,
            nouns=("queue", "queues"),
            headings=["Queue", "Owner", "Paused", "Max in flight"],
            row=lambda q: (q.queue_name, q.owner, "yes" if q.paused else "no", q.max_in_flight),
            **action,
        )

    def _actor(self, request: HttpRequest) -> str:
        return f"admin: {request.user}"

    @admin.action(description="Pause (lease nothing; enqueues go on)", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[QueueSettings]) -> HttpResponse | None:
        return self._confirm(
            request,
            queryset,
            verb="pause",
            done="paused",
            eligible=queryset.filter(paused=False),
            run=lambda rows: control.change_queues(rows, paused=True, actor=self._actor(request)),
            skip_reason="already paused",
            warning="Jobs already leased finish normally; nothing new is leased until resumed.",
        )

    @admin.action(description="Resume", permissions=["change"])
    def resume(
        self, request: HttpRequest, queryset: QuerySet[QueueSettings]
    ) -> HttpResponse | None:
        return self._confirm(
            request,
            queryset,
            verb="resume",
            done="resumed",
            eligible=queryset.filter(paused=True),
            run=lambda rows: control.change_queues(rows, paused=False, actor=self._actor(request)),
            skip_reason="not paused",
        )

    @admin.action(description="Set max in flight…", permissions=["change"])
    def set_max_in_flight(
        self, request: HttpRequest, queryset: QuerySet[QueueSettings]
    ) -> HttpResponse | None:
        def run(rows: QuerySet[QueueSettings]) -> int:
            limit = int(request.POST["max_in_flight"].strip())
            return control.change_queues(rows, max_in_flight=limit, actor=self._actor(request))

        return self._confirm(
            request,
            queryset,
            verb="limit",
            done="limited",
            eligible=queryset,
            run=run,
            skip_reason="they had that limit already",
            number=("max_in_flight", "Max in flight", 1, MAX_IN_FLIGHT_LIMIT),
            warning="Leases already held are not taken back: a queue above its new limit "
            "leases nothing until enough of them finish.",
        )

    @admin.action(description="Remove the max in flight limit", permissions=["change"])
    def remove_limit(
        self, request: HttpRequest, queryset: QuerySet[QueueSettings]
    ) -> HttpResponse | None:
        return self._confirm(
            request,
            queryset,
            verb="unlimit",
            done="unlimited",
            eligible=queryset.filter(max_in_flight__isnull=False),
            run=lambda rows: control.change_queues(
                rows, max_in_flight=None, actor=self._actor(request)
            ),
            skip_reason="no limit to remove",
        )
