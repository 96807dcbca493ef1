"""The admin for users and API tokens: deactivate and revoke, each after a confirmation."""

from typing import Any

from django.contrib import admin
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from accounts.models import ApiToken, User
from accounts.services import deactivate_users, revoke_tokens


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
    list_per_page = 50  # as the job lists: Django's 100 rows cost ~50 ms (docs/benchmarks.md)
    list_display = ["email", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = ["is_active", "is_staff"]
    search_fields = ["email"]
    readonly_fields = ["date_joined", "last_login"]
    filter_horizontal = ()
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
        return self.admin_site.confirm_then_run(  # type: ignore[attr-defined]
            self,
            request,
            queryset,
            verb="deactivate",
            done="deactivated",
            nouns=("user", "users"),
            eligible=queryset.filter(is_active=True).order_by("email"),
            run=deactivate_users,
            headings=["Email", "Staff", "Joined (UTC)"],
            row=lambda user: (
                user.email,
                "yes" if user.is_staff else "no",
                f"{user.date_joined:%Y-%m-%d}",
            ),
            skip_reason="already inactive",
            warning="They can no longer sign in, and every API token they own stops "
            "working at once (403). Their jobs stay.",
        )


class TokenStateFilter(admin.SimpleListFilter):
    """Active or revoked, instead of Django's date choices for ``revoked_at``."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> QuerySet[ApiToken]:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued in the web UI or by provisioning; the hash is never shown."""

    list_per_page = 50  # as the job lists: Django's 100 rows cost ~50 ms (docs/benchmarks.md)
    list_display = ["name", "prefix", "owner", "created_at", "last_used_at", "revoked_at"]
    list_filter = [TokenStateFilter]
    list_select_related = ["owner"]
    search_fields = ["name", "prefix", "owner__email"]
    # token_hash is deliberately absent from every list here.
    fields = ("name", "prefix", "owner", "created_at", "last_used_at", "revoked_at")
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
        return self.admin_site.confirm_then_run(  # type: ignore[attr-defined]
            self,
            request,
            queryset,
            verb="revoke",
            done="revoked",
            nouns=("API token", "API tokens"),
            eligible=queryset.filter(revoked_at=None).select_related("owner").order_by("-pk"),
            run=revoke_tokens,
            headings=["Name", "Prefix", "Owner", "Last used (UTC)"],
            row=lambda token: (
                token.name,
                token.prefix,
                token.owner.email,
                f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else None,
            ),
            skip_reason="already revoked",
            warning="A revoked token is refused (401) on its next request, and it cannot "
            "be restored: its owner has to create a new one.",
        )
