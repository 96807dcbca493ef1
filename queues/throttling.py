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
from django.db import OperationalError, connection
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from openqueue_site.clients import client_address

__all__ = ["client_address"]  # re-exported for the authentication code

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


# --- Failed authentications per client address (brute force) ----------------------


class TooManyAuthFailures(exceptions.Throttled):
    """429: this client address has spent its budget of failed authentications."""

    default_detail = "Too many failed authentication attempts"


def _peek_wait(key: str, rate: float, burst: int, now: float) -> float:
    """Seconds until bucket ``key`` holds a whole token (0 if it does), without spending."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tokens, refilled_at FROM rate_limit_buckets WHERE key = %s", [key])
        row = cursor.fetchone()
    if row is None:
        return 0.0
    tokens = min(float(burst), row[0] + (now - row[1]) * rate)
    return 0.0 if tokens >= 1 else (1 - tokens) / rate


class AuthFailureLimiter:
    """Token bucket ``authfail:<address>`` spent by every failed credential check.

    ``check`` runs before a presented credential is looked at, so an address
    over its budget learns nothing more, not even whether a guess was right.
    To keep the hot path free of extra queries, a process consults the shared
    bucket only for addresses it has itself seen failing within the time a
    bucket takes to refill; an attacker therefore gets at most one extra guess
    per server process before every process refuses them.
    """

    # Bounded memory under an address-spraying attack: forgetting everything
    # costs at most one extra guess per address and process.
    MAX_SUSPECTS = 10_000

    def __init__(self) -> None:
        self._suspects: dict[str, float] = {}

    @staticmethod
    def _limits() -> tuple[float, int] | None:
        if not settings.OPENQUEUE_AUTH_FAILURE_LIMIT_ENABLED:
            return None
        return settings.OPENQUEUE_AUTH_FAILURE_LIMIT

    def check(self, address: str) -> None:
        """Raise TooManyAuthFailures if ``address`` may not try a credential now."""
        limits = self._limits()
        if limits is None:
            return
        now = time.time()
        seen = self._suspects.get(address)
        if seen is None:
            return
        rate, burst = limits
        if now - seen > burst / rate:
            # A full refill has passed since its last failure: the bucket is full.
            self._suspects.pop(address, None)
            return
        wait = _peek_wait(f"authfail:{address}", rate, burst, now)
        if wait > 0:
            raise TooManyAuthFailures(wait=max(1, math.ceil(wait)))

    def failed(self, address: str) -> None:
        """Spend a token for a failed attempt from ``address``."""
        limits = self._limits()
        if limits is None:
            return
        now = time.time()
        if len(self._suspects) >= self.MAX_SUSPECTS:
            self._suspects.clear()
        self._suspects[address] = now
        rate, burst = limits
        take_token(f"authfail:{address}", rate, burst, now)


auth_failures = AuthFailureLimiter()
