"""Per-tenant, per-action rate limits (contract Part B §7.1), through DRF's throttle hook.

The buckets are shared by every server process (ratelimits/buckets.py); this
class only picks the bucket and the limits for a request.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.db import OperationalError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from ratelimits.buckets import take_token


class TokenBucketThrottle(BaseThrottle):
    """DRF throttle backed by ``take_token``.

    A view names its actions per HTTP method in ``rate_limit_actions``; the
    limits come from ``OPENQUEUE_RATE_LIMITS`` (settings.py). Authentication
    runs first, so a request with a bad token never spends a token. On
    PostgreSQL the token's lookup has already spent it in the same statement
    (api/authentication.py): the throttle only reads the outcome.
    """

    def allow_request(self, request: Request, view: Any) -> bool:
        self.wait_seconds: float | None = None
        if not settings.OPENQUEUE_RATE_LIMIT_ENABLED or request.user is None:
            return True
        action = getattr(view, "rate_limit_actions", {}).get(request.method)
        if action is None:
            return True
        rate, burst = settings.OPENQUEUE_RATE_LIMITS[action]
        spent = getattr(request._request, "openqueue_rate_limit_wait", None)
        if spent is not None and spent[0].action == action:
            # PostgreSQL: spent by the token lookup's statement (api/authentication.py).
            wait = spent[1]
            if wait > 0:
                self.wait_seconds = wait
                return False
            return True
        try:
            wait = take_token(f"{request.user.pk}:{action}", rate, burst)
        except OperationalError as exc:
            # A read-only database (SQLite file) can take no writes anyway, so
            # reads are let through instead of failing on the bucket's UPSERT;
            # any other database error is the request's error (503).
            if "readonly database" not in str(exc):
                raise
            return True
        if wait > 0:
            self.wait_seconds = wait
            return False
        return True

    def wait(self) -> float | None:
        # Never None: the 429 always carries Retry-After (at least 1 second).
        return max(1, math.ceil(self.wait_seconds or 1))
