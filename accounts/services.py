"""Account operations: finding, issuing, revoking and provisioning API tokens.

The API, the admin, the web UI and the management commands all call these.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.tokens import display_prefix, generate_token, hash_token
from ratelimits.buckets import spend_sql, wait_after


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    raw: str  # shown to the user once, never stored


def issue_token(*, owner: User, name: str, now: datetime | None = None) -> IssuedToken:
    """Create a new API token for ``owner`` and return it with its secret."""
    raw = generate_token()
    token = ApiToken.objects.create(
        owner=owner,
        name=name,
        prefix=display_prefix(raw),
        token_hash=hash_token(raw),
        created_at=now or timezone.now(),
    )
    return IssuedToken(token=token, raw=raw)


def revoke_token(*, token: ApiToken, now: datetime | None = None) -> bool:
    """Revoke ``token``; return False if it was already revoked.

    A guarded update, so two concurrent revokes both succeed without either
    overwriting the first revocation time.
    """
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=now or timezone.now()
    )
    token.refresh_from_db(fields=["revoked_at"])
    return changed == 1


def revoke_tokens(tokens: QuerySet[ApiToken], *, now: datetime | None = None) -> int:
    """Revoke the unrevoked tokens among ``tokens``; returns how many changed."""
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=now or timezone.now())


def deactivate_users(users: QuerySet[User]) -> int:
    """Deactivate ``users``; returns how many changed. Their tokens and logins stop working."""
    return users.filter(is_active=True).update(is_active=False)


@dataclass(frozen=True)
class ProvisionResult:
    user: User
    raw_token: str
    created: bool


def provision_user(
    *, email: str, rotate: bool = False, now: datetime | None = None
) -> ProvisionResult:
    """Create the user for ``email`` if needed and issue a new token.

    Existing tokens stay valid unless ``rotate`` is true, so provisioning
    never breaks workers that already run with an older token. A deactivated
    user is reactivated, as the original server did.
    """
    now = now or timezone.now()
    with transaction.atomic():
        user, created = User.objects.get_or_create(
            email=User.objects.normalize_email(email), defaults={"is_active": True}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        elif not user.is_active:
            user.is_active = True
            user.save(update_fields=["is_active"])
        if rotate:
            ApiToken.objects.filter(owner=user).active().update(revoked_at=now)
        issued = issue_token(owner=user, name="provisioned", now=now)
    return ProvisionResult(user=user, raw_token=issued.raw, created=created)


# --- Looking a token up (every API request) ------------------------------------------


def _token_lookup_parts() -> tuple[list[str], str]:
    """The token's and its owner's columns, and the FROM/WHERE that finds them by hash."""
    qn = connection.ops.quote_name
    token_cols = [f"t.{qn(f.column)}" for f in ApiToken._meta.concrete_fields]
    user_cols = [f"u.{qn(f.column)}" for f in User._meta.concrete_fields]
    owner = ApiToken._meta.get_field("owner")
    # Only model metadata is interpolated; the hash is a bound parameter.
    source = (
        f" FROM {qn(ApiToken._meta.db_table)} t"
        f" JOIN {qn(User._meta.db_table)} u"
        f" ON u.{qn(User._meta.pk.column)} = t.{qn(owner.column)}"
        f" WHERE t.{qn(ApiToken._meta.get_field('token_hash').column)} = %(hash)s"
        f" AND t.{qn(ApiToken._meta.get_field('revoked_at').column)} IS NULL"
    )
    return token_cols + user_cols, source


@functools.cache
def _token_lookup_sql(alias: str) -> str:
    """The token-and-owner SELECT, built once per process instead of compiled per request.

    The ORM spent about as long compiling ``select_related("owner").filter(...)``
    as the database spent answering it (docs/benchmarks.md, "Fast path").
    """
    columns, source = _token_lookup_parts()
    return f"SELECT {', '.join(columns)}{source}"


@functools.cache
def _token_lookup_and_spend_sql(alias: str) -> str:
    """The token-and-owner SELECT and the owner's rate-limit spend, in one statement.

    The bucket (``<owner id>:<action>``) is spent only when the token is
    found and its owner is active: exactly when the separate spend would
    have run, after authentication. PostgreSQL only (no INSERT in WITH on SQLite).
    """
    columns, source = _token_lookup_parts()
    qn = connection.ops.quote_name
    # Named apart in the CTE (both tables have an id), in the same order.
    named = ", ".join(f"{column} AS c{index}" for index, column in enumerate(columns))
    owner = f"c{columns.index('t.' + qn(ApiToken._meta.get_field('owner').column))}"
    active = f"c{columns.index('u.' + qn(User._meta.get_field('is_active').column))}"
    spend = spend_sql(rows="found", key=f"found.{owner}::text || ':' || %(action)s", where=active)
    return (
        f"WITH found AS (SELECT {named}{source}), bucket AS ({spend.strip()})"  # noqa: S608
        " SELECT found.*, bucket.tokens, bucket.last_allowed FROM found LEFT JOIN bucket ON TRUE"
    )


@functools.cache
def _row_loader(model: type[Any], alias: str) -> tuple[list[str], list[tuple[int, list, Any]]]:
    """The attnames of ``model``'s columns and, per column that has any, its converters.

    Looked up once per process: asking every field for its converters on
    every request cost more than building the instances.
    """
    fields = model._meta.concrete_fields
    converters = []
    for index, field in enumerate(fields):
        col = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
        if found:
            converters.append((index, found, col))
    return [f.attname for f in fields], converters


def _from_row(model: type[Any], row: Sequence[Any]) -> Any:
    """A model instance from raw column values, through the fields' own converters."""
    attnames, converters = _row_loader(model, connection.alias)  # type: ignore[arg-type]
    values = list(row)
    if len(values) != len(attnames):
        raise ValueError(f"{model.__name__}: {len(values)} values for {len(attnames)} columns")
    for index, found, col in converters:
        for convert in found:
            values[index] = convert(values[index], col, connection)
    return model.from_db(connection.alias, attnames, values)


@dataclass(frozen=True)
class Spend:
    """A rate-limit spend to make with the token's lookup: ``<owner id>:<action>``."""

    action: str
    rate: float
    burst: int


def find_active_token(
    token_hash: str, spend: Spend | None = None
) -> tuple[ApiToken | None, float | None]:
    """The unrevoked token with this hash, its owner loaded (one indexed query),
    and, on PostgreSQL with ``spend``, the wait its owner's bucket asks for
    (0: allowed) from the same statement.

    The wait is None when nothing was spent: no token, an inactive owner, no
    ``spend``, or SQLite (the caller spends separately there).
    """
    spend_here = spend if connection.vendor == "postgresql" else None
    with connection.cursor() as cursor:
        if spend_here is None:
            cursor.execute(_token_lookup_sql(connection.alias), {"hash": token_hash})
        else:
            cursor.execute(
                _token_lookup_and_spend_sql(connection.alias),
                {
                    "hash": token_hash,
                    "action": spend_here.action,
                    "rate": float(spend_here.rate),
                    "burst": float(spend_here.burst),
                    "now": time.time(),
                },
            )
        row = cursor.fetchone()
    if row is None:
        return None, None
    split = len(ApiToken._meta.concrete_fields)
    width = split + len(User._meta.concrete_fields)
    token = _from_row(ApiToken, row[:split])
    token.owner = _from_row(User, row[split:width])
    wait = None
    if spend_here is not None and row[width + 1] is not None:
        wait = wait_after(row[width], row[width + 1], spend_here.rate)
    return token, wait
