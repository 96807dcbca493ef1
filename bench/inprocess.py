"""CPU per request, and Python calls per component, through Django's real WSGI handler.

On a shared 2-core machine HTTP throughput swings too much to see a 10 %
change; these in-process figures do not (docs/benchmarks.md, "Second
round"). Each request goes through ``openqueue_site.wsgi.application`` with
a real bearer token against a real database, without a server or a socket.

    # CPU per request: min and median of 5 rounds (process_time)
    DATABASE_URL=postgres://…/bench .venv/bin/python bench/inprocess.py cpu enqueue
    # Python calls per request, inclusive, by function (deterministic)
    DATABASE_URL=postgres://…/bench .venv/bin/python bench/inprocess.py calls drain
    # The same two stacks of middleware, interleaved in one process
    DATABASE_URL=postgres://…/bench .venv/bin/python bench/inprocess.py middleware enqueue

Scenarios: health, enqueue, batch_enqueue (100 jobs), drain (lease + ack),
batch_lease_ack (100 + 100). Use a scratch database: it is migrated and
jobs are added to it. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openqueue_site.settings")
os.environ["DEBUG"] = "false"
os.environ["OPENQUEUE_RATE_LIMIT_ENABLED"] = "false"  # measure the queue, not the limiter
os.environ["OPENQUEUE_LOG_LEVEL"] = "WARNING"
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="oq-inprocess-"))

App = Callable[[dict[str, Any], Any], Any]


class Runner:
    """Builds requests for one scenario and sends them to a WSGI application."""

    def __init__(self, token: str, queue: str) -> None:
        self.token = token
        self.queue = queue

    def call(self, app: App, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(data)),
            "HTTP_AUTHORIZATION": f"Bearer {self.token}",
            "wsgi.input": io.BytesIO(data),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
        }
        status: list[str] = []
        content = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
        return int(status[0].split()[0]), content

    def expect(self, app: App, method: str, path: str, body: Any, codes: tuple[int, ...]) -> Any:
        code, content = self.call(app, method, path, body)
        if code not in codes:
            raise SystemExit(f"{method} {path}: {code} {content[:300]!r}")
        return json.loads(content) if content else None

    def health(self, app: App) -> None:
        self.expect(app, "GET", "/health", None, (200,))

    def enqueue(self, app: App) -> None:
        self.expect(app, "POST", "/jobs", {"queue_name": self.queue, "payload": {"n": 1}}, (201,))

    def batch_enqueue(self, app: App) -> None:
        jobs = [{"queue_name": self.queue, "payload": {"n": n}} for n in range(100)]
        self.expect(app, "POST", "/jobs/batch", {"jobs": jobs}, (201,))

    def drain(self, app: App) -> None:
        body = {"worker_id": "w", "lease_seconds": 600}
        leased = self.expect(app, "POST", f"/queues/{self.queue}/lease", body, (200,))
        if leased is None:
            raise SystemExit("drain: the queue ran dry; raise the preloaded jobs")
        ack = {"lease_token": leased["lease_token"], "result": {"ok": True}}
        self.expect(app, "POST", f"/jobs/{leased['job']['id']}/ack", ack, (200,))

    def batch_lease_ack(self, app: App) -> None:
        body = {"worker_id": "w", "lease_seconds": 600, "max_jobs": 100}
        leases = self.expect(app, "POST", f"/queues/{self.queue}/lease/batch", body, (200,))
        items = [
            {"job_id": lease["job"]["id"], "lease_token": lease["lease_token"], "result": {"ok": 1}}
            for lease in leases["leases"]
        ]
        if len(items) != 100:
            raise SystemExit("batch_lease_ack: the queue ran dry; raise the preloaded jobs")
        self.expect(app, "POST", "/leases/ack", {"items": items}, (200,))


# Requests one scenario needs in the queue beforehand, per measured request.
JOBS_PER_REQUEST = {"drain": 1, "batch_lease_ack": 100}


def setup(scenario: str, requests: int) -> tuple[Runner, App]:
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import User
    from accounts.services import issue_token
    from openqueue_site.wsgi import application
    from queues import services

    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(email="inprocess-bench@example.com")
    runner = Runner(issue_token(owner=user, name="bench").raw, f"bench-{uuid.uuid4().hex[:8]}")
    needed = JOBS_PER_REQUEST.get(scenario, 0) * requests
    for start in range(0, needed, 1000):
        new = [services.NewJob(queue_name=runner.queue, payload={"n": n}) for n in range(1000)]
        services.enqueue(owner=user, jobs=new[: needed - start])
    return runner, application


def measure_cpu(run: Callable[[], None], requests: int, rounds: int = 5) -> list[float]:
    """CPU milliseconds per request, one figure per round, sorted."""
    per_round = max(requests // rounds, 1)
    results = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(per_round):
            run()
        results.append((time.process_time() - started) * 1000 / per_round)
    return sorted(results)


def count_calls(run: Callable[[], None], requests: int, top: int) -> None:
    """Inclusive Python (and C) calls per request, by function, with sys.setprofile."""
    counts: collections.Counter[str] = collections.Counter()
    stack: list[str] = []

    def name(frame: Any) -> str:
        code = frame.f_code
        owner = frame.f_locals.get("self") if code.co_argcount else None
        prefix = f"{type(owner).__name__}." if owner is not None else ""
        return f"{Path(code.co_filename).name}:{prefix}{code.co_name}"

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            stack.append(name(frame))
            for key in set(stack):
                counts[key] += 1
        elif event == "return":
            if stack:
                stack.pop()
        elif event == "c_call":
            for key in set(stack):
                counts[key] += 1

    sys.setprofile(hook)
    try:
        for _ in range(requests):
            run()
    finally:
        sys.setprofile(None)
    for key, count in counts.most_common(top):
        print(f"{count / requests:9.0f}  {key}")


MIDDLEWARE_VARIANTS = {
    "without-django-prometheus": lambda m: "django_prometheus" not in m,
    "without-browser-middleware": lambda m: (
        not any(part in m for part in ("Session", "AuthenticationMiddleware", "MessageMiddleware"))
    ),
}


def middleware_ab(runner: Runner, scenario: str, requests: int) -> None:
    """The scenario through WSGI handlers built from different MIDDLEWARE lists, interleaved."""
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    current = list(settings.MIDDLEWARE)
    with_prometheus = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *[m for m in current if "django_prometheus" not in m],
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]
    stacks = {"with-django-prometheus": with_prometheus, "default": current}
    for label, keep in MIDDLEWARE_VARIANTS.items():
        stacks[label] = [m for m in with_prometheus if keep(m)]
    handlers = {}
    for label, stack in stacks.items():
        settings.MIDDLEWARE = stack
        handlers[label] = WSGIHandler()
    settings.MIDDLEWARE = current
    send = getattr(runner, scenario)
    for handler in handlers.values():
        for _ in range(20):
            send(handler)
    per_round = 50
    rounds = max(requests // (per_round * len(handlers)), 3)
    results: dict[str, list[float]] = {label: [] for label in handlers}
    for _ in range(rounds):
        for label, handler in handlers.items():
            started = time.process_time()
            for _ in range(per_round):
                send(handler)
            results[label].append((time.process_time() - started) * 1000 / per_round)
    for label, values in results.items():
        print(
            f"{scenario} {label:28s} median {statistics.median(values):.3f} ms"
            f"  min {min(values):.3f} ms  ({rounds} rounds of {per_round})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["cpu", "calls", "middleware"])
    parser.add_argument(
        "scenario", choices=["health", "enqueue", "batch_enqueue", "drain", "batch_lease_ack"]
    )
    parser.add_argument("--requests", type=int, default=1000, help="measured requests")
    parser.add_argument("--top", type=int, default=40, help="calls: functions to list")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        print("note: DATABASE_URL is unset, so this measures SQLite", file=sys.stderr)
    warmup = 20
    planned = args.requests + warmup
    if args.mode == "middleware":
        # 4 stacks, at least 3 rounds of 50 each, plus 20 warm-up requests each.
        planned = max(args.requests, 3 * 50 * 4) + 20 * 4
    runner, app = setup(args.scenario, planned)
    send = getattr(runner, args.scenario)
    if args.mode == "middleware":
        middleware_ab(runner, args.scenario, args.requests)
        return
    for _ in range(warmup):
        send(app)
    if args.mode == "calls":
        count_calls(lambda: send(app), args.requests, args.top)
        return
    results = measure_cpu(lambda: send(app), args.requests)
    print(
        f"{args.scenario}: CPU per request min {results[0]:.3f} ms, "
        f"median {statistics.median(results):.3f} ms (5 rounds of {args.requests // 5})"
    )


if __name__ == "__main__":
    main()
