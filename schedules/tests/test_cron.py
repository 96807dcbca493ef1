"""Cron expressions and time zones (schedules/cron.py): what is accepted, and when it fires."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schedules import cron


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "fields"),
    [
        ("*/15 * * * *", "*/15 * * * *"),
        ("0 9 * * MON-FRI", "0 9 * * MON-FRI"),
        ("0 0 1 jan,jul *", "0 0 1 jan,jul *"),
        ("5-10/2 1,2 * * sun", "5-10/2 1,2 * * sun"),
        ("  0   3 * *   *  ", "0 3 * * *"),
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@Daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
    ],
)
def test_accepted_expressions(expression, fields):
    assert cron.expand(expression) == fields


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "must not be empty"),
        ("* * * *", "five fields"),
        ("0 * * * * *", "five fields"),  # cronsim's seconds field is not ours
        ("60 * * * *", "invalid cron expression"),
        ("* 24 * * *", "invalid cron expression"),
        ("* * 32 * *", "invalid cron expression"),
        ("* * * 13 *", "invalid cron expression"),
        ("* * * * funday", "invalid cron expression"),
        ("*/0 * * * *", "invalid cron expression"),
        ("0 0 31 2 *", "invalid cron expression"),  # February never has a 31st
        ("@reboot", "unknown alias"),
        ("* " * 101, "at most 200"),
    ],
)
def test_refused_expressions_say_why(expression, message):
    with pytest.raises(cron.CronError, match=message):
        cron.expand(expression)


def test_time_zones_are_iana_names():
    assert str(cron.zone("Europe/Berlin")) == "Europe/Berlin"
    assert str(cron.zone("UTC")) == "UTC"
    for bad in ("Mars/Olympus", "europe/berlin", "", "../../etc/passwd", "CEST"):
        with pytest.raises(cron.CronError, match="unknown time zone"):
            cron.zone(bad)


def test_next_occurrence_is_strictly_after_and_in_utc():
    assert cron.next_after("*/15 * * * *", "UTC", utc(2026, 5, 1, 10, 15)) == utc(
        2026, 5, 1, 10, 30
    )
    # 09:00 in New York in May is 13:00 UTC (EDT).
    assert cron.next_after("0 9 * * *", "America/New_York", utc(2026, 5, 1, 12)) == utc(
        2026, 5, 1, 13
    )


def test_latest_occurrence_includes_the_moment_itself():
    assert cron.latest_at_or_before("*/5 * * * *", "UTC", utc(2026, 1, 1, 10, 5)) == utc(
        2026, 1, 1, 10, 5
    )
    late = datetime(2026, 1, 1, 10, 9, 59, 999999, tzinfo=UTC)
    assert cron.latest_at_or_before("*/5 * * * *", "UTC", late) == utc(2026, 1, 1, 10, 5)


# Europe/Berlin: 2026-03-29 02:00 CET jumps to 03:00 CEST; 2026-10-25 03:00 CEST
# falls back to 02:00 CET, so 02:00-02:59 happens twice.


def occurrences(expression: str, zone: str, start: datetime, count: int) -> list[datetime]:
    found, moment = [], start
    for _ in range(count):
        moment = cron.next_after(expression, zone, moment)
        found.append(moment)
    return found


def test_a_time_that_does_not_exist_fires_once_at_the_next_valid_minute():
    fired = occurrences("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27, 12), 3)

    assert fired == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: 03:00 CEST
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_a_repeated_time_fires_once():
    fired = occurrences("30 2 * * *", "Europe/Berlin", utc(2026, 10, 23, 12), 3)

    assert fired == [
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # the first 02:30 (CEST), not the second (01:30 UTC)
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
    ]


def test_an_interval_schedule_follows_real_time_through_the_repeated_hour():
    fired = occurrences("0 * * * *", "Europe/Berlin", utc(2026, 10, 24, 22, 30), 4)

    # 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET: one hour apart each.
    assert fired == [
        utc(2026, 10, 24, 23),
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 2),
    ]


def test_a_daily_schedule_keeps_its_wall_clock_time_across_the_change():
    fired = occurrences("0 9 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 2)

    assert fired == [utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)]  # 09:00 CEST both
    assert cron.next_after("0 9 * * *", "Europe/Berlin", utc(2026, 3, 27, 12)) == utc(
        2026, 3, 28, 8
    )  # 09:00 CET
