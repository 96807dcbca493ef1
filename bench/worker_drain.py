"""How fast the client's ``Worker`` drains a queue, by concurrency, against a real server.

    .venv/bin/python bench/worker_drain.py [--jobs 2000] [--concurrency 1,4,16] \\
        [--database-url postgres://...]

Starts a throwaway PostgreSQL cluster (fsync on) unless ``--database-url``
names a server, migrates a fresh database, issues a token and starts gunicorn
with gunicorn.conf.py (as bench/run.py does). Then, per concurrency: enqueue
``--jobs`` jobs into a fresh queue, run ``Worker(burst=True)`` with a handler
that does nothing, and report jobs per second, HTTP requests per job and
whether every job was completed exactly once (one attempt each).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openqueue_client import Client, NewJob, Worker  # noqa: E402

from bench.run import fresh_database, gunicorn, log, manage, postgres_server  # noqa: E402


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__(limits=httpx.Limits(max_connections=64))
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


def drain(url: str, token: str, database_url: str, jobs: int, concurrency: int) -> dict:
    queue = f"drain-{concurrency}-{uuid.uuid4().hex[:6]}"
    with Client(url, token, timeout=60) as producer:
        for start in range(0, jobs, 1000):
            producer.enqueue_batch(
                [NewJob(queue, {"n": n}) for n in range(start, min(jobs, start + 1000))]
            )
    transport = CountingTransport()
    with Client(url, token, timeout=60, transport=transport) as client:
        worker = Worker(client, queue, lambda job: None, concurrency=concurrency, burst=True)
        started = time.perf_counter()
        stats = worker.run(install_signal_handlers=False)
        elapsed = time.perf_counter() - started
    with psycopg.connect(database_url) as conn:
        completed, attempts = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed'),"
            " (SELECT count(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id"
            "  WHERE j.queue_name = %s)"
            " FROM jobs WHERE queue_name = %s",
            (queue, queue),
        ).fetchone()
    return {
        "concurrency": concurrency,
        "seconds": elapsed,
        "jobs_per_second": jobs / elapsed,
        "requests_per_job": transport.requests / jobs,
        "exactly_once": completed == jobs == attempts == stats.acked,
    }


def hand_loop(url: str, token: str, database_url: str, jobs: int) -> dict:
    """The baseline: one thread, lease then ack, as a hand-written worker does."""
    queue = f"loop-{uuid.uuid4().hex[:6]}"
    with Client(url, token, timeout=60) as client:
        for start in range(0, jobs, 1000):
            client.enqueue_batch(
                [NewJob(queue, {"n": n}) for n in range(start, min(jobs, start + 1000))]
            )
        started = time.perf_counter()
        done = 0
        while (lease := client.lease(queue, worker_id="loop")) is not None:
            client.ack(lease.job_id, lease.lease_token)
            done += 1
        elapsed = time.perf_counter() - started
    return {
        "concurrency": "hand-written loop",
        "seconds": elapsed,
        "jobs_per_second": jobs / elapsed,
        "requests_per_job": (2 * done + 1) / jobs,
        "exactly_once": done == jobs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated")
    parser.add_argument("--database-url", help="a PostgreSQL server to create the database on")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.concurrency.split(",")]
    rows = []
    with (
        postgres_server(args.database_url) as admin_url,
        fresh_database(admin_url, in_place=False) as database_url,
    ):
        manage(database_url, "migrate", "--noinput")
        token = manage(database_url, "create_api_token", "bench-worker@example.com", "--name", "b")
        workdir = Path(tempfile.mkdtemp(prefix="oq-bench-worker-"))
        with gunicorn(database_url, workdir, None, None) as (url, _pid):
            rows.append(hand_loop(url, token, database_url, args.jobs))
            log(f"hand-written loop: {rows[-1]['jobs_per_second']:.0f} jobs/s")
            for level in levels:
                row = drain(url, token, database_url, args.jobs, level)
                log(f"concurrency {level}: {row['jobs_per_second']:.0f} jobs/s")
                rows.append(row)
    print(f"\n{args.jobs} jobs, a handler that does nothing, one worker process:\n")
    print("| Worker concurrency | Jobs/s | Seconds | HTTP requests per job | Each job once |")
    print("|---:|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['concurrency']} | {row['jobs_per_second']:.0f} | {row['seconds']:.1f} "
            f"| {row['requests_per_job']:.2f} | {'yes' if row['exactly_once'] else 'NO'} |"
        )
    return 0 if all(row["exactly_once"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
