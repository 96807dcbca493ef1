"""HTTP behaviour that only a real server shows (chunked bodies, real sockets)."""

import json

import httpx
import pytest

pytestmark = pytest.mark.live_server


def chunks(data: bytes, size: int = 100):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_chunked_request_body_is_read_like_a_sized_one(live_server_factory, make_tenant):
    tenant = make_tenant()
    server = live_server_factory(workers=1)
    body = json.dumps({"queue_name": "chunked", "payload": {"text": "x" * 500}}).encode()
    response = httpx.post(
        f"{server.url}/jobs",
        content=chunks(body),  # an iterator: httpx sends Transfer-Encoding: chunked
        headers={"Authorization": f"Bearer {tenant.token}", "Content-Type": "application/json"},
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 201, response.text
    job = httpx.get(
        f"{server.url}/jobs/{response.json()['job_id']}/detail",
        headers={"Authorization": f"Bearer {tenant.token}"},
    ).json()
    assert job["payload"] == {"text": "x" * 500}


@pytest.mark.parametrize("chunked", [False, True])
def test_request_body_over_the_limit_is_413_json_over_real_http(
    live_server_factory, make_tenant, chunked
):
    tenant = make_tenant()
    server = live_server_factory(workers=1, env={"OPENQUEUE_MAX_REQUEST_BYTES": "1000"})
    body = json.dumps({"payload": {"text": "x" * 5000}}).encode()
    response = httpx.post(
        f"{server.url}/jobs",
        content=chunks(body) if chunked else body,
        headers={"Authorization": f"Bearer {tenant.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert "OPENQUEUE_MAX_REQUEST_BYTES" in response.json()["detail"]
    assert response.headers["x-request-id"]
