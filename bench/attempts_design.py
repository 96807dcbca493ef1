"""Attempt history: a ``job_attempts`` table (A) or a jsonb array on the job row (B)?

Every lease starts an attempt; ack, nack and lease expiry end it (outcome,
error, duration); at most 25 attempts are kept per job. Recording them must
add no round trip: the write is folded into the one statement lease, ack and
nack already send. This measures both designs against today's statements on
the same server, interleaved (base, A, B, base, A, B, ...) so that machine
load hits all three alike::

    .venv/bin/python bench/attempts_design.py                # ~5 minutes on 2 cores
    .venv/bin/python bench/attempts_design.py --rounds 1 --jobs 1000 --batch-jobs 5000

- ``base``: the statements queues/store/postgres.py renders today (LEASE,
  ACK, NACK of queues/services.py), copied as text;
- ``table_design`` (A): ``jobs.attempts int`` counts leases; the lease's
  ``UPDATE jobs ... RETURNING`` feeds, in the same statement, an INSERT of
  the new attempt, the UPDATE that closes a recovered job's open attempt and
  the DELETE of attempts older than the 25 newest; ack/nack's UPDATE feeds
  the UPDATE that closes the attempt;
- ``array_design`` (B): ``jobs.attempts jsonb`` holds the last 25 attempts;
  the lease appends one, ack/nack rewrite the last one.

Measured, each with a time cap: a single drain (N jobs, W threads, each
lease 1 + ack 1, autocommit), a batch drain (lease 100 + ack 100, W=2), a
"deep" single drain of jobs that already have 25 attempts (steady state at
the cap: A deletes one row per lease, B's array is TOASTed or compressed),
and table sizes after a drain where every job is leased three times (nack
with retry twice, then ack). Every drain ends with a check in the database.
The measured drains run beside finished jobs (``--history-jobs``), as a
real table would: an empty job_attempts gets other join plans.

Each variant lives in its own schema, recreated before each drain, on a
throwaway PostgreSQL cluster with fsync on (scripts/pg_throwaway.sh with
PG_THROWAWAY_DURABLE=1), or in a fresh database on ``--database-url``
(loopback only; the database is dropped afterwards). Statements are sent
the way Django sends them (client-side binding: parsed and planned per
call) unless ``--binding server``. No Django needed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("base", "table_design", "array_design")
SHORT = {"base": "base", "table_design": "A table", "array_design": "B array"}
OWNER = 1
LEASE_SECONDS = 3600  # no lease expires during a drain
MAX_ATTEMPTS = 25
BATCH_SIZE = 100
# A worker's error, as nack sends it (the size and deep phases store it per attempt).
ERROR_TEXT = (
    "TimeoutError: upstream http://billing.internal/v1/charge did not answer "
    "within 30s (attempt failed)"
)

# --- Schema: queues/models.py as plain SQL (Django's DDL for it) ----------------------

JOBS_DDL = """
CREATE TABLE users (id bigint PRIMARY KEY);
INSERT INTO users VALUES (1);
CREATE TABLE jobs (
    id uuid NOT NULL PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED,
    queue_name varchar(255) NOT NULL,
    payload jsonb NOT NULL,
    status varchar(16) NOT NULL DEFAULT 'pending',
    priority integer NOT NULL DEFAULT 0,
    retry_count integer NOT NULL DEFAULT 0,
    max_retries integer NOT NULL DEFAULT 3,
    run_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz NULL,
    locked_by text NULL,
    lease_token uuid NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz NULL,
    finished_at timestamptz NULL,
    result jsonb NULL,
    error_text text NULL,
    dead_at timestamptz NULL,
    dead_reason varchar(32) NULL,
    lease_lost_count integer NOT NULL DEFAULT 0,
    idempotency_key varchar(255) NULL,
    idempotency_expires_at timestamptz NULL,
    CONSTRAINT jobs_status_check CHECK (status IN
        ('pending', 'processing', 'completed', 'failed', 'cancelled', 'dead')),
    CONSTRAINT jobs_retry_count_non_negative CHECK (retry_count >= 0),
    CONSTRAINT jobs_max_retries_non_negative CHECK (max_retries >= 0),
    CONSTRAINT jobs_lease_lost_count_non_negative CHECK (lease_lost_count >= 0)
);
CREATE INDEX jobs_user_id_idx ON jobs (user_id);
CREATE UNIQUE INDEX jobs_owner_idempotency_key_uniq ON jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_lease_pending_idx ON jobs (user_id, queue_name, priority DESC, created_at, id)
    WHERE status = 'pending';
CREATE INDEX jobs_lease_expired_idx ON jobs (user_id, queue_name, locked_until)
    WHERE status = 'processing';
CREATE INDEX jobs_owner_created_idx ON jobs (user_id, created_at DESC, id DESC);
CREATE INDEX jobs_owner_queue_status_idx ON jobs (user_id, queue_name, status, created_at);
CREATE INDEX jobs_status_id_idx ON jobs (status, id);
CREATE INDEX jobs_queue_id_idx ON jobs (queue_name, id);
CREATE INDEX jobs_created_idx ON jobs (created_at);
CREATE INDEX jobs_retention_idx ON jobs (status, finished_at)
    WHERE status IN ('completed', 'failed', 'cancelled', 'dead');
"""
EXTRA_DDL = {
    "base": "",
    "table_design": """
