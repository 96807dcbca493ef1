"""Fault injection against real processes: what docs/reliability.md promises.

Every test starts real gunicorn servers (and, where it says so, worker
client processes, maintenance loops or a PostgreSQL cluster of its own),
injects one fault, and then checks the database itself: nothing committed
is lost, no job is completed by two holders of valid leases. Waits poll a
condition until a deadline; they never sleep for a fixed time and hope.
Each test prints a short progress line with its numbers (``-s`` shows them;
docs/reliability.md quotes them).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from django.db import connection

from conftest import ROOT, current_database_url, start_server
from queues.models import Job, JobAttempt, JobStatus
from queues.tests.factories import JobFactory

pytestmark = [pytest.mark.faults, pytest.mark.live_server]

POSTGRES = connection.vendor == "postgresql"
needs_postgres = pytest.mark.skipif(
    not POSTGRES,
    reason="PostgreSQL only: restarts a PostgreSQL cluster (SQLite has no server to restart)",
)
NO_RATE_LIMITS = {"OPENQUEUE_RATE_LIMIT_ENABLED": "false"}


def _say(message: str) -> None:
    print(f"[faults] {message}", flush=True)


def _wait_for(condition: Callable[[], bool], *, seconds: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {seconds:.0f} s waiting for {what}")
        time.sleep(0.1)


def _client(url: str, token: str, timeout: float = 30) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)


def _enqueue(url: str, token: str, queue: str, count: int, **fields: object) -> list[str]:
    ids: list[str] = []
    with _client(url, token, timeout=120) as client:
        for start in range(0, count, 250):
            jobs = [
                {"queue_name": queue, "payload": {"n": n}, **fields}
                for n in range(start, min(count, start + 250))
            ]
            response = client.post("/jobs/batch", json={"jobs": jobs})
            assert response.status_code == 201, response.text
            ids += response.json()["job_ids"]
    assert len(set(ids)) == count
    return ids


def _statuses(owner: object) -> Counter:
    return Counter(Job.objects.filter(owner=owner).values_list("status", flat=True))


# --- 1. A worker client process killed while holding leases ----------------------

# The worker that gets killed: leases K jobs, reports them on stdout, then
# blocks as if it were working. It never acks.
DOOMED_WORKER = """
import json, sys, time, httpx
url, token, queue, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
held = []
with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
    for _ in range(count):
        r = c.post(f"/queues/{queue}/lease", json={"worker_id": "doomed", "lease_seconds": 2})
        r.raise_for_status()
        held.append([r.json()["job"]["id"], r.json()["lease_token"]])
