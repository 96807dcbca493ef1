"""Firing schedules from real ``run_maintenance`` processes.

- Three maintenance processes started together, three times (three
  simulated minutes through ``--now``), against 300 schedules due every
  minute: every (schedule, minute) fires exactly once, however the three
  split the work. On PostgreSQL row locks and SKIP LOCKED race for real;
  SQLite serializes the writers.
- ``run_maintenance --loop`` with its defaults fires a schedule within
  seconds of its time, between two of its passes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from conftest import ROOT, current_database_url
from queues.models import Job
from queues.tests.factories import UserFactory
from schedules.models import Schedule, ScheduleRun

pytestmark = [pytest.mark.live_server, pytest.mark.django_db(transaction=True)]

SCHEDULES = 300
T0 = datetime(2031, 1, 6, 9, 0, tzinfo=UTC)


def maintenance(*args: str) -> list[str]:
    return [sys.executable, str(Path(ROOT) / "manage.py"), "run_maintenance", *args]


def env() -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": current_database_url(), "OPENQUEUE_LOG_LEVEL": "WARNING"}


def fired_of(output: str) -> int:
    (line,) = [line for line in output.splitlines() if line.startswith("fire_schedules")]
    return int(re.search(r"fired=(\d+)", line).group(1))


@pytest.mark.timeout(300)
def test_three_maintenance_processes_fire_each_occurrence_exactly_once():
    owner = UserFactory()
    Schedule.objects.bulk_create(
        Schedule(
            owner=owner,
            name=f"s{n:03d}",
            queue_name=f"q{n % 7}",
            cron="* * * * *",
            payload={"n": n},
            next_run_at=T0,
            created_at=T0,
            updated_at=T0,
        )
        for n in range(SCHEDULES)
    )

    per_process: list[list[int]] = []
    for minute in range(3):
        now = (T0 + timedelta(minutes=minute, seconds=2)).isoformat()
        processes = [
            subprocess.Popen(
                maintenance("--now", now),
                cwd=ROOT,
                env=env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        results = [process.communicate(timeout=200) for process in processes]
        for process, (_, stderr) in zip(processes, results, strict=True):
            assert process.returncode == 0, stderr
            assert "Traceback" not in stderr, stderr
        per_process.append([fired_of(stdout) for stdout, _ in results])

    print(f"\nfired per process, per minute: {per_process}")
    assert [sum(minute) for minute in per_process] == [SCHEDULES] * 3
    runs = Counter(ScheduleRun.objects.values_list("schedule_id", "occurrence"))
    assert len(runs) == SCHEDULES * 3 and set(runs.values()) == {1}
    assert sorted({occurrence for _, occurrence in runs}) == [
        T0 + timedelta(minutes=m) for m in range(3)
    ]
    jobs = Counter(Job.objects.values_list("schedule_name", flat=True))
    assert len(jobs) == SCHEDULES and set(jobs.values()) == {3}
    assert set(ScheduleRun.objects.values_list("job_id", flat=True)) == set(
        Job.objects.values_list("id", flat=True)
    )
    assert not Schedule.objects.exclude(next_run_at=T0 + timedelta(minutes=3)).exists()


@pytest.mark.timeout(120)
def test_the_loop_fires_a_schedule_within_seconds_of_its_time():
    owner = UserFactory()
    # Due two seconds from now; the loop's passes are an hour apart, so only
    # its check between passes can fire it in time.
    due = timezone.now() + timedelta(seconds=2)
    Schedule.objects.create(
        owner=owner,
        name="soon",
        queue_name="q",
        cron="* * * * *",
        next_run_at=due,
        created_at=due,
        updated_at=due,
    )
    process = subprocess.Popen(
        maintenance("--loop", "--interval", "3600"),
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not Job.objects.filter(schedule_name="soon").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the loop did not fire the schedule"
            time.sleep(0.1)
        job = Job.objects.get(schedule_name="soon")
    finally:
        process.terminate()
        process.communicate(timeout=30)

    late = (job.created_at - due).total_seconds()
    print(f"\nfired {late:.2f} s after its time")
    assert job.created_at >= due
    # OPENQUEUE_SCHEDULE_CHECK_SECONDS is 1: a check within a second or so,
    # not the next pass an hour later.
    assert late < 10
