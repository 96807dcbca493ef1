"""The console's schedules: list, create, edit, enable or disable, trigger, delete.

Every change goes through schedules/services.py, as ``PUT /schedules/{name}``
and the admin do, so the cron, the time zone and ``next_run_at`` follow one
set of rules. Another user's schedule is a 404.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from console.jobs import user_of
from openqueue_site import audit
from queues.models import INT32_MAX, INT32_MIN, QUEUE_NAME_MAX_LENGTH
from schedules import cron, services
from schedules.models import NAME_PATTERN, Schedule
from schedules.services import ScheduleNotFound, ScheduleSpec

RECENT_RUNS = 10


class ScheduleForm(forms.Form):
    name = forms.RegexField(
        regex=NAME_PATTERN,
        max_length=100,
        help_text="1 to 100 of A–Z a–z 0–9 _ . : -",
        error_messages={"invalid": "Use 1 to 100 of A–Z, a–z, 0–9 and _ . : -"},
    )
    queue_name = forms.CharField(max_length=QUEUE_NAME_MAX_LENGTH)
    cron = forms.CharField(
        max_length=cron.MAX_LENGTH,
        help_text="minute hour day-of-month month day-of-week, or @hourly, @daily, @weekly…",
    )
    timezone = forms.CharField(
        label="Time zone", initial="UTC", max_length=64, help_text="An IANA name."
    )
    payload = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        initial="{}",
        required=False,
        help_text="JSON; empty for {}.",
    )
    priority = forms.IntegerField(initial=0, min_value=INT32_MIN, max_value=INT32_MAX)
    max_retries = forms.IntegerField(initial=3, min_value=0, max_value=INT32_MAX)
    enabled = forms.BooleanField(initial=True, required=False)

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            self.fields["name"].disabled = True  # renaming is a delete and a create

    def clean_queue_name(self) -> str:
        value: str = self.cleaned_data["queue_name"]
        if "/" in value or "\x00" in value:
            raise forms.ValidationError("A queue name has no '/' and no NUL character.")
        return value

    def clean_cron(self) -> str:
        return self._checked(cron.expand, self.cleaned_data["cron"])

    def clean_timezone(self) -> str:
        return self._checked(cron.zone, self.cleaned_data["timezone"])

    def clean_payload(self) -> Any:
        text = self.cleaned_data["payload"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        problem = services.payload_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    @staticmethod
    def _checked(check: Any, value: str) -> str:
        try:
            check(value)
        except cron.CronError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def spec(self) -> ScheduleSpec:
        return ScheduleSpec.of(self.cleaned_data)


def _mine(request: HttpRequest, name: str) -> Schedule:
    try:
        return services.get_schedule(owner=user_of(request), name=name)
    except ScheduleNotFound:
        raise Http404("No such schedule") from None


def _initial(schedule: Schedule) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "queue_name": schedule.queue_name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "payload": json.dumps(schedule.payload, indent=2, ensure_ascii=False),
        "priority": schedule.priority,
        "max_retries": schedule.max_retries,
        "enabled": schedule.enabled,
    }


@login_required
@require_http_methods(["GET", "POST"])
def schedule_list(request: HttpRequest) -> HttpResponse:
    """The user's schedules, and the form that creates one."""
    form = ScheduleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["name"]
        if Schedule.objects.filter(owner=user_of(request), name=name).exists():
            form.add_error("name", "You have a schedule of this name already: edit that one.")
        else:
            services.put_schedule(owner=user_of(request), name=name, spec=form.spec())
            _audit(request, "created", name, kind="added")
            messages.success(request, f"Schedule {name} created.")
            return HttpResponseRedirect(reverse("console-schedule", args=[name]))
    return render(
        request,
        "console/schedule_list.html",
        {"schedules": services.list_schedules(owner=user_of(request)), "form": form},
    )


@login_required
@require_http_methods(["GET", "POST"])
def schedule_detail(request: HttpRequest, name: str) -> HttpResponse:
    schedule = _mine(request, name)
    form = ScheduleForm(request.POST or None, initial=_initial(schedule), editing=True)
    if request.method == "POST" and form.is_valid():
        services.put_schedule(owner=user_of(request), name=schedule.name, spec=form.spec())
        _audit(request, "changed", schedule.name)
        messages.success(request, f"Schedule {schedule.name} saved.")
        return HttpResponseRedirect(reverse("console-schedule", args=[schedule.name]))
    return render(
        request,
        "console/schedule_detail.html",
        {
            "schedule": schedule,
            "form": form,
            "runs": schedule.runs.order_by("-occurrence")[:RECENT_RUNS],
        },
    )


def _audit(request: HttpRequest, action: str, name: str, **extra: Any) -> None:
    schedule = Schedule.objects.filter(owner=user_of(request), name=name).first()
    audit.record(request, action=action, model=Schedule, count=1, obj=schedule, **extra)


@login_required
@require_POST
def schedule_action(request: HttpRequest, name: str) -> HttpResponse:
    """``action``: trigger, enable, disable, or delete (after a confirmation page)."""
    schedule = _mine(request, name)
    here = HttpResponseRedirect(reverse("console-schedule", args=[schedule.name]))
    action = request.POST.get("action", "")
    if action == "trigger":
        job_id = services.trigger(owner=user_of(request), name=schedule.name)
        _audit(request, "triggered", schedule.name, detail=f"job {job_id}")
        messages.success(request, f"Triggered: job {job_id} enqueued into {schedule.queue_name}.")
    elif action in ("enable", "disable"):
        mine = Schedule.objects.filter(pk=schedule.pk)
        changed = services.set_enabled(mine, enabled=action == "enable")
        if changed:
            _audit(request, f"{action}d", schedule.name)
        messages.success(
            request, f"Schedule {schedule.name} {action}d." if changed else "No change."
        )
    elif action == "delete":
        if request.POST.get("confirm") != "yes":
            return render(request, "console/schedule_delete.html", {"schedule": schedule})
        _audit(request, "deleted", schedule.name, kind="deleted")
        services.delete_schedule(owner=user_of(request), name=schedule.name)
        messages.success(request, f"Schedule {schedule.name} deleted; its jobs stay.")
        return HttpResponseRedirect(reverse("console-schedules"))
    else:
        messages.error(request, "Unknown action.")
    return here
