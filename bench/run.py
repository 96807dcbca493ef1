"""The one benchmark command (issue 5): ``make bench``.

Starts a throwaway PostgreSQL 15 cluster with fsync ON (scripts/pg_throwaway.sh
with PG_THROWAWAY_DURABLE=1) unless ``--database-url`` names a server, migrates
a fresh database, issues a token, starts gunicorn with gunicorn.conf.py, then
runs every load-generator scenario and the raw-SQL anchor in the same run,
checks each in the database, and prints (and with ``--write-docs`` writes to
docs/benchmarks.md) one report. Everything it started is stopped at the end,
also on Ctrl-C::

    .venv/bin/python bench/run.py --write-docs          # ~5 minutes on 2 cores
    .venv/bin/python bench/run.py --quick               # ~1 minute, smaller sizes
    .venv/bin/python bench/run.py --only drain,raw_lease_ack --drain-jobs 20000
    # The same load on granian instead of gunicorn (pip install granian first):
    .venv/bin/python bench/run.py --server granian --server-threads 8

Sizes are flags (``--help``); the report records the exact command.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
# Run as a script (bench/run.py), the repository root is not on sys.path yet.
sys.path.insert(0, str(ROOT))

from bench import loadgen, procstat, rawsql  # noqa: E402
from bench.loadgen import ScenarioResult, Target  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
HEADING = "# Throughput and latency"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
BENCH_EMAIL = "bench@example.com"


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does; every measured phase is also capped in time."""

    enqueue_jobs: int = 5000
    enqueue_threads: int = 8
    batches: int = 300  # of loadgen.BATCH_SIZE jobs
    batch_threads: int = 4
    drain_jobs: int = 5000
    workers: int = 8  # drain and single lease+ack (the targets are for 8)
    batch_workers: int = 2  # batch lease+ack
    mixed_rate: float = 50.0
    mixed_seconds: float = 30.0
    mixed_producers: int = 2
    mixed_workers: int = 4
    poll_sleep_ms: float = 20.0
    longpoll_wait_seconds: int = 5
    raw_jobs: int = 20000  # raw single inserts
    raw_batches: int = 1000
    raw_lease_jobs: int = 10000
    raw_batch_lease_jobs: int = 50000
    max_seconds: float = 60.0


QUICK = Sizes(
    enqueue_jobs=1000,
    batches=50,
    drain_jobs=1000,
    mixed_seconds=8.0,
    raw_jobs=3000,
    raw_batches=200,
    raw_lease_jobs=2000,
    raw_batch_lease_jobs=10000,
    max_seconds=10.0,
)

