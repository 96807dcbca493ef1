"""Lease latency with a million finished jobs in the table vs an empty table (issue 5, item 2).

Target: ratio <= 1.2. A queue accumulates completed jobs until retention
deletes them; the lease must cost the same whatever the history, which the
partial lease indexes (queues/models.py) are for. This creates a throwaway
database on the PostgreSQL server, migrates it, measures ``lease_job`` (the
service, as a request runs it) on an empty table, bulk-inserts the history
into the *same* tenant and queue (the worst case), measures again, and drops
the database::

    .venv/bin/python bench/lease_history.py --admin-url postgres://postgres@127.0.0.1:5432/postgres

Not part of the test suite; the numbers go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def measure(owner: object, queue: str, samples: int) -> list[float]:
    """Enqueue ``samples`` due jobs, then time each lease_job call (seconds)."""
    from queues import services

    services.enqueue_jobs(
        owner=owner,  # type: ignore[arg-type]
        jobs=[services.NewJob(queue_name=queue, payload={"n": n}) for n in range(samples)],
    )
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        lease = services.lease_job(
            owner=owner,  # type: ignore[arg-type]
            queue_name=queue,
            worker_id="bench",
            lease_seconds=3600,
        )
        timings.append(time.perf_counter() - started)
        assert lease is not None
    return timings


def insert_history(owner_id: int, queue: str, rows: int) -> float:
    """``rows`` completed jobs in the measured queue, in one INSERT ... SELECT."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO jobs (id, user_id, queue_name, payload, status, priority, retry_count,
                              max_retries, run_at, created_at, updated_at, started_at,
                              finished_at, result, lease_lost_count)
            SELECT gen_random_uuid(), %s, %s, '{}'::jsonb, 'completed', 0, 0, 3,
                   now() - make_interval(secs => n), now() - make_interval(secs => n),
                   now() - make_interval(secs => n), now() - make_interval(secs => n),
                   now() - make_interval(secs => n), '{"ok": true}'::jsonb, 0
            FROM generate_series(1, %s) AS n
            """,
            [owner_id, queue, rows],
        )
        cursor.execute("ANALYZE jobs")
    return time.perf_counter() - started


def summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", required=True, help="any database on the server")
    parser.add_argument("--database", default="openqueue_lease_history")
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    args = parser.parse_args(argv)

    url = _with_database(args.admin_url, args.database)
    _admin(args.admin_url, f'DROP DATABASE IF EXISTS "{args.database}"')
    _admin(args.admin_url, f'CREATE DATABASE "{args.database}"')
    os.environ.update(
        DATABASE_URL=url,
        OPENQUEUE_DB_POOL="false",
        OPENQUEUE_LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="openqueue_site.settings",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from accounts.models import User

    try:
        call_command("migrate", verbosity=0)
        owner = User.objects.create_user(email="bench@example.com", password=None)
        queue = "work"
        measure(owner, queue, 200)  # warm-up: caches, plans, connection
        empty = [t for _ in range(args.rounds) for t in measure(owner, queue, args.samples)]
        seconds = insert_history(owner.pk, queue, args.history)
        measure(owner, queue, 200)
        full = [t for _ in range(args.rounds) for t in measure(owner, queue, args.samples)]
        before, after = summary(empty), summary(full)
        print(f"history: {args.history:,} completed jobs in the same queue ({seconds:.1f} s)")
        print(f"empty table:  {before}")
        print(f"with history: {after}")
        print(f"ratio p50: {after['p50_ms'] / before['p50_ms']:.3f}")
        print(f"ratio mean: {after['mean_ms'] / before['mean_ms']:.3f}")
    finally:
        connections.close_all()
        if not args.keep:
            _admin(args.admin_url, f'DROP DATABASE IF EXISTS "{args.database}"')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
