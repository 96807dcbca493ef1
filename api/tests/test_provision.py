"""``POST /admin/provision`` (contract Part B §3.4, Part A.3 #10)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client

from accounts.models import ApiToken, User
from conftest import ApiClient

SECRET = "admin-s3cret"
TOKEN_FORMAT = re.compile(r"^oq_live_[A-Za-z0-9]{40}$")


@pytest.fixture
def admin_secret(db: None, settings: Any) -> str:
    settings.ADMIN_SECRET = SECRET
    return SECRET


def provision(body: Any, secret: str | None = SECRET, **extra: Any) -> Any:
    if secret is not None:
        extra["HTTP_X_ADMIN_SECRET"] = secret
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return Client().post("/admin/provision", data, content_type="application/json", **extra)


def test_provision_is_503_when_admin_secret_is_not_configured(db, settings):
    settings.ADMIN_SECRET = ""

    response = provision({"email": "a@example.com"}, secret="")

    assert response.status_code == 503
    assert response.json() == {"detail": "Admin provisioning is not configured on this server."}
    assert not User.objects.exists()


def test_provision_without_configured_secret_ignores_any_header(db, settings):
    settings.ADMIN_SECRET = ""

    response = provision({"email": "a@example.com"}, secret="anything")

    assert response.status_code == 503


@pytest.mark.parametrize(
    "secret", [None, "", "wrong", SECRET + "x", SECRET[:-1], SECRET.upper(), f" {SECRET}x"]
)
def test_provision_with_missing_or_wrong_secret_is_403(admin_secret, secret):
    response = provision({"email": "a@example.com"}, secret=secret)

    assert response.status_code == 403
    assert response.json() == {"detail": "Invalid or missing X-Admin-Secret header."}
    assert not User.objects.exists()


def test_provision_secret_is_not_a_bearer_token(admin_secret):
    response = provision(
        {"email": "a@example.com"}, secret=None, HTTP_AUTHORIZATION=f"Bearer {SECRET}"
    )

    assert response.status_code == 403


@pytest.mark.parametrize("secret", [None, "wrong", SECRET])
@pytest.mark.parametrize("body", [{}, {"rotate": True}, {"email": None}, {"email": 5}])
def test_provision_without_valid_email_field_is_422_even_without_the_secret(
    admin_secret, secret, body
):
    response = provision(body, secret=secret)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "email"]


def test_provision_missing_email_is_422_even_when_not_configured(db, settings):
    settings.ADMIN_SECRET = ""

    response = provision({}, secret=None)

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "missing"


@pytest.mark.parametrize(
    "email", ["", "not an email", "a@", "@example.com", "a@b@example.com", "a\x00@example.com"]
)
def test_provision_invalid_email_is_422_naming_email(admin_secret, email):
    response = provision({"email": email})

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "email"]]
    assert not User.objects.exists()


def test_provision_creates_user_and_returns_a_working_token(admin_secret):
    response = provision({"email": "new@example.com"})

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["token", "email", "created"]
    assert body["email"] == "new@example.com"
    assert body["created"] is True
    assert TOKEN_FORMAT.match(body["token"])
    user = User.objects.get(email="new@example.com")
    assert user.is_active
    assert not user.has_usable_password()
    assert ApiClient(body["token"]).get("/jobs").status_code == 200


def test_provision_echoes_the_email_as_sent_and_matches_it_case_insensitively_by_domain(
    admin_secret,
):
    first = provision({"email": "Dev@Example.COM"})
    again = provision({"email": "Dev@example.com"})

    assert first.json()["email"] == "Dev@Example.COM"
    assert first.json()["created"] is True
    assert again.json()["email"] == "Dev@example.com"
    assert again.json()["created"] is False
    assert User.objects.count() == 1


def test_provision_again_issues_a_new_token_and_keeps_the_old_one(admin_secret):
    first = provision({"email": "dev@example.com"}).json()

    second = provision({"email": "dev@example.com"}).json()

    assert second["created"] is False
    assert second["token"] != first["token"]
    assert ApiClient(second["token"]).get("/jobs").status_code == 200
    assert ApiClient(first["token"]).get("/jobs").status_code == 200
    assert User.objects.count() == 1
    assert ApiToken.objects.active().count() == 2


def test_provision_with_rotate_revokes_the_old_tokens(admin_secret):
    first = provision({"email": "dev@example.com"}).json()
    second = provision({"email": "dev@example.com"}).json()

    rotated = provision({"email": "dev@example.com", "rotate": True})

    assert rotated.status_code == 200
    assert rotated.json()["created"] is False
    new = ApiClient(rotated.json()["token"])
    assert new.get("/jobs").status_code == 200
    for old in (first["token"], second["token"]):
        response = ApiClient(old).get("/jobs")
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid API token"}


def test_provision_rotate_only_touches_that_users_tokens(admin_secret):
    other = provision({"email": "other@example.com"}).json()
    provision({"email": "dev@example.com"})

    provision({"email": "dev@example.com", "rotate": True})

    assert ApiClient(other["token"]).get("/jobs").status_code == 200


def test_provision_with_rotate_on_a_new_user_creates_it(admin_secret):
    response = provision({"email": "fresh@example.com", "rotate": True})

    assert response.status_code == 200
    assert response.json()["created"] is True
    assert ApiClient(response.json()["token"]).get("/jobs").status_code == 200


def test_provision_reactivates_an_inactive_user(admin_secret):
    user = User.objects.create_user("gone@example.com", is_active=False)

    response = provision({"email": "gone@example.com"})

    assert response.status_code == 200
    assert response.json()["created"] is False
    user.refresh_from_db()
    assert user.is_active
    assert ApiClient(response.json()["token"]).get("/jobs").status_code == 200


def test_provisioned_users_are_separate_tenants(admin_secret):
    alice = ApiClient(provision({"email": "alice@example.com"}).json()["token"])
    bob = ApiClient(provision({"email": "bob@example.com"}).json()["token"])
    job_id = alice.post_json("/jobs", {"payload": {"a": 1}}).json()["job_id"]

    assert alice.get(f"/jobs/{job_id}").status_code == 200
    assert bob.get(f"/jobs/{job_id}").status_code == 404


def test_provision_ignores_unknown_fields_and_a_bearer_header(admin_secret):
    response = provision(
        {"email": "x@example.com", "is_staff": True}, HTTP_AUTHORIZATION="Bearer junk"
    )

    assert response.status_code == 200
    assert User.objects.get(email="x@example.com").is_staff is False


def test_provision_rejects_malformed_json_before_the_secret(admin_secret):
    response = provision(b'{"email": ', secret=None)

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_provision_is_not_rate_limited(admin_secret, settings):
    settings.OPENQUEUE_RATE_LIMIT_ENABLED = True

    statuses = {provision({"email": f"u{i}@example.com"}).status_code for i in range(30)}

    assert statuses == {200}
