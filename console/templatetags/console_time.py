"""Times as people read them: "3 min ago", with the exact UTC time on hover."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


def relative(when: datetime, now: datetime) -> str:
    """``45 s ago``, ``12 min ago``, ``3 h ago``, ``2 d ago``; ``in 5 min`` for the future."""
    seconds = int((now - when).total_seconds())
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        text = f"{seconds} s"
    elif seconds < 3600:
        text = f"{seconds // 60} min"
    elif seconds < 86400:
        text = f"{seconds // 3600} h"
    else:
        text = f"{seconds // 86400} d"
    return f"in {text}" if future else f"{text} ago"


@register.filter
def ago(when: datetime | None) -> SafeString | str:
    """A ``<time>`` element: relative text, the exact UTC time in its title and datetime."""
    if when is None:
        return "—"
    utc = when.astimezone(UTC) if timezone.is_aware(when) else when
    return format_html(
        '<time datetime="{}" title="{} UTC">{}</time>',
        utc.isoformat(),
        utc.strftime("%Y-%m-%d %H:%M:%S"),
        relative(utc, timezone.now()),
    )