# (API scenario, raw-SQL anchor, issue 5 target, original FastAPI figure, original raw figure)
PAIRS = [
    ("single_enqueue", "raw_single_insert", "≥ 1,000", "450", "9,000"),
    ("batch_enqueue", "raw_batch_insert", "≥ 25,000", "2,800", "56,000"),
    ("drain", "raw_lease_ack", "≥ 500", "170", "880"),
    ("batch_lease_ack", "raw_batch_lease_ack", "≥ 7,500", "–", "15,000"),
]
ORDER = [
    # Each API scenario next to its anchor: both see the same machine noise
    # and about the same table size.
    "single_enqueue",
    "raw_single_insert",
    "batch_enqueue",
    "raw_batch_insert",
    "drain",
    "raw_lease_ack",
    "batch_lease_ack",
    "raw_batch_lease_ack",
    "mixed",
    "longpoll_mixed",
]


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- Infrastructure ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def postgres_server(database_url: str | None) -> Iterator[str]:
    """Yield an admin URL: the given one, or a durable throwaway cluster's."""
    if database_url:
        yield database_url
        return
    cluster = Path(tempfile.mkdtemp(prefix="oq-bench-pg-"))
    script = str(ROOT / "scripts" / "pg_throwaway.sh")
    try:
        log(f"starting a throwaway PostgreSQL cluster (fsync on) in {cluster}")
        url = subprocess.run(
            [script, "start", str(cluster)],
            env={**os.environ, "PG_THROWAWAY_DURABLE": "1"},
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        yield url
    finally:
        subprocess.run([script, "stop", str(cluster)], check=False, capture_output=True)
        log("throwaway cluster stopped and removed")


@contextmanager
def fresh_database(admin_url: str, in_place: bool) -> Iterator[str]:
    """A new, empty database on the server (dropped afterwards), or the given one."""
    if in_place:
        yield admin_url
        return
    name = f"openqueue_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with suppress(psycopg.Error), psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(database_url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "false"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@contextmanager
def gunicorn(
    database_url: str,
    workdir: Path,
    workers: int | None,
    threads: int | None,
    extra_env: dict[str, str] | None = None,
    server: str = "gunicorn",
) -> Iterator[tuple[str, int]]:
    """Start the server on a free loopback port; yield (url, master pid).

    ``server``: ``gunicorn`` (gunicorn.conf.py, what ships) or ``granian``
    (its WSGI interface, for comparing serving layers: decision 0010).
    """
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OPENQUEUE_RATE_LIMIT_ENABLED": "false",  # measure the queue, not the limiter
        "OPENQUEUE_LOG_LEVEL": "WARNING",
    }
    env.update(extra_env or {})
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    if threads:
        env["OPENQUEUE_THREADS"] = str(threads)
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "openqueue_site.wsgi:application",
        "-c",
        "gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    if server == "granian":
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="oq-bench-prom-"))
        command = [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            env.get("WEB_CONCURRENCY", "2"),
            "--blocking-threads",
            env.get("OPENQUEUE_THREADS", "128"),
            "openqueue_site.wsgi:application",
        ]
    logfile = (workdir / "gunicorn.log").open("wb")
    # Own session: Ctrl-C reaches only this script, which then stops the
    # server in order instead of racing it.
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}; see {logfile.name}")
            with suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer /health within 60 s")
            time.sleep(0.2)
        log(f"gunicorn up on 127.0.0.1:{port} (pid {process.pid}, log {logfile.name})")
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        logfile.close()
        log("gunicorn stopped")


