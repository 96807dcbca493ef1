"""asgi.py under a real uvicorn process: the ASGI entry point serves the API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import suppress

import httpx
import pytest

from conftest import ROOT, current_database_url, free_port

pytestmark = [pytest.mark.live_server, pytest.mark.timeout(120)]


@pytest.fixture
def uvicorn_url(transactional_db):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECRET_KEY": "test-only-secret-key-for-live-servers",
        "OPENQUEUE_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "uvicorn", "openqueue_site.asgi:application"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        # Poll until the server answers: start-up time is not ours to guess.
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"uvicorn exited with {process.returncode}"
            assert time.monotonic() < deadline, "uvicorn did not answer /health within 60 s"
            with suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_asgi_application_serves_enqueue_lease_and_ack_under_uvicorn(uvicorn_url, make_tenant):
    tenant = make_tenant()
    with httpx.Client(
        base_url=uvicorn_url, headers={"Authorization": f"Bearer {tenant.token}"}
    ) as api:
        created = api.post("/jobs", json={"queue_name": "asgi", "payload": {"n": 1}})
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]

        lease = api.post("/queues/asgi/lease", json={"worker_id": "uvicorn-test"})
        assert lease.status_code == 200, lease.text
        assert lease.json()["job"]["id"] == job_id
        assert lease.headers["x-request-id"]

        ack = api.post(
            f"/jobs/{job_id}/ack",
            json={"lease_token": lease.json()["lease_token"], "result": {"ok": True}},
        )
        assert ack.json() == {"job_id": job_id, "status": "completed"}

        detail = api.get(f"/jobs/{job_id}/detail").json()
        assert detail["status"] == "completed" and detail["result"] == {"ok": True}
        assert api.post("/queues/asgi/lease", json={"worker_id": "uvicorn-test"}).text == "null"