print(json.dumps(held), flush=True)
time.sleep(600)
"""


def _read_line(process: subprocess.Popen, seconds: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    if not ready:
        pytest.fail(f"the worker process printed nothing within {seconds:.0f} s")
    line = process.stdout.readline()
    if not line:
        pytest.fail(f"the worker process exited with {process.wait(timeout=10)} before leasing")
    return line


@pytest.mark.timeout(90)
def test_killed_worker_process_jobs_are_leased_again_after_expiry(live_server_factory, make_tenant):
    tenant = make_tenant()
    server = live_server_factory(workers=2, threads=4, env=NO_RATE_LIMITS)
    held_count, other_count = 5, 5
    # The doomed worker takes the first five (higher priority); five more wait.
    held_ids = _enqueue(server.url, tenant.token, "crash", held_count, priority=10)
    other_ids = _enqueue(server.url, tenant.token, "crash", other_count)

    doomed = subprocess.Popen(
        [sys.executable, "-c", DOOMED_WORKER, server.url, tenant.token, "crash", str(held_count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        held = json.loads(_read_line(doomed, 30))
        doomed.send_signal(signal.SIGKILL)
        assert doomed.wait(timeout=10) == -signal.SIGKILL
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
    assert sorted(job_id for job_id, _ in held) == sorted(held_ids)
    killed_at = time.monotonic()

    # Another worker drains the queue: first the five free jobs, then (after
    # the two-second leases run out) the five the dead worker held.
    leased: list[dict] = []
    deadline = time.monotonic() + 30
    with _client(server.url, tenant.token) as client:
        while len(leased) < held_count + other_count:
            assert time.monotonic() < deadline, f"only {len(leased)} jobs leased again"
            response = client.post("/queues/crash/lease", json={"worker_id": "rescuer"})
            assert response.status_code == 200, response.text
            lease = response.json()
            if lease is None:
                time.sleep(0.1)
                continue
            leased.append(lease)
            acked = client.post(
                f"/jobs/{lease['job']['id']}/ack", json={"lease_token": lease["lease_token"]}
            )
            assert acked.status_code == 200, acked.text
        # The dead worker's tokens are worthless now: a late ack cannot complete twice.
        stale = [
            client.post(f"/jobs/{job_id}/ack", json={"lease_token": token}).status_code
            for job_id, token in held
        ]
    recovered_after = time.monotonic() - killed_at

    assert stale == [409] * held_count
    assert sorted(lease["job"]["id"] for lease in leased) == sorted(held_ids + other_ids)
    # The held jobs were not handed out while their leases were still valid:
    # each second lease began after the first one's expiry (the server's
    # attempt rows, so this holds however slowly the rescuer ran).
    for job_id in held_ids:
        first, second = JobAttempt.objects.filter(job_id=job_id).order_by("attempt")
        assert first.outcome == "lease_expired"
        assert second.leased_at >= first.lease_expires_at
    rows = {str(job.id): job for job in Job.objects.filter(owner=tenant.user)}
    assert len(rows) == held_count + other_count
    assert {job.status for job in rows.values()} == {JobStatus.COMPLETED}
    assert {job_id: rows[job_id].lease_lost_count for job_id in held_ids} == dict.fromkeys(
        held_ids, 1
    )
    assert {rows[job_id].lease_lost_count for job_id in other_ids} == {0}
    _say(
        f"killed worker: {held_count} held + {other_count} free jobs; held jobs leased again "
        f"{recovered_after:.1f} s after SIGKILL (lease 2 s), "
        f"all {held_count + other_count} completed, lease_lost_count=1 on the {held_count}"
    )


# --- 2. A gunicorn worker process killed mid-load --------------------------------


@dataclass
class Outcomes:
    """What the client threads saw (appends from many threads: list.append is atomic)."""

    leases: list[tuple[str, str]] = field(default_factory=list)  # (job_id, lease_token)
    acked: list[tuple[str, str]] = field(default_factory=list)  # 200 acks
    ack_conflicts: list[tuple[str, str]] = field(default_factory=list)  # 409 acks
    ack_lost: list[tuple[str, str]] = field(default_factory=list)  # no answer
    connection_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def _lease_and_ack(
    url: str, token: str, queue: str, index: int, out: Outcomes, stop: threading.Event
) -> None:
    """Lease and ack until told to stop, retrying whatever a dead server worker breaks."""
    body = {"worker_id": f"client-{index}", "lease_seconds": 3}
    client = _client(url, token, timeout=20)
    try:
        while not stop.is_set():
            try:
                response = client.post(f"/queues/{queue}/lease", json=body)
            except httpx.TransportError as exc:
                # The lease may have been committed with its answer lost: that
                # job is leasable again when its three seconds are over.
                out.connection_errors.append(f"lease: {exc!r}")
                continue
            if response.status_code != 200:
                out.unexpected.append(f"lease {response.status_code}: {response.text[:200]}")
                continue
            lease = response.json()
            if lease is None:
                time.sleep(0.1)
                continue
            pair = (lease["job"]["id"], lease["lease_token"])
            out.leases.append(pair)
            ack = {"lease_token": pair[1], "result": {"lease_token": pair[1]}}
            for _attempt in range(3):
                try:
                    acked = client.post(f"/jobs/{pair[0]}/ack", json=ack)
                except httpx.TransportError as exc:
                    out.connection_errors.append(f"ack: {exc!r}")
                    continue
                if acked.status_code == 200:
                    out.acked.append(pair)
                elif acked.status_code == 409:
                    # Lease expired and taken by another, or an earlier
                    # attempt of this ack did commit before its answer was lost.
                    out.ack_conflicts.append(pair)
                else:
                    out.unexpected.append(f"ack {acked.status_code}: {acked.text[:200]}")
                break
            else:
                out.ack_lost.append(pair)
    finally:
        client.close()


@pytest.mark.timeout(150)
def test_server_worker_killed_mid_load_loses_no_job_and_completes_none_twice(
    live_server_factory, make_tenant
):
    tenant = make_tenant()
    server = live_server_factory(workers=2, threads=4, env=NO_RATE_LIMITS)
    jobs, threads = 1000, 8
    # Many retries: a lease lost to the crash (or to a slow moment) must
    # come back, not go to the DLQ.
    enqueued = _enqueue(server.url, tenant.token, "killed", jobs, max_retries=50)
    workers_before = server.worker_pids()
    assert len(workers_before) == 2

    out = Outcomes()
    stop = threading.Event()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [
            pool.submit(_lease_and_ack, server.url, tenant.token, "killed", n, out, stop)
            for n in range(threads)
        ]
        try:
            _wait_for(lambda: len(out.acked) >= jobs // 4, seconds=60, what="a quarter acked")
            victim = workers_before[0]
            os.kill(victim, signal.SIGKILL)
            acked_at_kill = len(out.acked)
            _say(f"SIGKILLed gunicorn worker {victim} after {acked_at_kill} acks")
            completed = Job.objects.filter(owner=tenant.user, status=JobStatus.COMPLETED)
            # Jobs whose lease died with the worker come back after 3 s.
            _wait_for(lambda: completed.count() == jobs, seconds=90, what="every job completed")
        finally:
            stop.set()
            for future in futures:
                future.result()
    elapsed = time.monotonic() - started

    workers_after = server.worker_pids()
    assert victim not in workers_after and len(workers_after) == 2  # gunicorn replaced it
    assert len(out.acked) > acked_at_kill  # the load went on after the kill
    assert out.unexpected == []
    # No job was acked by two holders of leases: one 200 per job at most.
    assert {job_id: n for job_id, n in Counter(j for j, _ in out.acked).items() if n > 1} == {}
    tokens = [token for _, token in out.leases]
    assert len(tokens) == len(set(tokens))
    rows = {
        str(job_id): (status, result)
        for job_id, status, result in Job.objects.filter(owner=tenant.user).values_list(
            "id", "status", "result"
        )
    }
    assert sorted(rows) == sorted(enqueued)  # none lost, none invented
    assert {status for status, _ in rows.values()} == {JobStatus.COMPLETED}
    # Each job was completed by the lease whose 200 the client saw...
    for job_id, token in out.acked:
        assert rows[job_id][1] == {"lease_token": token}
    # ... or, when no 200 came back, by an ack whose answer the crash swallowed.
    unseen = set(rows) - {job_id for job_id, _ in out.acked}
    uncertain = {pair for pair in out.ack_conflicts + out.ack_lost}
    assert {(job_id, rows[job_id][1]["lease_token"]) for job_id in unseen} <= uncertain
    relost = Job.objects.filter(owner=tenant.user, lease_lost_count__gt=0).count()
    _say(
        f"server worker killed: {jobs} jobs, {threads} client threads, {elapsed:.1f} s; "
        f"{len(out.leases)} leases, {len(out.acked)} acks 200, {len(out.ack_conflicts)} acks 409, "
        f"{len(out.ack_lost)} acks unanswered, {len(out.connection_errors)} connection errors, "
        f"{relost} jobs leased again after a lost lease, {len(unseen)} completed without a seen 200"
    )


# --- 3. PostgreSQL restarted under load ------------------------------------------


def _as_postgres(command: list[str]) -> list[str]:
    # initdb/pg_ctl refuse to run as root (scripts/pg_throwaway.sh does the same).
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


@contextmanager
def _throwaway_cluster() -> Iterator[tuple[str, Path]]:
    """A durable (fsync on) PostgreSQL cluster of this test's own; yields (url, dir)."""
    directory = Path(tempfile.mkdtemp(prefix="openqueue-faults-pg."))
    script = str(ROOT / "scripts" / "pg_throwaway.sh")
    try:
        url = subprocess.run(
            [script, "start", str(directory)],
            env={**os.environ, "PG_THROWAWAY_DURABLE": "1"},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        yield url, directory
    finally:
        subprocess.run([script, "stop", str(directory)], capture_output=True, timeout=60)


def _pg_ctl(directory: Path, action: str, port: int) -> None:
    command = [str(PG_BIN / "pg_ctl"), "-D", str(directory / "data"), "-w", "-t", "60"]
    if action == "stop":
        # Immediate: no shutdown checkpoint, like a crash; recovery replays the WAL.
        command += ["-m", "immediate", "stop"]
    else:
        # The options pg_throwaway.sh started it with (durable mode).
        options = f"-p {port} -k {directory} -h 127.0.0.1 -c max_connections=200"
        command += ["-l", str(directory / "log"), "-o", options, "start"]
    subprocess.run(_as_postgres(command), cwd="/", check=True, capture_output=True, timeout=90)


def _manage(database_url: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    ).stdout.strip()


@dataclass
class Produced:
    created: list[str] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)  # status code or exception name
    bodies: set = field(default_factory=set)


