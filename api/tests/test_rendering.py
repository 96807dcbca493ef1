"""The API's JSON: orjson writes what DRF's renderer wrote, and Accept never changes it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.renderers import JSONRenderer

from api.rendering import OrjsonRenderer

DOCUMENTS = {
    "a job": {
        "id": uuid.UUID("0193a4f0-0000-7000-8000-000000000001"),
        "status": "pending",
        "payload": {"name": "Zoë ✓", "nested": [1, 2.5, None, True, {"k": []}]},
        "created_at": datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC),
    },
    "line separators": {"text": "a\u2028b\u2029c"},
    "an integer beyond 64 bits": {"payload": {"big": 2**70, "negative": -(2**65)}},
    "a decimal": {"value": Decimal("1.50")},
    "a list at the top": [{"n": 1}, {"n": 2}],
    "control characters and quotes": {"text": 'tab\tnew\nline "quoted" \\ \x00 \x1f'},
}


@pytest.mark.parametrize("data", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_orjson_writes_the_bytes_drf_wrote(data):
    assert OrjsonRenderer().render(data) == JSONRenderer().render(data)


def test_nothing_renders_as_an_empty_body_as_in_drf():
    assert OrjsonRenderer().render(None) == JSONRenderer().render(None) == b""


def test_a_value_neither_can_write_fails_as_in_drf():
    with pytest.raises(TypeError):
        JSONRenderer().render({"x": object()})
    with pytest.raises(TypeError):
        OrjsonRenderer().render({"x": object()})


@pytest.mark.django_db
@pytest.mark.parametrize("accept", ["text/html", "application/xml", "*/*", "application/json"])
def test_the_api_answers_json_whatever_accept_asks_for(tenant, accept):
    response = tenant.api.get("/jobs", HTTP_ACCEPT=accept)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["items"] == []
