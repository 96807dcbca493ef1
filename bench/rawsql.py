"""The raw-SQL anchor: the job lifecycle straight on the database, no HTTP, no Django.

Same database, same ``jobs`` table and indexes as the server, in the same run,
so "API jobs/s divided by raw jobs/s" says how much the service layer costs
on this machine, whatever the machine. Each operation mirrors what the
server does per job:

- single insert: one autocommit INSERT per job, from T threads;
- batch insert: one INSERT of BATCH_SIZE rows per statement;
- single lease + ack: the two-probe ``SELECT ... FOR UPDATE SKIP LOCKED``
  (pending, then expired) and the UPDATE of services.lease_job in one
  transaction, then the guarded ack UPDATE of services.ack_job;
- batch lease + ack: BATCH_SIZE rows leased by one UPDATE over a
  ``SKIP LOCKED`` CTE, then acked by one UPDATE over ``unnest`` of
  (id, lease token) pairs: the best a batch API could do.

Ids come from ``gen_random_uuid()`` (the server makes UUIDv7 in Python).
Every run ends with the same database check as the load generator.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import psycopg

from bench.loadgen import (
    BATCH_SIZE,
    LEASE_SECONDS,
    CpuProbe,
    Quota,
    Recorder,
    ScenarioResult,
    Window,
    fresh_queue,
    percentiles_ms,
    run_threads,
    verify,
)

INSERT_ONE = """
    INSERT INTO jobs (id, user_id, queue_name, payload)
    VALUES (gen_random_uuid(), %s, %s, %s::jsonb) RETURNING id
"""
INSERT_MANY = """
    INSERT INTO jobs (id, user_id, queue_name, payload)
    SELECT gen_random_uuid(), %s, %s, item::jsonb FROM unnest(%s::text[]) AS item
    RETURNING id
"""
# services.lease_job: two probes, each in the order of its partial index.
# Like the ORM, they fetch the whole row (the API returns the job).
PROBE_PENDING = """
    SELECT id, priority, created_at, jobs.* FROM jobs
    WHERE user_id = %s AND queue_name = %s AND status = 'pending' AND run_at <= now()
    ORDER BY priority DESC, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
"""
PROBE_EXPIRED = """
    SELECT id, priority, created_at, jobs.* FROM jobs
    WHERE user_id = %s AND queue_name = %s AND status = 'processing' AND locked_until < now()
    ORDER BY priority DESC, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
"""
LEASE_ONE = """
    UPDATE jobs SET status = 'processing', lease_token = %s, locked_by = %s,
        locked_until = now() + %s * interval '1 second',
        started_at = COALESCE(started_at, now()), updated_at = now()
    WHERE id = %s
"""
# services.ack_job: one guarded UPDATE; the row count is the truth.
ACK_ONE = """
    UPDATE jobs SET status = 'completed', result = NULL, error_text = NULL,
        updated_at = now(), finished_at = now(),
        locked_until = NULL, locked_by = NULL, lease_token = NULL
    WHERE id = %s AND user_id = %s AND status = 'processing' AND lease_token = %s
    RETURNING id, queue_name, status, started_at, dead_reason