ALTER TABLE jobs ADD COLUMN attempts integer NOT NULL DEFAULT 0;
CREATE TABLE job_attempts (
    id bigserial PRIMARY KEY,
    job_id uuid NOT NULL REFERENCES jobs (id) DEFERRABLE INITIALLY DEFERRED,
    attempt integer NOT NULL,
    worker_id text NOT NULL,
    leased_at timestamptz NOT NULL,
    lease_expires_at timestamptz NOT NULL,
    finished_at timestamptz NULL,
    outcome varchar(16) NOT NULL,
    error text NULL,
    UNIQUE (job_id, attempt)
);
""",
    "array_design": "ALTER TABLE jobs ADD COLUMN attempts jsonb NOT NULL DEFAULT '[]'::jsonb;",
}

# --- Statements ------------------------------------------------------------------------
# Base: what queues/store/postgres.py renders for LEASE, ACK and NACK of
# queues/services.py (copied from _lease_statement / _update_statement output).

PROBES = """
WITH c0 AS (
    SELECT jobs.id, jobs.priority, jobs.created_at, jobs.status FROM jobs
    WHERE jobs.user_id = %(owner)s AND jobs.queue_name = %(queue)s
      AND (jobs.status = 'pending' AND jobs.run_at <= %(now)s)
    ORDER BY jobs.priority DESC, jobs.created_at, jobs.id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), c1 AS (
    SELECT jobs.id, jobs.priority, jobs.created_at, jobs.status FROM jobs
    WHERE jobs.user_id = %(owner)s AND jobs.queue_name = %(queue)s
      AND (jobs.status = 'processing' AND jobs.locked_until < %(now)s)
    ORDER BY jobs.priority DESC, jobs.created_at, jobs.id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), pick AS (
    SELECT candidates.id, candidates.status = 'processing' AS recovered
    FROM (SELECT * FROM c0 UNION ALL SELECT * FROM c1) AS candidates
    ORDER BY candidates.priority DESC, candidates.created_at, candidates.id LIMIT %(limit)s
)"""
POISON = "(jobs.status = 'processing' AND jobs.lease_lost_count >= jobs.max_retries)"
LEASE_SETS = f"""
    status = CASE WHEN {POISON} THEN 'dead' ELSE 'processing' END,
    dead_at = CASE WHEN {POISON} THEN %(now)s ELSE jobs.dead_at END,
    finished_at = CASE WHEN {POISON} THEN %(now)s ELSE jobs.finished_at END,
    updated_at = %(now)s,
    locked_until = CASE WHEN {POISON} THEN NULL::timestamp with time zone ELSE %(arg_until)s END,
    locked_by = CASE WHEN {POISON} THEN NULL::text ELSE %(arg_worker_id)s END,
    lease_token = CASE WHEN {POISON} THEN NULL::uuid ELSE gen_random_uuid() END,
    dead_reason = CASE WHEN {POISON} THEN 'lease_expired' ELSE jobs.dead_reason END,
    error_text = CASE WHEN {POISON} THEN COALESCE(NULLIF(jobs.error_text, ''), 'lease_expired') ELSE jobs.error_text END,
    lease_lost_count = CASE WHEN {POISON} THEN (jobs.lease_lost_count + 1) ELSE (jobs.lease_lost_count + CASE WHEN jobs.status = 'processing' THEN 1 ELSE 0 END) END,
    started_at = CASE WHEN {POISON} THEN jobs.started_at ELSE COALESCE(jobs.started_at, %(now)s) END"""  # noqa: E501
ACK_SETS = """
    status = 'completed',
    result = item.result,
    error_text = NULL::text,
    updated_at = %(now)s,
    finished_at = %(now)s,
    locked_until = NULL::timestamp with time zone,
    locked_by = NULL::text,
    lease_token = NULL::uuid"""
ACK_ITEMS = "jsonb_to_recordset(%(items)s::jsonb) AS item(id uuid, result jsonb, token uuid)"
REQUEUES = "(item.retry AND jobs.retry_count < jobs.max_retries)"
NACK_SETS = f"""
    status = CASE WHEN {REQUEUES} THEN 'pending' ELSE 'dead' END,
    retry_count = CASE WHEN {REQUEUES} THEN (jobs.retry_count + 1) ELSE jobs.retry_count END,
    run_at = CASE WHEN {REQUEUES} THEN (%(now)s + make_interval(secs => CASE jobs.retry_count WHEN 0 THEN 1 WHEN 1 THEN 2 WHEN 2 THEN 4 WHEN 3 THEN 8 WHEN 4 THEN 16 WHEN 5 THEN 32 WHEN 6 THEN 64 WHEN 7 THEN 128 WHEN 8 THEN 256 ELSE 300 END)) ELSE jobs.run_at END,
    dead_reason = CASE WHEN {REQUEUES} THEN NULL::varchar(32) ELSE CASE WHEN jobs.retry_count < jobs.max_retries THEN 'retry_disabled' ELSE 'max_retries_exhausted' END END,
    dead_at = CASE WHEN {REQUEUES} THEN NULL::timestamp with time zone ELSE %(now)s END,
    finished_at = CASE WHEN {REQUEUES} THEN NULL::timestamp with time zone ELSE %(now)s END,
    error_text = item.error,
    updated_at = %(now)s,
    locked_until = NULL::timestamp with time zone,
    locked_by = NULL::text,
    lease_token = NULL::uuid"""  # noqa: E501
NACK_ITEMS = (
    "jsonb_to_recordset(%(items)s::jsonb) AS item(id uuid, retry boolean, error text, token uuid)"
)
HELD = (
    "jobs.id = item.id AND jobs.user_id = %(owner)s"
    " AND (jobs.status = 'processing' AND jobs.lease_token = item.token)"
)
REPORTED = "jobs.id, jobs.user_id, jobs.queue_name, jobs.status, jobs.started_at, jobs.dead_reason"
REPORTED_NAMES = "id, user_id, queue_name, status, started_at, dead_reason"

BASE_LEASE = f"""{PROBES}
UPDATE jobs SET{LEASE_SETS}
FROM pick
WHERE jobs.id = pick.id
RETURNING jobs.*, pick.recovered
"""
BASE_ACK = f"""
UPDATE jobs SET{ACK_SETS}
FROM {ACK_ITEMS}
WHERE {HELD}
RETURNING {REPORTED}
"""
BASE_NACK = f"""
UPDATE jobs SET{NACK_SETS}
FROM {NACK_ITEMS}
WHERE {HELD}
RETURNING {REPORTED}
"""

# (A) The table. Every sub-statement sees the table as it was before the
# statement (one snapshot), so `closed` cannot see the row `opened` inserts,
# and no two sub-statements may touch the same job_attempts row (PostgreSQL
# then applies only one of the changes): `closed` ends the open attempt
# (attempt n-1 after the increment, or n for a poison job), `trimmed` deletes
# attempts <= n-25, `opened` inserts attempt n. A poison job is buried, not
# leased: its open attempt is closed and no new one starts.
TABLE_LEASE = f"""{PROBES}, upd AS (
    UPDATE jobs SET{LEASE_SETS},
    attempts = CASE WHEN {POISON} THEN jobs.attempts ELSE jobs.attempts + 1 END
    FROM pick
    WHERE jobs.id = pick.id
    RETURNING jobs.*, pick.recovered
), closed AS (
    UPDATE job_attempts SET finished_at = %(now)s, outcome = 'lease_expired'
    FROM upd
    WHERE upd.recovered AND job_attempts.job_id = upd.id AND job_attempts.finished_at IS NULL
), opened AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, leased_at, lease_expires_at, outcome)
    SELECT upd.id, upd.attempts, upd.locked_by, %(now)s, upd.locked_until, 'running'
    FROM upd WHERE upd.status = 'processing'
), trimmed AS (
    DELETE FROM job_attempts USING upd
    WHERE job_attempts.job_id = upd.id AND job_attempts.attempt <= upd.attempts - {MAX_ATTEMPTS}
)
SELECT * FROM upd
"""  # noqa: S608
TABLE_ACK = f"""
WITH done AS (
    UPDATE jobs SET{ACK_SETS}
    FROM {ACK_ITEMS}
    WHERE {HELD}
    RETURNING {REPORTED}, jobs.attempts
), ended AS (
    UPDATE job_attempts SET finished_at = %(now)s, outcome = 'completed', error = NULL
    FROM done
    WHERE job_attempts.job_id = done.id AND job_attempts.attempt = done.attempts
)
SELECT {REPORTED_NAMES} FROM done
"""  # noqa: S608
TABLE_NACK = f"""
WITH done AS (
    UPDATE jobs SET{NACK_SETS}
    FROM {NACK_ITEMS}
    WHERE {HELD}
    RETURNING {REPORTED}, jobs.attempts, jobs.error_text
), ended AS (
    UPDATE job_attempts SET finished_at = %(now)s,
        outcome = CASE WHEN done.status = 'pending' THEN 'failed' ELSE 'dead' END,
        error = done.error_text
    FROM done
    WHERE job_attempts.job_id = done.id AND job_attempts.attempt = done.attempts
)
SELECT {REPORTED_NAMES} FROM done
"""  # noqa: S608


# (B) The array. jsonb_set's new value must not be NULL (it is strict: the
# whole column would become NULL) and must not create a missing element
# (create_if_missing => false: '{-1}' on '[]' would otherwise PREPEND one),
# hence the length guards. One jsonb_set replaces the last element by itself
# merged (||) with the new keys, instead of one jsonb_set per key.
def _close_last(array: str, changes: str) -> str:
    return (
        f"CASE WHEN jsonb_array_length({array}) > 0"
        f" THEN jsonb_set({array}, '{{-1}}', ({array} -> -1) || jsonb_build_object({changes}),"
        f" false) ELSE {array} END"
    )


_RECOVER = "'finished_at', %(now)s::timestamptz, 'outcome', 'lease_expired'"
_PREVIOUS = f"CASE WHEN jobs.status = 'processing' THEN {_close_last('jobs.attempts', _RECOVER)} ELSE jobs.attempts END"  # noqa: E501
_NEW_ATTEMPT = (
    "jsonb_build_object('attempt', COALESCE((jobs.attempts -> -1 ->> 'attempt')::int, 0) + 1,"
    " 'worker_id', %(arg_worker_id)s::text, 'leased_at', %(now)s::timestamptz,"
    " 'lease_expires_at', %(arg_until)s::timestamptz, 'finished_at', NULL,"
    " 'outcome', 'running', 'error', NULL)"
)
ARRAY_LEASE = f"""{PROBES}
UPDATE jobs SET{LEASE_SETS},
    attempts = CASE WHEN {POISON} THEN {_PREVIOUS}
        ELSE (CASE WHEN jsonb_array_length(jobs.attempts) >= {MAX_ATTEMPTS}
                   THEN ({_PREVIOUS}) - 0 ELSE {_PREVIOUS} END) || {_NEW_ATTEMPT} END
