"""JSON logs: the request line, job events, Django's own errors, the level
setting, and no token, token hash or payload in any line."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from unittest import mock

import httpx
import pytest
from django.test import Client

from accounts.tokens import hash_token
from openqueue_site.logging import JsonFormatter
from queues.tests.factories import JobFactory

ROOT = Path(__file__).resolve().parents[2]


def parsed(stream_value: str) -> list[dict]:
    return [json.loads(line) for line in stream_value.splitlines() if line.strip()]


class Capture:
    """A handler on the root logger at DEBUG: raw text and parsed lines."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def lines(self) -> list[dict]:
        return parsed(self.text)

    def of(self, message: str) -> list[dict]:
        return [line for line in self.lines if line["message"] == message]


@pytest.fixture
def logs() -> Iterator[Capture]:
    capture = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture.handler)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture.handler)
        root.setLevel(old_level)


def test_request_line_has_the_documented_fields(tenant, logs):
    response = tenant.api.post_json(
        "/jobs",
        {"queue_name": "logq", "payload": {}},
        HTTP_X_REQUEST_ID="req-123",
        HTTP_USER_AGENT="worker/1.0",
    )
    assert response.status_code == 201

    (line,) = logs.of("http_request")
    assert line.pop("duration_ms") >= 0
    time = line.pop("time")
    assert time.endswith("Z")
    assert datetime.fromisoformat(time.replace("Z", "+00:00")).utcoffset().total_seconds() == 0
    assert line == {
        "level": "INFO",
        "logger": "openqueue.http",
        "message": "http_request",
        "request_id": "req-123",
        "method": "POST",
        "route": "jobs",
        "path": "/jobs",
        "status": 201,
        "tenant_id": tenant.user.pk,
        "client_ip": "127.0.0.1",
        "user_agent": "worker/1.0",
    }


