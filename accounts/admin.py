from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from accounts.forms import AdminLoginForm
from accounts.models import ApiToken, User
from accounts.services import deactivate_users, revoke_token

# Wrong passwords spend the address's failed-authentication budget (accounts/forms.py).
admin.site.login_form = AdminLoginForm

# The confirmation pages list at most this many of the rows that will change.
CONFIRM_LIST_LIMIT = 50


def confirmation_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    verb: str,
    done: str,
    skip_reason: str,
    warning: str,
    headings: list[str],
    rows: list[tuple[Any, ...]],
    eligible_count: int,
) -> TemplateResponse:
    """The "are you sure?" page of an irreversible action; "Yes" posts back with confirm=yes."""
    selected_count = queryset.count()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{verb.capitalize()} {model_admin.model._meta.verbose_name_plural}?",
        "opts": model_admin.model._meta,
        "verb": verb,
        "done": done,
        "warning": warning,
        "headings": headings,
        "rows": rows,
        "selected_count": selected_count,
        "skip_count": selected_count - eligible_count,
        "skip_reason": skip_reason,
        "action": request.POST.get("action", ""),
        "select_across": request.POST.get("select_across", "0"),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "back_url": request.get_full_path(),
    }
    return TemplateResponse(request, "admin/accounts/action_confirmation.html", context)


class UserCreationForm(auth_forms.AdminUserCreationForm):
    """Django's admin creation form, for our email-as-login user."""

    class Meta:
        model = User
        fields = ["email"]


class UserChangeForm(auth_forms.UserChangeForm):
    class Meta:
        model = User
        fields = ["email", "password", "is_active", "is_staff", "is_superuser"]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ["email"]
    list_display = ["email", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = ["is_active", "is_staff"]
    search_fields = ["email"]
    readonly_fields = ["date_joined", "last_login"]
    filter_horizontal: list[str] = []
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser"]}),
        ("Dates", {"fields": ["date_joined", "last_login"]}),
    ]
    add_fieldsets = [
        (
            None,
            {
                "classes": ["wide"],
                "fields": ["email", "usable_password", "password1", "password2"],
            },
        )
    ]
    actions = ["deactivate_selected"]

    @admin.action(description="Deactivate selected users (their tokens stop working)")
    def deactivate_selected(
        self, request: HttpRequest, queryset: QuerySet[User]
    ) -> HttpResponse | None:
        eligible = queryset.filter(is_active=True).order_by("email")
        if request.POST.get("confirm") != "yes":
            return confirmation_page(
                self,
                request,
                queryset,
                verb="deactivate",
                done="deactivated",
                skip_reason="already inactive",
                warning="They can no longer sign in, and every API token they own stops "
                "working at once (403). Their jobs stay.",
                headings=["Email", "Staff", "Joined (UTC)"],
                rows=[
                    (user.email, "yes" if user.is_staff else "no", f"{user.date_joined:%Y-%m-%d}")
                    for user in eligible[:CONFIRM_LIST_LIMIT]
                ],
                eligible_count=eligible.count(),
            )
        deactivated = deactivate_users(queryset)
        skipped = queryset.count() - deactivated
        self.message_user(
            request,
            f"{deactivated} deactivated, {skipped} skipped (already inactive).",
            messages.SUCCESS if deactivated else messages.WARNING,
        )
        return None


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued in the web UI or by provisioning; the hash is never shown."""

    list_display = ["name", "prefix", "owner", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    list_select_related = ["owner"]
    search_fields = ["name", "prefix", "owner__email"]
    # token_hash is deliberately absent from every list here.
    fields = ["name", "prefix", "owner", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields

    actions = ["revoke_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        # View-only detail page; revoking is the action below.
        return obj is None and super().has_change_permission(request)

    @admin.action(description="Revoke selected API tokens", permissions=["change"])
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[ApiToken]
    ) -> HttpResponse | None:
        eligible = queryset.filter(revoked_at=None).select_related("owner").order_by("-pk")
        if request.POST.get("confirm") != "yes":
            return confirmation_page(
                self,
                request,
                queryset,
                verb="revoke",
                done="revoked",
                skip_reason="already revoked",
                warning="A revoked token is refused (401) on its next request, and it cannot "
                "be restored: its owner has to create a new one.",
                headings=["Name", "Prefix", "Owner", "Last used (UTC)"],
                rows=[
                    (
                        token.name,
                        token.prefix,
                        token.owner.email,
                        f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else None,
                    )
                    for token in eligible[:CONFIRM_LIST_LIMIT]
                ],
                eligible_count=eligible.count(),
            )
        revoked = sum(revoke_token(token=token) for token in eligible)
        skipped = queryset.count() - revoked
        self.message_user(request, f"Revoked {revoked} token(s); {skipped} already revoked.")
        return None
