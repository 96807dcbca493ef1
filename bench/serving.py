"""Serving benchmark: gunicorn gthread (WSGI) vs uvicorn workers (ASGI).

Starts gunicorn with gunicorn.conf.py twice against a throwaway PostgreSQL
database, once per worker class, and drives the same fixed amount of work at
each with a threaded keep-alive httpx client:

- ``health``: GET /health (no database: the framework's own overhead);
- ``enqueue``: POST /jobs;
- ``lease+ack``: POST /queues/{q}/lease then POST /jobs/{id}/ack (2 requests
  per job, over the jobs the enqueue phase created).

It prints requests/s and p50/p99 latency per scenario. Not run by the test
suite; docs/benchmarks.md records results and the exact command::

    .venv/bin/python bench/serving.py                    # throwaway cluster
    .venv/bin/python bench/serving.py --database-url postgres://.../bench
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {
    "gthread": ["openqueue_site.wsgi:application", "-k", "gthread"],
    "uvicorn": ["openqueue_site.asgi:application", "-k", "uvicorn_worker.UvicornWorker"],
}


@dataclass
class Result:
    server: str
    scenario: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    def line(self) -> str:
        quantiles = statistics.quantiles(self.latencies, n=100)
        return (
            f"{self.server:8} {self.scenario:10} {self.requests:6d} req "
            f"{self.requests / self.seconds:8.1f} req/s  p50 {quantiles[49] * 1000:6.1f} ms  "
            f"p99 {quantiles[98] * 1000:6.1f} ms  errors {self.errors}"
        )


def django(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"manage.py {args[0]} failed:\n{done.stderr}")
    return done.stdout.strip()


def start(
    kind: str, *, port: int, workers: int, threads: int, env: dict[str, str]
) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", *SERVERS[kind], "-c", "gunicorn.conf.py"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads)]
    command += ["--access-logfile", "/dev/null", "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{kind}: gunicorn exited with {process.returncode}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{kind}: no answer on /health within 60 s")


def drive(
    base_url: str,
    token: str,
    *,
    clients: int,
    per_client: int,
    work: Callable[[httpx.Client, int], int],
) -> tuple[int, int, float, list[float]]:
    """Run ``work(client, i)`` per_client times on each of ``clients`` threads.

    ``work`` returns how many requests it made; latencies are per call of ``work``
    divided evenly over its requests (lease+ack counts as two).
    """
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client_thread() -> None:
        nonlocal errors
        mine: list[float] = []
        failed = 0
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http:
            http.get("/health")  # open the keep-alive connection before timing
            barrier.wait()
            for i in range(per_client):
                started = time.perf_counter()
                try:
                    made = work(http, i)
                except (httpx.HTTPError, AssertionError):
                    failed += 1
                    continue
                elapsed = time.perf_counter() - started
                mine.extend([elapsed / made] * made)
        with lock:
            latencies.extend(mine)
            errors += failed

    threads = [threading.Thread(target=client_thread) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return len(latencies), errors, seconds, latencies


def health(http: httpx.Client, i: int) -> int:
    assert http.get("/health").status_code == 200
    return 1


def enqueue(queue: str) -> Callable[[httpx.Client, int], int]:
    def work(http: httpx.Client, i: int) -> int:
        response = http.post("/jobs", json={"queue_name": queue, "payload": {"i": i}})
        assert response.status_code == 201
        return 1

    return work


def lease_and_ack(queue: str) -> Callable[[httpx.Client, int], int]:
    def work(http: httpx.Client, i: int) -> int:
        lease = http.post(f"/queues/{queue}/lease", json={"worker_id": "bench"}).json()
        assert lease is not None
        ack = http.post(
            f"/jobs/{lease['job']['id']}/ack", json={"lease_token": lease["lease_token"]}
        )
        assert ack.status_code == 200
        return 2

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", help="default: a throwaway cluster (scripts/pg_throwaway.sh)"
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4000, help="per scenario")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--servers", default="gthread,uvicorn")
    args = parser.parse_args()

    cluster = None
    database_url = args.database_url
    if not database_url:
        cluster = tempfile.mkdtemp(prefix="openqueue-bench-pg.")
        database_url = subprocess.run(
            [str(ROOT / "scripts" / "pg_throwaway.sh"), "start", cluster],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-only",
        "ALLOWED_HOSTS": "127.0.0.1",
        "OPENQUEUE_RATE_LIMIT_ENABLED": "false",
        "OPENQUEUE_LOG_LEVEL": "WARNING",
        "OPENQUEUE_DB_POOL_MAX_SIZE": str(args.threads),
    }
    per_client = args.requests // args.clients
    try:
        django("migrate", "--noinput", "-v", "0", env=env)
        token = django("create_api_token", f"bench-{uuid.uuid4().hex[:8]}@example.com", env=env)
        print(
            f"{args.workers} workers x {args.threads} threads, {args.clients} keep-alive clients, "
            f"{per_client * args.clients} calls per scenario (lease+ack: 2 requests per call)"
        )
        for kind in args.servers.split(","):
            port = 18000 + list(SERVERS).index(kind)
            server = start(kind, port=port, workers=args.workers, threads=args.threads, env=env)
            queue = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
            try:
                base_url = f"http://127.0.0.1:{port}"
                for scenario, work in [
                    ("health", health),
                    ("enqueue", enqueue(queue)),
                    ("lease+ack", lease_and_ack(queue)),
                ]:
                    made, errors, seconds, latencies = drive(
                        base_url, token, clients=args.clients, per_client=per_client, work=work
                    )
                    print(
                        Result(kind, scenario, made, errors, seconds, latencies).line(), flush=True
                    )
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        if cluster:
            subprocess.run(
                [str(ROOT / "scripts" / "pg_throwaway.sh"), "stop", cluster], check=False
            )


if __name__ == "__main__":
    main()