def test_request_line_for_a_rejected_request_has_no_tenant(db, logs):
    response = Client().get(f"/jobs/{uuid.uuid4()}", HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401
    (line,) = logs.of("http_request")
    assert line["status"] == 401
    assert line["tenant_id"] is None
    assert line["route"] == "jobs/<str:job_id>"
    assert line["request_id"] == response["X-Request-ID"]


def test_job_events_carry_job_id_queue_name_and_request_id(tenant, logs):
    api = tenant.api
    ids = api.post_json(
        "/jobs/batch",
        {"jobs": [{"queue_name": "evq", "payload": {}, "max_retries": n} for n in (3, 3, 0)]},
    ).json()["job_ids"]
    cancel_me = api.post_json(
        "/jobs", {"queue_name": "evq", "payload": {}, "run_at": "2999-01-01T00:00:00Z"}
    ).json()["job_id"]

    def lease():
        return api.post_json("/queues/evq/lease", {"worker_id": "w"}).json()

    first = lease()
    api.post_json(f"/jobs/{ids[0]}/ack", {"lease_token": first["lease_token"]})
    second = lease()
    api.post_json(
        f"/jobs/{ids[1]}/nack",
        {"lease_token": second["lease_token"], "error": "x", "retry": True},
        HTTP_X_REQUEST_ID="nack-req",
    )
    third = lease()
    api.post_json(
        f"/jobs/{ids[2]}/nack", {"lease_token": third["lease_token"], "error": "x", "retry": True}
    )
    api.post_json(f"/jobs/{cancel_me}/cancel")

    events = [
        (line["message"], line["job_id"], line.get("outcome") or line.get("reason"))
        for line in logs.lines
        if line["logger"] == "openqueue.jobs"
    ]
    assert events == [
        ("job_leased", ids[0], None),
        ("job_acked", ids[0], None),
        ("job_leased", ids[1], None),
        ("job_nacked", ids[1], "requeued"),
        ("job_leased", ids[2], None),
        ("job_nacked", ids[2], "dead"),
        ("job_dead", ids[2], "max_retries_exhausted"),
        ("job_cancelled", cancel_me, None),
    ]
    job_lines = [line for line in logs.lines if line["logger"] == "openqueue.jobs"]
    assert all(line["level"] == "INFO" and line["queue_name"] == "evq" for line in job_lines)
    (nacked,) = [
        line
        for line in job_lines
        if line["message"] == "job_nacked" and line["outcome"] == "requeued"
    ]
    assert nacked["request_id"] == "nack-req"


def test_reaper_logs_each_reaped_and_buried_job(db, logs):
    from queues.services import reap_expired_leases

    healthy = JobFactory(queue_name="rq", expired=True, max_retries=3)
    poison = JobFactory(queue_name="rq", expired=True, max_retries=0)
    reap_expired_leases()
    events = sorted(
        (line["message"], line["job_id"], line.get("outcome") or line.get("reason"))
        for line in logs.lines
        if line["logger"] == "openqueue.jobs"
    )
    assert events == [
        ("job_dead", str(poison.id), "lease_expired"),
        ("job_reaped", str(healthy.id), "requeued"),
    ]
    assert "request_id" not in logs.lines[0]


def test_django_errors_and_tracebacks_are_single_json_lines(tenant, logs):
    api = Client(HTTP_AUTHORIZATION=f"Bearer {tenant.token}", raise_request_exception=False)
    with mock.patch("queues.services.get_job", side_effect=RuntimeError("kaboom")):
        response = api.get(f"/jobs/{uuid.uuid4()}")
    assert response.status_code == 500

    (error,) = [line for line in logs.lines if line["logger"] == "django.request"]
    assert error["level"] == "ERROR"
    assert error["message"].startswith("Internal Server Error: /jobs/")
    assert error["exc_info"].startswith("Traceback (most recent call last)")
    assert "RuntimeError: kaboom" in error["exc_info"]
    assert error["status_code"] == 500
    assert "request" not in error  # Django's extra: the whole request, headers included
    assert logs.of("http_request")[0]["status"] == 500
    assert all("\n" not in line for line in logs.text.splitlines())


def run_settings(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "openqueue_site.settings", "PATH": "/usr/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("level", "http", "sql"),
    [("WARNING", 30, 30), ("info", 20, 20), ("DEBUG", 10, 20)],
)
def test_log_level_setting_applies_to_our_and_djangos_loggers(level, http, sql):
    code = (
        "import logging; g = logging.getLogger;"
        "print(g('openqueue.http').getEffectiveLevel(), g('django.request').getEffectiveLevel(),"
        " g('django.db.backends').getEffectiveLevel())"
    )
    result = run_settings({"OPENQUEUE_LOG_LEVEL": level}, code)
    assert result.returncode == 0, result.stderr
    # SQL (with its parameters) is never logged, even at DEBUG.
    assert result.stdout.split() == [str(http), str(http), str(sql)]


def test_log_level_setting_refuses_unknown_levels():
    result = run_settings({"OPENQUEUE_LOG_LEVEL": "LOUD"}, "")
    assert result.returncode != 0
    assert "OPENQUEUE_LOG_LEVEL must be" in result.stderr


def test_logs_go_to_stdout_as_json(db):
    code = (
        "import logging; logging.getLogger('openqueue.jobs').info('job_acked', "
        "extra={'job_id': 'j1', 'queue_name': 'q'})"
    )
    result = run_settings({"OPENQUEUE_LOG_LEVEL": "INFO"}, code)
    assert result.returncode == 0, result.stderr
    (line,) = parsed(result.stdout)
    assert {k: line[k] for k in ("level", "logger", "message", "job_id", "queue_name")} == {
        "level": "INFO",
        "logger": "openqueue.jobs",
        "message": "job_acked",
        "job_id": "j1",
        "queue_name": "q",
    }


# --- No secrets -------------------------------------------------------------------------

MARKER = "payload-marker-7f3a9c"


def drive_lifecycle(request, token: str) -> None:
    """Everything a client does, with the token and the marker in the places they go."""
    auth = {"Authorization": f"Bearer {token}"}
    ids = request(
        "POST", "/jobs/batch", auth, {"jobs": [{"queue_name": "sq", "payload": {"m": MARKER}}] * 3}
    )
    ids = ids["job_ids"]
    lease = request("POST", "/queues/sq/lease", auth, {"worker_id": "w"})
    request("POST", f"/jobs/{ids[0]}/heartbeat", auth, {"lease_token": lease["lease_token"]})
    request(
        "POST",
        f"/jobs/{ids[0]}/ack",
        auth,
        {"lease_token": lease["lease_token"], "result": {"r": MARKER}},
    )
    lease = request("POST", "/queues/sq/lease", auth, {"worker_id": "w"})
    request(
        "POST",
        f"/jobs/{ids[1]}/nack",
        auth,
        {"lease_token": lease["lease_token"], "error": MARKER, "retry": False},
    )
    request("POST", f"/jobs/{ids[2]}/cancel", auth, None)
    request("GET", f"/jobs/{ids[0]}/detail", auth, None)
    request("GET", "/jobs?queue_name=sq", auth, None)
    # Failures: a wrong lease token, invalid input echoing the marker, an
    # unknown token that looks like a real one, a malformed body.
    request("POST", f"/jobs/{ids[0]}/ack", auth, {"lease_token": MARKER})
    request(
        "POST", "/jobs", auth, {"queue_name": "sq", "payload": {"m": MARKER}, "priority": MARKER}
    )
    request(
        "POST", "/jobs", {"Authorization": f"Bearer {token[:-4]}XXXX"}, {"payload": {"m": MARKER}}
    )
    request("POST", "/jobs", auth, f'{{"payload": "{MARKER}"')


def assert_no_secrets(text: str, token: str) -> None:
    assert text.strip(), "nothing was logged"
    for secret in (token, token[:-4] + "XXXX", hash_token(token), MARKER):
        assert secret not in text


def test_no_token_hash_or_payload_in_any_log_line(tenant, logs, settings):
    settings.DEBUG = True  # Django would log SQL (with parameters) at DEBUG
    client = Client()

    def request(method, path, headers, body):
        data = body if isinstance(body, str) else json.dumps(body) if body is not None else ""
        extra = {f"HTTP_{k.upper()}": v for k, v in headers.items()}
        response = client.generic(method, path, data, content_type="application/json", **extra)
        return response.json() if response.status_code < 300 else None

    drive_lifecycle(request, tenant.token)

    assert len(logs.of("http_request")) == 13
    assert logs.of("job_acked") and logs.of("job_nacked")
    assert_no_secrets(logs.text, tenant.token)


@pytest.mark.live_server
def test_no_token_hash_or_payload_in_a_live_servers_output(live_server_factory, tenant, tmp_path):
    output = tmp_path / "server.log"
    server = live_server_factory(
        workers=1, output=output, env={"OPENQUEUE_LOG_LEVEL": "DEBUG"}, config_file=True
    )

    def request(method, path, headers, body):
        content = body if isinstance(body, str) else json.dumps(body) if body is not None else b""
        response = httpx.request(
            method,
            server.url + path,
            headers={**headers, "Content-Type": "application/json"},
            content=content,
        )
        return response.json() if response.status_code < 300 else None

    drive_lifecycle(request, tenant.token)
    server.stop()

    text = output.read_text()
    assert_no_secrets(text, tenant.token)
    lines = parsed(text)  # every line is JSON: gunicorn's access log is off
    requests = [line for line in lines if line["message"] == "http_request"]
    assert len([r for r in requests if r["path"] != "/health"]) == 13
    assert {line["message"] for line in lines if line["logger"] == "openqueue.jobs"} == {
        "job_leased",
        "job_acked",
        "job_nacked",
        "job_dead",
        "job_cancelled",
    }
