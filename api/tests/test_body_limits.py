"""What a request body can cost the server (issue 11, items 1 and 2).

- A body over OPENQUEUE_PREAUTH_BODY_BYTES is read only after the request is
  authenticated: anonymous big bodies are answered 401 unread (in a real
  gunicorn worker, its memory barely moves).
- A big body whose values would take too much memory is refused before it
  is parsed; one that is parsed holds at most about 16 times its size.
- Bytes that are not valid text (UTF-8-encoded surrogates among them) are
  422 ``json_invalid`` on every body route, before any write.
"""

from __future__ import annotations

import json
import random
import re
import socket
import string
import threading
import tracemalloc
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import RequestFactory

from api.errors import BodyTooDense
from api.parsing import DENSITY_CHECK_BYTES, parse_json_body
from queues.models import Job

JOB_ID = "00000000-0000-4000-8000-000000000001"
BIG_MALFORMED = b'{"payload": {"pad": "' + b"x" * 100_000 + b'"'  # no closing braces


def post_raw(client: Any, path: str, raw: bytes, **extra: Any) -> Any:
    return client.generic("POST", path, raw, content_type="application/json", **extra)


# --- Authentication before a big body ------------------------------------------------


@pytest.mark.django_db
def test_small_malformed_body_is_422_before_authentication(client):
    response = post_raw(client, "/jobs", b'{"payload": ')

    assert response.status_code == 422  # the original's order: JSON first


@pytest.mark.django_db
def test_big_body_without_a_token_is_401_and_never_parsed(client):
    response = post_raw(client, "/jobs", BIG_MALFORMED)

    # Malformed, but it was never parsed: the missing token answers first.
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_big_body_with_a_token_is_parsed_after_authentication(tenant):
    response = post_raw(tenant.api, "/jobs", BIG_MALFORMED)

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_big_body_with_an_unknown_token_is_401_unread(tenant):
    response = post_raw(
        tenant.api, "/jobs/batch", BIG_MALFORMED, HTTP_AUTHORIZATION="Bearer oq_live_nobody"
    )

    assert response.status_code == 401


@pytest.mark.django_db
def test_provisioning_refuses_a_big_body_unread(client, settings):
    settings.ADMIN_SECRET = "admin-s3cret"

    response = post_raw(client, "/admin/provision", BIG_MALFORMED)

    assert response.status_code == 413
    assert "OPENQUEUE_PREAUTH_BODY_BYTES" in response.json()["detail"]


def test_the_preauth_limit_is_a_setting(tenant, settings):
    settings.OPENQUEUE_PREAUTH_BODY_BYTES = 200_000

    # Now small enough to parse first: malformed JSON is 422 even without a token.
    response = post_raw(tenant.api, "/jobs", BIG_MALFORMED, HTTP_AUTHORIZATION="")

    assert response.status_code == 422


# --- Memory: dense bodies refused, parsed ones bounded ------------------------------

SIZE = DENSITY_CHECK_BYTES + 300_000
_rng = random.Random(11)


def _array(unit: bytes) -> bytes:
    count = SIZE // (len(unit) + 1)
    return b"[" + b",".join([unit] * count) + b"]"


def _letters(n: int) -> str:
    return "".join(_rng.choice(string.ascii_letters) for _ in range(n))


