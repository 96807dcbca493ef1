"""Schedules in the admin: list, edit, enable or disable, trigger now.

Saving goes through ``services.put_schedule`` (as ``PUT /schedules/{name}``),
so the cron and the time zone are checked the same way and ``next_run_at``
follows the same rule; enabling and disabling through ``set_enabled``;
"Trigger now" enqueues one job per selected schedule.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join

from schedules import cron, services
from schedules.models import NAME_PATTERN, Schedule
from schedules.services import ScheduleSpec

RECENT_RUNS = 10


class ScheduleForm(forms.ModelForm):
    name = forms.RegexField(regex=NAME_PATTERN, max_length=100)

    class Meta:
        model = Schedule
        fields = [
            "owner",
            "name",
            "queue_name",
            "cron",
            "timezone",
            "payload",
            "priority",
            "max_retries",
            "enabled",
        ]
        help_texts = {
            "cron": "Five fields (minute hour day-of-month month day-of-week), "
            "or @hourly, @daily, @weekly, @monthly, @yearly.",
            "timezone": "An IANA name, e.g. Europe/Berlin.",
        }

    def clean_cron(self) -> str:
        value: str = self.cleaned_data["cron"]
        try:
            cron.expand(value)
        except cron.CronError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def clean_timezone(self) -> str:
        value: str = self.cleaned_data["timezone"]
        try:
            cron.zone(value)
        except cron.CronError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def clean_payload(self) -> Any:
        value = self.cleaned_data.get("payload")
        problem = services.payload_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_queue_name(self) -> str:
        value: str = self.cleaned_data["queue_name"]
        if "/" in value or "\x00" in value:
            raise forms.ValidationError("A queue name has no '/' and no NUL.")
        return value


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_per_page = 50  # as the job lists: Django's 100 rows cost ~50 ms (docs/benchmarks.md)
    list_display = [
        "name",
        "owner",
        "queue_name",
        "cron",
        "timezone",
        "enabled",
        "next_run_at",
        "last_run_at",
    ]
    list_filter = ["enabled"]
    list_select_related = ["owner"]
    search_fields = ["=name", "=queue_name", "=owner__email"]
    ordering = ["owner", "name"]
    readonly_fields = ["next_run_at", "last_run_at", "created_at", "updated_at", "recent_runs"]
    actions = ["enable", "disable", "trigger_now"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fixed = ["owner", "name"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        spec = ScheduleSpec.of(form.cleaned_data)
        saved, _ = services.put_schedule(owner=obj.owner, name=obj.name, spec=spec)
        obj.pk = saved.pk

    @admin.display(description=f"last {RECENT_RUNS} runs")
    def recent_runs(self, schedule: Schedule) -> str:
        runs = schedule.runs.order_by("-occurrence")[:RECENT_RUNS]
        if not runs:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} (UTC): job <code>{}</code></li>",
                ((f"{run.occurrence:%Y-%m-%d %H:%M}", run.job_id) for run in runs),
            ),
        )

    def _confirm(
        self, request: HttpRequest, queryset: QuerySet[Schedule], **action: Any
    ) -> HttpResponse | None:
        return self.admin_site.confirm_then_run(  # type: ignore[attr-defined]
            self,
            request,
            queryset,
            nouns=("schedule", "schedules"),
            headings=["Schedule", "Owner", "Queue", "Cron", "Enabled"],
            row=lambda s: (s.name, s.owner, s.queue_name, f"{s.cron} ({s.timezone})", s.enabled),
            **action,
        )

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> HttpResponse | None:
        return self._confirm(
            request,
            queryset,
            verb="enable",
            done="enabled",
            eligible=queryset.filter(enabled=False),
            run=lambda rows: services.set_enabled(rows, enabled=True),
            skip_reason="already enabled",
            warning="Occurrences missed while disabled are not fired: each starts from its "
            "next occurrence.",
        )

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> HttpResponse | None:
        return self._confirm(
            request,
            queryset,
            verb="disable",
            done="disabled",
            eligible=queryset.filter(enabled=True),
            run=lambda rows: services.set_enabled(rows, enabled=False),
            skip_reason="already disabled",
        )

    @admin.action(description="Trigger now (enqueue one job each)", permissions=["change"])
    def trigger_now(
        self, request: HttpRequest, queryset: QuerySet[Schedule]
    ) -> HttpResponse | None:
        def run(rows: QuerySet[Schedule]) -> int:
            for schedule in rows.select_related("owner"):
                services.trigger(owner=schedule.owner, name=schedule.name)
            return rows.count()

        return self._confirm(
            request,
            queryset,
            verb="trigger",
            done="triggered",
            eligible=queryset,
            run=run,
            skip_reason="",
            warning="Each enqueues one job now, whatever its cron says; its next run stays.",
        )
