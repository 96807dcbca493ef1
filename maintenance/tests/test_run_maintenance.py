"""manage.py run_maintenance: each step, dry runs, batching, concurrency, failures."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from conftest import ROOT, current_database_url, free_port
from queues.models import DeadReason, Job, JobStatus
from queues.tests.factories import JobFactory, UserFactory

# The pass's clock, passed in through the hidden --now option.
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def run(**options: Any) -> str:
    out = StringIO()
    call_command("run_maintenance", now=NOW, stdout=out, **options)
    return out.getvalue()


def finished(status: str, days_ago: float, **fields: Any) -> Job:
    at = NOW - timedelta(days=days_ago)
    return JobFactory(status=status, created_at=at, finished_at=at, **fields)


def expired_lease(**fields: Any) -> Job:
    return JobFactory(
        expired=True,
        locked_until=NOW - timedelta(seconds=5),
        started_at=NOW - timedelta(seconds=35),
        **fields,
    )


def counts(output: str, label: str) -> dict[str, int]:
    """The key=value counts of the output line that starts with ``label``."""
    (line,) = [line for line in output.splitlines() if line.startswith(label)]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


@pytest.mark.django_db
def test_run_maintenance_returns_expired_leases_to_pending_and_buries_poison_jobs():
    expired = expired_lease(max_retries=3, lease_lost_count=1)
    poison = expired_lease(max_retries=2, lease_lost_count=2)
    live = JobFactory(leased=True, locked_until=NOW + timedelta(seconds=30))

    output = run()

    assert counts(output, "reap_expired_leases") == {"requeued": 1, "buried": 1}
    expired.refresh_from_db()
    assert expired.status == JobStatus.PENDING and expired.lease_token is None
    assert expired.lease_lost_count == 2
    poison.refresh_from_db()
    assert poison.status == JobStatus.DEAD and poison.dead_reason == DeadReason.LEASE_EXPIRED
    live.refresh_from_db()
    assert live.status == JobStatus.PROCESSING
    assert counts(output, "maintenance pass done") == {
        "requeued": 1,
        "buried": 1,
        "fired": 0,
        "deleted": 0,
    }


@pytest.mark.django_db
def test_run_maintenance_honours_the_lease_reap_grace(settings):
    settings.OPENQUEUE_LEASE_REAP_GRACE_SECONDS = 60
    job = expired_lease()  # expired 5 s before NOW: inside the grace period

    assert counts(run(), "reap_expired_leases") == {"requeued": 0, "buried": 0}
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING


@pytest.mark.django_db
def test_run_maintenance_deletes_finished_jobs_past_the_default_retention():
    doomed = [
        finished(JobStatus.COMPLETED, 8),
        finished(JobStatus.CANCELLED, 8),
    ]
    kept = [
        finished(JobStatus.COMPLETED, 6),
        finished(JobStatus.CANCELLED, 6),
        finished(JobStatus.DEAD, 3650, dead_reason=DeadReason.MAX_RETRIES_EXHAUSTED),
        JobFactory(created_at=NOW - timedelta(days=30)),  # old but pending: never purged
    ]

    output = run()

    assert counts(output, "purge completed older than 7 days") == {"deleted": 1}
    assert counts(output, "purge cancelled older than 7 days") == {"deleted": 1}
    assert "purge failed" not in output  # no transition sets it: nothing to retain
    assert "purge dead: kept forever" in output
    assert counts(output, "maintenance pass done")["deleted"] == 2
    remaining = set(Job.objects.values_list("pk", flat=True))
    assert remaining == {job.pk for job in kept}
    assert not remaining & {job.pk for job in doomed}


@pytest.mark.django_db
def test_run_maintenance_honours_the_retention_settings(settings):
    settings.OPENQUEUE_RETENTION_DAYS = {"completed": 1, "cancelled": 0, "dead": 30}
    young_done = finished(JobStatus.COMPLETED, 0.5)
    old_cancelled = finished(JobStatus.CANCELLED, 400)  # 0 days: kept forever
    old_dead = finished(JobStatus.DEAD, 31, dead_reason=DeadReason.RETRY_DISABLED)
    recent_dead = finished(JobStatus.DEAD, 29, dead_reason=DeadReason.RETRY_DISABLED)
    finished(JobStatus.COMPLETED, 2)

    output = run()

    assert counts(output, "purge completed older than 1 days") == {"deleted": 1}
    assert "purge cancelled: kept forever" in output
    assert counts(output, "purge dead older than 30 days") == {"deleted": 1}
    remaining = set(Job.objects.values_list("pk", flat=True))
    assert remaining == {young_done.pk, old_cancelled.pk, recent_dead.pk}
    assert old_dead.pk not in remaining


@pytest.mark.django_db
def test_run_maintenance_dry_run_reports_counts_and_changes_nothing():
    expired_lease()
    expired_lease(max_retries=0)
    for _ in range(3):
        finished(JobStatus.COMPLETED, 10)
    before = sorted(Job.objects.values_list("pk", "status", "updated_at", "lease_token"))

    output = run(dry_run=True)

    assert counts(output, "reap_expired_leases (dry run)") == {"requeued": 1, "buried": 1}
    assert counts(output, "purge completed older than 7 days (dry run)") == {"deleted": 3}
    assert counts(output, "maintenance pass done (dry run)") == {
        "requeued": 1,
        "buried": 1,
        "fired": 0,
        "deleted": 3,
    }
    after = sorted(Job.objects.values_list("pk", "status", "updated_at", "lease_token"))
    assert after == before
    # ...and the real pass then does exactly what the dry run announced.
    assert counts(run(), "maintenance pass done") == {
        "requeued": 1,
        "buried": 1,
        "fired": 0,
        "deleted": 3,
    }


@pytest.mark.django_db
def test_run_maintenance_deletes_in_batches_and_reports_progress():
    owner = UserFactory()
    old = NOW - timedelta(days=30)
    Job.objects.bulk_create(
        JobFactory.build(owner=owner, status=JobStatus.COMPLETED, created_at=old, finished_at=old)
        for _ in range(7)
    )

    output = run(batch_size=3)

    progress = [line.strip() for line in output.splitlines() if "so far" in line]
    assert [line.split(" (")[0] for line in progress] == [
        "purge completed: 3 deleted so far",
        "purge completed: 6 deleted so far",
    ]
    assert counts(output, "purge completed older than 7 days") == {"deleted": 7}
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_run_maintenance_reads_now_and_batch_size_from_the_command_line():
    finished(JobStatus.COMPLETED, 8)
    out = StringIO()
    # On 2030-05-28 the job is 4 days old: not yet past the 7-day retention.
    call_command("run_maintenance", "--now", "2030-05-28T12:00:00", "--batch-size", "5", stdout=out)
    assert counts(out.getvalue(), "purge completed") == {"deleted": 0}
    call_command("run_maintenance", "--now", "2030-06-01T12:00:00+00:00", stdout=out)
    assert not Job.objects.exists()
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("run_maintenance", "--batch-size", "0")


# --- real processes ------------------------------------------------------------------


def manage(*args: str) -> list[str]:
    return [sys.executable, str(Path(ROOT) / "manage.py"), "run_maintenance", *args]


def command_env(database_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "OPENQUEUE_LOG_LEVEL": "WARNING", **extra}


@pytest.mark.live_server
@pytest.mark.timeout(180)
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_share_the_work_without_errors():
    owner = UserFactory()
    # Through the environment, so the subprocesses prove the setting is read.
    env = command_env(current_database_url(), OPENQUEUE_RETENTION_COMPLETED_DAYS="2")
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    Job.objects.bulk_create(
        [
            JobFactory.build(
                owner=owner,
                status=JobStatus.COMPLETED,
                created_at=three_days_ago,
                finished_at=three_days_ago,
            )
            for _ in range(3000)
        ],
        batch_size=500,
    )
    lapsed = datetime.now(UTC) - timedelta(minutes=5)
    Job.objects.bulk_create(
        [
            JobFactory.build(owner=owner, expired=True, locked_until=lapsed, max_retries=3)
            for _ in range(500)
        ],
        batch_size=500,
    )
    command = manage("--batch-size", "100")
    processes = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [process.communicate(timeout=150) for process in processes]

    for process, (_stdout, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr and "rror" not in stderr, stderr
    deleted = sum(counts(out, "purge completed older than 2 days")["deleted"] for out, _ in results)
    requeued = sum(counts(out, "reap_expired_leases")["requeued"] for out, _ in results)
    assert deleted == 3000
    assert requeued == 500
    assert not Job.objects.filter(status=JobStatus.COMPLETED).exists()
    assert Job.objects.filter(status=JobStatus.PENDING, lease_lost_count=1).count() == 500


@pytest.mark.live_server
@pytest.mark.parametrize(
    "database_url",
    [
        pytest.param(f"postgres://openqueue@127.0.0.1:{free_port()}/gone", id="closed-port"),
        pytest.param("sqlite:////nonexistent-dir/openqueue.sqlite3", id="unopenable-sqlite"),
    ],
)
def test_run_maintenance_exits_non_zero_when_the_database_is_unreachable(database_url):
    # A short pool timeout: the pool would otherwise retry for its default 10 s.
    env = command_env(database_url, OPENQUEUE_DB_POOL_TIMEOUT_SECONDS="1")
    done = subprocess.run(
        manage(),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("CommandError: run_maintenance: database unavailable: ")
    assert "Traceback" not in done.stderr


@pytest.mark.live_server
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_run_maintenance_loop_runs_a_pass_and_stops_cleanly_on_sigterm():
    month_ago = datetime.now(UTC) - timedelta(days=30)
    JobFactory(status=JobStatus.COMPLETED, created_at=month_ago, finished_at=month_ago)
    # An hour between passes: the test reads the first pass's output, then
    # stops the process while it waits for the next one.
    process = subprocess.Popen(
        manage("--loop", "--interval", "3600"),
        cwd=ROOT,
        env=command_env(current_database_url()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("maintenance pass done"):
                break
        assert counts("".join(lines), "maintenance pass done")["deleted"] == 1
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert stdout.strip().splitlines()[-1] == "maintenance loop stopped (SIGTERM)"
    assert not Job.objects.exists()


@pytest.mark.live_server
@pytest.mark.timeout(120)
def test_run_maintenance_loop_reports_database_errors_and_keeps_running():
    database_url = "sqlite:////nonexistent-dir/openqueue.sqlite3"
    process = subprocess.Popen(
        manage("--loop", "--interval", "3600"),
        cwd=ROOT,
        env=command_env(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stderr:
            if line.startswith("run_maintenance: database unavailable"):
                break
        # Still alive after the failed pass: it waits for the next interval.
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert stdout.strip().splitlines()[-1] == "maintenance loop stopped (SIGINT)"