SHAPES = {
    "empty objects": _array(b"{}"),
    "empty arrays": _array(b"[]"),
    "zeros": _array(b"0"),
    "two-letter strings": _array(b'"ab"'),
    "empty strings": _array(b'""'),
    "floats": _array(b"1.5"),
    "big integers": _array(b"12345678901234567890"),
    "unique keys": b"{" + b",".join(b'"k%d":1' % i for i in range(130_000)) + b"}",
    "objects in objects": _array(b'{"a":{}}'),
    "one-key objects": _array(b'{"a":1}'),
    "booleans": _array(b"true"),
    "nulls": _array(b"null"),
    "nested arrays": _array(b"[[[[[1]]]]]"),
    "a batch of ordinary jobs": json.dumps(
        {
            "jobs": [
                {"queue_name": "emails", "payload": {"to": f"user{n}@example.com", "n": n}}
                for n in range(16_000)
            ]
        }
    ).encode(),
    "random words": json.dumps([_letters(8) for _ in range(120_000)]).encode(),
    "long strings": json.dumps(["x" * 1000 for _ in range(1_300)]).encode(),
    "one emoji in long ASCII strings": json.dumps(
        ["x" * 999 + "\U0001f600" for _ in range(1_300)], ensure_ascii=False
    ).encode(),
    "escaped non-ASCII": json.dumps(["\u00e9\U0001f600" for _ in range(100_000)]).encode(),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_parsing_a_big_body_holds_at_most_16_times_its_size(shape):
    raw = SHAPES[shape]
    assert len(raw) > DENSITY_CHECK_BYTES
    request = RequestFactory().post("/jobs", raw, content_type="application/json")
    request.body  # noqa: B018 - read first: Django holds the bytes either way

    tracemalloc.start()
    try:
        parse_json_body(request)
    except BodyTooDense:
        refused = True
    else:
        refused = False
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert refused or peak <= 16 * len(raw), f"{peak / len(raw):.1f} times the body"


@pytest.mark.parametrize("shape", ["empty objects", "objects in objects", "two-letter strings"])
def test_a_body_of_many_tiny_values_is_413(tenant, shape):
    response = post_raw(tenant.api, "/jobs", SHAPES[shape])

    assert response.status_code == 413
    assert "too many small JSON values" in response.json()["detail"]


def test_ordinary_big_batches_still_pass_the_memory_check(tenant):
    response = post_raw(tenant.api, "/jobs/batch", SHAPES["a batch of ordinary jobs"])

    # 16,000 jobs are over OPENQUEUE_MAX_BATCH_SIZE: refused by validation,
    # not by the memory check.
    assert response.status_code == 422
    assert "at most 1000 jobs" in response.json()["detail"][0]["msg"]


# --- Text that is not text -----------------------------------------------------------

# A lone surrogate written as UTF-8 bytes (ED A0 80 is U+D800), not as a
# "\ud800" escape: json.loads on bytes lets it through (surrogatepass).
SURROGATE = b"\xed\xa0\x80"
SURROGATE_BODIES = [
    ("/jobs", b'{"queue_name": "q", "payload": {"a": "x' + SURROGATE + b'"}}', {}),
    ("/jobs", b'{"queue_name": "q' + SURROGATE + b'", "payload": {}}', {}),
    ("/jobs", b'{"payload": {"k": 1}}'[:-2] + b', "' + SURROGATE + b'": 2}}', {}),
    (
        "/jobs",
        b'{"payload": {"a": "' + SURROGATE + b'"}}',
        {"HTTP_IDEMPOTENCY_KEY": "key-1"},
    ),
    ("/jobs/batch", b'{"jobs": [{"payload": {"a": "' + SURROGATE + b'"}}]}', {}),
    ("/queues/q/lease", b'{"worker_id": "w' + SURROGATE + b'"}', {}),
    ("/queues/q/lease/batch", b'{"worker_id": "' + SURROGATE + b'"}', {}),
    (f"/jobs/{JOB_ID}/ack", b'{"lease_token": "t", "result": {"r": "' + SURROGATE + b'"}}', {}),
    (f"/jobs/{JOB_ID}/nack", b'{"lease_token": "t", "error": "boom' + SURROGATE + b'"}', {}),
    (f"/jobs/{JOB_ID}/heartbeat", b'{"lease_token": "' + SURROGATE + b'"}', {}),
    ("/leases/ack", b'{"items": [{"job_id": "' + JOB_ID.encode() + SURROGATE + b'"}]}', {}),
    (
        "/leases/nack",
        b'{"items": [{"job_id": "x", "lease_token": "t", "error": "' + SURROGATE + b'"}]}',
        {},
    ),
    # An invalid value that a 422 would echo back in its "input".
    ("/jobs", b'{"payload": {}, "priority": "' + SURROGATE + b'"}', {}),
]


@pytest.mark.parametrize(("path", "raw", "extra"), SURROGATE_BODIES)
def test_utf8_encoded_surrogates_are_422_json_invalid_on_every_body_route(tenant, path, raw, extra):
    response = post_raw(tenant.api, path, raw, **extra)

    assert response.status_code == 422, response.content[:300]
    assert [error["type"] for error in response.json()["detail"]] == ["json_invalid"]
    assert "not valid utf-8" in response.json()["detail"][0]["ctx"]["error"]
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_utf8_encoded_surrogates_are_422_on_provisioning_without_a_secret(client, settings):
    settings.ADMIN_SECRET = "admin-s3cret"

    response = post_raw(client, "/admin/provision", b'{"email": "a' + SURROGATE + b'@b.c"}')

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-8-sig"])
def test_json_in_utf16_utf32_or_with_a_bom_is_still_accepted(tenant, codec):
    raw = json.dumps({"payload": {"text": "caf\u00e9 \U0001f600"}}).encode(codec)

    response = post_raw(tenant.api, "/jobs", raw)

    assert response.status_code == 201, response.content
    detail = tenant.api.get(f"/jobs/{response.json()['job_id']}/detail").json()
    assert detail["payload"] == {"text": "caf\u00e9 \U0001f600"}


# --- In a real worker: anonymous big bodies cost (almost) nothing -------------------


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]


def _post(url: str, path: str, body: bytes, chunked: bool = False) -> int:
    """POST ``body`` as an attacker would, and return the status the server answered.

    The body is sent from a second thread while this one reads: the server
    answers (and gunicorn closes the connection) long before a body it does
    not read has been sent, so a client that sends first and reads later
    sees only a broken pipe.
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
    if chunked:
        pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        data = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
        head += "Transfer-Encoding: chunked\r\n\r\n"
    else:
        data = body
        head += f"Content-Length: {len(body)}\r\n\r\n"

    def send() -> None:
        with suppress(OSError):  # the server stopped reading and closed: expected
            sock.sendall(head.encode() + data)

    sender = threading.Thread(target=send)
    sender.start()
    reply = b""
    with suppress(OSError):
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    sock.close()
    sender.join()
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


@pytest.mark.live_server
def test_anonymous_big_bodies_leave_a_real_workers_memory_almost_unchanged(live_server_factory):
    server = live_server_factory(workers=1, threads=8)
    (worker,) = server.worker_pids()
    body = b'{"queue_name":"x","payload":[' + b"{}," * 4_000_000 + b"{}]}"  # 12 MB
    _post(server.url, "/health", b"")  # warm up
    before = _rss_kib(worker)

    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda c=chunked: statuses.append(_post(server.url, "/jobs", body, c))
        )
        for chunked in (False, False, True, True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [401] * 4
    # Four 12 MB bodies used to grow the worker by about 1.2 GB, for good.
    assert _rss_kib(worker) - before < 40 * 1024
