"""Token buckets shared by every server process, and the failed-authentication limit.

A bucket lives in the ``rate_limit_buckets`` table and is refilled and spent
by one atomic ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` statement.
The database serializes concurrent updates of one row, so N worker
processes (or N servers on one database) share one limit: a client gains
nothing by landing on another process. DRF's cache-backed throttles cannot
give that (per-process LocMem, racy read-modify-write, no burst/rate pair).

Two users: the per-tenant, per-action API limits (api/throttling.py) and the
budgets of failed authentications (``auth_failures`` below), spent by bearer
tokens, the provisioning secret and the sign-in pages.
"""

from __future__ import annotations

import hashlib
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


def spend_sql(rows: str, key: str, where: str = "TRUE") -> str:
    """The bucket UPSERT fed by a query: one spend per row of ``rows`` matching ``where``.

    ``key`` is the SQL expression of the bucket's key over those rows. For
    statements that spend in the same round trip as another read (the bearer
    token's lookup, api/authentication.py); PostgreSQL only (SQLite has no
    INSERT inside WITH). Returns ``tokens, last_allowed`` as ``take_token`` reads them.
    """
    return _UPSERT.replace(
        "VALUES (%(key)s, %(burst)s - 1, %(now)s, TRUE)",
        f"SELECT {key}, %(burst)s - 1, %(now)s, TRUE FROM {rows} WHERE {where}",  # noqa: S608
    )  # names and expressions from our code only; every value is a parameter


def wait_after(tokens: float, allowed: bool, rate: float) -> float:
    """0 if the spend was allowed, else the seconds until the bucket holds a token."""
    return 0.0 if allowed else (1 - tokens) / rate


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
    return wait_after(tokens, allowed, rate)


def give_back(key: str, burst: int) -> None:
    """Return one token to bucket ``key`` (never above ``burst``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE rate_limit_buckets"
            " SET tokens = CASE WHEN tokens + 1 > %s THEN %s ELSE tokens + 1 END WHERE key = %s",
            [float(burst), float(burst), key],
        )


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
    """Budgets of failed credential checks, one token bucket per key.

    Every spend is the bucket's one atomic UPSERT, so concurrent requests
    cannot take more than the budget between a read and a write. Two ways
    to use it, by how guessable the credential is:

    - **Bearer tokens** (238 random bits: guessing one is hopeless) are
      looked up first. A valid token is never refused here, whatever others
      on the same address did (a NAT, a stale token in a neighbour's
      worker). Only a failed lookup spends from ``<address>``; once that
      bucket is empty the failures are answered 429 instead of 401.
    - **Passwords and the admin secret** (chosen by people) spend a try
      *before* the check, from a bucket per address and account
      (``login:<address>:<account>``) or per address (``secret:<address>``);
      a right one gives its try back. An empty bucket refuses even the right
      password: guessing stays expensive however many connections are used,
      and a neighbour's wrong guesses at their own account cost mine nothing.
    """

    def _limits(self) -> tuple[float, int] | None:
        if not settings.OPENQUEUE_AUTH_FAILURE_LIMIT_ENABLED:
            return None
        return settings.OPENQUEUE_AUTH_FAILURE_LIMIT

    @staticmethod
    def _key(kind: str, address: str, account: str | None = None) -> str:
        # At most 100 characters (the key column): the address is bounded by
        # client_address, an account name is hashed to a fixed width.
        parts = ["authfail", kind, address] if kind else ["authfail", address]
        if account is not None:
            parts.append(hashlib.sha256(account.strip().lower().encode()).hexdigest()[:16])
        return ":".join(parts)

    def _spend(self, key: str) -> None:
        limits = self._limits()
        if limits is None:
            return
        rate, burst = limits
        wait = take_token(key, rate, burst)
        if wait > 0:
            raise TooManyAuthFailures(wait=max(1, math.ceil(wait)))

    def _give_back(self, key: str) -> None:
        limits = self._limits()
        if limits is not None:
            give_back(key, limits[1])

    def token_failed(self, address: str) -> None:
        """A bearer token from ``address`` matched nothing: spend; TooManyAuthFailures if over."""
        self._spend(self._key("", address))

    def try_password(self, address: str, account: str) -> None:
        """Spend a try before checking ``account``'s password; TooManyAuthFailures if none left."""
        self._spend(self._key("login", address, account))

    def password_was_right(self, address: str, account: str) -> None:
        self._give_back(self._key("login", address, account))

    def try_secret(self, address: str) -> None:
        """Spend a try before checking the admin secret; TooManyAuthFailures if none left."""
        self._spend(self._key("secret", address))

    def secret_was_right(self, address: str) -> None:
        self._give_back(self._key("secret", address))


auth_failures = AuthFailureLimiter()
