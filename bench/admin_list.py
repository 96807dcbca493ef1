"""How long every console and admin page takes with a million jobs in PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/oq_bench_admin \\
        .venv/bin/python bench/admin_list.py [--jobs 1000000] [--runs 5] \\
        [--retrying 1000] [--drop]

Creates the database named in DATABASE_URL (it must not be the one you work
in: the script refuses an existing database that has users in it unless it
was filled by this script), migrates it, bulk-inserts the jobs for a few
tenants with ``INSERT ... SELECT generate_series`` (time-ordered ids, a
realistic status mix), a day of per-minute samples, schedules, queue
settings and tokens, makes ``--retrying`` of the pending jobs wait to retry
with an error text, runs VACUUM ANALYZE, then requests each page with
Django's test client, logged in as a superuser for the admin and as the
biggest tenant for the console: one warm-up, then ``--runs`` timed
requests, and prints the median as a Markdown table. ``--drop`` drops the
database at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MARKER_EMAIL = "bench-admin@example.com"
# Share of the jobs per tenant: two big ones, a mid-sized one and a tiny one
# (the tiny one shows what filtering by a small owner costs).
TENANTS = [("big@example.com", 0.55), ("large@example.com", 0.35), ("mid@example.com", 0.0999)]
TINY_TENANT = "tiny@example.com"  # gets the remaining 0.01 %
QUEUES = 12

SAMPLES_SQL = """
INSERT INTO queue_samples (owner_id, queue_name, minute, enqueued, completed, dead, depth)
SELECT u.id, 'queue-' || q, date_trunc('minute', now()) - m * interval '1 minute',
       (random() * 60)::int, (random() * 60)::int, (random() < 0.1)::int, (random() * 500)::int
FROM users u, generate_series(0, 11) AS q, generate_series(1, 1440) AS m
ON CONFLICT DO NOTHING
"""

FILL_SQL = """
INSERT INTO jobs (
    id, user_id, queue_name, payload, status, priority, retry_count, max_retries, run_at,
    created_at, updated_at, started_at, finished_at, result, error_text, dead_at, dead_reason,
    lease_lost_count, locked_until, locked_by
)
SELECT
    -- UUIDv7-shaped: 48-bit millisecond time, version 7, variant 8, a counter.
    (lpad(to_hex((extract(epoch FROM t.created) * 1000)::bigint), 12, '0') || '7000' || '8'
        || lpad(to_hex(t.g), 15, '0'))::uuid,
    t.owner,
    'queue-' || (t.g %% %(queues)s),
    jsonb_build_object('n', t.g, 'to', 'user' || t.g || '@example.com'),
    t.status,
    (t.g %% 3),
    CASE WHEN t.status IN ('dead', 'failed') THEN 3 ELSE 0 END,
    3,
    t.created,
    t.created,
    t.created,
    CASE WHEN t.status <> 'pending' THEN t.created END,
    CASE WHEN t.status IN ('completed', 'failed', 'cancelled', 'dead') THEN t.created END,
    CASE WHEN t.status = 'completed' THEN '{"ok": true}'::jsonb END,
    CASE WHEN t.status IN ('dead', 'failed') THEN 'worker error #' || (t.g %% 97) END,
    CASE WHEN t.status = 'dead' THEN t.created END,
    CASE WHEN t.status = 'dead' THEN
        (ARRAY['max_retries_exhausted', 'retry_disabled', 'lease_expired', 'operator'])
            [1 + t.g %% 4]
    END,
    0,
    CASE WHEN t.status = 'processing' THEN t.created + interval '30 seconds' END,
    CASE WHEN t.status = 'processing' THEN 'worker-' || (t.g %% 8) END
