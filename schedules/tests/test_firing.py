"""Firing schedules (schedules/services.py) with injected time.

Exactly once per occurrence, only the latest missed occurrence after
downtime, DST days in the schedule's zone, disabled schedules, and what
a PUT keeps. The multi-process race is in test_firing_live.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from queues.ids import uuid7
from queues.models import Job
from schedules import services
from schedules.models import Schedule, ScheduleRun
from schedules.services import ScheduleSpec

pytestmark = pytest.mark.django_db


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


DECLARED = datetime(2026, 5, 1, 10, 0, 30, tzinfo=UTC)


def put(owner, name="every-5", now=DECLARED, **fields):
    spec = ScheduleSpec(**{"queue_name": "q", "cron": "*/5 * * * *", **fields})
    schedule, _ = services.put_schedule(owner=owner, name=name, spec=spec, now=now)
    return schedule


def jobs_of(name: str) -> list[Job]:
    return list(Job.objects.filter(schedule_name=name).order_by("created_at"))


def test_a_schedule_waits_for_its_first_occurrence(tenant):
    schedule = put(tenant.user)

    assert schedule.next_run_at == utc(2026, 5, 1, 10, 5)
    assert services.fire_due_schedules(now=utc(2026, 5, 1, 10, 4, 59)) == []
    assert jobs_of("every-5") == []


def test_a_due_occurrence_enqueues_one_ordinary_job(tenant):
    put(tenant.user, payload={"report": "daily"}, priority=7, max_retries=1)

    (fired,) = services.fire_due_schedules(now=utc(2026, 5, 1, 10, 5, 1))

    (job,) = jobs_of("every-5")
    assert fired.job_id == job.id and fired.occurrence == utc(2026, 5, 1, 10, 5)
    assert (job.owner, job.queue_name, job.payload, job.priority, job.max_retries) == (
        tenant.user,
        "q",
        {"report": "daily"},
        7,
        1,
    )
    assert job.status == "pending" and job.run_at <= utc(2026, 5, 1, 10, 5, 1)
    schedule = Schedule.objects.get()
    assert schedule.last_run_at == utc(2026, 5, 1, 10, 5, 1)
    assert schedule.next_run_at == utc(2026, 5, 1, 10, 10)


def test_each_occurrence_fires_once_however_often_the_loop_looks(tenant):
    put(tenant.user)

    for second in range(0, 50, 7):
        services.fire_due_schedules(now=utc(2026, 5, 1, 10, 5, second))
    services.fire_due_schedules(now=utc(2026, 5, 1, 10, 10, 2))

    assert len(jobs_of("every-5")) == 2
    assert sorted(ScheduleRun.objects.values_list("occurrence", flat=True)) == [
        utc(2026, 5, 1, 10, 5),
        utc(2026, 5, 1, 10, 10),
    ]


def test_a_run_already_recorded_for_the_occurrence_is_not_fired_again(tenant):
    # What a second maintenance process with a stale read meets: the unique key.
    schedule = put(tenant.user)
    ScheduleRun.objects.create(
        schedule=schedule,
        occurrence=utc(2026, 5, 1, 10, 5),
        fired_at=utc(2026, 5, 1, 10, 5),
        job_id=uuid7(),
    )

    assert services.fire_due_schedules(now=utc(2026, 5, 1, 10, 5, 3)) == []

    assert jobs_of("every-5") == []  # the job rolled back with the failed run
    assert Schedule.objects.get().next_run_at == utc(2026, 5, 1, 10, 10)  # moved past it


def test_after_an_hour_of_downtime_only_the_latest_occurrence_fires(tenant):
    put(tenant.user)

    fired = services.fire_due_schedules(now=utc(2026, 5, 1, 11, 7, 12))

    assert [f.occurrence for f in fired] == [utc(2026, 5, 1, 11, 5)]  # not 12 of them
    assert len(jobs_of("every-5")) == 1
    assert Schedule.objects.get().next_run_at == utc(2026, 5, 1, 11, 10)


def test_disabled_schedules_do_not_fire_and_missed_occurrences_stay_missed(tenant):
    put(tenant.user, enabled=False)
    assert Schedule.objects.get().next_run_at is None
    assert services.fire_due_schedules(now=utc(2026, 5, 1, 12)) == []

    services.set_enabled(Schedule.objects.all(), enabled=True, now=utc(2026, 5, 1, 12, 1))

    assert Schedule.objects.get().next_run_at == utc(2026, 5, 1, 12, 5)
    assert jobs_of("every-5") == []


def test_a_put_with_the_same_timing_keeps_a_due_occurrence(tenant):
    put(tenant.user)

    # A deploy re-declares the schedule just after 10:05, before the loop fired it.
    put(tenant.user, payload={"v": 2}, now=utc(2026, 5, 1, 10, 5, 0, 500))
    (fired,) = services.fire_due_schedules(now=utc(2026, 5, 1, 10, 5, 1))

    assert fired.occurrence == utc(2026, 5, 1, 10, 5)
    assert jobs_of("every-5")[0].payload == {"v": 2}


def test_a_put_with_a_new_cron_starts_from_its_next_occurrence(tenant):
    put(tenant.user)

    schedule = put(tenant.user, cron="0 * * * *", now=utc(2026, 5, 1, 10, 2))

    assert schedule.next_run_at == utc(2026, 5, 1, 11)


def test_schedules_fire_in_their_time_zone(tenant):
    put(
        tenant.user,
        name="berlin-9",
        cron="0 9 * * *",
        timezone="Europe/Berlin",
        now=utc(2026, 5, 1),
    )

    assert services.fire_due_schedules(now=utc(2026, 5, 1, 6, 59)) == []
    (fired,) = services.fire_due_schedules(now=utc(2026, 5, 1, 7, 0, 1))

    assert fired.occurrence == utc(2026, 5, 1, 7)  # 09:00 CEST


@pytest.mark.parametrize(
    ("cron", "start", "end", "expected"),
    [
        # Spring forward: 02:30 does not exist on 2026-03-29; it fires once, at 03:00 CEST.
        ("30 2 * * *", utc(2026, 3, 28, 12), utc(2026, 3, 30, 12), [utc(2026, 3, 29, 1)]),
        # Fall back: 02:30 happens twice on 2026-10-25; it fires once, the first time.
        ("30 2 * * *", utc(2026, 10, 24, 12), utc(2026, 10, 26, 0), [utc(2026, 10, 25, 0, 30)]),
    ],
)
def test_dst_days_fire_once(tenant, cron, start, end, expected):
    put(tenant.user, name="dst", cron=cron, timezone="Europe/Berlin", now=start)

    # The maintenance loop looking every ten minutes of the two days.
    moment, fired = start, []
    while moment <= end:
        fired += services.fire_due_schedules(now=moment)
        moment += timedelta(minutes=10)

    occurrences = [f.occurrence for f in fired]
    assert [o for o in occurrences if o.date() in {e.date() for e in expected}] == expected
    assert len(jobs_of("dst")) == len(occurrences)


def test_trigger_enqueues_now_and_leaves_the_timing_alone(tenant):
    schedule = put(tenant.user, enabled=False)

    job_id = services.trigger(owner=tenant.user, name="every-5", now=utc(2026, 5, 1, 10, 1))

    job = Job.objects.get(pk=job_id)
    assert job.schedule_name == "every-5" and job.status == "pending"
    schedule.refresh_from_db()
    assert (schedule.last_run_at, schedule.next_run_at) == (None, None)
    assert not ScheduleRun.objects.exists()


def test_old_run_records_are_purged(tenant):
    put(tenant.user)
    services.fire_due_schedules(now=utc(2026, 5, 1, 10, 5, 1))
    services.fire_due_schedules(now=utc(2026, 5, 9, 10, 5, 1))

    deleted = services.purge_runs(older_than=timedelta(days=7), now=utc(2026, 5, 9, 12))

    assert deleted == 1
    assert list(ScheduleRun.objects.values_list("occurrence", flat=True)) == [
        utc(2026, 5, 9, 10, 5)
    ]
