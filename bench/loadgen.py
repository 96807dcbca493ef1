"""Load generator for OpenQueue: speaks only the REST contract (issue 5, item 1).

Library and CLI. Every scenario is bounded by a count and by a time limit,
stops by itself, uses a fresh queue name, and ends with a correctness check
made directly in the database (see :func:`verify`)::

    .venv/bin/python bench/loadgen.py --url http://127.0.0.1:8000 --token oq_live_... \\
        --database-url postgres://postgres@127.0.0.1:5432/openqueue drain --jobs 500

Client cost matters on a 2-core machine shared with the server and the
database, so each thread owns one keep-alive ``http.client.HTTPConnection``
(no pool, no per-request allocation beyond the JSON), and the process reports
its own CPU time (``resource.getrusage``) for every measured phase.

Scenarios for API the server does not offer (long-poll lease before it is
built; the batch API on an older server) probe the server and are skipped
with "API not available"; they never report numbers for work not done.
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import sqlite3
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

# Long enough that no lease can expire during a run: a job leased twice is
# then a double lease, never a legitimate recovery.
LEASE_SECONDS = 3600
BATCH_SIZE = 100

# --- Batch API (issue 5, item 3; docs/api.md "Batch API") ------------------------
# Outside every contract route (`/jobs/{id}/...` would answer 422 for a
# non-UUID id, not 404). The server bounds max_jobs by OPENQUEUE_MAX_LEASE_BATCH.
BATCH_LEASE_PATH = "/queues/{queue}/lease/batch"
BATCH_ACK_PATH = "/leases/ack"
# Long-poll is a field of the lease body; its presence is read from the schema.
LONGPOLL_FIELD = "wait_seconds"

CpuProbe = Callable[[], dict[str, float | None]]


# --- HTTP ------------------------------------------------------------------------


class Http:
    """One keep-alive connection to the server, for one thread only."""

    def __init__(self, base_url: str, token: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        # The load generator is a benchmark tool, not a stress tool for
        # other people's servers: loopback only.
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the load generator only targets 127.0.0.1, not {parts.hostname}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn: http.client.HTTPConnection | None = None
        self.reconnects = 0

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; return (status, decoded JSON body or raw text)."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=self.headers)
                response = self.conn.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection before
                # reading the request: resend once on a new one. A resend
                # that did duplicate work would show in the correctness check.
                self.close()
                self.reconnects += 1
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                self.close()
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, raw.decode(errors="replace")
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def lease_path(queue: str) -> str:
    return f"/queues/{quote(queue, safe='')}/lease"


# --- Recording -------------------------------------------------------------------


@dataclass
class Recorder:
    """What one thread saw. Merged after the threads join: no lock on the hot path."""

    latencies: list[float] = field(default_factory=list)  # request latency, seconds
    errors: Counter[str] = field(default_factory=Counter)
    enqueued: list[str] = field(default_factory=list)
    leases: list[tuple[str, str]] = field(default_factory=list)  # (job id, lease token)
    acked: list[str] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # enqueue -> lease, seconds
    empty_leases: int = 0
    reconnects: int = 0

    def merge(self, other: Recorder) -> None:
        self.latencies += other.latencies
        self.errors.update(other.errors)
        self.enqueued += other.enqueued
        self.leases += other.leases
        self.acked += other.acked
        self.waits += other.waits
        self.empty_leases += other.empty_leases
        self.reconnects += other.reconnects


class Quota:
    """A shared count of work items: threads take one at a time until it is spent."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.lock = threading.Lock()

    def take(self, most: int = 1) -> int:
        """Take up to ``most`` items; 0 once the quota is spent."""
        with self.lock:
            granted = max(0, min(most, self.left))
            self.left -= granted
            return granted