FROM (
    SELECT
        g,
        now() - (%(total)s - g) * interval '500 milliseconds' AS created,
        CASE
            WHEN g %% 10000 = 0 THEN %(tiny)s
            WHEN (g %% 10000) < 5500 THEN %(t0)s
            WHEN (g %% 10000) < 9000 THEN %(t1)s
            ELSE %(t2)s
        END AS owner,
        CASE
            WHEN g %% 100 < 80 THEN 'completed'
            WHEN g %% 100 < 90 THEN 'pending'
            WHEN g %% 100 < 93 THEN 'dead'
            WHEN g %% 100 < 95 THEN 'completed'  -- 'failed' is never written (contract)
            WHEN g %% 100 < 99 THEN 'cancelled'
            ELSE 'processing'
        END AS status
    FROM generate_series(%(start)s, %(stop)s) AS g
) AS t
"""


def create_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in {"postgres", "template0", "template1"}:
        raise SystemExit("DATABASE_URL must name a database of its own for the benchmark")
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}", file=sys.stderr)


def drop_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"dropped database {name}", file=sys.stderr)


def fill(total: int) -> dict[str, int]:
    from django.db import connection

    from accounts.models import User
    from queues.models import Job

    others = User.objects.exclude(email=MARKER_EMAIL).exclude(
        email__in=[email for email, _ in TENANTS] + [TINY_TENANT]
    )
    if others.exists():
        raise SystemExit("this database has other users: point DATABASE_URL at a bench database")
    User.objects.filter(email=MARKER_EMAIL).exists() or User.objects.create_superuser(
        MARKER_EMAIL, "bench-password"
    )
    owners = {
        email: User.objects.get_or_create(email=email)[0].pk
        for email in [*(e for e, _ in TENANTS), TINY_TENANT]
    }
    have = Job.objects.count()
    if have >= total:
        print(f"{have} jobs already there", file=sys.stderr)
        return owners
    chunk = 200_000
    started = time.perf_counter()
    params = {
        "queues": QUEUES,
        "total": total,
        "tiny": owners[TINY_TENANT],
        "t0": owners[TENANTS[0][0]],
        "t1": owners[TENANTS[1][0]],
        "t2": owners[TENANTS[2][0]],
    }
    for start in range(have + 1, total + 1, chunk):
        stop = min(start + chunk - 1, total)
        with connection.cursor() as cursor:
            cursor.execute(FILL_SQL, {**params, "start": start, "stop": stop})
        print(f"  inserted up to {stop}", file=sys.stderr)
    # A day of per-minute samples for every tenant's queues, as run_maintenance
    # would have left them (the charts read these).
    from django.utils import timezone

    with connection.cursor() as cursor:
        cursor.execute(SAMPLES_SQL)
    try:
        from queues.samples import roll_up
    except ImportError:  # code from before migration 0010, for a comparison
        pass
    else:
        now = timezone.now()
        roll_up(start=now - timedelta(days=2), end=now)  # the per-minute totals
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs")
        cursor.execute("VACUUM ANALYZE queue_samples")
        if "queue_sample_totals" in connection.introspection.table_names(cursor):
            cursor.execute("VACUUM ANALYZE queue_sample_totals")
    print(f"filled {total} jobs in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return owners


REQUEUE_QUEUE = "DLQ: confirm requeueing every dead job of queue-3 (select all)"
REQUEUE_ALL = "DLQ: confirm requeueing every dead job (select all)"
CONFIRMATIONS = {
    label: {"action": "requeue", "select_across": "1", "index": "0"}
    for label in (REQUEUE_QUEUE, REQUEUE_ALL)
}


RETRYING_SQL = """
UPDATE jobs SET retry_count = 1, error_text = 'worker error #' || (random() * 96)::int,
       run_at = now() + interval '5 minutes'
WHERE id IN (SELECT id FROM jobs WHERE status = 'pending' ORDER BY id DESC LIMIT %(n)s)
"""


def set_retrying(count: int) -> None:
    """Make the newest ``count`` pending jobs wait to retry, with an error text
    (the live jobs the job list's error search reads: decision 0011)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM jobs WHERE status = 'pending' AND error_text IS NOT NULL"
        )
        if cursor.fetchone()[0] == count:
            return
        cursor.execute(
            "UPDATE jobs SET retry_count = 0, error_text = NULL, run_at = created_at"
            " WHERE status = 'pending' AND error_text IS NOT NULL"
        )
        cursor.execute(RETRYING_SQL, {"n": count})
        cursor.execute("VACUUM ANALYZE jobs")
    print(f"  {count} pending jobs waiting to retry", file=sys.stderr)


