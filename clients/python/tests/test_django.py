"""The Django tasks backend in a small Django 5.2 project (django-tasks backport), for real.

The project (tests/django_project) runs in subprocesses against a live
server: one enqueues tasks, ``manage.py openqueue_worker --burst`` runs
them, one reads the results back through Django's tasks API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from queues.models import Job

pytestmark = [pytest.mark.live_server, pytest.mark.django_db(transaction=True)]

PROJECT = Path(__file__).resolve().parent / "django_project"


def in_project(server, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "OPENQUEUE_URL": server.url,
        "OPENQUEUE_TOKEN": token,
    }
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


def test_tasks_enqueued_through_django_run_on_the_worker_and_report_back(server, token):
    enqueued = json.loads(in_project(server, token, "-m", "demo.steps", "enqueue").stdout)
    assert {entry["status"] for entry in enqueued.values()} == {"READY"}

    # What the backend sent: the task's path and arguments, its queue, priority and run_after.
    report = Job.objects.get(pk=enqueued["report"]["id"])
    assert (report.queue_name, report.priority, report.max_retries) == ("reports", 50, 0)
    assert report.payload == {"task": "demo.tasks.report", "args": ["q4"], "kwargs": {"pages": 12}}
    later = Job.objects.get(pk=enqueued["later"]["id"])
    assert (later.priority, later.run_at > later.created_at) == (-20, True)

    worker = in_project(
        server, token, "manage.py", "openqueue_worker", "--burst", "--concurrency", "2"
    )
    assert worker.stderr.count(" acked") == 4  # add, report, uses_db, async_add

    ids = [entry["id"] for entry in enqueued.values()]
    results = json.loads(in_project(server, token, "-m", "demo.steps", "results", *ids).stdout)
    by_name = {name: results[entry["id"]] for name, entry in enqueued.items()}

    assert by_name["add"]["status"] == "SUCCESSFUL" and by_name["add"]["return_value"] == 5
    assert by_name["async_add"]["return_value"] == 42
    assert by_name["report"]["return_value"] == {"name": "q4", "pages": 12}
    assert by_name["uses_db"]["return_value"] == 1
    assert by_name["add"]["attempts"] == 1

    failed = by_name["explode"]
    assert failed["status"] == "FAILED"  # max_retries 0: at once, as Django's API expects
    assert failed["error_class"] == "builtins.ValueError"
    assert failed["traceback"].rstrip().endswith("ValueError: the task blew up")
    assert Job.objects.get(pk=enqueued["explode"]["id"]).status == "dead"

    assert by_name["later"]["status"] == "READY"  # run_after is an hour away
    assert all(entry["async_status"] == entry["status"] for entry in results.values())


def test_an_unknown_result_id_raises_task_result_does_not_exist(server, token):
    done = in_project(
        server, token, "-m", "demo.steps", "missing", "01234567-89ab-7cde-8f01-23456789abcd"
    )
    assert json.loads(done.stdout) == {"raised": "TaskResultDoesNotExist"}
