"""Token buckets shared by every server process, and the failed-authentication limit.

A bucket lives in the ``rate_limit_buckets`` table and is refilled and spent
by one atomic ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` statement.
The database serializes concurrent updates of one row, so N worker
processes (or N servers on one database) share one limit: a client gains
nothing by landing on another process. DRF's cache-backed throttles cannot
give that (per-process LocMem, racy read-modify-write, no burst/rate pair).

Two users: the per-tenant, per-action API limits (api/throttling.py) and the
per-address budget of failed authentications (``auth_failures`` below),
spent by bearer tokens, the provisioning secret and the sign-in pages alike.
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.conf import settings
from django.db import connection

# tokens_now = min(burst, tokens + (now - refilled_at) * rate); spend one if
# tokens_now >= 1. Written with CASE, which PostgreSQL and SQLite both
# understand (one spells the two-argument minimum LEAST, the other MIN).
_ELAPSED = "rate_limit_buckets.tokens + (%(now)s - rate_limit_buckets.refilled_at) * %(rate)s"
_REFILLED = f"(CASE WHEN {_ELAPSED} > %(burst)s THEN %(burst)s ELSE {_ELAPSED} END)"

_UPSERT = f"""
INSERT INTO rate_limit_buckets (key, tokens, refilled_at, last_allowed)
VALUES (%(key)s, %(burst)s - 1, %(now)s, TRUE)
ON CONFLICT (key) DO UPDATE SET
    tokens = CASE WHEN {_REFILLED} >= 1 THEN {_REFILLED} - 1 ELSE {_REFILLED} END,
    last_allowed = ({_REFILLED} >= 1),
    refilled_at = %(now)s
RETURNING tokens, last_allowed
"""  # noqa: S608 - only constant SQL is interpolated; every value is a parameter


def take_token(key: str, rate: float, burst: int, now: float | None = None) -> float:
    """Spend one token from bucket ``key``; return 0 if allowed, else seconds to wait.

    ``last_allowed`` is written by the same statement, so it reports this
    request's outcome even when other processes hit the bucket at once.
    """
    now = time.time() if now is None else now
    params: dict[str, Any] = {"key": key, "rate": float(rate), "burst": float(burst), "now": now}
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, params)
        tokens, allowed = cursor.fetchone()
    return 0.0 if allowed else (1 - tokens) / rate


def _peek_wait(key: str, rate: float, burst: int, now: float) -> float:
    """Seconds until bucket ``key`` holds a whole token (0 if it does), without spending."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tokens, refilled_at FROM rate_limit_buckets WHERE key = %s", [key])
        row = cursor.fetchone()
    if row is None:
        return 0.0
    tokens = min(float(burst), row[0] + (now - row[1]) * rate)
    return 0.0 if tokens >= 1 else (1 - tokens) / rate


# --- Failed authentications per client address (brute force) ----------------------


class TooManyAuthFailures(Exception):
    """This client address has spent its budget of failed authentications.

    The API answers 429 with ``Retry-After: wait`` (api/errors.py); the
    sign-in forms show it as a form error (accounts/forms.py).
    """

    detail = "Too many failed authentication attempts"

    def __init__(self, wait: int) -> None:
        super().__init__(self.detail)
        self.wait = wait


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

    def forget(self) -> None:
        """Drop this process's memory of failing addresses (tests)."""
        self._suspects.clear()


auth_failures = AuthFailureLimiter()