def extras(owners: dict[str, int]) -> None:
    """What the remaining pages list: schedules, queue settings and tokens (idempotent)."""
    from accounts.models import ApiToken, User
    from accounts.services import issue_token
    from queues.models import QueueSettings
    from schedules.models import Schedule

    big = User.objects.get(pk=owners[TENANTS[0][0]])
    if Schedule.objects.filter(owner=big).exists():
        return
    from django.utils import timezone

    now = timezone.now()
    for pk in owners.values():
        Schedule.objects.bulk_create(
            Schedule(
                owner_id=pk, name=f"every-{n}-minutes", queue_name=f"queue-{n % QUEUES}",
                cron=f"*/{n} * * * *", payload={"n": n}, next_run_at=now, created_at=now,
                updated_at=now,
            )
            for n in range(1, 31)
        )  # fmt: skip
        QueueSettings.objects.bulk_create(
            QueueSettings(owner_id=pk, queue_name=f"queue-{n}", max_in_flight=50, paused=n == 5)
            for n in range(QUEUES)
        )
    for pk in owners.values():
        for n in range(5):
            issue_token(owner=User.objects.get(pk=pk), name=f"worker {n}")
    print(f"  {ApiToken.objects.count()} tokens, schedules and queue settings", file=sys.stderr)


