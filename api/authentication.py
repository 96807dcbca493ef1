"""Bearer-token authentication for the REST API."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts.models import ApiToken, User
from accounts.services import Spend, find_active_token
from accounts.tokens import hash_token
from ratelimits.buckets import auth_failures
from ratelimits.clients import client_address

# last_used_at is a hint for humans ("is this token still in use?"), so it is
# written at most once a minute: a busy worker must not turn every request
# into a write on the token row.
LAST_USED_RESOLUTION = timedelta(minutes=1)

logger = logging.getLogger("openqueue.auth")


class NotAuthenticated(exceptions.NotAuthenticated):
    default_detail = "Not authenticated"


def _rate_limit_spend(request: Request) -> Spend | None:
    """The rate-limit bucket this request spends from (api/throttling.py), if any."""
    if not settings.OPENQUEUE_RATE_LIMIT_ENABLED:
        return None
    view = request.parser_context.get("view") if request.parser_context else None
    action = getattr(view, "rate_limit_actions", {}).get(request.method)
    if action is None:
        return None
    rate, burst = settings.OPENQUEUE_RATE_LIMITS[action]
    return Spend(action=action, rate=rate, burst=burst)


class BearerTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>``.

    - no header, or ``Bearer`` without a credential: 401 "Not authenticated";
    - another scheme: 401 "Invalid authentication credentials";
    - an unknown or revoked token: 401 "Invalid API token";
    - a token of an inactive user: 403 "User is inactive";
    - an unknown or revoked token from an address with too many of them
      lately: 429 "Too many
      failed authentication attempts" (ratelimits/buckets.py; api/errors.py
      answers it).

    Every 401 carries ``WWW-Authenticate: Bearer`` (see ``authenticate_header``).
    The token is looked up by its hash through a unique index; the raw token
    is never compared, so the lookup leaks nothing through timing.
    """

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, credentials = header.strip().partition(" ")
        if not scheme:
            raise NotAuthenticated()
        if scheme.lower() != self.keyword:
            raise exceptions.AuthenticationFailed("Invalid authentication credentials")
        credentials = credentials.strip()
        if not credentials:
            raise NotAuthenticated()
        spend = _rate_limit_spend(request)
        token, wait = find_active_token(hash_token(credentials), spend)
        if wait is not None:
            # The rate limit was spent by the lookup's own statement: the
            # throttle reads the outcome instead of spending again.
            request._request.openqueue_rate_limit_wait = (spend, wait)  # type: ignore[attr-defined]
        if token is None:
            # Brute force: each failure spends from the address's budget;
            # past it the failures are 429. A valid token is never refused
            # for what others on its address did (ratelimits/buckets.py).
            auth_failures.token_failed(client_address(request))
            raise exceptions.AuthenticationFailed("Invalid API token")
        if not token.owner.is_active:
            raise exceptions.PermissionDenied("User is inactive")
        self._touch(token)
        # For the request log line, which sees only the underlying HttpRequest.
        request._request.openqueue_tenant_id = token.owner_id  # type: ignore[attr-defined]
        return token.owner, token

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"

    @staticmethod
    def _touch(token: ApiToken) -> None:
        now = timezone.now()
        if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
            return
        # Guarded, so concurrent requests in the same minute write once.
        cutoff = now - LAST_USED_RESOLUTION
        try:
            ApiToken.objects.filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lt=cutoff), pk=token.pk
            ).update(last_used_at=now)
        except OperationalError as exc:
            # Only a hint: a database that takes no writes (a read-only SQLite
            # file) must still serve reads. Requests run in autocommit, so the
            # failed UPDATE leaves no broken transaction behind.
            logger.warning("could not record last_used_at: %s", exc)
            return
        token.last_used_at = now


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Tells drf-spectacular (and so Swagger UI's Authorize button) about bearer tokens."""

    target_class = BearerTokenAuthentication
    name = "BearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An oq_live_… API token."}
