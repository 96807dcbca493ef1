"""``openqueue-worker`` in real subprocesses: burst mode, SIGTERM, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from queues.models import Job

from openqueue_client import Client, NewJob

pytestmark = [pytest.mark.live_server, pytest.mark.django_db(transaction=True)]

HERE = Path(__file__).resolve().parent
WORKER = str(Path(sys.executable).with_name("openqueue-worker"))


def worker_command(*args: str) -> list[str]:
    return [WORKER, *args]


def worker_env(server, token: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "OPENQUEUE_URL": server.url, "OPENQUEUE_TOKEN": token, **extra}


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within the deadline")
        time.sleep(0.05)


def test_burst_runs_every_ready_job_then_exits_0_leaving_later_ones(server, token):
    with Client(server.url, token) as client:
        ids = client.enqueue_batch([NewJob("cli", {"n": n}) for n in range(20)])
        later = client.enqueue(
            "cli", {"n": 99}, run_at=datetime.now(timezone.utc) + timedelta(hours=1)
        )

    done = subprocess.run(
        worker_command("--queue", "cli", "--concurrency", "3", "--burst", "handlers:double"),
        cwd=HERE,
        env=worker_env(server, token),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    jobs = {str(job.id): job for job in Job.objects.filter(queue_name="cli")}
    assert all(jobs[i].status == "completed" for i in ids)
    assert jobs[ids[4]].result == {"double": 8}
    assert jobs[later.job_id].status == "pending"  # scheduled for later: not waited for
    assert done.stderr.count(" acked") == 20  # one log line per job


def test_sigterm_mid_job_loses_nothing(server, token):
    with Client(server.url, token) as client:
        job = client.enqueue("term", {"seconds": 60}, max_retries=3)

    slow = subprocess.Popen(
        worker_command(
            "--queue",
            "term",
            "--grace-seconds",
            "1",
            "--wait-seconds",
            "1",
            "handlers:slow_unless_told",
        ),
        cwd=HERE,
        env=worker_env(server, token, OPENQUEUE_TEST_SLOW="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert slow.stdout.readline().strip() == "started"  # the job is running
        slow.send_signal(signal.SIGTERM)
        _, stderr = slow.communicate(timeout=30)
    finally:
        slow.kill()
    assert slow.returncode == 0, stderr
    given_back = Job.objects.get(pk=job.job_id)
    assert (given_back.status, given_back.retry_count) == ("pending", 1)
    assert "given back at shutdown" in stderr

    # The next worker takes it once its backoff ends, and finishes it.
    fast = subprocess.Popen(
        worker_command("--queue", "term", "--wait-seconds", "1", "handlers:slow_unless_told"),
        cwd=HERE,
        env=worker_env(server, token),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: Job.objects.get(pk=job.job_id).status == "completed")
        fast.send_signal(signal.SIGTERM)
        fast.communicate(timeout=30)
    finally:
        fast.kill()
    finished = Job.objects.get(pk=job.job_id)
    assert finished.result == {"finished": True}
    outcomes = list(finished.attempts.order_by("attempt").values_list("outcome", flat=True))
    assert outcomes == ["nacked", "acked"]


def test_a_wrong_token_or_queue_exits_1_and_bad_usage_exits_2(server, token):
    refused = subprocess.run(
        worker_command("--queue", "q", "--burst", "handlers:double"),
        cwd=HERE,
        env=worker_env(server, "oq_live_" + "0" * 40),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "Invalid API token" in refused.stderr

    no_route = subprocess.run(
        worker_command("--queue", "a/b", "--burst", "handlers:double"),
        cwd=HERE,
        env=worker_env(server, token),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert no_route.returncode == 1  # a queue name with "/" can never be leased
    assert "404" in no_route.stderr

    no_function = subprocess.run(
        worker_command("--queue", "q", "handlers:nope"),
        cwd=HERE,
        env=worker_env(server, "t"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert no_function.returncode == 2
    assert "cannot load handlers:nope" in no_function.stderr
