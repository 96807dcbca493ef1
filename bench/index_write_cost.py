"""What an index costs the statements that write it: a nack that retries, or a job's death.

    DATABASE_URL=postgres://postgres@127.0.0.1:PORT/oq_bench_admin_ui \\
        .venv/bin/python bench/index_write_cost.py nack --without jobs_erred_live_idx
    DATABASE_URL=… .venv/bin/python bench/index_write_cost.py death \\
        --without jobs_dead_owner_queue_idx,jobs_dead_reason_id_idx,jobs_dead_error_trgm_idx

Runs against a database filled by ``bench/admin_list.py``. Writes the
statement's effect (as the nack or the death writes it: status, retry
count, run_at or dead_at, the error text) on 10,000 jobs (processing ones
for a nack, pending ones for a death), in batches of 100, once with the
table's indexes as they are and once with the ``--without`` ones dropped,
alternated over 4 rounds; every round is rolled back, the drops included,
so the database is left as it was. Prints microseconds per job and the
median of each. ``--lines`` sets how many traceback lines the error text
has (18 make 2.4 KB; 0 is a one-line error). Only the database's part is
measured: the request around it is the same either way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg
from psycopg import sql

JOBS = 10_000
BATCH = 100
ROUNDS = 4

STATEMENTS = {
    # What a nack with retries left writes (queues/services.py: RETRIES).
    "nack": (
        "processing",
        "UPDATE jobs SET status = 'pending', retry_count = retry_count + 1,"
        " run_at = now() + interval '10 seconds', locked_until = NULL, locked_by = NULL,"
        " lease_token = NULL, error_text = %s || id::text, updated_at = now()"
        " WHERE id = ANY(%s)",
    ),
    # What a nack with no retries left writes (DIES).
    "death": (
        "pending",
        "UPDATE jobs SET status = 'dead', dead_reason = 'max_retries_exhausted',"
        " dead_at = now(), finished_at = now(), error_text = %s || id::text,"
        " updated_at = now() WHERE id = ANY(%s)",
    ),
}


def error_text(lines: int) -> str:
    frame = (
        '  File "/srv/app/tasks/worker.py", line 123, in handle_payment_webhook\n'
        "    result = client.post(url, json=payload, timeout=30)\n"
    )
    if not lines:
        return "TimeoutError: upstream took 30 s (payment webhook), job "
    head = "Traceback (most recent call last):\n"
    return head + frame * lines + "TimeoutError: upstream took 30 s, job "


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=sorted(STATEMENTS))
    parser.add_argument("--without", required=True, help="comma-separated index names")
    parser.add_argument("--lines", type=int, default=18, help="traceback lines (default 18)")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("set DATABASE_URL to a database filled by bench/admin_list.py")
    status, statement = STATEMENTS[args.kind]
    text = error_text(args.lines)
    drop = sql.SQL("DROP INDEX {}").format(
        sql.SQL(", ").join(sql.Identifier(name) for name in args.without.split(","))
    )
    per_job: dict[str, list[float]] = {"as is": [], "without": []}
    with psycopg.connect(url) as conn:
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM jobs WHERE status = %s ORDER BY id LIMIT %s", [status, JOBS]
            )
        ]
        conn.rollback()
        if len(ids) < JOBS:
            raise SystemExit(f"only {len(ids)} {status} jobs: fill the database first")
        for round_ in range(ROUNDS):
            order = ["as is", "without"] if round_ % 2 == 0 else ["without", "as is"]
            for mode in order:
                with conn.transaction(force_rollback=True):
                    if mode == "without":
                        conn.execute(drop)
                    started = time.perf_counter()
                    for start in range(0, JOBS, BATCH):
                        conn.execute(statement, [text, ids[start : start + BATCH]])
                    per_job[mode].append((time.perf_counter() - started) / JOBS * 1e6)
    print(f"{args.kind}, {len(text):,} characters of error text, {JOBS:,} jobs:")
    for mode, values in per_job.items():
        rounds = ", ".join(f"{value:.0f}" for value in values)
        print(f"  {mode:>8}: {rounds} µs per job, median {statistics.median(values):.0f}")


if __name__ == "__main__":
    main()
