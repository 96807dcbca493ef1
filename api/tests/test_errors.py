"""The HTTP edge: bad input is a 4xx with the contract's envelope, never a 500.

Contract Part B §1 (wire conventions), §1.1 (order of checks) and Part A.3
(#3 no 500 on bad input, #6 size limits). Every request goes through the
whole middleware stack with Django's test client.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from django.db import OperationalError, connections
from django.test import Client

from api.parsing import MAX_JSON_DEPTH
from queues.models import Job, JobStatus
from queues.tests.factories import JobFactory

JOB_ID = "00000000-0000-4000-8000-000000000001"

# Every route that needs a JSON object body, with a body that is valid for it.
BODY_ROUTES = [
    ("/jobs", {"payload": {"a": 1}}),
    ("/jobs/batch", {"jobs": [{"payload": {"a": 1}}]}),
    ("/queues/default/lease", {"worker_id": "w1"}),
    (f"/jobs/{JOB_ID}/ack", {"lease_token": JOB_ID}),
    (f"/jobs/{JOB_ID}/nack", {"lease_token": JOB_ID, "error": "boom"}),
    (f"/jobs/{JOB_ID}/heartbeat", {"lease_token": JOB_ID}),
    ("/admin/provision", {"email": "someone@example.com"}),
]
BODY_PATHS = [path for path, _ in BODY_ROUTES]


def assert_request_id_is_uuid4(value: str) -> None:
    assert str(uuid.UUID(value)) == value
    assert uuid.UUID(value).version == 4


def post_raw(client: Client, path: str, raw: bytes, content_type: str = "application/json"):
    return client.generic("POST", path, raw, content_type=content_type)


def errors_of(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, (response.status_code, response.content[:500])
    assert response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    for error in detail:
        assert {"type", "loc", "msg", "input"} <= error.keys()
        assert error["loc"][0] in ("body", "query", "path")
    return detail


def assert_422_at(response: Any, loc: list[Any], error_type: str | None = None) -> dict:
    """422 whose detail names ``loc`` (and has ``error_type`` there, if given)."""
    detail = errors_of(response)
    matching = [error for error in detail if error["loc"] == loc]
    assert matching, f"no error at {loc}: {detail}"
    if error_type is not None:
        assert error_type in [error["type"] for error in matching], detail
    return matching[0]


@pytest.fixture
def admin_secret(settings: Any) -> str:
    settings.ADMIN_SECRET = "admin-s3cret"
    return settings.ADMIN_SECRET


# --- Body parsing: the first check, before authentication -----------------------


@pytest.mark.parametrize("path", BODY_PATHS)
@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        (b'{"payload": }', 12),
        (b'{"payload": {"a": 1},}', 21),
        (b"{", 1),
        (b"{'payload': {}}", 1),
    ],
)
def test_malformed_json_is_422_json_invalid_with_its_offset(tenant, path, raw, offset):
    response = post_raw(tenant.api, path, raw)

    [error] = errors_of(response)
    assert error["type"] == "json_invalid"
    assert error["loc"] == ["body", offset]
    assert error["msg"] == "JSON decode error"
    assert error["input"] == {}
    assert isinstance(error["ctx"]["error"], str) and error["ctx"]["error"]


@pytest.mark.parametrize("path", BODY_PATHS)
def test_malformed_json_is_422_before_authentication(client, db, path):
    response = post_raw(client, path, b'{"payload": ')

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("path", BODY_PATHS[:-1])
def test_valid_json_without_token_is_401_so_the_parse_really_ran_first(client, db, path):
    response = client.post(path, json.dumps({"payload": {}}), content_type="application/json")

    assert response.status_code == 401


@pytest.mark.parametrize("path", BODY_PATHS)
@pytest.mark.parametrize("raw", [b"", b"   \n", b"null"], ids=["empty", "blank", "null"])
def test_missing_body_is_422_missing_body(tenant, admin_secret, path, raw):
    response = post_raw(tenant.api, path, raw, content_type="application/json")

    assert errors_of(response) == [
        {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
    ]


@pytest.mark.parametrize("path", BODY_PATHS)
@pytest.mark.parametrize("raw", [b"[1]", b"[]", b'"text"', b"5", b"true"])
def test_body_that_is_not_an_object_is_422_model_attributes_type(tenant, admin_secret, path, raw):
    response = post_raw(tenant.api, path, raw)

    assert [error["type"] for error in errors_of(response)] == ["model_attributes_type"]
    assert response.json()["detail"][0]["loc"] == ["body"]


@pytest.mark.parametrize(("path", "body"), BODY_ROUTES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_body_with_non_json_content_type_is_422(tenant, admin_secret, path, body, content_type):
    response = post_raw(tenant.api, path, json.dumps(body).encode(), content_type=content_type)

    assert_422_at(response, ["body"], "model_attributes_type")


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "application/vnd.api+json", "APPLICATION/JSON"],
)
def test_body_with_json_content_type_variants_is_parsed(tenant, content_type):
    response = post_raw(tenant.api, "/jobs", b'{"payload": {"a": 1}}', content_type=content_type)

    assert response.status_code == 201, response.content


@pytest.mark.parametrize("path", BODY_PATHS)
@pytest.mark.parametrize(
    "raw",
    [
        b'{"payload": {"x": NaN}, "jobs": [], "worker_id": "w", "lease_token": "t", "email": "a"}',
        b'{"payload": {"x": Infinity}, "jobs": [], "worker_id": "w", "lease_token": "t"}',
        b'{"payload": {"x": -Infinity}, "jobs": [], "worker_id": "w", "lease_token": "t"}',
        b'{"payload": {"x": 1e400}, "jobs": [], "worker_id": "w", "lease_token": "t"}',
        b'{"payload": {"x": -1e400}, "jobs": [], "worker_id": "w", "lease_token": "t"}',
    ],
    ids=["nan", "infinity", "-infinity", "1e400", "-1e400"],
)
def test_non_finite_numbers_are_422_json_invalid(tenant, admin_secret, path, raw):
    response = post_raw(tenant.api, path, raw)

    assert [error["type"] for error in errors_of(response)] == ["json_invalid"]
    assert Job.objects.count() == 0


@pytest.mark.parametrize("path", BODY_PATHS)
@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"payload": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
    ],
    ids=["unclosed", "closed", "in-payload"],
)
def test_absurdly_nested_json_is_422_not_500(tenant, admin_secret, path, raw):
    response = post_raw(tenant.api, path, raw)

    if path == "/admin/provision":
        # Over OPENQUEUE_PREAUTH_BODY_BYTES: provisioning refuses it unread
        # (api/tests/test_body_limits.py).
        assert response.status_code == 413
    else:
        assert [error["type"] for error in errors_of(response)] == ["json_invalid"]


def _nested_enqueue_body(levels: int) -> bytes:
    """An enqueue body whose containers nest ``levels`` deep, the body object included."""
    inner = levels - 1
    return b'{"payload": ' + b'{"a": ' * inner + b"1" + b"}" * (inner + 1)


def test_payload_nested_up_to_the_limit_is_stored_and_round_trips(tenant):
    raw = _nested_enqueue_body(MAX_JSON_DEPTH)

    response = post_raw(tenant.api, "/jobs", raw)

    assert response.status_code == 201, response.content[:300]
    detail = tenant.api.get(f"/jobs/{response.json()['job_id']}/detail")
    assert detail.json()["payload"] == json.loads(raw)["payload"]


# A lone UTF-16 surrogate escape parses to a str that cannot be encoded as
# UTF-8 (nor stored by PostgreSQL): it used to reach json_size and answer 500.
@pytest.mark.parametrize("path", BODY_PATHS)
@pytest.mark.parametrize(
    "raw",
    [
        b'{"queue_name": "q", "payload": {"a": "\\ud800"}}',
        b'{"queue_name": "q", "payload": {"\\uDFFF": 1}}',
        b'{"jobs": [{"payload": {"a": "x\\udbff"}}], "worker_id": "\\ud800"}',
        b'{"queue_name": "q\\uDC00", "lease_token": "\\ud834", "error": "\\udd1e"}',
    ],
)
def test_lone_surrogate_escapes_are_422_json_invalid_never_500(tenant, admin_secret, path, raw):
    response = post_raw(tenant.api, path, raw)

    assert [error["type"] for error in errors_of(response)] == ["json_invalid"]
    assert Job.objects.count() == 0


def test_a_surrogate_pair_is_one_character_and_round_trips(tenant):
    raw = b'{"payload": {"emoji": "\\ud83d\\ude00", "text": "\\\\ud800 is text here"}}'

    response = post_raw(tenant.api, "/jobs", raw)

    assert response.status_code == 201, response.content
    payload = tenant.api.get(f"/jobs/{response.json()['job_id']}/detail").json()["payload"]
    assert payload == {"emoji": "\U0001f600", "text": "\\ud800 is text here"}


def test_the_text_backslash_u0000_is_not_a_nul_and_is_stored(tenant):
    # The NUL check looks for "\u0000" in the payload's JSON first; the six
    # characters backslash-u-0-0-0-0 (JSON "\\u0000") also show up there and
    # must still pass, byte for byte.
    payload = {"path": "C:\\u0000\\x", "list": ["\\u0000", {"k\\u0000": 1}]}
    response = tenant.api.post_json("/jobs", {"payload": payload})

    assert response.status_code == 201, response.content
    detail = tenant.api.get(f"/jobs/{response.json()['job_id']}/detail")
    assert detail.json()["payload"] == payload


# ~900 levels used to parse and then crash the INSERT's json.dumps (a 500).
@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 600, 890, 895, 900, 905, 950, 5000])
def test_payload_nested_past_the_limit_is_422_never_500(tenant, levels):
    response = post_raw(tenant.api, "/jobs", _nested_enqueue_body(levels))

    assert [error["type"] for error in errors_of(response)] == ["json_invalid"]
    assert Job.objects.count() == 0


@pytest.mark.parametrize("path", BODY_PATHS)
@pytest.mark.parametrize(
    "raw",
    [b'{"payload": {"a": "\xff"}}', b'{"payload": {"\xc3\x28": 1}}', b"\xfe\xff{}"],
    ids=["bad-byte", "bad-sequence", "bad-bom"],
)
def test_invalid_utf8_body_is_422(tenant, admin_secret, path, raw):
    response = post_raw(tenant.api, path, raw)

    assert errors_of(response)[0]["type"] == "json_invalid"


def test_invalid_utf8_with_text_content_type_is_422(tenant):
    response = post_raw(tenant.api, "/jobs", b"\xff\xfe", content_type="text/plain")

    assert_422_at(response, ["body"], "model_attributes_type")


# --- Field validation: wrong types, ranges, NUL characters -------------------------


@pytest.mark.parametrize(
    ("body", "loc", "error_type"),
    [
        ({}, ["body", "payload"], "missing"),
        ({"payload": [1, 2]}, ["body", "payload"], "dict_type"),
        ({"payload": None}, ["body", "payload"], "dict_type"),
        ({"payload": "text"}, ["body", "payload"], "dict_type"),
        ({"payload": {}, "queue_name": 5}, ["body", "queue_name"], "string_type"),
        ({"payload": {}, "queue_name": None}, ["body", "queue_name"], "string_type"),
        ({"payload": {}, "priority": "abc"}, ["body", "priority"], "int_parsing"),
        ({"payload": {}, "priority": None}, ["body", "priority"], "int_type"),
        ({"payload": {}, "priority": 1.5}, ["body", "priority"], "int_from_float"),
        ({"payload": {}, "priority": 2**31}, ["body", "priority"], "less_than_equal"),
        ({"payload": {}, "priority": -(2**31) - 1}, ["body", "priority"], "greater_than_equal"),
        ({"payload": {}, "priority": 10**30}, ["body", "priority"], None),
        ({"payload": {}, "max_retries": -1}, ["body", "max_retries"], "greater_than_equal"),
        ({"payload": {}, "max_retries": 2**31}, ["body", "max_retries"], "less_than_equal"),
        ({"payload": {}, "max_retries": "x"}, ["body", "max_retries"], "int_parsing"),
        ({"payload": {}, "run_at": "not a date"}, ["body", "run_at"], None),
        ({"payload": {}, "run_at": "2030-13-01T00:00:00"}, ["body", "run_at"], None),
        ({"payload": {}, "run_at": "tomorrow"}, ["body", "run_at"], None),
        ({"payload": {}, "run_at": 5}, ["body", "run_at"], "string_type"),
        ({"payload": {}, "run_at": "2030-01-01T10"}, ["body", "run_at"], None),
        ({"payload": {}, "run_at": "20300101"}, ["body", "run_at"], None),
        ({"payload": {}, "run_at": "2030-W01-1"}, ["body", "run_at"], None),
        ({"payload": {}, "queue_name": ""}, ["body", "queue_name"], "value_error"),
        ({"payload": {}, "queue_name": "q" * 256}, ["body", "queue_name"], "value_error"),
        ({"payload": {}, "queue_name": "a/b"}, ["body", "queue_name"], "value_error"),
        ({"payload": {"a": "x\x00y"}}, ["body", "payload"], "value_error"),
        ({"payload": {"a\x00": 1}}, ["body", "payload"], "value_error"),
        ({"payload": {"a": [{"b": ["\x00"]}]}}, ["body", "payload"], "value_error"),
        ({"payload": {}, "queue_name": "q\x00"}, ["body", "queue_name"], "value_error"),
    ],
)
def test_enqueue_rejects_bad_field_with_422_naming_it(tenant, body, loc, error_type):
    response = tenant.api.post_json("/jobs", body)

    assert_422_at(response, loc, error_type)
    assert Job.objects.count() == 0


def test_enqueue_lists_every_bad_field_together(tenant):
    body = {"payload": [], "queue_name": 1, "priority": "x", "max_retries": -1, "run_at": "?"}

    response = tenant.api.post_json("/jobs", body)

    locs = [error["loc"] for error in errors_of(response)]
    for field in ("payload", "queue_name", "priority", "max_retries", "run_at"):
        assert ["body", field] in locs


@pytest.mark.parametrize(
    ("item", "loc", "error_type"),
    [
        ({"payload": []}, ["body", "jobs", 1, "payload"], "dict_type"),
        ({"payload": {"a": "\x00"}}, ["body", "jobs", 1, "payload"], "value_error"),
        ({"payload": {}, "queue_name": "a/b"}, ["body", "jobs", 1, "queue_name"], None),
        ({"payload": {}, "priority": 2**40}, ["body", "jobs", 1, "priority"], None),
        ({"payload": {}, "max_retries": -3}, ["body", "jobs", 1, "max_retries"], None),
        ({"payload": {}, "run_at": "soon"}, ["body", "jobs", 1, "run_at"], None),
    ],
)
def test_batch_rejects_bad_item_with_its_index_and_creates_nothing(tenant, item, loc, error_type):
    response = tenant.api.post_json("/jobs/batch", {"jobs": [{"payload": {"ok": 1}}, item]})

    assert_422_at(response, loc, error_type)
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "loc", "error_type"),
    [
        ({"jobs": {"payload": {}}}, ["body", "jobs"], "list_type"),
        ({"jobs": None}, ["body", "jobs"], "list_type"),
        ({}, ["body", "jobs"], "missing"),
    ],
)
def test_batch_rejects_bad_jobs_list(tenant, body, loc, error_type):
    assert_422_at(tenant.api.post_json("/jobs/batch", body), loc, error_type)


def test_batch_over_max_batch_size_is_422(tenant, settings):
    settings.OPENQUEUE_MAX_BATCH_SIZE = 3

    response = tenant.api.post_json("/jobs/batch", {"jobs": [{"payload": {}}] * 4})

    assert_422_at(response, ["body", "jobs"])
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "loc", "error_type"),
    [
        ({}, ["body", "worker_id"], "missing"),
        ({"worker_id": 5}, ["body", "worker_id"], "string_type"),
        ({"worker_id": "w\x00"}, ["body", "worker_id"], "value_error"),
        ({"worker_id": "w", "lease_seconds": 0}, ["body", "lease_seconds"], None),
        ({"worker_id": "w", "lease_seconds": 3601}, ["body", "lease_seconds"], None),
        ({"worker_id": "w", "lease_seconds": 2**70}, ["body", "lease_seconds"], None),
        ({"worker_id": "w", "lease_seconds": "x"}, ["body", "lease_seconds"], "int_parsing"),
    ],
)
def test_lease_rejects_bad_field_with_422_naming_it(tenant, body, loc, error_type):
    assert_422_at(tenant.api.post_json("/queues/default/lease", body), loc, error_type)


@pytest.mark.parametrize(
    ("queue_segment", "error_type"),
    [("q" * 256, "value_error"), ("a%00b", "value_error")],
    ids=["too-long", "nul"],
)
def test_lease_rejects_bad_queue_name_in_path(tenant, queue_segment, error_type):
    response = tenant.api.post_json(f"/queues/{queue_segment}/lease", {"worker_id": "w"})

    assert_422_at(response, ["path", "queue_name"], error_type)


def test_lease_accepts_queue_name_of_255_characters(tenant):
    JobFactory(owner=tenant.user, queue_name="q" * 255)

    response = tenant.api.post_json(f"/queues/{'q' * 255}/lease", {"worker_id": "w"})

    assert response.status_code == 200
    assert response.json()["job"]["queue_name"] == "q" * 255


@pytest.mark.parametrize(
    ("route", "body", "loc", "error_type"),
    [
        ("ack", {}, ["body", "lease_token"], "missing"),
        ("ack", {"lease_token": 5}, ["body", "lease_token"], "string_type"),
        ("ack", {"lease_token": "t", "result": [1]}, ["body", "result"], None),
        ("ack", {"lease_token": "t", "result": {"a": "\x00"}}, ["body", "result"], None),
        ("nack", {"lease_token": "t"}, ["body", "error"], "missing"),
        ("nack", {"lease_token": "t", "error": None}, ["body", "error"], "string_type"),
        ("nack", {"lease_token": "t", "error": "x\x00y"}, ["body", "error"], "value_error"),
        ("nack", {"lease_token": "t", "error": "e", "retry": "maybe"}, ["body", "retry"], None),
        ("nack", {"lease_token": "t", "error": "e", "retry": None}, ["body", "retry"], None),
        ("heartbeat", {"lease_token": "t", "lease_seconds": 0}, ["body", "lease_seconds"], None),
        ("heartbeat", {"lease_token": "t", "lease_seconds": 1.5}, ["body", "lease_seconds"], None),
    ],
)
def test_lease_operations_reject_bad_field_with_422_naming_it(tenant, route, body, loc, error_type):
    response = tenant.api.post_json(f"/jobs/{JOB_ID}/{route}", body)

    assert_422_at(response, loc, error_type)


def test_nack_retry_maybe_is_bool_parsing_and_null_is_bool_type(tenant):
    base = {"lease_token": "t", "error": "e"}

    maybe = tenant.api.post_json(f"/jobs/{JOB_ID}/nack", {**base, "retry": "maybe"})
    null = tenant.api.post_json(f"/jobs/{JOB_ID}/nack", {**base, "retry": None})

    assert_422_at(maybe, ["body", "retry"], "bool_parsing")
    assert_422_at(null, ["body", "retry"], "bool_type")


@pytest.mark.parametrize("route", ["ack", "nack", "heartbeat"])
@pytest.mark.parametrize("lease_token", ["not-a-uuid", "x\x00y", "", "0" * 1000])
def test_lease_operations_with_non_uuid_token_are_409_not_422(tenant, route, lease_token):
    job = JobFactory(owner=tenant.user, leased=True)

    response = tenant.api.post_json(
        f"/jobs/{job.id}/{route}", {"lease_token": lease_token, "error": "e"}
    )

    assert response.status_code == 409
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/jobs/not-a-uuid"),
        ("get", "/jobs/not-a-uuid/detail"),
        ("post", "/jobs/not-a-uuid/cancel"),
        ("post", "/jobs/1234/ack"),
        ("post", "/jobs/%00/nack"),
        ("post", "/jobs/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz/heartbeat"),
    ],
)
def test_malformed_job_id_in_path_is_422_uuid_parsing(tenant, method, path):
    body = {"lease_token": JOB_ID, "error": "e"}
    response = tenant.api.post_json(path, body) if method == "post" else tenant.api.get(path)

    assert_422_at(response, ["path", "job_id"], "uuid_parsing")


@pytest.mark.parametrize(
    ("query", "loc", "error_type"),
    [
        ("limit=0", ["query", "limit"], "greater_than_equal"),
        ("limit=201", ["query", "limit"], "less_than_equal"),
        ("limit=abc", ["query", "limit"], "int_parsing"),
        ("limit=99999999999999999999999999", ["query", "limit"], None),
        ("offset=-1", ["query", "offset"], "greater_than_equal"),
        ("offset=99999999999999999999999999", ["query", "offset"], None),
        ("status=bogus", ["query", "status"], None),
        ("queue_name=a%00b", ["query", "queue_name"], None),
        ("queue_name=" + "q" * 256, ["query", "queue_name"], None),
    ],
)
def test_list_jobs_rejects_bad_query_with_422_naming_it(tenant, query, loc, error_type):
    assert_422_at(tenant.api.get(f"/jobs?{query}"), loc, error_type)


# --- Lenient coercion that clients rely on ------------------------------------------


@pytest.mark.parametrize(
    ("field", "sent", "stored"),
    [
        ("priority", "5", 5),
        ("priority", 2.0, 2),
        ("priority", " 7 ", 7),
        ("priority", True, 1),
        ("priority", -(2**31), -(2**31)),
        ("priority", 2**31 - 1, 2**31 - 1),
        ("max_retries", "0", 0),
        ("max_retries", 4.0, 4),
    ],
)
def test_enqueue_coerces_lax_integers(tenant, field, sent, stored):
    response = tenant.api.post_json("/jobs", {"payload": {}, field: sent})

    assert response.status_code == 201, response.content
    detail = tenant.api.get(f"/jobs/{response.json()['job_id']}/detail").json()
    assert detail[field] == stored


def test_enqueue_ignores_unknown_fields(tenant):
    response = tenant.api.post_json("/jobs", {"payload": {}, "colour": "blue", "id": JOB_ID})

    assert response.status_code == 201
    assert response.json()["job_id"] != JOB_ID


def test_enqueue_accepts_queue_name_of_255_characters(tenant):
    response = tenant.api.post_json("/jobs", {"payload": {}, "queue_name": "q" * 255})

    assert response.status_code == 201
    assert Job.objects.get().queue_name == "q" * 255


@pytest.mark.parametrize(
    ("retry", "status"),
    [("yes", JobStatus.PENDING), ("1", JobStatus.PENDING), (1, JobStatus.PENDING)]
    + [("no", JobStatus.DEAD), ("false", JobStatus.DEAD), (0, JobStatus.DEAD)],
)
def test_nack_coerces_lax_booleans(tenant, retry, status):
    job = JobFactory(owner=tenant.user, leased=True, max_retries=3)
    body = {"lease_token": str(job.lease_token), "error": "boom", "retry": retry}

    response = tenant.api.post_json(f"/jobs/{job.id}/nack", body)

    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.status == status


# --- Routing: 404, 405, 307 -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/nope"),
        ("get", "/consoles"),
        ("post", "/jobs/x/y/z"),
        ("get", "/jobs/00000000-0000-4000-8000-000000000001/unknown"),
        ("post", "/queues//lease"),
        ("post", "/queues/a%2Fb/lease"),
        ("get", "/api/jobs"),
    ],
)
def test_unknown_route_is_404_not_found_json(tenant, method, path):
    response = getattr(tenant.api, method)(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.content == b'{"detail":"Not Found"}'


@pytest.mark.parametrize("authenticated", [True, False], ids=["token", "no-token"])
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("delete", "/jobs", {"GET", "POST"}),
        ("put", "/jobs", {"GET", "POST"}),
        ("get", f"/jobs/{JOB_ID}/ack", {"POST"}),
        ("get", "/jobs/batch", {"POST"}),
        ("delete", f"/jobs/{JOB_ID}", {"GET"}),
        ("post", f"/jobs/{JOB_ID}", {"GET"}),
        ("get", "/queues/default/lease", {"POST"}),
        ("post", "/health", {"GET"}),
        ("head", "/health", {"GET"}),
        ("get", "/admin/provision", {"POST"}),
        ("options", "/jobs", {"GET", "POST"}),
    ],
)
def test_wrong_method_is_405_with_allow_header(tenant, method, path, allowed, authenticated):
    client = tenant.api if authenticated else Client()

    response = getattr(client, method)(path)

    assert response.status_code == 405, response.content
    if method != "head":
        assert response.json() == {"detail": "Method Not Allowed"}
    assert {m.strip() for m in response["Allow"].split(",")} == allowed


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/jobs/", "http://testserver/jobs"),
        ("/jobs/?limit=5&offset=0", "http://testserver/jobs?limit=5&offset=0"),
        ("/health/", "http://testserver/health"),
        (f"/jobs/{JOB_ID}/", f"http://testserver/jobs/{JOB_ID}"),
    ],
)
def test_trailing_slash_is_307_to_the_route_without_it(client, db, path, location):
    response = client.get(path)

    assert response.status_code == 307
    assert response["Location"] == location


def test_trailing_slash_redirect_keeps_post_and_its_body(tenant):
    response = tenant.api.post_json("/jobs/", {"payload": {}})

    assert response.status_code == 307
    assert response["Location"].endswith("/jobs")
    assert Job.objects.count() == 0


def test_slash_on_an_unknown_route_stays_404(client, db):
    response = client.get("/nope/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


# --- X-Request-ID on every kind of response --------------------------------------------


def _ok(tenant, headers):
    return tenant.api.get("/health", headers=headers)


def _unauthorized(tenant, headers):
    return Client().get("/jobs", headers=headers)


def _not_found(tenant, headers):
    return tenant.api.get("/nope", headers=headers)


def _not_allowed(tenant, headers):
    return tenant.api.delete("/jobs", headers=headers)


def _too_large(tenant, headers, settings):
    settings.OPENQUEUE_MAX_REQUEST_BYTES = 10
    return tenant.api.post_json("/jobs", {"payload": {"a": "b" * 20}}, headers=headers)


def _invalid(tenant, headers):
    return post_raw_with_headers(tenant.api, "/jobs", b"{", headers)


def _rate_limited(tenant, headers, settings):
    settings.OPENQUEUE_RATE_LIMIT_ENABLED = True
    settings.OPENQUEUE_RATE_LIMITS = {**settings.OPENQUEUE_RATE_LIMITS, "list_jobs": (0.001, 1)}
    assert tenant.api.get("/jobs").status_code == 200
    return tenant.api.get("/jobs", headers=headers)


def _preflight(tenant, headers):
    return Client().options(
        "/jobs",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            **headers,
        },
    )


def post_raw_with_headers(client: Client, path: str, raw: bytes, headers: dict[str, str]):
    return client.generic("POST", path, raw, content_type="application/json", headers=headers)


REQUEST_ID_SCENARIOS = [
    (200, _ok),
    (401, _unauthorized),
    (404, _not_found),
    (405, _not_allowed),
    (413, _too_large),
    (422, _invalid),
    (429, _rate_limited),
    (200, _preflight),
]


def _run(scenario, tenant, headers, settings):
    if scenario in (_too_large, _rate_limited):
        return scenario(tenant, headers, settings)
    return scenario(tenant, headers)


@pytest.mark.parametrize(("status", "scenario"), REQUEST_ID_SCENARIOS)
def test_request_id_is_echoed_stripped(tenant, settings, status, scenario):
    response = _run(scenario, tenant, {"X-Request-ID": "  trace-42 abc  "}, settings)

    assert response.status_code == status
    assert response["X-Request-ID"] == "trace-42 abc"


@pytest.mark.parametrize(("status", "scenario"), REQUEST_ID_SCENARIOS)
@pytest.mark.parametrize("headers", [{}, {"X-Request-ID": "   "}], ids=["absent", "blank"])
def test_request_id_is_a_fresh_uuid4_when_absent(tenant, settings, status, scenario, headers):
    first = _run(scenario, tenant, headers, settings)

    assert first.status_code == status
    assert_request_id_is_uuid4(first["X-Request-ID"])
    assert _ok(tenant, headers)["X-Request-ID"] != first["X-Request-ID"]


@pytest.mark.parametrize("sent", ["a\nb", "x" * 201, "é"], ids=["newline", "too-long", "non-ascii"])
def test_request_id_unsafe_value_is_replaced_by_a_uuid4(tenant, sent):
    response = tenant.api.get("/health", HTTP_X_REQUEST_ID=sent)

    assert_request_id_is_uuid4(response["X-Request-ID"])


# --- Size limits: 413 with a JSON detail naming the setting -----------------------------


@pytest.mark.parametrize(("path", "body"), BODY_ROUTES)
def test_request_body_over_max_request_bytes_is_413_json(
    tenant, admin_secret, settings, path, body
):
    settings.OPENQUEUE_MAX_REQUEST_BYTES = 64
    padded = {**body, "padding": "x" * 100}

    response = tenant.api.post_json(path, padded, HTTP_X_ADMIN_SECRET=admin_secret)

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "OPENQUEUE_MAX_REQUEST_BYTES" in response.json()["detail"]
    assert Job.objects.count() == 0


def test_request_body_over_max_request_bytes_is_413_even_without_token(client, db, settings):
    settings.OPENQUEUE_MAX_REQUEST_BYTES = 10

    response = client.post("/jobs", "x" * 11, content_type="application/json")

    assert response.status_code == 413
    assert "OPENQUEUE_MAX_REQUEST_BYTES" in response.json()["detail"]


def test_request_body_at_max_request_bytes_is_accepted(tenant, settings):
    raw = json.dumps({"payload": {"a": 1}}).encode()
    settings.OPENQUEUE_MAX_REQUEST_BYTES = len(raw)

    assert post_raw(tenant.api, "/jobs", raw).status_code == 201


def test_request_body_over_django_upload_limit_is_413_json_not_html_400(tenant, settings):
    # Django's own backstop (DATA_UPLOAD_MAX_MEMORY_SIZE) must not surface as its HTML 400.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 32

    response = tenant.api.post_json("/jobs", {"payload": {"a": "x" * 100}})

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "OPENQUEUE_MAX_REQUEST_BYTES" in response.json()["detail"]


def test_enqueue_payload_over_limit_is_413_naming_the_setting(tenant, settings):
    settings.OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES = 100
    # {"x":"aaa..."} is 8 bytes of JSON around the string.
    at_limit = tenant.api.post_json("/jobs", {"payload": {"x": "a" * 92}})
    over_limit = tenant.api.post_json("/jobs", {"payload": {"x": "a" * 93}})

    assert at_limit.status_code == 201
    assert over_limit.status_code == 413
    assert "OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES" in over_limit.json()["detail"]
    assert Job.objects.count() == 1


def test_enqueue_payload_limit_counts_utf8_bytes_not_characters(tenant, settings):
    settings.OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES = 100

    response = tenant.api.post_json("/jobs", {"payload": {"x": "日" * 40}})  # 8 + 120 bytes

    assert response.status_code == 413


def test_batch_item_payload_over_limit_is_413_and_creates_nothing(tenant, settings):
    settings.OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES = 100
    jobs = [{"payload": {"x": 1}}, {"payload": {"x": 2}}, {"payload": {"x": "a" * 200}}]

    response = tenant.api.post_json("/jobs/batch", {"jobs": jobs})

    assert response.status_code == 413
    assert "OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES" in response.json()["detail"]
    assert Job.objects.count() == 0


def test_ack_result_over_limit_is_413_and_job_stays_leased(tenant, settings):
    settings.OPENQUEUE_MAX_RESULT_PAYLOAD_BYTES = 50
    job = JobFactory(owner=tenant.user, leased=True)
    body = {"lease_token": str(job.lease_token), "result": {"x": "a" * 100}}

    response = tenant.api.post_json(f"/jobs/{job.id}/ack", body)

    assert response.status_code == 413
    assert "OPENQUEUE_MAX_RESULT_PAYLOAD_BYTES" in response.json()["detail"]
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING


def test_nack_error_over_limit_is_413_and_job_stays_leased(tenant, settings):
    settings.OPENQUEUE_MAX_ERROR_TEXT_BYTES = 50
    job = JobFactory(owner=tenant.user, leased=True)
    body = {"lease_token": str(job.lease_token), "error": "e" * 51}

    response = tenant.api.post_json(f"/jobs/{job.id}/nack", body)

    assert response.status_code == 413
    assert "OPENQUEUE_MAX_ERROR_TEXT_BYTES" in response.json()["detail"]
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING


# --- Encoding -----------------------------------------------------------------------------


def test_responses_are_compact_json_with_raw_non_ascii(tenant):
    created = tenant.api.post_json("/jobs", {"payload": {"ü": "日本"}, "queue_name": "café"})
    job_id = created.json()["job_id"]

    detail = tenant.api.get(f"/jobs/{job_id}/detail")

    assert detail["Content-Type"] == "application/json"
    assert detail.json()["payload"] == {"ü": "日本"}
    assert '"payload":{"ü":"日本"}'.encode() in detail.content
    assert '"queue_name":"café"'.encode() in detail.content
    assert b"\\u" not in detail.content
    assert b'": ' not in detail.content and b", " not in detail.content


def test_validation_errors_are_compact_json_with_raw_non_ascii(tenant):
    response = tenant.api.post_json("/jobs", {"payload": ["ü"]})

    assert response.status_code == 422
    assert '"input":["ü"]'.encode() in response.content
    assert b": " not in response.content


def test_not_found_and_413_are_compact_json(tenant, settings):
    settings.OPENQUEUE_MAX_REQUEST_BYTES = 1

    too_large = tenant.api.post_json("/jobs", {"payload": {}})
    not_found = tenant.api.get("/nope")

    assert too_large.content.startswith(b'{"detail":"')
    assert not_found.content == b'{"detail":"Not Found"}'


# --- CORS ---------------------------------------------------------------------------------


def test_cors_simple_request_gets_allow_origin(tenant):
    response = tenant.api.get("/jobs", headers={"Origin": "https://app.example.com"})

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] in ("*", "https://app.example.com")
    assert "X-Request-ID" in response["Access-Control-Expose-Headers"]


def test_cors_preflight_answers_200_without_token(client, db):
    response = client.options(
        "/jobs",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] in ("*", "https://app.example.com")
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "authorization" in response["Access-Control-Allow-Headers"].lower()
    assert response["Access-Control-Max-Age"] == "600"


def test_request_without_origin_gets_no_cors_headers(tenant):
    response = tenant.api.get("/jobs")

    assert "Access-Control-Allow-Origin" not in response


ORIGIN = {"Origin": "https://evil.example"}


@pytest.mark.parametrize("path", ["/jobs", "/dashboard/queues", "/health", "/openapi.json"])
def test_cors_on_the_api_never_allows_credentials(tenant, path):
    response = tenant.api.get(path, headers=ORIGIN)

    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/console/", "/console/tokens/", "/admin/", "/admin/login/"]
)
def test_browser_pages_send_no_cors_headers(admin_client, path):
    response = admin_client.get(path, headers=ORIGIN)
    preflight = admin_client.options(
        path, headers={**ORIGIN, "Access-Control-Request-Method": "POST"}
    )

    for answer in (response, preflight):
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")]


def test_a_listed_origin_is_echoed_and_others_get_nothing(tenant, settings):
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]

    listed = tenant.api.get("/jobs", headers={"Origin": "https://app.example.com"})
    other = tenant.api.get("/jobs", headers=ORIGIN)

    assert listed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Access-Control-Allow-Credentials" not in listed
    assert "Access-Control-Allow-Origin" not in other


# --- Operational endpoints ---------------------------------------------------------------


def test_health_is_ok_without_auth_or_database(client):
    # No ``db`` fixture: pytest-django fails the test if /health touches the database.
    response = client.get("/health")

    assert response.status_code == 200
    assert response.content == b'{"status":"ok"}'


def test_ready_is_200_when_the_database_answers(client, db):
    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_ready_is_503_when_the_database_fails(client, db, monkeypatch):
    def broken_cursor(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        # Undone before the db fixture's teardown, which needs a working cursor.
        patch.setattr(type(connections["default"]), "cursor", broken_cursor)
        response = client.get("/ready")

    assert response.status_code == 503
    assert response.json() == {"detail": "Database not ready"}


def test_metrics_is_prometheus_text_without_auth(client, db):
    client.get("/health")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"# TYPE " in response.content
    assert b"# HELP " in response.content


CONTRACT_PATHS = [
    "/jobs",
    "/jobs/batch",
    "/jobs/{job_id}",
    "/jobs/{job_id}/detail",
    "/jobs/{job_id}/cancel",
    "/queues/{queue_name}/lease",
    "/jobs/{job_id}/ack",
    "/jobs/{job_id}/nack",
    "/jobs/{job_id}/heartbeat",
    "/dashboard/queues",
    "/admin/provision",
    "/health",
    "/ready",
]


@pytest.fixture
def openapi(client: Client, db: None) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/")
    return json.loads(response.content)


def test_openapi_lists_every_contract_path(openapi):
    assert openapi["info"]["title"] == "OpenQueue"
    missing = [path for path in CONTRACT_PATHS if path not in openapi["paths"]]
    assert missing == []


def _request_schema(openapi: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    content = openapi["paths"][path][method]["requestBody"]["content"]["application/json"]
    schema = content["schema"]
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


@pytest.mark.parametrize(
    ("path", "fields", "required"),
    [
        ("/jobs", {"payload", "queue_name", "priority", "max_retries", "run_at"}, {"payload"}),
        ("/jobs/batch", {"jobs"}, {"jobs"}),
        (
            "/queues/{queue_name}/lease",
            {"worker_id", "lease_seconds", "wait_seconds"},
            {"worker_id"},
        ),
        ("/jobs/{job_id}/ack", {"lease_token", "result"}, {"lease_token"}),
        ("/jobs/{job_id}/nack", {"lease_token", "error", "retry"}, {"lease_token", "error"}),
        ("/jobs/{job_id}/heartbeat", {"lease_token", "lease_seconds"}, {"lease_token"}),
        ("/admin/provision", {"email", "rotate"}, {"email"}),
    ],
)
def test_openapi_request_schemas_have_the_real_fields(openapi, path, fields, required):
    schema = _request_schema(openapi, path)

    assert set(schema["properties"]) == fields
    assert set(schema.get("required", [])) == required


def test_openapi_enqueue_request_fields_are_typed(openapi):
    schema = _request_schema(openapi, "/jobs")

    assert schema["properties"]["payload"]["type"] == "object"
    assert schema["properties"]["queue_name"]["type"] == "string"
    # Integers, and the lax forms the server takes for them (api/lax.py).
    for name in ("priority", "max_retries"):
        branches = schema["properties"][name]["anyOf"]
        assert branches[0]["type"] == "integer"
        assert {branch["type"] for branch in branches} == {"integer", "string", "boolean"}


def test_docs_is_html_served_from_local_static_files_only(client, db):
    response = client.get("/docs")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html), html
    for cdn in ("cdn", "unpkg", "jsdelivr", "cloudflare", "googleapis"):
        assert cdn not in html.lower()
    assets = re.findall(r"(?:src|href)\s*=\s*[\"']([^\"']+\.(?:js|css))[\"']", html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/"), asset
        assert client.get(asset).status_code == 200, asset


def test_docs_points_swagger_at_the_local_openapi_document(client, db):
    html = client.get("/docs").content.decode()

    assert "/openapi.json" in html


# --- The parse never depends on the route's success path ------------------------------------


@pytest.mark.parametrize("path", BODY_PATHS[:-1])
def test_valid_body_for_an_unknown_job_is_not_a_validation_error(tenant, path):
    body = dict(BODY_ROUTES)[path]

    response = tenant.api.post_json(path, body)

    assert response.status_code in (200, 201, 409), response.content


@pytest.mark.parametrize(
    ("run_at", "due_now"),
    [("0001-01-01T00:00:00+14:00", True), ("9999-12-31T23:00:00-14:00", False)],
)
def test_run_at_beyond_what_utc_can_hold_is_the_earliest_or_latest_time(tenant, run_at, due_now):
    # Valid RFC 3339 date-times whose UTC time falls before year 1 or after
    # 9999: "in the past" and "never", not an error (the schema allows them).
    response = tenant.api.post_json(
        "/jobs", {"queue_name": "edge", "payload": {}, "run_at": run_at}
    )

    assert response.status_code == 201
    leased = tenant.api.post_json("/queues/edge/lease", {"worker_id": "w"}).json()
    assert (leased is not None) is due_now
