"""The client's own rules, without a server: retries, error mapping, paths, parsing."""

from __future__ import annotations

import asyncio
import inspect
import json
from datetime import UTC, datetime

import httpx
import pytest

from openqueue_client import (
    APIError,
    AsyncClient,
    BadRequestError,
    Client,
    ConflictError,
    Permanent,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    ServiceUnavailableError,
    TransportError,
    ValidationError,
    Worker,
)
from openqueue_client.django.backend import exception_class_path
from openqueue_client.models import parse_time
from openqueue_client.worker import as_result

FAST = RetryPolicy(retries=3, backoff=0.001, max_retry_after=0.001)


def scripted(*answers):
    """A transport that answers each request with the next scripted answer."""
    requests: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, requests


def ok(body) -> httpx.Response:
    # json=None would send no body; the API's empty lease is the 4 bytes "null".
    return httpx.Response(
        200, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )


def test_a_429_is_retried_after_its_retry_after_delay():
    assert RetryPolicy().after_response(1, httpx.Response(429, headers={"Retry-After": "7"})) == 7
    assert (
        RetryPolicy(max_retry_after=5).after_response(
            1, httpx.Response(429, headers={"Retry-After": "7"})
        )
        == 5
    )
    assert RetryPolicy(retries=1).after_response(2, httpx.Response(429)) is None

    handle, requests = scripted(
        httpx.Response(429, json={"detail": "Rate limit exceeded"}, headers={"Retry-After": "1"}),
        ok({"job_id": "j", "status": "completed"}),
    )
    with Client("http://oq", "t", retry=FAST, transport=httpx.MockTransport(handle)) as client:
        client.ack("j", "token")  # not idempotent, but a 429 did nothing: safe to repeat
    assert len(requests) == 2


