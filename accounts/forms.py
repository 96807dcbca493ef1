"""Sign-in forms for the console and the admin, with a brute-force limit.

A budget per client address and account (ratelimits/buckets.py,
``OPENQUEUE_AUTH_FAILURE_LIMIT``): each try spends from it before the
password is checked, and a right password gives its try back. Over the
budget even the right password is refused, so guessing stays expensive; a
neighbour on the same address guessing at another account costs nothing
here.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from ratelimits.buckets import TooManyAuthFailures, auth_failures
from ratelimits.clients import client_address


class ThrottledLoginMixin:
    """``clean()`` with the failed-authentication limit around Django's check."""

    request: Any

    def clean(self) -> dict[str, Any]:
        address = client_address(self.request) if self.request is not None else "unknown"
        account = self.data.get("username", "")  # type: ignore[attr-defined]
        try:
            auth_failures.try_password(address, account)
        except TooManyAuthFailures as exc:
            raise forms.ValidationError(
                "Too many failed sign-in attempts for this account from your address. "
                f"Try again in {exc.wait} seconds.",
                code="throttled",
            ) from None
        cleaned = super().clean()  # type: ignore[misc]
        # Only a right password gets its try back: a wrong one (or an
        # inactive account) keeps it spent.
        auth_failures.password_was_right(address, account)
        return cleaned


class ConsoleLoginForm(ThrottledLoginMixin, AuthenticationForm):
    """The console's sign-in form (/accounts/login/)."""


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin's sign-in form (/admin/login/)."""