"""
LEASE_MANY = """
    WITH picked AS (
        SELECT id FROM jobs
        WHERE user_id = %s AND queue_name = %s AND status = 'pending' AND run_at <= now()
        ORDER BY priority DESC, created_at, id LIMIT %s FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs SET status = 'processing', lease_token = gen_random_uuid(), locked_by = %s,
        locked_until = now() + %s * interval '1 second',
        started_at = COALESCE(jobs.started_at, now()), updated_at = now()
    FROM picked WHERE jobs.id = picked.id
    RETURNING jobs.id, jobs.lease_token, jobs.payload
"""
ACK_MANY = """
    UPDATE jobs SET status = 'completed', result = NULL, error_text = NULL,
        updated_at = now(), finished_at = now(),
        locked_until = NULL, locked_by = NULL, lease_token = NULL
    FROM unnest(%s::uuid[], %s::uuid[]) AS acked(id, token)
    WHERE jobs.id = acked.id AND jobs.lease_token = acked.token
        AND jobs.user_id = %s AND jobs.status = 'processing'
    RETURNING jobs.id
"""


class RawTarget:
    """The database and the tenant whose jobs the anchor writes."""

    def __init__(self, database_url: str, user_id: Any, cpu_probe: CpuProbe | None = None):
        self.database_url = database_url
        self.user_id = user_id
        self.cpu_probe = cpu_probe

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url, autocommit=True)


def _finish(
    result: ScenarioResult, window: Window, rec: Recorder, quota: Quota | None, jobs: int
) -> None:
    window.fill(result, jobs)
    result.requests = len(rec.latencies)
    result.errors = dict(rec.errors)
    result.request_latency_ms = percentiles_ms(rec.latencies)
    if quota is not None:
        result.stopped_by = "count" if quota.left <= 0 else "time"


def _payloads(start: int, count: int) -> list[str]:
    return [json.dumps({"n": start + i}) for i in range(count)]


def _insert_batches(
    target: RawTarget, queue: str, quota: Quota, threads: int, deadline: float
) -> Recorder:
    def inserter(index: int, rec: Recorder) -> None:
        with target.connect() as conn:
            n = 0
            while time.perf_counter() < deadline and (size := quota.take(BATCH_SIZE)):
                started = time.perf_counter()
                rows = conn.execute(
                    INSERT_MANY, (target.user_id, queue, _payloads(n, size))
                ).fetchall()
                rec.latencies.append(time.perf_counter() - started)
                rec.enqueued += [str(row[0]) for row in rows]
                n += size

    return run_threads(threads, inserter)


def single_insert(
    target: RawTarget, *, jobs: int, threads: int = 8, max_seconds: float = 30.0
) -> ScenarioResult:
    queue = fresh_queue("raw-single")
    result = ScenarioResult(
        "raw_single_insert", {"jobs": jobs, "threads": threads, "max_seconds": max_seconds}
    )
    quota = Quota(jobs)
    deadline = time.perf_counter() + max_seconds

    def inserter(index: int, rec: Recorder) -> None:
        with target.connect() as conn:
            n = 0
            while time.perf_counter() < deadline and quota.take():
                started = time.perf_counter()
                row = conn.execute(
                    INSERT_ONE, (target.user_id, queue, json.dumps({"n": n}))
                ).fetchone()
                rec.latencies.append(time.perf_counter() - started)
                rec.enqueued.append(str(row[0]))
                n += 1

    with Window(target.cpu_probe).measure() as window:
        rec = run_threads(threads, inserter)
    _finish(result, window, rec, quota, len(rec.enqueued))
    result.check = verify(target.database_url, queue, rec, lifecycle=False, all_done=True)
    return result


def batch_insert(
    target: RawTarget, *, batches: int, threads: int = 4, max_seconds: float = 30.0
) -> ScenarioResult:
    queue = fresh_queue("raw-batch")
    result = ScenarioResult(
        "raw_batch_insert",
        {"batches": batches, "batch_size": BATCH_SIZE, "threads": threads},
    )
    quota = Quota(batches * BATCH_SIZE)  # counted in jobs, taken a batch at a time
    deadline = time.perf_counter() + max_seconds
    with Window(target.cpu_probe).measure() as window:
        rec = _insert_batches(target, queue, quota, threads, deadline)
    _finish(result, window, rec, quota, len(rec.enqueued))
    result.check = verify(target.database_url, queue, rec, lifecycle=False, all_done=True)
    return result


def _prefill(target: RawTarget, queue: str, jobs: int) -> Recorder:
    return _insert_batches(target, queue, Quota(jobs), 2, time.perf_counter() + 600)


def lease_ack(
    target: RawTarget, *, jobs: int, workers: int = 8, max_seconds: float = 60.0
) -> ScenarioResult:
    """Drain ``jobs`` with W threads, one job per lease transaction and one ack each."""
    queue = fresh_queue("raw-lease")
    result = ScenarioResult(
        "raw_lease_ack", {"jobs": jobs, "workers": workers, "max_seconds": max_seconds}
    )
    prefill = _prefill(target, queue, jobs)
    deadline = time.perf_counter() + max_seconds
    drained: list[bool] = []

    def worker(index: int, rec: Recorder) -> None:
        worker_id = f"raw-{index}"
        with target.connect() as conn:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                with conn.transaction():
                    found = [
                        row
                        for probe in (PROBE_PENDING, PROBE_EXPIRED)
                        if (row := conn.execute(probe, (target.user_id, queue)).fetchone())
                    ]
                    if not found:
                        drained.append(True)
                        break
                    job = min(found, key=lambda row: (-row[1], row[2], row[0]))
                    token = uuid.uuid4()
                    conn.execute(LEASE_ONE, (token, worker_id, LEASE_SECONDS, job[0]))
                rec.leases.append((str(job[0]), str(token)))
                done = conn.execute(ACK_ONE, (job[0], target.user_id, token)).fetchall()
                rec.latencies.append(time.perf_counter() - started)
                if len(done) == 1:
                    rec.acked.append(str(job[0]))
                else:
                    rec.errors["ack matched no row"] += 1

    with Window(target.cpu_probe).measure() as window:
        rec = run_threads(workers, worker)
    rec.enqueued = prefill.enqueued
    _finish(result, window, rec, None, len(rec.acked))
    result.stopped_by = "empty" if drained else "time"
    result.check = verify(target.database_url, queue, rec, lifecycle=True, all_done=bool(drained))
    return result


def batch_lease_ack(
    target: RawTarget, *, jobs: int, workers: int = 2, max_seconds: float = 60.0
) -> ScenarioResult:
    """Drain ``jobs`` with W threads, BATCH_SIZE jobs per lease and per ack statement."""
    queue = fresh_queue("raw-batchlease")
    result = ScenarioResult(
        "raw_batch_lease_ack",
        {"jobs": jobs, "batch_size": BATCH_SIZE, "workers": workers, "max_seconds": max_seconds},
    )
    prefill = _prefill(target, queue, jobs)
    deadline = time.perf_counter() + max_seconds
    drained: list[bool] = []

    def worker(index: int, rec: Recorder) -> None:
        worker_id = f"raw-{index}"
        with target.connect() as conn:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                leased = conn.execute(
                    LEASE_MANY, (target.user_id, queue, BATCH_SIZE, worker_id, LEASE_SECONDS)
                ).fetchall()
                if not leased:
                    drained.append(True)
                    break
                ids = [row[0] for row in leased]
                tokens = [row[1] for row in leased]
                rec.leases += [(str(i), str(t)) for i, t in zip(ids, tokens, strict=True)]
                done = conn.execute(ACK_MANY, (ids, tokens, target.user_id)).fetchall()
                rec.latencies.append(time.perf_counter() - started)
                rec.acked += [str(row[0]) for row in done]
                if len(done) != len(ids):
                    rec.errors["batch ack matched fewer rows"] += len(ids) - len(done)

    with Window(target.cpu_probe).measure() as window:
        rec = run_threads(workers, worker)
    rec.enqueued = prefill.enqueued
    _finish(result, window, rec, None, len(rec.acked))
    result.stopped_by = "empty" if drained else "time"
    result.check = verify(target.database_url, queue, rec, lifecycle=True, all_done=bool(drained))
    return result