def _produce(url: str, token: str, out: Produced, stop: threading.Event) -> None:
    with _client(url, token, timeout=30) as client:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                response = client.post("/jobs", json={"queue_name": "restart", "payload": {"n": n}})
            except httpx.TransportError as exc:
                out.failures[type(exc).__name__] += 1
                time.sleep(0.1)
                continue
            if response.status_code == 201:
                out.created.append(response.json()["job_id"])
            else:
                out.failures[response.status_code] += 1
                out.bodies.add(response.text[:200])
                time.sleep(0.1)


@needs_postgres
@pytest.mark.timeout(240)
def test_postgres_restart_under_load_recovers_and_loses_no_committed_job():
    with _throwaway_cluster() as (database_url, directory):
        port = int(database_url.rsplit(":", 1)[1].split("/")[0])
        _manage(database_url, "migrate", "--no-input", "-v", "0")
        token = _manage(database_url, "create_api_token", "restart@example.com")
        server = start_server(
            workers=2, threads=4, env={**NO_RATE_LIMITS, "DATABASE_URL": database_url}
        )
        out, stop = Produced(), threading.Event()
        producers = [
            threading.Thread(target=_produce, args=(server.url, token, out, stop)) for _ in range(2)
        ]
        try:
            for producer in producers:
                producer.start()
            _wait_for(lambda: len(out.created) >= 50, seconds=60, what="50 jobs before the stop")
            before_stop = len(out.created)
            _pg_ctl(directory, "stop", port)
            down_at = time.monotonic()
            ready_while_down: list[int] = []

            def ready_says_503() -> bool:
                with suppress(httpx.TransportError):
                    ready_while_down.append(
                        httpx.get(f"{server.url}/ready", timeout=30).status_code
                    )
                return bool(ready_while_down) and ready_while_down[-1] == 503

            _wait_for(ready_says_503, seconds=60, what="/ready to answer 503")
            seen_503_after = time.monotonic() - down_at
            _pg_ctl(directory, "start", port)
            up_at = time.monotonic()
            _wait_for(
                lambda: httpx.get(f"{server.url}/ready", timeout=30).status_code == 200,
                seconds=60,
                what="/ready to answer 200 again",
            )
            ready_after = time.monotonic() - up_at
            after_restart = len(out.created)
            _wait_for(
                lambda: len(out.created) >= after_restart + 50,
                seconds=60,
                what="50 more jobs after the restart",
            )
        finally:
            stop.set()
            for producer in producers:
                producer.join(timeout=60)
            server.stop()
        assert server.process.returncode is not None  # the same server, never restarted
        with psycopg.connect(database_url) as conn:
            stored = {str(row[0]) for row in conn.execute("SELECT id FROM jobs")}
    missing = set(out.created) - stored
    assert missing == set()
    assert len(set(out.created)) == len(out.created)
    # While the database was down the server answered JSON errors, not pages.
    assert set(out.failures) <= {500, 503}, out.failures
    assert all(body.startswith("{") for body in out.bodies), out.bodies
    _say(
        f"postgres restart: {len(out.created)} jobs got 201 ({before_stop} before the stop), "
        f"all {len(out.created)} in the database ({len(stored)} rows); /ready 503 "
        f"{seen_503_after:.1f} s after the stop, 200 {ready_after:.1f} s after the start; "
        f"failed requests while down: {dict(out.failures)}"
    )