def measure(runs: int, owners: dict[str, int]) -> list[tuple[str, float, int]]:
    from django.apps import apps
    from django.test import Client

    from accounts.models import User
    from queues.models import Job

    def first(app: str, model: str) -> int:
        return apps.get_model(app, model).objects.order_by("pk").values_list("pk", flat=True)[0]

    client = Client()
    client.force_login(User.objects.get(email=MARKER_EMAIL))
    middle = Job.objects.count() // 2
    some_job = Job.objects.order_by("pk").values_list("pk", flat=True)[middle : middle + 1].get()
    dead = Job.objects.filter(status="dead").order_by("pk").values_list("pk", flat=True)
    some_dead = dead[dead.count() // 2 : dead.count() // 2 + 1].get()
    pages = [
        ("Job list, unfiltered", "/admin/queues/job/"),
        ("Job list, page 200", "/admin/queues/job/?p=200"),
        ("Job list, status = pending", "/admin/queues/job/?status__exact=pending"),
        ("Job list, queue = queue-3", "/admin/queues/job/?queue=queue-3"),
        (
            "Job list, owner = big tenant (search by email)",
            "/admin/queues/job/?q=big%40example.com",
        ),
        (
            "Job list, owner = tiny tenant (0.01 %, search by email)",
            f"/admin/queues/job/?q={quote(TINY_TENANT)}",
        ),
        ("Job list, created today", "/admin/queues/job/?created_at__gte=today"),
        ("Job list, search by job id", f"/admin/queues/job/?q={some_job}"),
        ("Job list, search error text", "/admin/queues/job/?q=error+%2342"),
        ("DLQ list, unfiltered", "/admin/queues/deadjob/"),
        ("DLQ list, queue = queue-3", "/admin/queues/deadjob/?queue=queue-3"),
        ("DLQ list, dead_reason = operator", "/admin/queues/deadjob/?dead_reason__exact=operator"),
        ("Job detail page", f"/admin/queues/job/{some_job}/change/"),
        ("Dead job detail page", f"/admin/queues/deadjob/{some_dead}/change/"),
        (REQUEUE_QUEUE, "/admin/queues/deadjob/?queue=queue-3"),
        (REQUEUE_ALL, "/admin/queues/deadjob/"),
        ("Queue settings list", "/admin/queues/queuesettings/"),
        ("Schedule list", "/admin/schedules/schedule/"),
        ("User list", "/admin/accounts/user/"),
        ("API token list", "/admin/accounts/apitoken/"),
        (
            "Queue settings page",
            f"/admin/queues/queuesettings/{first('queues', 'QueueSettings')}/change/",
        ),
        ("Schedule page", f"/admin/schedules/schedule/{first('schedules', 'Schedule')}/change/"),
        ("User page", f"/admin/accounts/user/{owners[TENANTS[0][0]]}/change/"),
        ("API token page", f"/admin/accounts/apitoken/{first('accounts', 'ApiToken')}/change/"),
    ]
    # The console's pages as the biggest tenant, and the admin's front page.
    tenant = Client()
    tenant.force_login(User.objects.get(email="big@example.com"))
    theirs = Job.objects.filter(owner__email="big@example.com")
    their_job = (
        theirs.order_by("pk").values_list("pk", flat=True)[middle // 2 : middle // 2 + 1].get()
    )
    pages += [("Admin front page (health numbers, charts)", "/admin/")]
    console = [
        ("Console overview (queues, charts)", "/console/"),
        ("Console queue page (numbers, charts)", "/console/queues/queue-3/"),
        ("Console jobs, newest first", "/console/jobs/"),
        ("Console jobs, scheduled for later", "/console/jobs/?status=scheduled"),
        ("Console jobs, waiting to retry", "/console/jobs/?status=retrying"),
        ("Console jobs, completed", "/console/jobs/?status=completed"),
        ("Console jobs, processing", "/console/jobs/?status=processing"),
        ("Console jobs, queue = queue-3", "/console/jobs/?queue=queue-3"),
        ("Console job search, end of an id", f"/console/jobs/?q={str(their_job)[-8:]}"),
        ("Console job page", f"/console/jobs/{their_job}/"),
        ("Console in flight", "/console/in-flight/"),
        ("Console DLQ", "/console/dlq/"),
        ("Console DLQ, grouped by error", "/console/dlq/?group=error"),
        ("Console DLQ, error search", "/console/dlq/?q=error+%2342"),
        ("Console DLQ, queue = queue-3", "/console/dlq/?queue=queue-3"),
        ("Console schedules", "/console/schedules/"),
        ("Console schedule page", "/console/schedules/every-5-minutes/"),
        ("Console tokens", "/console/tokens/"),
    ]
    results = []
    for label, url in [*pages, *console]:
        if label.startswith("Console"):
            client_for_page = tenant
        else:
            client_for_page = client
        if "created_at__gte=today" in url:
            from django.utils import timezone

            today = timezone.now().date().isoformat()
            url = f"/admin/queues/job/?created_at__gte={today}+00%3A00%3A00%2B00%3A00"
        # A bulk action's confirmation page is a POST that changes nothing
        # until it is answered (openqueue_site/admin.py, confirm_then_run).
        data = CONFIRMATIONS.get(label)
        if data is not None:
            data = {**data, "_selected_action": [some_dead]}

        def request(url=url, data=data, client_for_page=client_for_page):
            if data is None:
                return client_for_page.get(url)
            return client_for_page.post(url, data)

        response = request()  # warm-up
        assert response.status_code == 200, (url, response.status_code)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            response = request()
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        context = getattr(response, "context_data", None) or {}
        count = getattr(context.get("cl"), "result_count", 0)
        results.append((label, statistics.median(times), count))
        print(f"  {label}: {statistics.median(times):.1f} ms", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--retrying",
        type=int,
        default=1000,
        help="pending jobs waiting to retry, with an error text (default 1000)",
    )
    parser.add_argument("--drop", action="store_true", help="drop the database afterwards")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("set DATABASE_URL to a PostgreSQL database for the benchmark")
    create_database(url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openqueue_site.settings")
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["OPENQUEUE_DB_POOL"] = "false"
    os.environ["OPENQUEUE_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    try:
        call_command("migrate", verbosity=0)
        owners = fill(args.jobs)
        extras(owners)
        set_retrying(args.retrying)
        results = measure(args.runs, owners)
    finally:
        connections.close_all()
        if args.drop:
            drop_database(url)

    print(
        f"\n{args.jobs:,} jobs ({args.retrying:,} waiting to retry),"
        f" median of {args.runs} requests after one warm-up:\n"
    )
    print("| Page | Median | Rows shown as |")
    print("|---|---:|---:|")
    for label, median, count in results:
        print(f"| {label} | {median:.1f} ms | {count:,} |")


if __name__ == "__main__":
    main()
