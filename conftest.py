"""Fixtures shared by every test package.

The suite runs twice, on SQLite and on PostgreSQL (scripts/test.sh). Tests
that need several real processes start gunicorn through ``live_server``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from django.db import connection
from django.test import Client

from accounts.models import User
from accounts.services import issue_token
from queues.metrics import DatabaseCollector, queue_labels
from queues.tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent


# Tests whose subject is not the database run in one of the two legs only
# (scripts/test.sh runs the suite once per database): the pages in the
# browser on SQLite, what `make run` serves; the schema fuzzer and the
# client package on PostgreSQL, what production runs.
ONE_LEG = {"browser": "sqlite", "schema_fuzz": "postgresql", "client": "postgresql"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, vendor in ONE_LEG.items():
        if connection.vendor != vendor:
            skip = pytest.mark.skip(reason=f"not about the database: runs in the {vendor} leg")
            for item in items:
                if item.get_closest_marker(marker):
                    item.add_marker(skip)
    # Without Chromium and without root to install it (scripts/test.sh).
    if os.environ.get("OPENQUEUE_SKIP_BROWSER_TESTS") == "1":
        skip = pytest.mark.skip(reason="OPENQUEUE_SKIP_BROWSER_TESTS=1")
        for item in items:
            if item.get_closest_marker("browser"):
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _record_db_vendor(record_testsuite_property: Callable[[str, object], None]) -> None:
    # scripts/test.sh checks this to prove the PostgreSQL leg really ran on PostgreSQL.
    record_testsuite_property("db_vendor", connection.vendor)


@pytest.fixture(autouse=True)
def _skip_postgres_only_on_sqlite(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres_only") and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (row locks, LISTEN/NOTIFY or several processes)")


@pytest.fixture(autouse=True)
def _no_rate_limits_by_default(settings: Any) -> None:
    # Rate limits have their own tests; elsewhere they would only add noise.
    settings.OPENQUEUE_RATE_LIMIT_ENABLED = False
    # So is the failed-authentication limit (ratelimits/tests/test_auth_failures.py).
    settings.OPENQUEUE_AUTH_FAILURE_LIMIT_ENABLED = False


@pytest.fixture(autouse=True)
def _fresh_metrics(settings: Any) -> None:
    # What a process learned about queue labels, and its cached database
    # gauges, belong to one test (queues/tests/test_metrics.py tests both).
    settings.OPENQUEUE_METRICS_GAUGE_SECONDS = 0
    queue_labels.forget()
    DatabaseCollector.forget()


class ApiClient(Client):
    """Django's test client speaking JSON with a bearer token."""

    def __init__(self, token: str | None = None, **defaults: Any) -> None:
        if token is not None:
            defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        super().__init__(**defaults)

    def post_json(self, path: str, body: Any = None, **extra: Any) -> Any:
        data = b"" if body is None else body
        return self.post(path, data, content_type="application/json", **extra)


@dataclass
class Tenant:
    user: User
    token: str
    api: ApiClient


@pytest.fixture
def make_tenant(db: None) -> Callable[..., Tenant]:
    def make(**user_fields: Any) -> Tenant:
        user = UserFactory(**user_fields)
        raw = issue_token(owner=user, name="test").raw
        return Tenant(user=user, token=raw, api=ApiClient(raw))

    return make


@pytest.fixture
def tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant()


@pytest.fixture
def other_tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant()


# --- Real server processes ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def current_database_url() -> str:
    """A DATABASE_URL for the database the tests are using right now."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s["HOST"] or "localhost"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{s['NAME']}"


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen

    def worker_pids(self) -> list[int]:
        """The gunicorn worker processes: the master's children, read from /proc (Linux)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sorted(int(child) for child in children)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(
    *,
    workers: int = 2,
    threads: int = 4,
    env: dict[str, str] | None = None,
    config_file: bool = False,
    output: Path | None = None,
) -> ServerProcess:
    """Start gunicorn on a free port against the test database; wait until /health answers.

    ``config_file`` also loads gunicorn.conf.py (its hooks: Prometheus
    multiprocess mode); the arguments here still win over its values.
    ``output`` receives the server's stdout and stderr.
    """
    port = free_port()
    server_env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECRET_KEY": "test-only-secret-key-for-live-servers",
        "OPENQUEUE_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "openqueue_site.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--log-level",
        "warning",
        "--graceful-timeout",
        "5",
    ]
    if config_file:
        command += ["--config", str(ROOT / "gunicorn.conf.py")]
    sink = open(output, "ab") if output is not None else None
    process = subprocess.Popen(
        command, cwd=ROOT, env=server_env, stdout=sink, stderr=subprocess.STDOUT if sink else None
    )
    if sink is not None:
        sink.close()  # the child holds its own descriptor
    server = ServerProcess(url=f"http://127.0.0.1:{port}", process=process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode} before answering")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("gunicorn did not answer /health within 60 s")


@pytest.fixture
def live_server_factory(transactional_db: None) -> Iterator[Callable[..., ServerProcess]]:
    """Start real gunicorn processes; all are stopped before the test database is flushed."""
    servers: list[ServerProcess] = []

    def factory(**kwargs: Any) -> ServerProcess:
        server = start_server(**kwargs)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()