# --- 4. Two servers and two maintenance loops on one database --------------------


def _drain_until_empty(url: str, token: str, queue: str, index: int, out: Outcomes) -> None:
    body = {"worker_id": f"w-{index}", "lease_seconds": 600}
    with _client(url, token, timeout=60) as client:
        while True:
            leased = client.post(f"/queues/{queue}/lease", json=body)
            if leased.status_code != 200:
                out.unexpected.append(f"lease {leased.status_code}: {leased.text[:200]}")
                return
            lease = leased.json()
            if lease is None:
                return
            pair = (lease["job"]["id"], lease["lease_token"])
            out.leases.append(pair)
            acked = client.post(f"/jobs/{pair[0]}/ack", json={"lease_token": pair[1]})
            if acked.status_code == 200:
                out.acked.append(pair)
            else:
                out.unexpected.append(f"ack {acked.status_code}: {acked.text[:200]}")


@pytest.mark.timeout(240)
def test_two_servers_and_two_maintenance_loops_never_lease_a_job_twice(
    live_server_factory, make_tenant, tmp_path
):
    tenant = make_tenant()
    # SQLite serializes writers across processes with IMMEDIATE transactions;
    # a smaller run gives the same guarantee in a bounded time.
    jobs = 5000 if POSTGRES else 1000
    threads = 16
    servers = [live_server_factory(workers=2, threads=4, env=NO_RATE_LIMITS) for _ in range(2)]
    enqueued = _enqueue(servers[0].url, tenant.token, "shared", jobs)
    maintenance_env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "OPENQUEUE_LOG_LEVEL": "WARNING",
    }
    loops = [
        subprocess.Popen(
            [sys.executable, "manage.py", "run_maintenance", "--loop", "--interval", "1"],
            cwd=ROOT,
            env=maintenance_env,
            stdout=open(tmp_path / f"maintenance-{n}.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        for n in range(2)
    ]
    out = Outcomes()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [
                pool.submit(_drain_until_empty, servers[n % 2].url, tenant.token, "shared", n, out)
                for n in range(threads)
            ]
            for future in futures:
                future.result()
        elapsed = time.monotonic() - started
        still_running = [loop.poll() is None for loop in loops]
    finally:
        for loop in loops:
            loop.send_signal(signal.SIGTERM)
        for loop in loops:
            try:
                loop.wait(timeout=30)
            except subprocess.TimeoutExpired:
                loop.kill()
                loop.wait()

    assert still_running == [True, True]  # the maintenance loops ran the whole time
    assert out.unexpected == []
    leased_ids = [job_id for job_id, _ in out.leases]
    assert {j: n for j, n in Counter(leased_ids).items() if n > 1} == {}
    assert sorted(leased_ids) == sorted(enqueued)
    assert len(out.acked) == jobs
    assert _statuses(tenant.user) == {JobStatus.COMPLETED: jobs}
    assert not Job.objects.filter(owner=tenant.user, lease_lost_count__gt=0).exists()
    passes = sum((tmp_path / f"maintenance-{n}.log").read_text().count("reap") for n in range(2))
    _say(
        f"two servers: {jobs} jobs, {threads} threads ({threads // 2} per server), "
        f"{elapsed:.1f} s ({jobs / elapsed:.0f} jobs/s), every job leased once, "
        f"{passes} maintenance reap lines from 2 loops"
    )


# --- 5. SQLite: a read-only database file ----------------------------------------


def _make_read_only(path: Path) -> None:
    path.chmod(0o444)
    if os.geteuid() != 0:
        return
    # Root ignores file modes: make the file immutable instead.
    result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"running as root and chattr +i failed ({result.stderr.strip()})")


def _make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    path.chmod(0o644)


@pytest.mark.skipif(POSTGRES, reason="SQLite only: a read-only database file")
@pytest.mark.timeout(90)
def test_sqlite_read_only_file_gives_clear_errors_and_stays_intact(
    live_server_factory, make_tenant, tmp_path
):
    tenant = make_tenant()
    job_id = str(JobFactory(owner=tenant.user, queue_name="ro", payload={"a": 1}).id)
    copy = tmp_path / "readonly.sqlite3"
    with sqlite3.connect(connection.settings_dict["NAME"]) as source:
        target = sqlite3.connect(copy)
        source.backup(target)
        target.close()
    _make_read_only(copy)
    log = tmp_path / "server.log"
    try:
        server = live_server_factory(
            workers=1,
            threads=2,
            env={"DATABASE_URL": f"sqlite:///{copy}", "OPENQUEUE_LOG_LEVEL": "INFO"},
            output=log,
        )
        with _client(server.url, tenant.token, timeout=30) as client:
            read = client.get(f"/jobs/{job_id}")
            listed = client.get("/jobs", params={"queue_name": "ro"})
            write = client.post("/jobs", json={"queue_name": "ro", "payload": {}})
            lease = client.post("/queues/ro/lease", json={"worker_id": "w"})
            ready = client.get("/ready")
    finally:
        _make_writable(copy)
    assert read.status_code == 200 and read.json()["status"] == "pending", read.text
    assert listed.status_code == 200, listed.text
    for response in (write, lease):
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"detail": "Database is read-only"}
    assert ready.status_code == 200
    assert "readonly database" in log.read_text()  # the log says why
    with sqlite3.connect(copy) as check:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert check.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
    _say("read-only SQLite: reads 200, writes 503 'Database is read-only', integrity_check ok")
