"""What hostile or careless clients can do to a real server (issue 11), measured.

Starts its own PostgreSQL database (a throwaway cluster unless
``--database-url`` is given) and gunicorn with gunicorn.conf.py, like
bench/run.py, then runs each probe against it over loopback and prints one
line per figure. docs/reliability.md ("Hostile clients") records the
figures before and after the fixes::

    .venv/bin/python bench/hostile.py                 # every probe, ~2 minutes
    .venv/bin/python bench/hostile.py --only memory,metrics

Probes:
- ``memory``: four concurrent anonymous 12 MB bodies of ``[{},{},...]`` to
  POST /jobs; the worker's resident memory before and after (VmRSS) and its
  peak (VmHWM), one worker process.
- ``limiter``: 32 threads sending unknown bearer tokens for 10 s, and 32
  threads posting wrong passwords to the sign-in page for 10 s, from one
  address: how many credentials were checked (401 / "wrong password")
  against a budget of 1 per second with a burst of 20.
- ``neighbour``: a client with a stale token at 10 requests/s and a worker
  with a valid token at 5 requests/s on the same address, for 10 s: how
  many of the valid worker's requests were refused.
- ``metrics``: a scrape's size and time before and after 4,000 empty
  leases on random queue names; then the lease latency of one worker while
  16 anonymous scrapers scrape as fast as they can, against a jobs table of
  ``--metrics-jobs`` rows.
- ``longpoll``: one tenant holds ``--hog-waiters`` long-poll leases; does
  another tenant's long-poll still wait for its job, or answer null at once
  (300 by default: more than a server's 2 x 112 waiter slots)?
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run as bench_run  # noqa: E402

PROBES = ("memory", "limiter", "neighbour", "metrics", "longpoll")


def log(message: str) -> None:
    print(f"hostile: {message}", file=sys.stderr, flush=True)


def report(name: str, **values: Any) -> None:
    print(json.dumps({"probe": name, **values}), flush=True)


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def memory_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))  # type: ignore[union-attr]


def issue_token(database_url: str, email: str) -> str:
    return bench_run.manage(database_url, "create_api_token", email)


def for_seconds(seconds: float, body: Callable[[], None]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body()


# --- Probes ---------------------------------------------------------------------------


def probe_memory(url: str, master: int, token: str) -> None:
    (worker,) = worker_pids(master)
    count = 12 * 1024 * 1024 // 3
    body = b'{"queue_name":"x","payload":[' + b"{}," * (count - 1) + b"{}]}"
    before = memory_kib(worker, "VmRSS")
    answers: Counter[int] = Counter()

    def send(headers: dict[str, str]) -> None:
        with httpx.Client(timeout=120) as client:
            response = client.post(
                url + "/jobs", content=body, headers={"Content-Type": "application/json", **headers}
            )
            answers[response.status_code] += 1

    for label, headers in (
        ("anonymous", {}),
        ("with a token", {"Authorization": f"Bearer {token}"}),
    ):
        threads = [threading.Thread(target=send, args=(headers,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        report(
            "memory",
            clients=label,
            body_mb=round(len(body) / 1e6, 1),
            answers=dict(answers),
            rss_before_mb=round(before / 1024),
            rss_after_mb=round(memory_kib(worker, "VmRSS") / 1024),
            rss_peak_mb=round(memory_kib(worker, "VmHWM") / 1024),
        )
        answers.clear()


def probe_limiter(url: str) -> None:
    checked = Counter()

    def guess_tokens() -> None:
        with httpx.Client(timeout=10) as client:

            def once() -> None:
                token = "oq_live_" + secrets.token_hex(20)
                status = client.get(
                    url + "/jobs", headers={"Authorization": f"Bearer {token}"}
                ).status_code
                checked[status] += 1

            for_seconds(10, once)

    threads = [threading.Thread(target=guess_tokens) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report(
        "limiter",
        credential="bearer token",
        seconds=10,
        checked=checked[401],
        refused=checked[429],
        checked_per_second=round(checked[401] / 10, 1),
        budget="1/s, burst 20",
    )

    time.sleep(25)  # let the address's bucket refill
    outcomes = Counter()

    def guess_passwords() -> None:
        with httpx.Client(timeout=10) as client:

            def once() -> None:
                page = client.get(url + "/accounts/login/")
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
                response = client.post(
                    url + "/accounts/login/",
                    data={
                        "username": "bench-victim@example.com",
                        "password": secrets.token_hex(8),
                        "csrfmiddlewaretoken": token.group(1) if token else "",
                    },
                    headers={"Referer": url + "/accounts/login/"},
                )
                if "Too many failed sign-in attempts" in response.text:
                    outcomes["refused"] += 1
                elif "Please enter a correct" in response.text:
                    outcomes["checked"] += 1
                else:
                    outcomes[f"other {response.status_code}"] += 1

            for_seconds(10, once)

    threads = [threading.Thread(target=guess_passwords) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report(
        "limiter",
        credential="password",
        seconds=10,
        **dict(outcomes),
        checked_per_second=round(outcomes["checked"] / 10, 1),
        budget="1/s, burst 20",
    )


def probe_neighbour(url: str, token: str) -> None:
    time.sleep(25)  # a full bucket for the address
    valid = Counter()

    # A new connection per request, so both clients reach every server process.
    fresh = {"Connection": "close"}

    def stale() -> None:
        with httpx.Client(timeout=10, headers=fresh) as client:

            def once() -> None:
                client.get(url + "/jobs", headers={"Authorization": "Bearer oq_live_stale0000"})
                time.sleep(0.1)

            for_seconds(10, once)

    def worker() -> None:
        with httpx.Client(timeout=10, headers=fresh) as client:

            def once() -> None:
                status = client.post(
                    url + "/queues/neighbour/lease",
                    json={"worker_id": "w"},
                    headers={"Authorization": f"Bearer {token}"},
                ).status_code
                valid[status] += 1
                time.sleep(0.2)

            for_seconds(10, once)

    threads = [threading.Thread(target=stale), threading.Thread(target=worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report(
        "neighbour",
        valid_requests=sum(valid.values()),
        refused_429=valid[429],
        answers=dict(valid),
    )


def probe_metrics_cardinality(url: str, token: str, scrape_headers: dict[str, str]) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=60) as client:

        def scrape() -> tuple[int, float]:
            started = time.perf_counter()
            response = client.get(url + "/metrics", headers=scrape_headers)
            return len(response.content), time.perf_counter() - started

        size, seconds = scrape()
        for _ in range(4000):
            client.post(
                url + f"/queues/rnd-{uuid.uuid4().hex[:12]}/lease",
                json={"worker_id": "w"},
                headers=auth,
            )
        size_after, seconds_after = scrape()
        report(
            "metrics",
            size_kb=round(size / 1024),
            scrape_ms=round(seconds * 1000),
            after_4000_random_queues_size_kb=round(size_after / 1024),
            after_4000_random_queues_scrape_ms=round(seconds_after * 1000),
        )


def fill_table(database_url: str, jobs: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = conn.execute("SELECT id FROM users WHERE email = 'bench@example.com'").fetchone()[0]
        conn.execute(
            """
            INSERT INTO jobs (id, user_id, queue_name, payload, status, priority,
                              retry_count, max_retries, run_at, created_at, updated_at,
                              finished_at, lease_lost_count)
            SELECT gen_random_uuid(), %s, 'history-' || (n %% 50), '{}'::jsonb, 'completed',
                   0, 0, 3, now(), now(), now(), now(), 0
            FROM generate_series(1, %s) AS n
            """,
            [owner, jobs],
        )
        conn.execute(
            """
            INSERT INTO jobs (id, user_id, queue_name, payload, status, priority,
                              retry_count, max_retries, run_at, created_at, updated_at,
                              lease_lost_count)
            SELECT gen_random_uuid(), %s, 'work', '{}'::jsonb, 'pending', 0, 0, 3,
                   now(), now(), now(), 0
            FROM generate_series(1, 5000)
            """,
            [owner],
        )
        conn.execute("ANALYZE jobs")


def probe_metrics_load(url: str, token: str, label: str, scrape_headers: dict[str, str]) -> None:
    """One worker's lease latency while 16 clients scrape /metrics as fast as they can."""
    auth = {"Authorization": f"Bearer {token}"}

    def lease_latencies(seconds: float) -> list[float]:
        found: list[float] = []
        with httpx.Client(timeout=60) as client:

            def once() -> None:
                started = time.perf_counter()
                response = client.post(
                    url + "/queues/work/lease", json={"worker_id": "w"}, headers=auth
                )
                found.append(time.perf_counter() - started)
                lease = response.json()
                if lease:
                    client.post(
                        url + f"/jobs/{lease['job']['id']}/ack",
                        json={"lease_token": lease["lease_token"]},
                        headers=auth,
                    )

            for_seconds(seconds, once)
        return found

    quiet = lease_latencies(5)
    stop = threading.Event()
    scrapes = Counter()

    def scraper() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                scrapes[client.get(url + "/metrics", headers=scrape_headers).status_code] += 1

    threads = [threading.Thread(target=scraper) for _ in range(16)]
    for thread in threads:
        thread.start()
    busy = lease_latencies(10)
    stop.set()
    for thread in threads:
        thread.join()

    def pct(values: list[float], q: float) -> float:
        return round(statistics.quantiles(values, n=100)[q - 1] * 1000, 1)

    report(
        "metrics",
        scrapers=label,
        lease_p50_ms_quiet=pct(quiet, 50),
        lease_p99_ms_quiet=pct(quiet, 99),
        lease_p50_ms_16_scrapers=pct(busy, 50),
        lease_p99_ms_16_scrapers=pct(busy, 99),
        scrapes=dict(scrapes),
    )


