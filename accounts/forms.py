"""Sign-in forms for the console and the admin, with a brute-force limit.

The same per-address budget as bearer tokens and the provisioning secret
(ratelimits/buckets.py, ``OPENQUEUE_AUTH_FAILURE_LIMIT``): each wrong
password spends a token of the address's bucket, and an address over its
budget is refused before its password is even checked, so a right guess
tells it nothing either.
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
        try:
            auth_failures.check(address)
        except TooManyAuthFailures as exc:
            raise forms.ValidationError(
                "Too many failed sign-in attempts from your address. "
                f"Try again in {exc.wait} seconds.",
                code="throttled",
            ) from None
        try:
            return super().clean()  # type: ignore[misc]
        except forms.ValidationError as exc:
            if any(error.code == "invalid_login" for error in exc.error_list):
                auth_failures.failed(address)
            raise


class ConsoleLoginForm(ThrottledLoginMixin, AuthenticationForm):
    """The console's sign-in form (/accounts/login/)."""


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin's sign-in form (/admin/login/)."""
