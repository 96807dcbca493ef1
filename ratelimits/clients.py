"""Who is on the other end of a request: the address the limits and logs use."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def client_address(request: Any) -> str:
    """The client's address: the socket peer, or what the trusted proxies saw.

    With ``OPENQUEUE_TRUSTED_PROXIES = N`` (N reverse proxies in front, each
    appending its peer to X-Forwarded-For), the client is the N-th address
    from the right: the one the outermost trusted proxy received the request
    from. Addresses further left are the client's own claims and are
    ignored. A header with fewer entries than N (a request that bypassed a
    proxy) falls back to the socket peer.
    """
    meta = getattr(request, "META", {})
    address = meta.get("REMOTE_ADDR") or "unknown"
    trusted = settings.OPENQUEUE_TRUSTED_PROXIES
    if trusted:
        hops = [hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [hop for hop in hops if hop]
        if len(hops) >= trusted:
            address = hops[-trusted]
    # Bounded: the bucket key column holds 100 characters.
    return address[:64]
