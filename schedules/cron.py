"""Cron expressions and time zones: validation, and the occurrences of a schedule.

cronsim (healthchecks.io's evaluator) does the calendar work, including
daylight saving time the way Debian's cron does it: a schedule at a fixed
wall-clock time (``30 2 * * *``) that does not exist one day (spring
forward) fires once, at the first valid minute after it; one in a repeated
hour (fall back) fires once, the first time round. A schedule whose minute or
hour is a wildcard or step (``*/15 * * * *``, ``0 * * * *``) follows real
time: every quarter of an hour of the repeated hour fires.

This module adds what cronsim leaves to its users: exactly five fields (its
optional sixth, seconds, is refused), the ``@daily``-style aliases, a length
limit, and IANA zone names checked against the zone database.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

MAX_LENGTH = 200
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """An expression or a time zone that cannot be used; the message says why."""


def expand(expression: str) -> str:
    """The five-field form of ``expression`` (an alias becomes its fields).

    Raises CronError for anything cronsim cannot evaluate, for six fields,
    and for an expression that never matches (``0 0 31 2 *``).
    """
    text = " ".join(expression.split())
    if not text:
        raise CronError("cron must not be empty")
    if len(text) > MAX_LENGTH:
        raise CronError(f"cron must be at most {MAX_LENGTH} characters")
    if text.startswith("@"):
        fields = ALIASES.get(text.lower())
        if fields is None:
            raise CronError(f"unknown alias {text!r}; use one of {', '.join(sorted(ALIASES))}")
        return fields
    if len(text.split(" ")) != 5:
        raise CronError(
            "cron must have five fields (minute hour day-of-month month day-of-week), "
            f"got {len(text.split(' '))}"
        )
    try:
        next(CronSim(text, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as exc:
        raise CronError(f"invalid cron expression: {exc}") from None
    except StopIteration:
        raise CronError("cron expression never matches a date") from None
    return text


@functools.cache
def zone_names() -> frozenset[str]:
    """Every IANA zone name the server knows (the OS's zone database, or tzdata's)."""
    return frozenset(zoneinfo.available_timezones())


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``UTC``); CronError if unknown."""
    if name not in zone_names():
        raise CronError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin'")
    return zoneinfo.ZoneInfo(name)


def next_after(expression: str, timezone: str, moment: datetime) -> datetime | None:
    """The first occurrence strictly after ``moment``, in UTC; None if there is none."""
    local = moment.astimezone(zone(timezone))
    try:
        return next(CronSim(expand(expression), local)).astimezone(UTC)
    except StopIteration:
        return None


def latest_at_or_before(expression: str, timezone: str, moment: datetime) -> datetime | None:
    """The last occurrence at or before ``moment``, in UTC; None if none in 50 years.

    Occurrences fall on whole minutes; cronsim iterates backwards from the
    second after ``moment`` (reverse iteration excludes its start).
    """
    start = moment.replace(microsecond=0) + timedelta(seconds=1)
    local = start.astimezone(zone(timezone))
    try:
        return next(CronSim(expand(expression), local, reverse=True)).astimezone(UTC)
    except StopIteration:
        return None
