"""Job ids a person can tell apart in a list."""

from __future__ import annotations

import uuid

from django import template

register = template.Library()


@register.filter
def short_id(value: uuid.UUID | str) -> str:
    """``01a22c8f…9e3f04aa``: the first 8 and the last 8 hex digits of a job id.

    A UUIDv7 starts with its creation time, so every job of the same
    minute shares its first 8 digits (and of the same millisecond its first
    12); the last 8 are random. The full id is in the link's title and on
    the job's page.
    """
    text = str(value)
    return f"{text[:8]}…{text[-8:]}" if len(text) > 16 else text
