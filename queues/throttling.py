"""Per-tenant, per-action rate limits shared by every server process.

A token bucket per (tenant, action) lives in the ``rate_limit_buckets``
table and is refilled and spent by one atomic ``INSERT ... ON CONFLICT DO
UPDATE ... RETURNING`` statement. The database serializes concurrent
updates of one row, so N worker processes (or N servers on one database)
share one limit: a tenant gains nothing by landing on another process.
DRF's cache-backed throttles cannot give that (per-process LocMem, racy
read-modify-write, no burst/rate pair).
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.conf import settings
from django.db import connection
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

# tokens_now = min(burst, tokens + (now - refilled_at) * rate); spend one if
# tokens_now >= 1. The same expression is written out for both databases.
_REFILLED = (
    "MIN_FN(%(burst)s, rate_limit_buckets.tokens"
    " + (%(now)s - rate_limit_buckets.refilled_at) * %(rate)s)"
)

_UPSERT = """
INSERT INTO rate_limit_buckets (key, tokens, refilled_at, last_allowed)
VALUES (%(key)s, %(burst)s - 1, %(now)s, TRUE)
ON CONFLICT (key) DO UPDATE SET
    tokens = CASE WHEN {refilled} >= 1 THEN {refilled} - 1 ELSE {refilled} END,
    last_allowed = ({refilled} >= 1),
    refilled_at = %(now)s
RETURNING tokens, last_allowed
"""


def _sql(vendor: str) -> str:
    # PostgreSQL spells the two-argument minimum LEAST; SQLite spells it MIN.
    refilled = _REFILLED.replace("MIN_FN", "LEAST" if vendor == "postgresql" else "MIN")
    return _UPSERT.format(refilled=refilled)


def take_token(key: str, rate: float, burst: int, now: float | None = None) -> float:
    """Spend one token from bucket ``key``; return 0 if allowed, else seconds to wait.

    ``last_allowed`` is written by the same statement, so it reports this
    request's outcome even when other processes hit the bucket at once.
    """
    now = time.time() if now is None else now
    params = {"key": key, "rate": float(rate), "burst": float(burst), "now": now}
    with connection.cursor() as cursor:
        cursor.execute(_sql(connection.vendor), params)
        tokens, allowed = cursor.fetchone()
    return 0.0 if allowed else (1 - tokens) / rate


class TokenBucketThrottle(BaseThrottle):
    """DRF throttle backed by ``take_token``.

    A view names its actions per HTTP method in ``rate_limit_actions``; the
    limits come from ``OPENQUEUE_RATE_LIMITS`` (settings.py). Authentication
    runs first, so a request with a bad token never spends a token.
    """

    def allow_request(self, request: Request, view: Any) -> bool:
        self.wait_seconds: float | None = None
        if not settings.OPENQUEUE_RATE_LIMIT_ENABLED or request.user is None:
            return True
        action = getattr(view, "rate_limit_actions", {}).get(request.method)
        if action is None:
            return True
        rate, burst = settings.OPENQUEUE_RATE_LIMITS[action]
        wait = take_token(f"{request.user.pk}:{action}", rate, burst)
        if wait > 0:
            self.wait_seconds = wait
            return False
        return True

    def wait(self) -> float | None:
        # Never None: the 429 always carries Retry-After (at least 1 second).
        return max(1, math.ceil(self.wait_seconds or 1))