def postmaster_pid(database_url: str) -> int | None:
    """The PostgreSQL server's root process, when it runs on this machine."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        parent = procstat.parent_pid(backend)
    if parent is None:
        return None  # not on this machine (or not visible): database CPU not reported
    with suppress(OSError):
        if "postgres" in Path(f"/proc/{parent}/comm").read_text():
            return parent
    return None


def machine_facts(database_url: str, server: str) -> dict[str, Any]:
    with psycopg.connect(database_url, autocommit=True) as conn:

        def show(setting: str) -> str:
            return conn.execute(f"SHOW {setting}").fetchone()[0]

        db = {name: show(name) for name in ("fsync", "synchronous_commit", "full_page_writes")}
        version = show("server_version")
    cpu = "unknown"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "postgresql": version,
        **db,
        "server": server,
        "commit": commit + (" (uncommitted changes)" if dirty else ""),
    }


# --- Running ----------------------------------------------------------------------


def scenario_table(
    target: Target, raw: rawsql.RawTarget, sizes: Sizes
) -> dict[str, Callable[[], ScenarioResult]]:
    s = sizes
    cap = s.max_seconds
    mixed_args = {
        "rate": s.mixed_rate,
        "seconds": s.mixed_seconds,
        "producers": s.mixed_producers,
        "workers": s.mixed_workers,
    }
    return {
        "single_enqueue": lambda: loadgen.single_enqueue(
            target, jobs=s.enqueue_jobs, threads=s.enqueue_threads, max_seconds=cap
        ),
        "raw_single_insert": lambda: rawsql.single_insert(
            raw, jobs=s.raw_jobs, threads=s.enqueue_threads, max_seconds=cap
        ),
        "batch_enqueue": lambda: loadgen.batch_enqueue(
            target, batches=s.batches, threads=s.batch_threads, max_seconds=cap
        ),
        "raw_batch_insert": lambda: rawsql.batch_insert(
            raw, batches=s.raw_batches, threads=s.batch_threads, max_seconds=cap
        ),
        "drain": lambda: loadgen.drain(
            target, jobs=s.drain_jobs, workers=s.workers, max_seconds=cap
        ),
        "raw_lease_ack": lambda: rawsql.lease_ack(
            raw, jobs=s.raw_lease_jobs, workers=s.workers, max_seconds=cap
        ),
        "batch_lease_ack": lambda: loadgen.batch_lease_ack(
            target, jobs=s.raw_batch_lease_jobs, workers=s.batch_workers
        ),
        "raw_batch_lease_ack": lambda: rawsql.batch_lease_ack(
            raw, jobs=s.raw_batch_lease_jobs, workers=s.batch_workers, max_seconds=cap
        ),
        "mixed": lambda: loadgen.mixed(
            target, poll_sleep=s.poll_sleep_ms / 1000, name="mixed", **mixed_args
        ),
        "longpoll_mixed": lambda: loadgen.longpoll_mixed(
            target, wait_seconds=s.longpoll_wait_seconds, **mixed_args
        ),
    }


def summary_line(result: ScenarioResult) -> str:
    if result.skipped:
        return f"{result.scenario}: skipped ({result.skipped})"
    check = result.check.get("ok")
    verdict = {True: "check ok", False: f"CHECK FAILED {result.check['problems']}"}.get(
        check, "check skipped"
    )
    return (
        f"{result.scenario}: {result.jobs} jobs in {result.seconds:.1f} s = "
        f"{result.jobs_per_s:,.0f} jobs/s, cpu % {result.cpu_percent_of_wall}, {verdict}"
    )


# --- Report -----------------------------------------------------------------------


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _cpu(result: ScenarioResult | None) -> str:
    if result is None or result.skipped:
        return "–"
    cpu = result.cpu_percent_of_wall

    def pct(key: str) -> str:
        value = cpu.get(key)
        return "n/a" if value is None else f"{value:.0f}"

    return f"{pct('server')} / {pct('database')} / {pct('loadgen')}"


def _check(result: ScenarioResult | None) -> str:
    if result is None:
        return "not run"
    if result.skipped:
        return "–"
    ok = result.check.get("ok")
    if ok is None:
        return "skipped"
    text = "ok" if ok else "**FAILED**: " + "; ".join(result.check["problems"])
    if result.stopped_by == "time":
        text += " (stopped by the time limit)"
    return text


def render(results: dict[str, ScenarioResult], facts: dict[str, Any], command: str) -> str:
    out: list[str] = []
    add = out.append
    add(
        f"Measured {facts['date']} on {facts['nproc']} cores ({facts['cpu']}), "
        f"Python {facts['python']}, PostgreSQL {facts['postgresql']} "
        f"(fsync={facts['fsync']}, synchronous_commit={facts['synchronous_commit']}, "
        f"full_page_writes={facts['full_page_writes']}), server: {facts['server']}, "
        f"commit {facts['commit']}. Load average when the run started: "
        f"{facts['load_average_at_start']}; the load generator, the server and the "
        "database share the machine."
    )
    if facts.get("quick"):
        add("")
        add(
            "> **Quick run** (`--quick`): sizes too small for stable figures; "
            "it proves the harness works. `make bench` gives the figures to quote."
        )
    if facts["fsync"] != "on":
        add("")
        add("> **fsync is off in this run**: not comparable with the reference figures.")
    add("")
    add("Reproduce:")
    add("")
    add(f"    {command}")
    add("")
    add("## Throughput")
    add("")
    add(
        "Jobs/s of each API scenario beside the raw-SQL anchor doing the same work on the "
        "same database in the same run. CPU is seconds of CPU per second of wall time, in "
        f"percent, during the measured phase (100 = one core of {facts['nproc']})."
    )
    add("")
    add(
        "| Scenario | Jobs | API jobs/s | Raw SQL jobs/s | API / raw | Target | "
        "Original API (raw) | CPU % server / DB / loadgen | Check |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for api_name, raw_name, target, original, original_raw in PAIRS:
        api, raw = results.get(api_name), results.get(raw_name)
        raw_rate = raw.jobs_per_s if raw and not raw.skipped else None
        if api is None:
            continue
        if api.skipped:
            add(
                f"| {api_name} | – | skipped: {api.skipped} | {_num(raw_rate)} | – | {target} | "
                f"{original} ({original_raw}) | – | – |"
            )
            continue
        ratio = f"{api.jobs_per_s / raw_rate:.3f}" if raw_rate else "–"
        params = ", ".join(f"{k}={v}" for k, v in api.params.items() if k != "max_seconds")
        add(
            f"| {api_name} ({params}) | {api.jobs:,} | {_num(api.jobs_per_s)} | "
            f"{_num(raw_rate)} | {ratio} | {target} | {original} ({original_raw}) | "
            f"{_cpu(api)} | {_check(api)} |"
        )
    add("")
    add("Raw-SQL anchor (bench/rawsql.py):")
    add("")
    add("| Operation | Jobs | Jobs/s | CPU % server / DB / loadgen | Check |")
    add("|---|---:|---:|---|---|")
    for _, raw_name, *_rest in PAIRS:
        raw = results.get(raw_name)
        if raw is not None:
            params = ", ".join(f"{k}={v}" for k, v in raw.params.items() if k != "max_seconds")
            add(
                f"| {raw_name} ({params}) | {raw.jobs:,} | {_num(raw.jobs_per_s)} | "
                f"{_cpu(raw)} | {_check(raw)} |"
            )
    add("")
    add("## Enqueue → lease latency")
    add("")
    add(
        "Producers enqueue at a fixed total rate with the send time in the payload; "
        "workers lease (polling: sleep on an empty lease) and ack."
    )
    add("")
    add(
        "| Scenario | Jobs/s | p50 ms | p95 ms | p99 ms | max ms | Empty leases per job | "
        "Target | Original | CPU % server / DB / loadgen | Check |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---|---|---|---|")
    for name in ("mixed", "longpoll_mixed"):
        result = results.get(name)
        if result is None:
            continue
        if result.skipped:
            add(f"| {name} | skipped: {result.skipped} | | | | | | | | | |")
            continue
        lat = result.enqueue_to_lease_ms or {}
        params = ", ".join(f"{k}={v}" for k, v in result.params.items() if k != "seconds")
        add(
            f"| {name} ({params}) | {_num(result.jobs_per_s)} | {lat.get('p50', '–')} | "
            f"{lat.get('p95', '–')} | {lat.get('p99', '–')} | {lat.get('max', '–')} | "
            f"{result.empty_leases_per_job} | p99 < 20 ms, < 0.1 empty/job (with long-poll) | "
            f"p99 35–99 ms, ~5 empty/job | {_cpu(result)} | {_check(result)} |"
        )
    add("")
    add(
        "Checks run in the database after each scenario: every enqueued job present and no "
        "other, every leased job completed exactly once (the set of completed jobs equals the "
        "set of successful acks), no job in two leases (leases last "
        f"{loadgen.LEASE_SECONDS} s, so none expired), lease_lost_count = 0."
    )
    errors = {name: r.errors for name, r in results.items() if r.errors and not r.skipped}
    if errors:
        add("")
        add(f"Request errors: `{json.dumps(errors)}`")
    return "\n".join(out) + "\n"


def write_docs(path: Path, body: str) -> None:
    """Rewrite only our section between the markers; other sections stay as they are."""
    block = f"{BEGIN}\n{body}{END}"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"{HEADING}\n\n{block}\n"
    path.write_text(text)


# --- Main -------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(
        description="Run every benchmark scenario and the raw-SQL anchor; report.",
        epilog="Sizes default to a ~5 minute run on 2 cores; --quick to ~1 minute.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (~1 minute)")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server to use instead of a throwaway cluster "
        "(a fresh database is created on it and dropped afterwards)",
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="with --database-url: use that database itself (migrated; fresh queue names)",
    )
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite our part of {DOCS}")
    parser.add_argument("--only", help="comma-separated scenarios, of: " + ",".join(ORDER))
    parser.add_argument(
        "--server",
        choices=["gunicorn", "granian"],
        default="gunicorn",
        help="serving layer (default gunicorn, what ships)",
    )
    parser.add_argument("--server-workers", type=int, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--server-threads", type=int, help="threads per worker")
    for item in fields(Sizes):
        parser.add_argument(
            "--" + item.name.replace("_", "-"),
            type=type(item.default),
            help=f"default {item.default} (--quick: {getattr(QUICK, item.name)})",
        )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    overrides = {
        item.name: getattr(args, item.name)
        for item in fields(Sizes)
        if getattr(args, item.name) is not None
    }
    return args, replace(sizes, **overrides)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    # Turn SIGTERM into the same unwinding as Ctrl-C, so every finally runs.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args, sizes = parse_args(argv)
    only = args.only.split(",") if args.only else ORDER
    unknown = set(only) - set(ORDER)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # A shell without job control starts background commands with SIGINT
    # ignored; restore Ctrl-C explicitly so it always unwinds the cleanup.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    command = shlex.join([".venv/bin/python", "bench/run.py", *sys.argv[1:]])
    workdir = ROOT / "var" / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, ScenarioResult] = {}
    with (
        postgres_server(args.database_url) as admin_url,
        fresh_database(admin_url, args.in_place) as database_url,
    ):
        log("migrating")
        manage(database_url, "migrate", "--noinput")
        token = manage(database_url, "create_api_token", BENCH_EMAIL, "--name", "bench")
        with psycopg.connect(database_url, autocommit=True) as conn:
            user_id = conn.execute(
                "SELECT id FROM users WHERE email = %s", (BENCH_EMAIL,)
            ).fetchone()[0]
        with gunicorn(
            database_url, workdir, args.server_workers, args.server_threads, server=args.server
        ) as (
            url,
            server_pid,
        ):
            db_pid = postmaster_pid(database_url)
            workers = args.server_workers or int(os.environ.get("WEB_CONCURRENCY", "2"))
            # gunicorn.conf.py's default when neither the flag nor the variable is set.
            threads = args.server_threads or int(os.environ.get("OPENQUEUE_THREADS", "128"))
            facts = machine_facts(
                database_url,
                f"gunicorn gthread, {workers} workers × {threads} threads"
                if args.server == "gunicorn"
                else f"granian WSGI, {workers} workers × {threads} blocking threads",
            )

            def probe() -> dict[str, float | None]:
                return {
                    "server": procstat.tree_cpu_seconds(server_pid),
                    "database": procstat.tree_cpu_seconds(db_pid) if db_pid else None,
                }

            facts["quick"] = args.quick
            target = Target(url, token, database_url, probe)
            raw = rawsql.RawTarget(database_url, user_id, probe)
            table = scenario_table(target, raw, sizes)
            for name in ORDER:
                if name in only:
                    log(f"running {name}")
                    results[name] = table[name]()
                    log(summary_line(results[name]))
    report = render(results, facts, command)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    raw_json = workdir / f"results-{stamp}.json"
    raw_json.write_text(
        json.dumps(
            {
                "facts": facts,
                "sizes": asdict(sizes),
                "command": command,
                "results": {k: v.as_dict() for k, v in results.items()},
            },
            indent=2,
        )
    )
    print(report)
    log(f"raw results in {raw_json}")
    if args.write_docs:
        write_docs(DOCS, report)
        log(f"wrote {DOCS}")
    failed = [name for name, r in results.items() if r.check.get("ok") is False]
    if failed:
        log(f"correctness check FAILED for: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Everything started has been stopped by the context managers by now.
        log("interrupted; server and database stopped")
        sys.exit(130)