FROM pick
WHERE jobs.id = pick.id
RETURNING jobs.*, pick.recovered
"""
ARRAY_ACK = f"""
UPDATE jobs SET{ACK_SETS},
    attempts = {_close_last("jobs.attempts", "'finished_at', %(now)s::timestamptz, 'outcome', 'completed', 'error', NULL")}
FROM {ACK_ITEMS}
WHERE {HELD}
RETURNING {REPORTED}
"""  # noqa: E501
ARRAY_NACK = f"""
UPDATE jobs SET{NACK_SETS},
    attempts = {_close_last("jobs.attempts", f"'finished_at', %(now)s::timestamptz, 'outcome', CASE WHEN {REQUEUES} THEN 'failed' ELSE 'dead' END, 'error', item.error")}
FROM {NACK_ITEMS}
WHERE {HELD}
RETURNING {REPORTED}
"""  # noqa: E501

STATEMENTS = {
    "base": (BASE_LEASE, BASE_ACK, BASE_NACK),
    "table_design": (TABLE_LEASE, TABLE_ACK, TABLE_NACK),
    "array_design": (ARRAY_LEASE, ARRAY_ACK, ARRAY_NACK),
}


# --- Small helpers ------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[attempts_design {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


_id_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """Time-ordered ids like queues/ids.py (the server's), so the PK B-tree grows at its end."""
    global _last_ms, _counter
    with _id_lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms, _counter = now_ms, 0
        else:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms, _counter = _last_ms + 1, 0
        ms, counter = _last_ms, _counter
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64
    value |= 0b10 << 62 | int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class Db:
    """Connections to one database; each variant's tables live in the schema of its name."""

    def __init__(self, url: str, binding: str, statement_timeout_ms: int) -> None:
        self.url = url
        self.cursor_factory = psycopg.ClientCursor if binding == "client" else psycopg.Cursor
        self.options = f"-c statement_timeout={statement_timeout_ms} -c lock_timeout=10000"

    def connect(self, schema: str | None = None) -> psycopg.Connection:
        options = self.options + (f" -c search_path={schema}" if schema else "")
        return psycopg.connect(
            self.url, autocommit=True, options=options, cursor_factory=self.cursor_factory
        )

    def scalar(self, sql: str, params: Any = None, schema: str | None = None) -> Any:
        with self.connect(schema) as conn:
            row = conn.execute(sql, params).fetchone()
            return row[0] if row else None


def recreate_schema(db: Db, variant: str) -> None:
    with db.connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {variant} CASCADE")
        conn.execute(f"CREATE SCHEMA {variant}")
    with db.connect(variant) as conn:
        conn.execute(JOBS_DDL + EXTRA_DDL[variant])


def prefill(
    db: Db, variant: str, queue: str, jobs: int, prior: int = 0, finished: bool = False
) -> list[uuid.UUID]:
    """``jobs`` jobs in one queue, each with ``prior`` finished attempts already.

    Pending, or (``finished``) completed: the history a real table holds
    until retention deletes it. Without it, job_attempts starts empty and the
    planner joins it to a batch of 100 by a hash join over a sequential scan
    (cheaper than 100 index probes below ~25k rows), which no production
    table that size would see.
    """
    ids = [uuid7() for _ in range(jobs)]
    extra_col, extra_val = "", ""
    if variant == "table_design":
        extra_col, extra_val = ", attempts", ", %(prior)s"
    elif variant == "array_design":
        extra_col = ", attempts"
        extra_val = """, COALESCE((SELECT jsonb_agg(jsonb_build_object(
            'attempt', k, 'worker_id', 'bench-worker-old',
            'leased_at', now() - make_interval(mins => 100 - k),
            'lease_expires_at', now() - make_interval(mins => 100 - k) + interval '1 hour',
            'finished_at', now() - make_interval(mins => 99 - k),
            'outcome', 'failed', 'error', %(error)s::text) ORDER BY k)
          FROM generate_series(1, %(prior)s) AS k), '[]'::jsonb)"""
    sql = f"""
        INSERT INTO jobs (id, user_id, queue_name, payload, status, priority, retry_count,
                          max_retries, lease_lost_count, run_at, created_at, updated_at
                          {extra_col})
        SELECT t.id, %(owner)s, %(queue)s, jsonb_build_object('n', t.ord), %(status)s, 0, 0,
               3, 0, now(), now(), now() {extra_val}
        FROM unnest(%(ids)s::uuid[]) WITH ORDINALITY AS t(id, ord)
    """  # noqa: S608
    params = {
        "owner": OWNER,
        "queue": queue,
        "ids": ids,
        "prior": prior,
        "error": ERROR_TEXT,
        "status": "completed" if finished else "pending",
    }
    with db.connect(variant) as conn:
        for start in range(0, jobs, 10_000):
            conn.execute(sql, {**params, "ids": ids[start : start + 10_000]})
        if variant == "table_design" and prior:
            conn.execute(
                """
                INSERT INTO job_attempts (job_id, attempt, worker_id, leased_at,
                                          lease_expires_at, finished_at, outcome, error)
                SELECT jobs.id, k, 'bench-worker-old', now() - make_interval(mins => 100 - k),
                       now() - make_interval(mins => 100 - k) + interval '1 hour',
                       now() - make_interval(mins => 99 - k), 'failed', %s
                FROM jobs, generate_series(1, %s) AS k WHERE jobs.queue_name = %s
                """,
                (ERROR_TEXT, prior, queue),
            )
    return ids


def settle(db: Db, variant: str) -> None:
    """Statistics, visibility map and a checkpoint: every drain starts from the same state."""
    with db.connect(variant) as conn:
        conn.execute("VACUUM ANALYZE jobs")
        if variant == "table_design":
            conn.execute("VACUUM ANALYZE job_attempts")
        try:
            conn.execute("CHECKPOINT")  # every drain starts without pending dirty pages
        except psycopg.Error:
            pass  # not a superuser on --database-url: no checkpoint


# --- One drain ------------------------------------------------------------------------------


@dataclass
class Run:
    kind: str
    variant: str
    jobs: int
    seconds: float = 0.0
    lease_ms: list[float] = field(default_factory=list)
    finish_ms: list[float] = field(default_factory=list)  # ack and nack statements
    leases: Counter = field(default_factory=Counter)  # job id -> times leased
    acked: int = 0
    errors: Counter = field(default_factory=Counter)
    wal_bytes: int = 0
    timed_out: bool = False
    problems: list[str] = field(default_factory=list)
    sizes: dict[str, Any] = field(default_factory=dict)

    @property
    def jobs_per_s(self) -> float:
        return self.acked / self.seconds if self.seconds else 0.0


def _worker(
    db: Db,
    run: Run,
    lock: threading.Lock,
    index: int,
    queue: str,
    limit: int,
    nacks_before_ack: int,
    deadline: float,
) -> None:
    """Lease ``limit`` jobs, then finish them all in ONE statement; until the queue is empty.

    With ``nacks_before_ack``, a job leased for the k-th time (retry_count = k-1)
    is nacked with retry while k <= nacks_before_ack, and acked after that. The
    nack passes a ``now`` ten minutes back, so its backoff is already over.
    """
    lease_sql, ack_sql, nack_sql = STATEMENTS[run.variant]
    worker_id = f"bench-worker-{index}"
    lease_ms: list[float] = []
    finish_ms: list[float] = []
    leases: Counter = Counter()
    acked = 0
    errors: Counter = Counter()
    with db.connect(run.variant) as conn:
        cur = conn.cursor()
        col: dict[str, int] = {}
        while time.perf_counter() < deadline:
            now = datetime.now(UTC)
            started = time.perf_counter()
            cur.execute(
                lease_sql,
                {
                    "owner": OWNER,
                    "queue": queue,
                    "now": now,
                    "limit": limit,
                    "arg_until": now + timedelta(seconds=LEASE_SECONDS),
                    "arg_worker_id": worker_id,
                },
            )
            rows = cur.fetchall()
            lease_ms.append((time.perf_counter() - started) * 1000)
            if not col and cur.description:
                col = {c.name: i for i, c in enumerate(cur.description)}
            if not rows:
                # Empty: done, unless other workers still hold jobs they may nack back.
                left = conn.execute(
                    "SELECT count(*) FROM jobs WHERE queue_name = %s"
                    " AND status IN ('pending', 'processing')",
                    (queue,),
                ).fetchone()
                if not left or not left[0]:
                    break
                time.sleep(0.005)
                continue
            to_ack, to_nack = [], []
            for row in rows:
                job_id, token = row[col["id"]], row[col["lease_token"]]
                leases[job_id] += 1
                if row[col["status"]] != "processing":
                    errors["lease returned a job that is not processing"] += 1
                    continue
                if row[col["retry_count"]] < nacks_before_ack:
                    to_nack.append(
                        {"id": str(job_id), "token": str(token), "retry": True, "error": ERROR_TEXT}
                    )
                else:
                    to_ack.append({"id": str(job_id), "token": str(token), "result": None})
            for sql, items, when in (
                (ack_sql, to_ack, now),
                (nack_sql, to_nack, now - timedelta(minutes=10)),
            ):
                if not items:
                    continue
                started = time.perf_counter()
                cur.execute(sql, {"owner": OWNER, "now": when, "items": _dumps(items)})
                done = cur.fetchall()
                finish_ms.append((time.perf_counter() - started) * 1000)
                if len(done) != len(items):
                    errors["ack/nack matched fewer rows"] += len(items) - len(done)
                if sql is ack_sql:
                    acked += len(done)
    with lock:
        run.lease_ms += lease_ms
        run.finish_ms += finish_ms
        run.leases.update(leases)
        run.acked += acked
        run.errors.update(errors)


def wal_lsn(db: Db) -> int:
    return int(db.scalar("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))


def drain(
    db: Db,
    variant: str,
    kind: str,
    *,
    jobs: int,
    workers: int,
    limit: int,
    max_seconds: float,
    prior: int = 0,
    nacks_before_ack: int = 0,
    history: tuple[int, int] = (0, 0),
) -> Run:
    """Drain ``jobs`` fresh jobs (plus ``history``: that many finished jobs with that many
    attempts each, in another queue of the same table)."""
    recreate_schema(db, variant)
    queue = f"attempts-{kind}-{secrets.token_hex(3)}"
    if history[0]:
        prefill(db, variant, f"history-{kind}", history[0], history[1], finished=True)
    prefill(db, variant, queue, jobs, prior)
    settle(db, variant)
    run = Run(kind, variant, jobs)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def target(index: int) -> None:
        try:
            _worker(db, run, lock, index, queue, limit, nacks_before_ack, deadline)
        except BaseException as exc:  # reported, never swallowed
            failures.append(exc)

    wal_before = wal_lsn(db)
    started = time.perf_counter()
    deadline = started + max_seconds
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline + 30 - time.perf_counter()))
    run.seconds = time.perf_counter() - started
    run.wal_bytes = wal_lsn(db) - wal_before
    run.timed_out = time.perf_counter() >= deadline or any(t.is_alive() for t in threads)
    for exc in failures:
        run.problems.append(f"worker failed: {type(exc).__name__}: {exc}".splitlines()[0])
    run.problems += [f"{n} {what}" for what, n in run.errors.items()]
    run.problems += verify(db, variant, queue, run, prior, nacks_before_ack + 1)
    return run


# --- Checks -------------------------------------------------------------------------------


def verify(db: Db, variant: str, queue: str, run: Run, prior: int, leases_each: int) -> list[str]:
    """Every job completed; every job leased ``leases_each`` times; the history matches."""
    problems: list[str] = []
    with db.connect(variant) as conn:
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM jobs WHERE queue_name = %s GROUP BY status", (queue,)
            ).fetchall()
        )
        if statuses != {"completed": run.jobs}:
            problems.append(f"statuses {statuses}, expected {run.jobs} completed")
        if run.acked != run.jobs:
            problems.append(f"{run.acked} acks succeeded for {run.jobs} jobs")
        wrong = sum(1 for n in run.leases.values() if n != leases_each)
        if wrong or len(run.leases) != run.jobs:
            problems.append(f"{wrong} jobs not leased exactly {leases_each} times")
        ids = list(run.leases)
        counts = [prior + run.leases[i] for i in ids]
        if variant == "table_design":
            bad = conn.execute(
                f"""
                WITH expected AS (SELECT * FROM unnest(%s::uuid[], %s::int[]) AS e(id, n)),
                per_job AS (
                    SELECT e.id, e.n, j.attempts, count(a.id) AS kept, max(a.attempt) AS last,
                           min(a.attempt) AS first,
                           count(*) FILTER (WHERE a.finished_at IS NULL
                                            OR a.outcome NOT IN ('completed', 'failed',
                                                                 'dead', 'lease_expired')) AS open
                    FROM expected e JOIN jobs j ON j.id = e.id
                    LEFT JOIN job_attempts a ON a.job_id = e.id
                    GROUP BY e.id, e.n, j.attempts
                )
                SELECT count(*) FILTER (WHERE attempts <> n),
                       count(*) FILTER (WHERE kept <> least(n, {MAX_ATTEMPTS})
                                        OR last <> n OR first <> greatest(1, n - {MAX_ATTEMPTS} + 1)),
                       count(*) FILTER (WHERE open > 0),
                       (SELECT count(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id
                        WHERE j.queue_name = %s AND a.attempt = j.attempts
                          AND a.outcome <> 'completed')
                FROM per_job
                """,  # noqa: S608, E501
                (ids, counts, queue),
            ).fetchone()
            labels = ("jobs.attempts wrong", "attempt rows wrong", "attempts left open",
                      "last attempts not 'completed'")  # fmt: skip
            problems += [f"{n} {label}" for n, label in zip(bad, labels, strict=True) if n]
        elif variant == "array_design":
            bad = conn.execute(
                f"""
                WITH expected AS (SELECT * FROM unnest(%s::uuid[], %s::int[]) AS e(id, n))
                SELECT count(*) FILTER (WHERE jsonb_array_length(j.attempts)
                                        <> least(e.n, {MAX_ATTEMPTS})),
                       count(*) FILTER (WHERE (j.attempts -> -1 ->> 'attempt')::int <> e.n
                                        OR (j.attempts -> 0 ->> 'attempt')::int
                                           <> greatest(1, e.n - {MAX_ATTEMPTS} + 1)),
                       count(*) FILTER (WHERE EXISTS (
                           SELECT FROM jsonb_array_elements(j.attempts) AS x
                           WHERE x ->> 'finished_at' IS NULL OR x ->> 'outcome' = 'running')),
                       count(*) FILTER (WHERE j.attempts -> -1 ->> 'outcome' <> 'completed')
                FROM expected e JOIN jobs j ON j.id = e.id
                """,  # noqa: S608
                (ids, counts),
            ).fetchone()
            labels = ("array lengths wrong", "attempt numbers wrong", "attempts left open",
                      "last attempts not 'completed'")  # fmt: skip
            problems += [f"{n} {label}" for n, label in zip(bad, labels, strict=True) if n]
    return problems


def self_test(db: Db, variant: str) -> list[str]:
    """The paths a drain never takes: recovery of expired leases, the 25-attempt cap,
    burial of a poison job, a nack to the DLQ. Sequential, a few dozen statements."""
    recreate_schema(db, variant)
    lease_sql, ack_sql, nack_sql = STATEMENTS[variant]
    problems: list[str] = []
    queue = "selftest"
    with db.connect(variant) as conn:

        def lease(worker: str, expired: bool) -> list[dict[str, Any]]:
            now = datetime.now(UTC)
            cur = conn.execute(
                lease_sql,
                {
                    "owner": OWNER,
                    "queue": queue,
                    "now": now,
                    "limit": 1,
                    "arg_until": now - timedelta(milliseconds=1)
                    if expired
                    else now + timedelta(hours=1),
                    "arg_worker_id": worker,
                },
            )
            names = [c.name for c in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

        def history(job_id: uuid.UUID) -> list[tuple[int, str, bool, str | None]]:
            """(attempt, outcome, finished, error) oldest first."""
            if variant == "table_design":
                sql = """SELECT attempt, outcome, finished_at IS NOT NULL, error
                         FROM job_attempts WHERE job_id = %s ORDER BY attempt"""
            else:
                sql = """SELECT (x ->> 'attempt')::int, x ->> 'outcome',
                                x ->> 'finished_at' IS NOT NULL, x ->> 'error'
                         FROM jobs, jsonb_array_elements(attempts) WITH ORDINALITY AS a(x, o)
                         WHERE jobs.id = %s ORDER BY o"""
            return [tuple(row) for row in conn.execute(sql, (job_id,)).fetchall()]  # type: ignore[misc]

        def add_job(max_retries: int) -> uuid.UUID:
            job_id = uuid7()
            conn.execute(
                "INSERT INTO jobs (id, user_id, queue_name, payload, max_retries)"
                " VALUES (%s, %s, %s, '{}', %s)",
                (job_id, OWNER, queue, max_retries),
            )
            return job_id

        def expect(what: str, got: Any, wanted: Any) -> None:
            if got != wanted:
                problems.append(f"{what}: got {got!r}, expected {wanted!r}")

        # 1. 30 leases that all expire: recovery closes each open attempt; 25 are kept.
        job = add_job(max_retries=100)
        for n in range(30):
            rows = lease(f"w{n + 1}", expired=True)
            expect(f"lease {n + 1} recovered", [r["recovered"] for r in rows], [n > 0])
        row = lease("w31", expired=False)[0]
        expect("status after 31 leases", row["status"], "processing")
        done = conn.execute(
            ack_sql,
            {
                "owner": OWNER,
                "now": datetime.now(UTC),
                "items": _dumps([{"id": str(job), "token": str(row["lease_token"])}]),
            },
        ).fetchall()
        expect("ack matched", len(done), 1)
        if variant != "base":
            got = history(job)
            wanted = [(k, "lease_expired", True, None) for k in range(7, 31)]
            expect("capped history", got, [*wanted, (31, "completed", True, None)])
        # 2. A poison job: its expired lease is not renewed, the job is buried.
        job = add_job(max_retries=0)
        lease("p1", expired=True)
        row = lease("p2", expired=False)[0]
        expect("poison job", (row["status"], row["dead_reason"]), ("dead", "lease_expired"))
        if variant != "base":
            expect("poison history", history(job), [(1, "lease_expired", True, None)])
        # 3. A nack: first with a retry left, then with none (to the DLQ).
        job = add_job(max_retries=1)
        for n, status, outcome in ((1, "pending", "failed"), (2, "dead", "dead")):
            conn.execute("UPDATE jobs SET run_at = now() - interval '1 hour' WHERE id = %s", (job,))
            row = lease(f"n{n}", expired=False)[0]
            done = conn.execute(
                nack_sql,
                {
                    "owner": OWNER,
                    "now": datetime.now(UTC),
                    "items": _dumps(
                        [
                            {
                                "id": str(job),
                                "token": str(row["lease_token"]),
                                "retry": True,
                                "error": f"boom {n}",
                            }
                        ]
                    ),  # fmt: skip
                },
            ).fetchall()
            expect(f"nack {n}", [r[3] for r in done], [status])
            if variant != "base":
                expect(f"nack {n} history", history(job)[-1], (n, outcome, True, f"boom {n}"))
        # 4. A job with an empty history (leased before the feature) is acked safely.
        if variant == "array_design":
            job = add_job(max_retries=3)
            row = lease("e1", expired=False)[0]
            conn.execute("UPDATE jobs SET attempts = '[]' WHERE id = %s", (job,))
            conn.execute(
                ack_sql,
                {
                    "owner": OWNER,
                    "now": datetime.now(UTC),
                    "items": _dumps([{"id": str(job), "token": str(row["lease_token"])}]),
                },
            )
            expect("ack of an empty history", history(job), [])
    return problems


def table_sizes(db: Db, variant: str) -> dict[str, Any]:
    """Bytes on disk per relation right after the drain (dead row versions and, for a
    small table, the pages that concurrent inserters extend it by in bulk included),
    then ``compact``: the total after VACUUM FULL (live rows, fresh indexes)."""
    tables = ["jobs"] + (["job_attempts"] if variant == "table_design" else [])
    sizes: dict[str, Any] = {}
    with db.connect(variant) as conn:
        for table in tables:
            heap, toast, indexes, total, rows, width = conn.execute(
                f"""
                SELECT pg_relation_size(c.oid),
                       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0),
                       pg_indexes_size(c.oid), pg_total_relation_size(c.oid),
                       (SELECT count(*) FROM {table}),
                       (SELECT avg(pg_column_size(t.*)) FROM {table} AS t)
                FROM pg_class c WHERE c.oid = %s::regclass
                """,  # noqa: S608
                (table,),
            ).fetchone()
            sizes[table] = {
                "heap": heap,
                "toast": toast,
                "indexes": indexes,
                "total": total,
                "rows": rows,
                "avg_row_bytes": float(width or 0),
            }
            conn.execute(f"VACUUM FULL {table}")
            sizes[table]["compact"] = conn.execute(
                "SELECT pg_total_relation_size(%s::regclass)", (table,)
            ).fetchone()[0]
    return sizes


# --- Server -------------------------------------------------------------------------------


@contextmanager
def server(database_url: str | None) -> Iterator[str]:
    """A fresh database: on a throwaway cluster (fsync on), or on the given loopback server."""
    if database_url:
        host = urlsplit(database_url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"only a server on 127.0.0.1 may be used, not {host}")
        name = f"oq_attempts_{secrets.token_hex(4)}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        try:
            yield with_database(database_url, name)
        finally:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        return
    cluster = Path(tempfile.mkdtemp(prefix="oq-attempts-pg-"))
    script = str(ROOT / "scripts" / "pg_throwaway.sh")
    try:
        log(f"starting a throwaway PostgreSQL cluster (fsync on) in {cluster}")
        url = subprocess.run(
            [script, "start", str(cluster)],
            env={**os.environ, "PG_THROWAWAY_DURABLE": "1"},
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        ).stdout.strip()
        yield url
    finally:
        subprocess.run([script, "stop", str(cluster)], check=False, capture_output=True)
        log("throwaway cluster stopped and removed")


# --- Report -------------------------------------------------------------------------------


def _median_range(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def report(runs: list[Run], sizes: dict[str, Run], args: argparse.Namespace) -> str:
    lines = []
    kinds = {
        "single": f"single drain: {args.jobs} jobs, {args.workers} workers, lease 1 + ack 1",
        "batch": f"batch drain: {args.batch_jobs} jobs, 2 workers, lease {BATCH_SIZE} + ack {BATCH_SIZE}",  # noqa: E501
        "deep": f"deep single drain: {args.jobs} jobs with {args.deep} attempts each already, "
        f"{args.workers} workers",
    }
    # "vs base": medians compared; "paired": each round's run over the same round's
    # base run, median (min-max), which cancels load that changes between rounds.
    header = (
        f"| {'variant':<8} | {'jobs/s median (min-max)':<24} | {'vs base':>7} | "
        f"{'paired vs base (min-max)':<24} | "
        f"{'lease ms':>8} | {'ack ms':>6} | {'WAL kB/job':>10} | n | check |"
    )
    for kind, title in kinds.items():
        mine = [r for r in runs if r.kind == kind]
        if not mine:
            continue
        rule = "|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|"
        lines += ["", f"{title} (median of per-run means; rounds: {args.rounds})", header, rule]
        base_runs = [r for r in runs if r.kind == ("single" if kind == "deep" else kind)
                     and r.variant == "base"]  # fmt: skip
        base = statistics.median(r.jobs_per_s for r in base_runs) if base_runs else None
        for variant in VARIANTS:
            vr = [r for r in mine if r.variant == variant]
            if not vr:
                continue
            rates = [r.jobs_per_s for r in vr]
            ratio = f"{statistics.median(rates) / base - 1:+.1%}" if base else "-"
            paired = [r.jobs_per_s / b.jobs_per_s - 1 for r, b in zip(vr, base_runs, strict=False)]
            paired_text = "-"
            if paired and variant != "base":
                paired_text = f"{statistics.median(paired):+.1%}"
                if len(paired) > 1:
                    paired_text += f" ({min(paired):+.0%} to {max(paired):+.0%})"
            lease = statistics.median(statistics.fmean(r.lease_ms) for r in vr if r.lease_ms)
            ack = statistics.median(statistics.fmean(r.finish_ms) for r in vr if r.finish_ms)
            wal = statistics.median(r.wal_bytes / 1024 / r.jobs for r in vr)
            bad = sum(1 for r in vr if r.problems or r.timed_out)
            lines.append(
                f"| {SHORT[variant]:<8} | {_median_range(rates, ',.0f'):<24} | {ratio:>7} | "
                f"{paired_text:<24} | {lease:>8.2f} | {ack:>6.2f} | {wal:>10.2f} | {len(vr)} | "
                f"{'ok' if not bad else f'{bad} BAD'} |"
            )
    if sizes:
        lines += ["", f"sizes after {args.size_jobs} jobs x 3 leases (nack, nack, ack), "
                  "kB before any vacuum, and total after VACUUM FULL"]  # fmt: skip
        lines.append(
            "| variant  | table        | heap    | toast | indexes | total   | compact | rows   "
            "| avg row B |"
        )
        lines.append(
            "|----------|--------------|---------|-------|---------|---------|---------|--------"
            "|-----------|"
        )
        for variant, run in sizes.items():
            total = compact = 0
            for table, s in run.sizes.items():
                total += s["total"]
                compact += s["compact"]
                lines.append(
                    f"| {SHORT[variant]:<8} | {table:<12} | {s['heap'] // 1024:>7,} | "
                    f"{s['toast'] // 1024:>5,} | {s['indexes'] // 1024:>7,} | "
                    f"{s['total'] // 1024:>7,} | {s['compact'] // 1024:>7,} | {s['rows']:>6,} | "
                    f"{s['avg_row_bytes']:>9.0f} |"
                )
            lines.append(
                f"| {SHORT[variant]:<8} | all          |         |       |         | "
                f"{total // 1024:>7,} | {compact // 1024:>7,} | {run.jobs_per_s:>,.0f} jobs/s "
                f"{'ok' if not run.problems else 'BAD'} |"
            )
    lines.append(
        f"\nmeasured drains run beside {args.history_jobs} finished jobs of "
        f"{args.history_attempts} attempts each; the size drain has none"
    )
    problems = [(r, p) for r in [*runs, *sizes.values()] for p in r.problems]
    problems += [(r, "stopped by the time cap") for r in runs if r.timed_out]
    if problems:
        lines += ["", "PROBLEMS:"]
        lines += [f"- {r.kind} {r.variant}: {p}" for r, p in problems]
    return "\n".join(lines)


# --- Main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a loopback server to use (a fresh database "
                        "is created on it and dropped); default: a throwaway cluster")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per single drain")
    parser.add_argument("--workers", type=int, default=8, help="threads of the single drain")
    parser.add_argument("--batch-jobs", type=int, default=50000, help="jobs per batch drain")
    parser.add_argument(
        "--deep",
        type=int,
        default=MAX_ATTEMPTS,
        help="attempts each job of the deep drain has already (0: no deep drain)",
    )
    parser.add_argument("--size-jobs", type=int, default=5000, help="jobs of the size drain")
    parser.add_argument(
        "--history-jobs",
        type=int,
        default=20000,
        help="finished jobs already in the table of each measured drain (not the size drain)",
    )
    parser.add_argument(
        "--history-attempts", type=int, default=3, help="attempts of each finished job"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="cap of each drain")
    parser.add_argument("--budget-seconds", type=float, default=540.0,
                        help="no new drain starts after this long")  # fmt: skip
    parser.add_argument("--binding", choices=("client", "server"), default="client",
                        help="client: values inlined, as Django sends them; server: psycopg's "
                        "default (prepared after 5 runs)")  # fmt: skip
    args = parser.parse_args(argv)
    command = " ".join([".venv/bin/python bench/attempts_design.py", *(argv or sys.argv[1:])])

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    began = time.perf_counter()
    runs: list[Run] = []
    sizes: dict[str, Run] = {}
    with server(args.database_url) as url:
        db = Db(url, args.binding, statement_timeout_ms=30_000)
        facts = {
            name: db.scalar(f"SHOW {name}")
            for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes")
        }
        log(f"server {facts}")
        for variant in VARIANTS:
            found = self_test(db, variant)
            log(f"self-test {variant}: {'ok' if not found else found}")
            if found:
                print(f"self-test {variant} FAILED: {found}")
                return 1

        def time_left() -> bool:
            if time.perf_counter() - began < args.budget_seconds:
                return True
            log("time budget spent: no further drains")
            return False

        history = (args.history_jobs, args.history_attempts)
        plan: list[tuple[str, str, Callable[[], Run]]] = []
        for variant in VARIANTS:
            plan.append(("size", variant, lambda v=variant: drain(
                db, v, "size", jobs=args.size_jobs, workers=args.workers, limit=1,
                max_seconds=args.max_seconds, nacks_before_ack=2)))  # fmt: skip
        for _ in range(args.rounds):
            for variant in VARIANTS:
                plan.append(("single", variant, lambda v=variant: drain(
                    db, v, "single", jobs=args.jobs, workers=args.workers, limit=1,
                    max_seconds=args.max_seconds, history=history)))  # fmt: skip
            for variant in VARIANTS:
                plan.append(("batch", variant, lambda v=variant: drain(
                    db, v, "batch", jobs=args.batch_jobs, workers=2, limit=BATCH_SIZE,
                    max_seconds=args.max_seconds, history=history)))  # fmt: skip
            if args.deep:
                for variant in VARIANTS[1:]:
                    plan.append(("deep", variant, lambda v=variant: drain(
                        db, v, "deep", jobs=args.jobs, workers=args.workers, limit=1,
                        max_seconds=args.max_seconds, history=history,
                        prior=args.deep)))  # fmt: skip
        for kind, variant, measure in plan:
            if not time_left():
                break
            run = measure()
            if kind == "size":
                run.sizes = table_sizes(db, variant)
                sizes[variant] = run
            else:
                runs.append(run)
            log(
                f"{kind:<6} {variant:<12} {run.jobs_per_s:>8,.0f} jobs/s in {run.seconds:5.1f} s"
                f"  lease {statistics.fmean(run.lease_ms or [0]):.2f} ms"
                f"  ack {statistics.fmean(run.finish_ms or [0]):.2f} ms"
                f"  WAL {run.wal_bytes / 1024 / run.jobs:.2f} kB/job"
                f"  {'ok' if not run.problems else run.problems}"
            )
    print(f"command: {command}")
    print(
        f"PostgreSQL {facts['server_version']} (fsync={facts['fsync']}, synchronous_commit="
        f"{facts['synchronous_commit']}, full_page_writes={facts['full_page_writes']}), "
        f"{os.cpu_count()} CPUs, binding={args.binding}, wall {time.perf_counter() - began:.0f} s"
    )
    print(report(runs, sizes, args))
    bad = any(r.problems or r.timed_out for r in [*runs, *sizes.values()])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