def test_rate_limit_error_after_the_retries_run_out_carries_retry_after():
    refusals = [
        httpx.Response(429, json={"detail": "Rate limit exceeded"}, headers={"Retry-After": "3"})
    ] * 4
    handle, requests = scripted(*refusals)
    with Client("http://oq", "t", retry=FAST, transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(RateLimitError) as error:
            client.list_jobs()
    assert len(requests) == 4
    assert (error.value.retry_after, error.value.detail) == (3, "Rate limit exceeded")


def test_connection_errors_are_retried_only_when_repeating_is_safe():
    request = httpx.Request("POST", "http://oq/jobs/j/ack")

    # Nothing was sent: any call is retried.
    handle, requests = scripted(httpx.ConnectError("refused", request=request), ok({}))
    with Client("http://oq", "t", retry=FAST, transport=httpx.MockTransport(handle)) as client:
        client.ack("j", "token")
    assert len(requests) == 2

    # Sent, then the connection broke: an ack may have happened, so it is not repeated.
    handle, requests = scripted(httpx.ReadError("reset", request=request), ok({}))
    with Client("http://oq", "t", retry=FAST, transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(TransportError):
            client.ack("j", "token")
    assert len(requests) == 1

    # ... but a read, a heartbeat and a keyed enqueue are.
    for call in (
        lambda c: c.get_status("j"),
        lambda c: c.heartbeat("j", "token"),
        lambda c: c.enqueue("q", {}, idempotency_key="k"),
    ):
        handle, requests = scripted(
            httpx.ReadError("reset", request=request),
            httpx.Response(201, json={"job_id": "j", "status": "queued"}),
        )
        with Client("http://oq", "t", retry=FAST, transport=httpx.MockTransport(handle)) as client:
            call(client)
        assert len(requests) == 2

    # An enqueue without a key is not: it could create the job twice.
    handle, requests = scripted(httpx.ReadError("reset", request=request), ok({}))
    with Client("http://oq", "t", retry=FAST, transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(TransportError):
            client.enqueue("q", {})
    assert len(requests) == 1


@pytest.mark.parametrize(
    "status, body, error_class",
    [
        (400, {"detail": "bad"}, BadRequestError),
        (403, {"detail": "User is inactive"}, PermissionDeniedError),
        (405, {"detail": "Method Not Allowed"}, APIError),
        (409, {"detail": "Job not found, not leased, or lease token mismatch"}, ConflictError),
        (500, None, ServerError),
        (
            503,
            {"detail": "Admin provisioning is not configured on this server."},
            ServiceUnavailableError,
        ),
    ],
)
def test_each_error_status_raises_its_class_with_the_detail(status, body, error_class):
    response = (
        httpx.Response(status, json=body)
        if body
        else httpx.Response(status, text="Internal Server Error")
    )
    handle, _ = scripted(response)
    with Client("http://oq", "t", retry=FAST, transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(error_class) as error:
            client.get_status("j")
    assert error.value.status_code == status
    assert error.value.detail == (body["detail"] if body else "Internal Server Error")


def test_a_validation_error_names_each_field():
    detail = [{"type": "greater_than_equal", "loc": ["body", "lease_seconds"], "msg": "too small"}]
    handle, _ = scripted(httpx.Response(422, json={"detail": detail}))
    with Client("http://oq", "t", transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(ValidationError) as error:
            client.lease("q", worker_id="w", lease_seconds=0)
    assert error.value.detail == detail
    assert str(error.value) == "422: body.lease_seconds: too small"


def test_names_are_escaped_into_one_path_segment_and_the_token_is_sent():
    handle, requests = scripted(ok(None), ok({"queue_name": "a b/c?", "paused": True}))
    with Client("http://oq/", "oq_live_x", transport=httpx.MockTransport(handle)) as client:
        assert client.lease("a b/c?", worker_id="w") is None
        client.pause_queue("a b/c?")
    assert requests[0].url.raw_path == b"/queues/a%20b%2Fc%3F/lease"
    assert requests[0].headers["authorization"] == "Bearer oq_live_x"
    assert json.loads(requests[0].content) == {
        "worker_id": "w",
        "lease_seconds": 30,
        "wait_seconds": 0,
    }
    assert json.loads(requests[1].content) == {"paused": True}  # omitted keys stay as they are


def test_a_long_poll_gets_its_wait_on_top_of_the_timeout():
    handle, requests = scripted(ok(None))
    with Client("http://oq", "t", timeout=5, transport=httpx.MockTransport(handle)) as client:
        client.lease("q", worker_id="w", wait_seconds=20)
    assert requests[0].extensions["timeout"]["read"] == 25


def test_async_client_retries_and_maps_errors_like_the_sync_one():
    handle, requests = scripted(
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.Response(409, json={"detail": "Job not found, not leased, or lease token mismatch"}),
    )

    async def go():
        async with AsyncClient(
            "http://oq", "t", retry=FAST, transport=httpx.MockTransport(handle)
        ) as client:
            await client.nack("j", "token", "boom")

    with pytest.raises(ConflictError):
        asyncio.run(go())
    assert len(requests) == 2


def test_timestamps_are_aware_utc():
    assert parse_time("2026-11-28T00:27:47.401426Z") == datetime(
        2026, 11, 28, 0, 27, 47, 401426, tzinfo=UTC
    )
    assert parse_time("2030-01-01T00:00:00").tzinfo is not None  # the original's naive UTC
    assert parse_time(None) is None


def test_handler_results_become_json_objects():
    assert as_result(None) is None
    assert as_result({"a": 1}) == {"a": 1}
    assert as_result([1, 2]) == {"value": [1, 2]}
    with pytest.raises(Permanent):
        as_result({"when": datetime.now(UTC)})


def test_a_long_traceback_is_cut_from_the_front_to_fit_the_servers_limit():
    worker = Worker(Client("http://oq", "t"), "q", lambda job: None, max_error_bytes=200)
    try:
        raise ValueError("é" * 500 + " the end")
    except ValueError:
        text = worker._error_text()
    assert len(text.encode()) <= 200
    assert text.startswith("[traceback truncated]") and text.endswith("the end\n")


@pytest.mark.parametrize(
    "last_line, path",
    [
        ("ValueError: boom", "builtins.ValueError"),
        ("myapp.errors.Refused: no", "myapp.errors.Refused"),
        ("KeyboardInterrupt", "builtins.KeyboardInterrupt"),
        ("worker w1 stopped: the job did not finish", "builtins.Exception"),
    ],
)
def test_the_exception_class_is_read_from_the_tracebacks_last_line(last_line, path):
    assert exception_class_path(f"Traceback (most recent call last):\n  ...\n{last_line}\n") == path


def test_async_client_mirrors_every_client_method_with_the_same_signature():
    # The two classes spell out the same methods (routes.py holds the logic);
    # this keeps them from drifting apart.
    def public(cls):
        return {
            name: member
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_") and name not in {"close", "send"}
        }

    sync, asynchronous = public(Client), public(AsyncClient)
    assert sync.keys() - {"aclose"} == asynchronous.keys() - {"aclose"}
    for name, method in sync.items():
        assert inspect.iscoroutinefunction(asynchronous[name]), name
        assert inspect.signature(asynchronous[name]) == inspect.signature(method), name
