"""Job ids a person can tell apart in a list (queues/ids.py, ``short_id``)."""

from __future__ import annotations

from django import template

from queues.ids import short_id

register = template.Library()
register.filter("short_id", short_id)
