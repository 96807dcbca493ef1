"""Schema fuzzing: every operation of the served OpenAPI schema, against real gunicorn.

schemathesis loads ``/openapi.json`` from a live server and, for every
operation, sends the schema's examples, its coverage cases (boundary and
malformed values, missing required fields, wrong types) and Hypothesis-
generated data, in positive AND negative mode, with a real bearer token.
Every response must be a non-5xx that conforms to the schema: a declared
status code, a declared content type, a body matching the declared shape.
A finding is fixed in the server or in the schema, never by dropping a check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.live_server]

ADMIN_SECRET = "fuzz-only-admin-secret"  # a throwaway server's secret

# Per operation and phase; bounded so both database legs stay near a minute each.
MAX_EXAMPLES = 25


def _config(token: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {token}"},
            "request-timeout": 30,
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            # The one parameter a stranger cannot know: pass it, so provisioning
            # itself is fuzzed and not only its 403.
            "parameters": {"header.X-Admin-Secret": ADMIN_SECRET},
        }
    )


@pytest.fixture
def api_schema(
    live_server_factory: Callable[..., Any], make_tenant: Callable[..., Any]
) -> schemathesis.BaseSchema:
    server = live_server_factory(
        workers=2,
        threads=4,
        env={"OPENQUEUE_RATE_LIMIT_ENABLED": "false", "ADMIN_SECRET": ADMIN_SECRET},
    )
    token = make_tenant().token
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=_config(token))


schema = schemathesis.pytest.from_fixture("api_schema")


def _without_long_poll(body: Any) -> None:
    """Turn an acceptable ``wait_seconds`` into 0.

    A long-poll lease on an empty queue waits its full time by design, which
    would turn each such case into seconds of idling (and trip the client's
    read timeout). Out-of-range and malformed values are kept: their 422 is
    still checked.
    """
    if not isinstance(body, dict) or "wait_seconds" not in body:
        return
    try:
        acceptable = 0 < float(body["wait_seconds"]) <= 20
    except (TypeError, ValueError, OverflowError):
        acceptable = False
    if acceptable:
        body["wait_seconds"] = 0


@schema.parametrize()
def test_every_operation_conforms_to_the_schema_and_never_answers_5xx(case: Any) -> None:
    _without_long_poll(case.body)
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )
