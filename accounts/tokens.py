"""API token format and hashing.

A token is ``oq_live_`` followed by 40 characters of ``[A-Za-z0-9]`` from the
``secrets`` module. Only its hash is stored: SHA-256 hex, or HMAC-SHA256 hex
keyed by ``OPENQUEUE_TOKEN_HMAC_SECRET`` when that is set (the original
server's two modes, so existing hashes keep working). Lookups go through the
unique index on the hash, so the raw token is never compared byte by byte.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

from django.conf import settings

TOKEN_PREFIX = "oq_live_"  # noqa: S105 - a public prefix, not a secret
TOKEN_RANDOM_LENGTH = 40
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 4
_ALPHABET = string.ascii_letters + string.digits


def generate_token() -> str:
    """A fresh raw token. Show it once; store only ``hash_token(token)``."""
    return TOKEN_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_RANDOM_LENGTH))


def hash_token(raw: str) -> str:
    """The lower-case hex digest under which ``raw`` is stored."""
    secret = settings.OPENQUEUE_TOKEN_HMAC_SECRET
    data = raw.encode("utf-8")
    if secret:
        return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def display_prefix(raw: str) -> str:
    """The few leading characters shown in lists so a user can tell tokens apart."""
    return raw[:DISPLAY_PREFIX_LENGTH]
