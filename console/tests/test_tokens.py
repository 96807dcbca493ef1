"""API tokens in the console: create (shown once), list, revoke with confirmation."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import ApiToken
from accounts.services import issue_token
from conftest import ApiClient
from queues.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return UserFactory()


@pytest.fixture
def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def test_token_pages_require_login():
    response = Client().get("/console/tokens/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_create_token_shows_the_secret_once_with_a_curl_example(user, client_for):
    posted = client_for.post("/console/tokens/", {"name": "billing-worker"})
    # Post/redirect/get: the secret is shown by the GET the redirect leads to.
    assert posted.status_code == 302 and posted["Location"] == "/console/tokens/"
    response = client_for.get("/console/tokens/")
    assert response.status_code == 200
    secret = response.context["secret"]
    body = response.content.decode()
    assert secret in body
    assert "curl -X POST http://testserver/jobs" in body
    assert f"Authorization: Bearer {secret}" in body
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(owner=user)
    assert token.name == "billing-worker" and token.token_hash not in body
    # The secret works, and is never shown again.
    assert ApiClient(secret).get("/jobs").status_code == 200
    listing = client_for.get("/console/tokens/").content.decode()
    assert "billing-worker" in listing and secret not in listing
    assert token.token_hash not in listing


def test_reloading_after_creating_a_token_creates_no_second_one(user, client_for):
    landed = client_for.post("/console/tokens/", {"name": "billing-worker"}, follow=True)
    assert "secret" in landed.context
    # A reload repeats the request that rendered the page: a GET, not the POST.
    assert landed.request["REQUEST_METHOD"] == "GET"
    reloaded = client_for.get(landed.request["PATH_INFO"])

    assert ApiToken.objects.filter(owner=user).count() == 1
    assert "secret" not in reloaded.context
    assert "billing-worker" in reloaded.content.decode()


def test_create_token_needs_a_name(client_for):
    response = client_for.post("/console/tokens/", {"name": "  "})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_list_shows_only_my_tokens(user, client_for):
    issue_token(owner=user, name="mine")
    issue_token(owner=UserFactory(), name="someone-elses")
    body = client_for.get("/console/tokens/").content.decode()
    assert "mine" in body and "someone-elses" not in body


def test_revoke_asks_for_confirmation_then_revokes(user, client_for):
    issued = issue_token(owner=user, name="old")
    url = f"/console/tokens/{issued.token.pk}/revoke/"
    confirm = client_for.get(url)
    assert confirm.status_code == 200 and b"Yes, revoke it" in confirm.content
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is None
    response = client_for.post(url, follow=True)
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    assert any("revoked" in str(m) for m in response.context["messages"])
    assert ApiClient(issued.raw).get("/jobs").status_code == 401


def test_another_users_token_is_404(client_for):
    theirs = issue_token(owner=UserFactory(), name="theirs")
    url = f"/console/tokens/{theirs.token.pk}/revoke/"
    assert client_for.get(url).status_code == 404
    assert client_for.post(url).status_code == 404
    theirs.token.refresh_from_db()
    assert theirs.token.revoked_at is None


def test_token_forms_need_a_csrf_token(user):
    issued = issue_token(owner=user, name="keep")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/console/tokens/", {"name": "x"}).status_code == 403
    assert client.post(f"/console/tokens/{issued.token.pk}/revoke/").status_code == 403
    assert ApiToken.objects.filter(owner=user).count() == 1
