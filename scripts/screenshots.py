"""Screenshots of the console and the admin for docs/screenshots/ (the README shows two).

    .venv/bin/python scripts/screenshots.py

Seeds a throwaway SQLite database with a tenant, a staff user, three
queues, a few hundred jobs in every state and two hours of per-minute
samples, starts ``manage.py runserver`` on it, and photographs each page
in Debian's headless Chromium at 1280x800 (and the overview at 390x844).
Nothing it creates outlives it.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
# A fresh password per run for the throwaway user (nothing here outlives the script).
PASSWORD = secrets.token_urlsafe(16)
PAGES = [
    ("console-queues", "/console/"),
    ("console-queue", "/console/queues/payments/"),
    ("console-dlq-grouped", "/console/dlq/?group=error"),
    ("console-in-flight", "/console/in-flight/"),
    ("console-job", None),  # a dead job's page, found after seeding
    ("admin-index", "/admin/"),
    ("admin-dlq", "/admin/queues/deadjob/"),
]


def seed() -> str:
    """Users, jobs and samples; returns a dead job's id."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.models import User
    from queues.models import Job, JobStatus, QueueSample
    from queues.samples import roll_up
    from queues.tests.factories import JobFactory

    call_command("migrate", verbosity=0)
    tenant = User.objects.create_user("ops@example.com", PASSWORD, is_staff=True, is_superuser=True)
    rng = random.Random(7)  # noqa: S311 - made-up demo data, the same on every run
    now = timezone.now()
    errors = [
        "TimeoutError: upstream payments API took longer than 30 s",
        "KeyError: 'customer_id'",
        "psycopg.errors.UniqueViolation: duplicate key value violates unique constraint",
    ]
    for queue in ("payments", "emails", "thumbnails"):
        JobFactory.create_batch(rng.randint(40, 90), owner=tenant, queue_name=queue)
        JobFactory.create_batch(rng.randint(5, 12), owner=tenant, queue_name=queue, leased=True,
                                locked_by=f"{queue}-worker-{rng.randint(1, 3)}")  # fmt: skip
        JobFactory.create_batch(rng.randint(100, 160), owner=tenant, queue_name=queue,
                                status=JobStatus.COMPLETED, finished_at=now)  # fmt: skip
        for _ in range(rng.randint(4, 20)):
            JobFactory(owner=tenant, queue_name=queue, dead=True, error_text=rng.choice(errors))
        JobFactory.create_batch(3, owner=tenant, queue_name=queue, run_at=now + timedelta(hours=2))
        start = now.replace(second=0, microsecond=0) - timedelta(hours=2)
        QueueSample.objects.bulk_create(
            QueueSample(
                owner=tenant, queue_name=queue, minute=start + timedelta(minutes=m),
                enqueued=rng.randint(20, 60), completed=rng.randint(18, 58),
                dead=rng.choice([0, 0, 0, 1, 2]), depth=rng.randint(30, 120),
            )
            for m in range(120)
        )  # fmt: skip
    roll_up(start=now - timedelta(hours=3), end=now)  # the tenant's and the site's charts
    return str(Job.objects.filter(status=JobStatus.DEAD).first().pk)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="oq-screens-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "DEBUG": "true",
        "SECRET_KEY": "screenshots-" + os.urandom(8).hex(),
        "OPENQUEUE_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "openqueue_site.settings",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    dead_job = seed()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603 - our own manage.py, fixed arguments
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)  # noqa: S310 - http://127.0.0.1
                break
            except OSError:
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--headless=new", "--no-sandbox"]
            )
            for width, height, suffix in ((1280, 800, ""), (390, 844, "-phone")):
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(base + "/accounts/login/")
                page.fill("#id_username", "ops@example.com")
                page.fill("#id_password", PASSWORD)
                page.locator("form [type=submit]").click()
                page.wait_for_url("**/console/")
                for name, path in PAGES if not suffix else PAGES[:1]:
                    page.goto(base + (path or f"/console/jobs/{dead_job}/"))
                    page.screenshot(path=str(OUT / f"{name}{suffix}.png"), full_page=False)
                    print(f"docs/screenshots/{name}{suffix}.png")
                page.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
