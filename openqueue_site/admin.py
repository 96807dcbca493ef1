"""The admin site: Django's, with the brute-force-limited sign-in and one
confirmation step for every bulk action.

Every state-changing admin action (queues/admin.py, accounts/admin.py) goes
through ``confirm_then_run``: a page that says how many rows are selected,
how many the action will change and why the rest are skipped, with a short
sample; "Yes" posts the same selection back with ``confirm=yes``, the
service runs, and the message reports "N <done>, M skipped".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.forms import AdminLoginForm
from openqueue_site import audit
from openqueue_site.charts import dashboard_charts
from queues.control import health_numbers

# The confirmation page lists at most this many of the rows that will change.
SAMPLE_SIZE = 10


@dataclass(frozen=True)
class NumberInput:
    """A whole number a confirmation page asks for (the new max_in_flight of some queues)."""

    name: str
    label: str
    minimum: int
    maximum: int

    def error(self, text: str) -> str:
        """What is wrong with ``text``, or "" when it is a number in range."""
        try:
            value = int(text.strip())
        except ValueError:
            return f"{self.label}: enter a whole number."
        if not self.minimum <= value <= self.maximum:
            return f"{self.label}: between {self.minimum} and {self.maximum}."
        return ""


class OpenQueueAdminSite(admin.AdminSite):
    site_header = "OpenQueue administration"
    site_title = "OpenQueue admin"
    # The app list is on the front page: without the left sidebar the lists
    # keep their columns at 1280 px beside the filters (it left them 631 px).
    enable_nav_sidebar = False
    # Wrong passwords spend the address's failed-authentication budget (accounts/forms.py).
    login_form = AdminLoginForm

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """The front page: every tenant's health numbers and charts above the app list."""
        now = timezone.now()
        context = {
            "health": health_numbers(now=now),
            "charts": dashboard_charts(owner=None, now=now),
            **(extra_context or {}),
        }
        return super().index(request, context)

    def confirm_then_run(
        self,
        model_admin: admin.ModelAdmin,
        request: HttpRequest,
        queryset: QuerySet[Any],
        *,
        verb: str,
        done: str,
        nouns: tuple[str, str],
        eligible: QuerySet[Any],
        run: Callable[[QuerySet[Any]], int],
        headings: Sequence[str],
        row: Callable[[Any], Sequence[Any]],
        skip_reason: str,
        warning: str = "",
        options: Sequence[tuple[str, str]] = (),
        number: tuple[str, str, int, int] | None = None,
    ) -> TemplateResponse | None:
        """Ask first; on "yes", run the action's service and report the counts.

        ``nouns`` are what the rows are called, singular and plural ("job", "jobs").

        ``queryset`` is the selection (the whole filtered list with "Select
        all"); ``eligible`` the part of it the action will change. Only
        counts and a sample are read here: ``run`` walks the rows itself.
        ``options`` are checkboxes, ``number`` a required whole number the
        confirmation asks for (name, label, minimum, maximum); ``run`` reads
        them from ``request.POST``.
        """
        asked = NumberInput(*number) if number is not None else None
        error = ""
        if request.POST.get("confirm") == "yes" and asked is not None:
            error = asked.error(request.POST.get(asked.name, ""))
        if request.POST.get("confirm") != "yes" or error:
            return self._confirmation(
                model_admin,
                request,
                queryset,
                verb=verb,
                done=done,
                nouns=nouns,
                eligible=eligible,
                headings=headings,
                row=row,
                skip_reason=skip_reason,
                warning=warning,
                options=options,
                number=asked,
                error=error,
            )
        selected = queryset.count()
        changed = run(queryset)
        skipped = selected - changed
        why = f" ({skip_reason})" if skipped else ""
        audit.record(
            request,
            action=verb,
            model=queryset.model,
            count=changed,
            detail=f"{selected} selected, {skipped} skipped"
            + "".join(f", {name}" for name, _ in options if request.POST.get(name) == "on")
            + (f", {number[0]}={request.POST.get(number[0])}" if number is not None else ""),
            kind="deleted" if verb == "delete" else "changed",
        )
        model_admin.message_user(
            request,
            f"{changed} {done}, {skipped} skipped{why}.",
            messages.SUCCESS if changed else messages.WARNING,
        )
        return None

    def _confirmation(
        self,
        model_admin: admin.ModelAdmin,
        request: HttpRequest,
        queryset: QuerySet[Any],
        *,
        verb: str,
        done: str,
        nouns: tuple[str, str],
        eligible: QuerySet[Any],
        headings: Sequence[str],
        row: Callable[[Model], Sequence[Any]],
        skip_reason: str,
        warning: str,
        options: Sequence[tuple[str, str]],
        number: NumberInput | None,
        error: str,
    ) -> TemplateResponse:
        selected_count = queryset.count()
        eligible_count = eligible.count()
        opts = model_admin.model._meta
        context = {
            **self.each_context(request),
            "title": f"{verb.capitalize()} {nouns[1]}?",
            "opts": opts,
            "verb": verb,
            "noun": nouns[0] if eligible_count == 1 else nouns[1],
            "done": done,
            "warning": warning,
            "options": options,
            "number": number,
            "number_value": request.POST.get(number.name, "") if number else "",
            "error": error,
            "headings": headings,
            "rows": [row(obj) for obj in eligible[:SAMPLE_SIZE]],
            "selected_count": selected_count,
            "eligible_count": eligible_count,
            "skip_count": selected_count - eligible_count,
            "skip_reason": skip_reason,
            "action": request.POST.get("action", ""),
            "select_across": request.POST.get("select_across", "0"),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "back_url": request.get_full_path(),
        }
        return TemplateResponse(request, "admin/action_confirmation.html", context)
