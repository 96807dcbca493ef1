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

import os
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st

pytestmark = [pytest.mark.live_server, pytest.mark.schema_fuzz]

ADMIN_SECRET = "fuzz-only-admin-secret"  # a throwaway server's secret

# Per operation and phase; bounded so both database legs stay near a minute each.
MAX_EXAMPLES = 25


def _config(token: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            # As the schema's security scheme, so the authentication checks
            # know the token is the real one and probe without it.
            "auth": {"openapi": {"BearerToken": {"bearer": token}}},
            "request-timeout": 30,
            # Deterministic in CI; OPENQUEUE_FUZZ_SEED=<n> explores other cases.
            "seed": int(os.environ.get("OPENQUEUE_FUZZ_SEED", "20261130")),
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
        env={
            "OPENQUEUE_RATE_LIMIT_ENABLED": "false",
            # The fuzzer sends hundreds of made-up tokens from one address: past
            # the budget they would rightly be 429 (ratelimits/tests cover that),
            # where its authentication check expects 401.
            "OPENQUEUE_AUTH_FAILURE_LIMIT_ENABLED": "false",
            "ADMIN_SECRET": ADMIN_SECRET,
        },
    )
    token = make_tenant().token
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=_config(token))


schema = schemathesis.pytest.from_fixture("api_schema")

# The "cron" format of PUT /schedules/{name} (api/schemas.py): valid expressions
# for positive cases, built from each field's values; anything else is 422.
_FIELDS = [
    ("*", "0", "59", "*/15", "5-10", "0,30", "10-40/10"),
    ("*", "0", "23", "*/6", "9-17", "1,13"),
    ("*", "1", "28", "1-15", "*/10"),
    ("*", "1", "12", "jan", "JUL-DEC", "*/3"),
    ("*", "0", "6", "mon-fri", "SUN", "1,3,5"),
]
schemathesis.openapi.format(
    "cron",
    st.one_of(
        st.sampled_from(["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@midnight"]),
        st.tuples(*(st.sampled_from(values) for values in _FIELDS)).map(" ".join),
    ),
)


def _without_long_poll(case: Any) -> None:
    """Turn the ``wait_seconds`` of a schema-valid lease into 0.

    A long-poll lease on an empty queue waits its full time by design, which
    would turn each such case into seconds of idling (and trip the client's
    read timeout). Schema-violating cases are kept as they are: they are
    refused before any wait, and their 422 is still checked.
    """
    body = case.body
    meta = getattr(case, "meta", None)
    negative = meta is not None and meta.generation.mode.is_negative
    if not negative and isinstance(body, dict) and "wait_seconds" in body:
        body["wait_seconds"] = 0


@schema.parametrize()
def test_every_operation_conforms_to_the_schema_and_never_answers_5xx(case: Any) -> None:
    _without_long_poll(case)
    case.call_and_validate()  # every check schemathesis has