def run_threads(count: int, body: Callable[[int, Recorder], None]) -> Recorder:
    """Run ``body(index, recorder)`` in ``count`` threads; return the merged recorder.

    An exception in a thread is recorded as an error instead of hanging or
    hiding: the scenario still finishes and its check reports the damage.
    """
    recorders = [Recorder() for _ in range(count)]

    def guarded(index: int) -> None:
        try:
            body(index, recorders[index])
        except Exception as exc:  # reported below, not swallowed
            recorders[index].errors[f"exception {type(exc).__name__}: {exc}"] += 1

    # Daemon threads: Ctrl-C in the runner must not wait for them.
    threads = [
        threading.Thread(target=guarded, args=(i,), daemon=True, name=f"loadgen-{i}")
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = Recorder()
    for recorder in recorders:
        merged.merge(recorder)
    return merged


def percentiles_ms(values: list[float]) -> dict[str, float] | None:
    """p50/p95/p99 (nearest rank) in milliseconds, or None without samples."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
        return round(ordered[index] * 1000, 2)

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": rank(100)}


# --- Results ---------------------------------------------------------------------


@dataclass
class ScenarioResult:
    scenario: str
    params: dict[str, Any]
    skipped: str | None = None
    jobs: int = 0
    seconds: float = 0.0
    jobs_per_s: float = 0.0
    requests: int = 0
    stopped_by: str = ""  # "count", "time" or "empty"
    errors: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    request_latency_ms: dict[str, float] | None = None
    enqueue_to_lease_ms: dict[str, float] | None = None
    empty_leases: int | None = None
    empty_leases_per_job: float | None = None
    cpu_seconds: dict[str, float | None] = field(default_factory=dict)
    cpu_percent_of_wall: dict[str, float | None] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Window:
    """The measured phase of a scenario: wall time and CPU of every party.

    ``probe`` (from the runner) returns cumulative CPU seconds of the server
    and database process trees; the load generator's own CPU comes from
    getrusage, which covers all of this process's threads.
    """

    def __init__(self, probe: CpuProbe | None) -> None:
        self.probe = probe
        self.seconds = 0.0
        self.cpu: dict[str, float | None] = {}
        self._end: tuple[float, Any, dict[str, float | None]] | None = None
        self._end_lock = threading.Lock()

    def _snapshot(self) -> tuple[float, Any, dict[str, float | None]]:
        now = time.perf_counter()
        return now, resource.getrusage(resource.RUSAGE_SELF), self.probe() if self.probe else {}

    def mark_end(self) -> None:
        """End the measured phase now (first call wins), from any thread.

        For work that is done before its threads return: a long-polling
        worker's last lease waits out its wait_seconds after the last job,
        idle time that is not throughput.
        """
        with self._end_lock:
            if self._end is None:
                self._end = self._snapshot()

    @contextmanager
    def measure(self) -> Iterator[Window]:
        before = self.probe() if self.probe else {}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        yield self
        ended, after_usage, after = self._end or self._snapshot()
        self.seconds = ended - started
        for name, value in after.items():
            start = before.get(name)
            self.cpu[name] = None if value is None or start is None else value - start
        self.cpu["loadgen"] = (after_usage.ru_utime - usage.ru_utime) + (
            after_usage.ru_stime - usage.ru_stime
        )

    def fill(self, result: ScenarioResult, jobs: int) -> None:
        result.jobs = jobs
        result.seconds = round(self.seconds, 3)
        result.jobs_per_s = round(jobs / self.seconds, 1) if self.seconds > 0 else 0.0
        result.cpu_seconds = {k: None if v is None else round(v, 2) for k, v in self.cpu.items()}
        result.cpu_percent_of_wall = {
            k: None if v is None or self.seconds <= 0 else round(100 * v / self.seconds, 1)
            for k, v in self.cpu.items()
        }


def fill_traffic(result: ScenarioResult, rec: Recorder) -> None:
    result.requests = len(rec.latencies)
    result.errors = dict(rec.errors)
    result.reconnects = rec.reconnects
    result.request_latency_ms = percentiles_ms(rec.latencies)


# --- Correctness, checked in the database ---------------------------------------


def _rows_for_queue(database_url: str, queue: str) -> tuple[str, dict[uuid.UUID, tuple]]:
    """(vendor, {job id: (status, lease_lost_count)}) for every job of ``queue``."""
    sql = "SELECT id, status, lease_lost_count FROM jobs WHERE queue_name = {p}"
    if database_url.startswith("sqlite:"):
        path = database_url[len("sqlite:///") :]
        # Read-only: the checker must never change what it checks.
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as conn:
            rows = conn.execute(sql.format(p="?"), (queue,)).fetchall()
        return "sqlite", {uuid.UUID(str(r[0])): (r[1], r[2]) for r in rows}
    import psycopg  # only needed for PostgreSQL, and only here

    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(sql.format(p="%s"), (queue,)).fetchall()
    return "postgresql", {uuid.UUID(str(r[0])): (r[1], r[2]) for r in rows}


def verify(
    database_url: str | None,
    queue: str,
    rec: Recorder,
    *,
    lifecycle: bool,
    all_done: bool,
) -> dict[str, Any]:
    """Check in the database what the load generator believes happened.

    - every job the server acknowledged creating exists, and no other job is
      in the queue (a resent request that created a duplicate shows here);
    - lifecycle scenarios: the set of completed jobs is exactly the set of
      jobs whose ack returned 200 (each completed exactly once), no job id
      appears in two leases (leases last LEASE_SECONDS, so none expired),
      and lease_lost_count is 0 everywhere; with ``all_done`` every job is
      completed, otherwise (stopped by the time limit) the rest are pending;
    - enqueue-only scenarios: every job is pending.
    """
    if not database_url:
        return {"ok": None, "checked_on": "skipped: no database URL", "problems": []}
    vendor, rows = _rows_for_queue(database_url, queue)
    problems: list[str] = []

    def problem(count: int, what: str) -> None:
        if count:
            problems.append(f"{count} {what}")

    enqueued = [uuid.UUID(job_id) for job_id in rec.enqueued]
    enqueued_set = set(enqueued)
    problem(len(enqueued) - len(enqueued_set), "job ids returned twice by enqueue")
    problem(len(enqueued_set - rows.keys()), "enqueued jobs missing from the database")
    problem(len(rows.keys() - enqueued_set), "jobs in the queue that no enqueue returned")
    status_counts = Counter(status for status, _ in rows.values())
    if lifecycle:
        leased = Counter(uuid.UUID(job_id) for job_id, _ in rec.leases)
        problem(sum(1 for n in leased.values() if n > 1), "jobs leased twice while leased")
        problem(sum(1 for _, lost in rows.values() if lost), "jobs with lease_lost_count > 0")
        acked = [uuid.UUID(job_id) for job_id in rec.acked]
        acked_set = set(acked)
        problem(len(acked) - len(acked_set), "jobs acked successfully twice")
        problem(len(leased.keys() - acked_set), "leased jobs never acked")
        completed = {job_id for job_id, (status, _) in rows.items() if status == "completed"}
        problem(len(acked_set - completed), "acked jobs not completed in the database")
        problem(len(completed - acked_set), "completed jobs the load generator never acked")
        left = {job_id for job_id in rows.keys() - completed}
        if all_done:
            problem(len(left), "jobs not completed after the queue was drained")
        else:
            problem(
                sum(1 for job_id in left if rows[job_id][0] != "pending"),
                "unfinished jobs not pending",
            )
    else:
        problem(len(rows) - status_counts.get("pending", 0), "enqueued jobs not pending")
    return {
        "ok": not problems,
        "checked_on": vendor,
        "jobs_in_db": len(rows),
        "statuses": dict(status_counts),
        "problems": problems,
    }


def fresh_queue(scenario: str) -> str:
    return f"bench-{scenario}-{uuid.uuid4().hex[:8]}"


@dataclass
class Target:
    """Where the load goes and how it is checked."""

    base_url: str
    token: str
    database_url: str | None = None  # for verify(); None skips the check
    cpu_probe: CpuProbe | None = None  # from the runner: server/database CPU

    def http(self) -> Http:
        return Http(self.base_url, self.token)


# --- Scenarios -------------------------------------------------------------------


def single_enqueue(
    target: Target, *, jobs: int, threads: int = 8, max_seconds: float = 30.0
) -> ScenarioResult:
    """T threads POST /jobs, one job per request, until ``jobs`` are created or time is up."""
    queue = fresh_queue("single")
    result = ScenarioResult(
        "single_enqueue", {"jobs": jobs, "threads": threads, "max_seconds": max_seconds}
    )
    quota = Quota(jobs)
    deadline = time.perf_counter() + max_seconds

    def producer(index: int, rec: Recorder) -> None:
        client = target.http()
        n = 0
        while time.perf_counter() < deadline and quota.take():
            started = time.perf_counter()
            status, body = client.call("POST", "/jobs", {"queue_name": queue, "payload": {"n": n}})
            rec.latencies.append(time.perf_counter() - started)
            n += 1
            if status == 201:
                rec.enqueued.append(body["job_id"])
            else:
                rec.errors[f"enqueue {status}"] += 1
        rec.reconnects += client.reconnects
        client.close()

    with Window(target.cpu_probe).measure() as window:
        rec = run_threads(threads, producer)
    window.fill(result, len(rec.enqueued))
    fill_traffic(result, rec)
    result.stopped_by = "count" if quota.left <= 0 else "time"
    result.check = verify(target.database_url, queue, rec, lifecycle=False, all_done=True)
    return result


def _enqueue_batches(
    target: Target, queue: str, *, jobs: int, threads: int, deadline: float
) -> tuple[Recorder, Quota]:
    """Enqueue ``jobs`` in batches of up to BATCH_SIZE from T threads."""
    quota = Quota(jobs)

    def producer(index: int, rec: Recorder) -> None:
        client = target.http()
        n = 0
        while time.perf_counter() < deadline and (size := quota.take(BATCH_SIZE)):
            items = [{"queue_name": queue, "payload": {"n": n + i}} for i in range(size)]
            n += size
            started = time.perf_counter()
            status, body = client.call("POST", "/jobs/batch", {"jobs": items})
            rec.latencies.append(time.perf_counter() - started)
            if status == 201:
                rec.enqueued += body["job_ids"]
            else:
                rec.errors[f"batch enqueue {status}"] += 1
        rec.reconnects += client.reconnects
        client.close()

    return run_threads(threads, producer), quota


def batch_enqueue(
    target: Target, *, batches: int, threads: int = 4, max_seconds: float = 30.0
) -> ScenarioResult:
    """T threads POST /jobs/batch with BATCH_SIZE jobs per request."""
    queue = fresh_queue("batch")
    result = ScenarioResult(
        "batch_enqueue",
        {
            "batches": batches,
            "batch_size": BATCH_SIZE,
            "threads": threads,
            "max_seconds": max_seconds,
        },
    )
    deadline = time.perf_counter() + max_seconds
    with Window(target.cpu_probe).measure() as window:
        rec, quota = _enqueue_batches(
            target, queue, jobs=batches * BATCH_SIZE, threads=threads, deadline=deadline
        )
    window.fill(result, len(rec.enqueued))
    fill_traffic(result, rec)
    result.stopped_by = "count" if quota.left <= 0 else "time"
    result.check = verify(target.database_url, queue, rec, lifecycle=False, all_done=True)
    return result


def drain(
    target: Target,
    *,
    jobs: int,
    workers: int = 8,
    max_seconds: float = 60.0,
    prefill_threads: int = 2,
) -> ScenarioResult:
    """Pre-enqueue ``jobs`` (batches, not measured), then W workers lease+ack until empty."""
    queue = fresh_queue("drain")
    result = ScenarioResult("drain", {"jobs": jobs, "workers": workers, "max_seconds": max_seconds})
    prefill, _ = _enqueue_batches(
        target,
        queue,
        jobs=jobs,
        threads=prefill_threads,
        deadline=time.perf_counter() + 600,
    )
    if prefill.errors:
        result.skipped = f"prefill failed: {dict(prefill.errors)}"
        return result
    deadline = time.perf_counter() + max_seconds
    drained = threading.Event()
    path = lease_path(queue)

    def worker(index: int, rec: Recorder) -> None:
        client = target.http()
        body_lease = {"worker_id": f"bench-{index}", "lease_seconds": LEASE_SECONDS}
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, body = client.call("POST", path, body_lease)
            rec.latencies.append(time.perf_counter() - started)
            if status != 200:
                rec.errors[f"lease {status}"] += 1
                continue
            if body is None:  # nothing left that no other worker holds: done
                drained.set()
                break
            _ack(client, rec, body)
        rec.reconnects += client.reconnects
        client.close()

    with Window(target.cpu_probe).measure() as window:
        rec = run_threads(workers, worker)
    rec.enqueued = prefill.enqueued
    window.fill(result, len(rec.acked))
    fill_traffic(result, rec)
    result.stopped_by = "empty" if drained.is_set() else "time"
    result.check = verify(
        target.database_url, queue, rec, lifecycle=True, all_done=drained.is_set()
    )
    return result


def _ack(client: Http, rec: Recorder, lease: dict[str, Any]) -> None:
    job_id, token = lease["job"]["id"], lease["lease_token"]
    rec.leases.append((job_id, token))
    started = time.perf_counter()
    status, _ = client.call("POST", f"/jobs/{job_id}/ack", {"lease_token": token})
    rec.latencies.append(time.perf_counter() - started)
    if status == 200:
        rec.acked.append(job_id)
    else:
        rec.errors[f"ack {status}"] += 1


def mixed(
    target: Target,
    *,
    rate: float = 50.0,
    seconds: float = 30.0,
    producers: int = 2,
    workers: int = 4,
    poll_sleep: float = 0.02,
    lease_extra: dict[str, Any] | None = None,
    name: str = "mixed",
) -> ScenarioResult:
    """Producers at ``rate`` jobs/s in total while W workers poll lease and ack.

    Each payload carries the producer's monotonic clock at send time (same
    process, so the clocks agree); a worker that gets the job records
    enqueue -> lease latency. On an empty lease a worker sleeps
    ``poll_sleep`` (a polling worker) and counts it. Workers stop once the
    producers are done and every produced job is acked, or at a hard limit.
    """
    queue = fresh_queue(name)
    total = int(rate * seconds)
    result = ScenarioResult(
        name,
        {
            "rate": rate,
            "seconds": seconds,
            "jobs": total,
            "producers": producers,
            "workers": workers,
            "poll_sleep_ms": round(poll_sleep * 1000, 1),
            **({"lease_extra": lease_extra} if lease_extra else {}),
        },
    )
    produced_done = threading.Event()
    lock = threading.Lock()
    counts = {"produced": 0, "acked": 0}
    hard_deadline = time.perf_counter() + seconds + 30  # the tail may lag, not forever
    path = lease_path(queue)
    share = [total // producers + (1 if i < total % producers else 0) for i in range(producers)]

    def producer(index: int, rec: Recorder) -> None:
        client = target.http()
        interval = producers / rate  # each producer sends its share of the rate
        # Stagger producers so their sends interleave instead of bunching.
        next_at = time.perf_counter() + index * interval / producers
        for n in range(share[index]):
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_at += interval  # absolute schedule: a slow request does not slow the rate
            payload = {"t": time.monotonic(), "n": n}
            started = time.perf_counter()
            status, body = client.call("POST", "/jobs", {"queue_name": queue, "payload": payload})
            rec.latencies.append(time.perf_counter() - started)
            if status == 201:
                rec.enqueued.append(body["job_id"])
                with lock:
                    counts["produced"] += 1
            else:
                rec.errors[f"enqueue {status}"] += 1
        rec.reconnects += client.reconnects
        client.close()

    def worker(index: int, rec: Recorder) -> None:
        client = target.http()
        body_lease = {
            "worker_id": f"bench-{index}",
            "lease_seconds": LEASE_SECONDS,
            **(lease_extra or {}),
        }
        while time.perf_counter() < hard_deadline:
            started = time.perf_counter()
            status, body = client.call("POST", path, body_lease)
            received = time.monotonic()
            rec.latencies.append(time.perf_counter() - started)
            if status != 200:
                rec.errors[f"lease {status}"] += 1
                time.sleep(poll_sleep)
                continue
            if body is None:
                rec.empty_leases += 1
                with lock:
                    finished = produced_done.is_set() and counts["acked"] >= counts["produced"]
                if finished:
                    break
                if poll_sleep:
                    time.sleep(poll_sleep)
                continue
            payload = body["job"]["payload"] or {}
            if "t" in payload:
                rec.waits.append(received - payload["t"])
            acked_before = len(rec.acked)
            _ack(client, rec, body)
            if len(rec.acked) > acked_before:
                with lock:
                    counts["acked"] += 1
                    if produced_done.is_set() and counts["acked"] >= counts["produced"]:
                        window.mark_end()
        rec.reconnects += client.reconnects
        client.close()

    def both(index: int, rec: Recorder) -> None:
        if index < producers:
            try:
                producer(index, rec)
            finally:
                # The last producer to finish (even by an exception) opens
                # the gate for the workers' exit.
                with lock:
                    counts["producers_left"] = counts.get("producers_left", producers) - 1
                    if counts["producers_left"] == 0:
                        produced_done.set()
                        if counts["acked"] >= counts["produced"]:
                            window.mark_end()
        else:
            worker(index - producers, rec)

    window = Window(target.cpu_probe)
    with window.measure():
        rec = run_threads(producers + workers, both)
    window.fill(result, len(rec.acked))
    fill_traffic(result, rec)
    result.enqueue_to_lease_ms = percentiles_ms(rec.waits)
    result.empty_leases = rec.empty_leases
    result.empty_leases_per_job = round(rec.empty_leases / len(rec.acked), 3) if rec.acked else None
    done = len(rec.acked) == len(rec.enqueued)
    result.stopped_by = "count" if done else "time"
    result.check = verify(target.database_url, queue, rec, lifecycle=True, all_done=done)
    return result


# --- Stubs for the API still to be built ------------------------------------------


def _route_missing(target: Target, path: str, body: Any) -> int | None:
    """The status when ``path`` is not routed (404/405), else None."""
    client = target.http()
    try:
        status, _ = client.call("POST", path, body)
    finally:
        client.close()
    return status if status in (404, 405) else None


def batch_lease_ack(
    target: Target,
    *,
    jobs: int,
    workers: int = 2,
    batch_size: int = BATCH_SIZE,
    max_seconds: float = 60.0,
    prefill_threads: int = 2,
    **_: Any,
) -> ScenarioResult:
    """drain() with the batch API: lease up to ``batch_size`` jobs per call, ack them in one call.

    Pre-enqueues ``jobs`` (not measured); W workers then batch-lease and
    batch-ack until a lease returns an empty list. The same database check
    as drain(): every job present, completed once, never leased twice.
    """
    result = ScenarioResult(
        "batch_lease_ack",
        {"jobs": jobs, "batch_size": batch_size, "workers": workers, "max_seconds": max_seconds},
    )
    queue = fresh_queue("batchlease")
    path = BATCH_LEASE_PATH.format(queue=quote(queue, safe=""))
    missing = _route_missing(target, path, {"worker_id": "bench-probe", "max_jobs": 1})
    if missing:
        result.skipped = f"API not available (POST {BATCH_LEASE_PATH} answered {missing})"
        return result
    prefill, _ = _enqueue_batches(
        target, queue, jobs=jobs, threads=prefill_threads, deadline=time.perf_counter() + 600
    )
    if prefill.errors:
        result.skipped = f"prefill failed: {dict(prefill.errors)}"
        return result
    deadline = time.perf_counter() + max_seconds
    drained = threading.Event()

    def worker(index: int, rec: Recorder) -> None:
        client = target.http()
        body_lease = {
            "worker_id": f"bench-{index}",
            "lease_seconds": LEASE_SECONDS,
            "max_jobs": batch_size,
        }
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, body = client.call("POST", path, body_lease)
            rec.latencies.append(time.perf_counter() - started)
            if status != 200:
                rec.errors[f"batch lease {status}"] += 1
                continue
            leases = body["leases"]
            if not leases:  # nothing left that no other worker holds: done
                drained.set()
                break
            items = [{"job_id": x["job"]["id"], "lease_token": x["lease_token"]} for x in leases]
            rec.leases += [(item["job_id"], item["lease_token"]) for item in items]
            started = time.perf_counter()
            status, body = client.call("POST", BATCH_ACK_PATH, {"items": items})
            rec.latencies.append(time.perf_counter() - started)
            if status != 200:
                rec.errors[f"batch ack {status}"] += len(items)
                continue
            for outcome in body["results"]:
                if outcome.get("status") == "completed":
                    rec.acked.append(outcome["job_id"])
                else:
                    rec.errors[f"batch ack item {outcome['error']['status']}"] += 1
        rec.reconnects += client.reconnects
        client.close()

    with Window(target.cpu_probe).measure() as window:
        rec = run_threads(workers, worker)
    rec.enqueued = prefill.enqueued
    window.fill(result, len(rec.acked))
    fill_traffic(result, rec)
    result.stopped_by = "empty" if drained.is_set() else "time"
    result.check = verify(
        target.database_url, queue, rec, lifecycle=True, all_done=drained.is_set()
    )
    return result


def longpoll_available(target: Target) -> str | None:
    """None when lease accepts LONGPOLL_FIELD (per /openapi.json), else why not."""
    client = target.http()
    try:
        status, schema = client.call("GET", "/openapi.json")
    finally:
        client.close()
    if status != 200:
        return f"API not available (GET /openapi.json answered {status})"
    if LONGPOLL_FIELD not in json.dumps(schema):
        return f"API not available (lease has no {LONGPOLL_FIELD!r} in /openapi.json)"
    return None


def longpoll_mixed(target: Target, *, wait_seconds: int = 5, **mixed_args: Any) -> ScenarioResult:
    """STUB-gated (issue 5, item 4): mixed() with long-poll leases, no client sleep.

    Skipped with "API not available" until the lease body documents
    ``wait_seconds``; then it is mixed() with the wait in the lease request.
    """
    why_not = longpoll_available(target)
    if why_not:
        return ScenarioResult("longpoll_mixed", {"wait_seconds": wait_seconds}, skipped=why_not)
    return mixed(
        target,
        poll_sleep=0.0,
        lease_extra={LONGPOLL_FIELD: wait_seconds},
        name="longpoll_mixed",
        **mixed_args,
    )


SCENARIOS: dict[str, Callable[..., ScenarioResult]] = {
    "single_enqueue": single_enqueue,
    "batch_enqueue": batch_enqueue,
    "drain": drain,
    "mixed": mixed,
    "batch_lease_ack": batch_lease_ack,
    "longpoll_mixed": longpoll_mixed,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--database-url", help="for the correctness check (skipped without)")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--threads", type=int, default=8, help="producer threads / workers")
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=50.0, help="mixed: jobs/s")
    parser.add_argument("--producers", type=int, default=2, help="mixed: producer threads")
    parser.add_argument("--poll-sleep-ms", type=float, default=20.0, help="mixed: sleep on empty")
    args = parser.parse_args(argv)
    target = Target(args.url, args.token, args.database_url)
    run = {
        "single_enqueue": lambda: single_enqueue(
            target, jobs=args.jobs, threads=args.threads, max_seconds=args.max_seconds
        ),
        "batch_enqueue": lambda: batch_enqueue(
            target, batches=args.batches, threads=args.threads, max_seconds=args.max_seconds
        ),
        "drain": lambda: drain(
            target, jobs=args.jobs, workers=args.threads, max_seconds=args.max_seconds
        ),
        "mixed": lambda: mixed(
            target,
            rate=args.rate,
            seconds=args.max_seconds,
            producers=args.producers,
            workers=args.threads,
            poll_sleep=args.poll_sleep_ms / 1000,
        ),
        "batch_lease_ack": lambda: batch_lease_ack(target, jobs=args.jobs, workers=args.threads),
        "longpoll_mixed": lambda: longpoll_mixed(
            target,
            rate=args.rate,
            seconds=args.max_seconds,
            producers=args.producers,
            workers=args.threads,
        ),
    }[args.scenario]
    result = run()
    json.dump(result.as_dict(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if result.skipped or result.check.get("ok") is not False else 1


if __name__ == "__main__":
    sys.exit(main())
