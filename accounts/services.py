"""Account operations: issuing, revoking and provisioning API tokens.

The API, the admin, the web UI and the management commands all call these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.tokens import display_prefix, generate_token, hash_token


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