def probe_longpoll(url: str, database_url: str, hogs: int) -> None:
    hog = issue_token(database_url, "hog@example.com")
    victim = issue_token(database_url, "victim@example.com")
    threads = []

    def hold() -> None:
        with httpx.Client(timeout=30) as client:
            client.post(
                url + "/queues/nothing/lease",
                json={"worker_id": "hog", "wait_seconds": 15},
                headers={"Authorization": f"Bearer {hog}"},
            )

    for _ in range(hogs):
        thread = threading.Thread(target=hold)
        thread.start()
        threads.append(thread)
    time.sleep(3)  # the hog's requests are all waiting now
    outcome: dict[str, Any] = {}

    def wait_for_job() -> None:
        started = time.perf_counter()
        with httpx.Client(timeout=30) as client:
            response = client.post(
                url + "/queues/mine/lease",
                json={"worker_id": "victim", "wait_seconds": 5},
                headers={"Authorization": f"Bearer {victim}"},
            )
        outcome["seconds"] = round(time.perf_counter() - started, 2)
        outcome["leased"] = response.json() is not None

    waiter = threading.Thread(target=wait_for_job)
    waiter.start()
    time.sleep(1)
    with httpx.Client(timeout=30) as client:
        client.post(
            url + "/jobs",
            json={"queue_name": "mine", "payload": {}},
            headers={"Authorization": f"Bearer {victim}"},
        )
    waiter.join()
    report(
        "longpoll",
        hog_waiters=hogs,
        other_tenant_got_its_job=outcome["leased"],
        after_s=outcome["seconds"],
    )
    for thread in threads:
        thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", help="a PostgreSQL server to use (default: a throwaway cluster)"
    )
    parser.add_argument("--only", default=",".join(PROBES), help="comma-separated probes")
    parser.add_argument("--metrics-jobs", type=int, default=200_000)
    parser.add_argument("--hog-waiters", type=int, default=300)
    args = parser.parse_args(argv)
    only = [name for name in args.only.split(",") if name]
    scrape_token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="oq-hostile-") as workdir:
        with (
            bench_run.postgres_server(args.database_url) as admin_url,
            bench_run.fresh_database(admin_url, False) as db,
        ):
            bench_run.manage(db, "migrate", "--noinput")
            token = issue_token(db, "bench@example.com")
            bench_run.manage(
                db,
                "shell",
                "-c",
                "from accounts.models import User; "
                "User.objects.create_user('bench-victim@example.com', 'not-guessed-9f2c')",
            )
            limits = {
                "OPENQUEUE_AUTH_FAILURE_LIMIT_ENABLED": "true",
                "OPENQUEUE_RATE_LIMIT_ENABLED": "false",
            }
            if "memory" in only:
                with bench_run.gunicorn(db, Path(workdir), 1, 8, limits) as (url, master):
                    probe_memory(url, master, token)
            rest = [name for name in only if name not in ("memory", "metrics")]
            if rest:
                with bench_run.gunicorn(db, Path(workdir), 2, None, limits) as (url, _):
                    if "limiter" in rest:
                        probe_limiter(url)
                    if "neighbour" in rest:
                        probe_neighbour(url, token)
                    if "longpoll" in rest:
                        probe_longpoll(url, db, args.hog_waiters)
            if "metrics" in only:
                # Production settings as a new operator leaves them: no metrics token.
                prod = {**limits, "OPENQUEUE_ENV": "prod"}
                with bench_run.gunicorn(db, Path(workdir), 2, None, prod) as (url, _):
                    with httpx.Client() as client:
                        report(
                            "metrics",
                            anonymous_scrape_in_prod=client.get(url + "/metrics").status_code,
                        )
                    fill_table(db, args.metrics_jobs)
                    probe_metrics_load(url, token, "anonymous", {})
                # With a metrics token: 16 scrapers that are allowed in.
                with bench_run.gunicorn(
                    db, Path(workdir), 2, None, {**prod, "OPENQUEUE_METRICS_TOKEN": scrape_token}
                ) as (url, _):
                    allowed = {"Authorization": f"Bearer {scrape_token}"}
                    probe_metrics_cardinality(url, token, allowed)
                    probe_metrics_load(url, token, "with the token", allowed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
