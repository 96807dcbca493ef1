"""Bearer-token authentication (contract Part A.3 #1, #11; Part B §1.1, §6)."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.services import issue_token, revoke_token
from accounts.tokens import generate_token, hash_token
from conftest import ApiClient

TOKEN_FORMAT = re.compile(r"^oq_live_[A-Za-z0-9]{40}$")


def assert_401(response: Any, detail: str) -> None:
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response["WWW-Authenticate"] == "Bearer"


# --- The Authorization header ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/jobs"),
        ("post", "/jobs"),
        ("post", "/jobs/batch"),
        ("get", "/jobs/00000000-0000-4000-8000-000000000001"),
        ("get", "/jobs/00000000-0000-4000-8000-000000000001/detail"),
        ("post", "/jobs/00000000-0000-4000-8000-000000000001/cancel"),
        ("post", "/queues/default/lease"),
        ("post", "/jobs/00000000-0000-4000-8000-000000000001/ack"),
        ("post", "/jobs/00000000-0000-4000-8000-000000000001/nack"),
        ("post", "/jobs/00000000-0000-4000-8000-000000000001/heartbeat"),
        ("get", "/dashboard/queues"),
    ],
)
def test_api_route_without_authorization_is_401_not_authenticated(db, method, path):
    response = getattr(Client(), method)(path)

    assert_401(response, "Not authenticated")


def test_api_route_with_bad_body_and_no_token_is_401_not_422(db):
    # Validation runs after authentication (contract §1.1); only malformed JSON comes first.
    response = Client().post("/jobs", {"payload": []}, content_type="application/json")

    assert_401(response, "Not authenticated")


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("Basic xyz", "Invalid authentication credentials"),
        ("Token abc", "Invalid authentication credentials"),
        ("Bearer", "Not authenticated"),
        ("Bearer ", "Not authenticated"),
        ("Bearer      ", "Not authenticated"),
        ("   ", "Not authenticated"),
        ("", "Not authenticated"),
    ],
)
def test_malformed_authorization_header_is_401(db, header, detail):
    response = Client(HTTP_AUTHORIZATION=header).get("/jobs")

    assert_401(response, detail)


def test_basic_scheme_with_a_valid_token_is_still_401(tenant):
    response = Client(HTTP_AUTHORIZATION=f"Basic {tenant.token}").get("/jobs")

    assert_401(response, "Invalid authentication credentials")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive(tenant, scheme):
    response = Client(HTTP_AUTHORIZATION=f"{scheme} {tenant.token}").get("/jobs")

    assert response.status_code == 200


def test_token_surrounded_by_whitespace_works(tenant):
    response = Client(HTTP_AUTHORIZATION=f"  Bearer   {tenant.token}  ").get("/jobs")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "token",
    ["oq_live_" + "x" * 40, "nope", "oq_live_", "é" * 10],
    ids=["well-formed", "short", "prefix-only", "non-ascii"],
)
def test_unknown_token_is_401_invalid_api_token(db, token):
    response = ApiClient(token).get("/jobs")

    assert_401(response, "Invalid API token")


def test_token_with_an_extra_character_is_401(tenant):
    response = ApiClient(tenant.token + "x").get("/jobs")

    assert_401(response, "Invalid API token")


def test_revoked_token_is_401_on_its_next_request(tenant):
    assert tenant.api.get("/jobs").status_code == 200

    assert revoke_token(token=ApiToken.objects.get(owner=tenant.user)) is True

    assert_401(tenant.api.get("/jobs"), "Invalid API token")


def test_revoking_one_token_keeps_the_others_working(tenant):
    second = issue_token(owner=tenant.user, name="second")

    revoke_token(token=second.token)

    assert tenant.api.get("/jobs").status_code == 200
    assert_401(ApiClient(second.raw).get("/jobs"), "Invalid API token")


def test_inactive_user_is_403_user_is_inactive(make_tenant):
    tenant = make_tenant(is_active=False)

    response = tenant.api.get("/jobs")

    assert response.status_code == 403
    assert response.json() == {"detail": "User is inactive"}


def test_deactivating_a_user_locks_out_their_token_at_once(tenant):
    assert tenant.api.get("/jobs").status_code == 200

    User.objects.filter(pk=tenant.user.pk).update(is_active=False)

    assert tenant.api.get("/jobs").status_code == 403


def test_inactive_user_cannot_enqueue(make_tenant):
    from queues.models import Job

    tenant = make_tenant(is_active=False)

    response = tenant.api.post_json("/jobs", {"payload": {}})

    assert response.status_code == 403
    assert Job.objects.count() == 0


# --- Token format and storage ------------------------------------------------------------


def test_generated_tokens_have_the_contract_format_and_differ():
    tokens = {generate_token() for _ in range(50)}

    assert len(tokens) == 50
    for token in tokens:
        assert TOKEN_FORMAT.match(token), token


def test_issued_token_is_stored_only_as_its_sha256_hex(tenant, settings):
    settings.OPENQUEUE_TOKEN_HMAC_SECRET = ""
    issued = issue_token(owner=tenant.user, name="ci")

    row = ApiToken.objects.get(pk=issued.token.pk)

    assert TOKEN_FORMAT.match(issued.raw)
    assert row.token_hash == hashlib.sha256(issued.raw.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", row.token_hash)
    assert issued.raw.startswith(row.prefix) and len(row.prefix) < 16


def test_raw_token_appears_in_no_column_of_any_row(tenant):
    tables = [ApiToken._meta.db_table, User._meta.db_table]
    found = []
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                found += [value for value in row if tenant.token in str(value)]

    assert found == []
    assert ApiToken.objects.filter(owner=tenant.user).count() == 1


def test_issued_token_is_stored_as_hmac_sha256_when_a_secret_is_set(db, make_tenant, settings):
    settings.OPENQUEUE_TOKEN_HMAC_SECRET = "pepper-123"
    tenant = make_tenant()

    row = ApiToken.objects.get(owner=tenant.user)

    expected = hmac.new(b"pepper-123", tenant.token.encode(), hashlib.sha256).hexdigest()
    assert row.token_hash == expected
    assert row.token_hash != hashlib.sha256(tenant.token.encode()).hexdigest()
    assert tenant.api.get("/jobs").status_code == 200


def test_token_issued_in_sha256_mode_fails_in_hmac_mode(tenant, settings):
    settings.OPENQUEUE_TOKEN_HMAC_SECRET = ""
    assert tenant.api.get("/jobs").status_code == 200

    settings.OPENQUEUE_TOKEN_HMAC_SECRET = "pepper-123"

    assert_401(tenant.api.get("/jobs"), "Invalid API token")


def test_token_issued_in_hmac_mode_fails_in_sha256_mode_and_with_another_secret(
    make_tenant, settings
):
    settings.OPENQUEUE_TOKEN_HMAC_SECRET = "pepper-123"
    tenant = make_tenant()
    assert tenant.api.get("/jobs").status_code == 200

    settings.OPENQUEUE_TOKEN_HMAC_SECRET = ""
    plain = tenant.api.get("/jobs")
    settings.OPENQUEUE_TOKEN_HMAC_SECRET = "pepper-456"
    other = tenant.api.get("/jobs")

    assert_401(plain, "Invalid API token")
    assert_401(other, "Invalid API token")


def test_hash_of_a_row_inserted_by_hand_authenticates(db, settings):
    # Deployments and the original tests insert hash rows directly (contract §4.1, §6).
    settings.OPENQUEUE_TOKEN_HMAC_SECRET = "openqueue-test-secret"
    user = User.objects.create_user("legacy@example.com")
    raw = "oq_test_integration_token"
    expected = hmac.new(b"openqueue-test-secret", raw.encode(), hashlib.sha256).hexdigest()
    ApiToken.objects.create(owner=user, name="legacy", prefix=raw[:12], token_hash=expected)

    assert hash_token(raw) == expected
    assert ApiClient(raw).get("/jobs").status_code == 200


# --- last_used_at: written at most once a minute -----------------------------------------


def _api_token_updates(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith("UPDATE") and "api_tokens" in q["sql"]
    ]


def test_last_used_at_is_written_on_first_use(tenant):
    row = ApiToken.objects.get(owner=tenant.user)
    assert row.last_used_at is None
    before = timezone.now()

    assert tenant.api.get("/jobs").status_code == 200

    row.refresh_from_db()
    assert row.last_used_at is not None
    assert before <= row.last_used_at <= timezone.now()


def test_last_used_at_is_not_rewritten_within_the_same_minute(tenant):
    with CaptureQueriesContext(connection) as first:
        tenant.api.get("/jobs")
    written = ApiToken.objects.get(owner=tenant.user).last_used_at

    with CaptureQueriesContext(connection) as second:
        assert tenant.api.get("/jobs").status_code == 200

    assert len(_api_token_updates(first)) == 1
    assert _api_token_updates(second) == []
    assert ApiToken.objects.get(owner=tenant.user).last_used_at == written


def test_last_used_at_is_rewritten_after_a_minute(tenant):
    tenant.api.get("/jobs")
    old = timezone.now() - timedelta(minutes=2)
    ApiToken.objects.filter(owner=tenant.user).update(last_used_at=old)

    with CaptureQueriesContext(connection) as queries:
        assert tenant.api.get("/jobs").status_code == 200

    assert len(_api_token_updates(queries)) == 1
    assert ApiToken.objects.get(owner=tenant.user).last_used_at > old + timedelta(minutes=1)


def test_rejected_token_does_not_touch_last_used_at(tenant):
    ApiToken.objects.filter(owner=tenant.user).update(revoked_at=timezone.now())

    with CaptureQueriesContext(connection) as queries:
        assert tenant.api.get("/jobs").status_code == 401

    assert _api_token_updates(queries) == []
    assert ApiToken.objects.get(owner=tenant.user).last_used_at is None


# --- Rate limits and authentication ------------------------------------------------------


def test_rejected_token_does_not_consume_rate_limit_tokens(tenant, settings):
    settings.OPENQUEUE_RATE_LIMIT_ENABLED = True
    settings.OPENQUEUE_RATE_LIMITS = {**settings.OPENQUEUE_RATE_LIMITS, "list_jobs": (0.001, 1)}
    revoked = issue_token(owner=tenant.user, name="old")
    revoke_token(token=revoked.token)
    revoked_client = ApiClient(revoked.raw)

    for _ in range(5):
        assert revoked_client.get("/jobs").status_code == 401
        assert Client().get("/jobs").status_code == 401
        assert ApiClient("oq_live_" + "y" * 40).get("/jobs").status_code == 401

    # The bucket (burst 1) is still full: the first real request passes, the next does not.
    assert tenant.api.get("/jobs").status_code == 200
    assert tenant.api.get("/jobs").status_code == 429


def test_inactive_user_does_not_consume_rate_limit_tokens(make_tenant, settings):
    settings.OPENQUEUE_RATE_LIMIT_ENABLED = True
    settings.OPENQUEUE_RATE_LIMITS = {**settings.OPENQUEUE_RATE_LIMITS, "list_jobs": (0.001, 1)}
    tenant = make_tenant(is_active=False)
    for _ in range(3):
        assert tenant.api.get("/jobs").status_code == 403

    User.objects.filter(pk=tenant.user.pk).update(is_active=True)

    assert tenant.api.get("/jobs").status_code == 200
    assert tenant.api.get("/jobs").status_code == 429


def test_admin_revoke_action_refuses_the_token_on_its_next_request(admin_client, tenant):
    from accounts.models import ApiToken

    token = ApiToken.objects.get(owner=tenant.user)
    selection = {"action": "revoke_selected", "_selected_action": [token.pk]}
    # First an "are you sure?" page that names the token; nothing changes yet.
    page = admin_client.post("/admin/accounts/apitoken/", selection)
    assert page.status_code == 200
    assert token.prefix in page.content.decode()
    assert "cannot be restored" in page.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is None
    assert tenant.api.get("/jobs").status_code == 200

    response = admin_client.post("/admin/accounts/apitoken/", {**selection, "confirm": "yes"})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert tenant.api.get("/jobs").status_code == 401
