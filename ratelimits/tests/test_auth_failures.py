"""Brute force: failed authentications are budgeted per client address (and account).

Bearer tokens are looked up first and a valid one is never refused; a
failed lookup spends the address's budget, and past it failures are 429.
Passwords and the admin secret spend a try before they are checked (per
address and account for passwords), and a right one gives it back.
"""

from __future__ import annotations

import pytest

from accounts.tokens import generate_token
from conftest import ApiClient
from ratelimits.models import RateLimitBucket

pytestmark = pytest.mark.django_db


@pytest.fixture
def limited(settings):
    settings.OPENQUEUE_AUTH_FAILURE_LIMIT_ENABLED = True
    settings.OPENQUEUE_AUTH_FAILURE_LIMIT = (0.001, 3)  # 3 failures, then ~17 min to refill one


def guess(address="203.0.113.7"):
    return ApiClient(generate_token(), REMOTE_ADDR=address).get("/jobs")


def test_failed_authentications_over_the_burst_are_429_with_retry_after(limited):
    assert [guess().status_code for _ in range(3)] == [401, 401, 401]
    blocked = guess()
    assert blocked.status_code == 429
    assert blocked.json() == {"detail": "Too many failed authentication attempts"}
    assert int(blocked["Retry-After"]) >= 1


def test_a_valid_token_is_never_refused_for_others_failures_on_its_address(limited, tenant):
    for _ in range(5):
        guess()
    assert guess().status_code == 429

    # A stale token in a neighbour's worker (the same NAT) must not lock this one out.
    right = ApiClient(tenant.token, REMOTE_ADDR="203.0.113.7").get("/jobs")
    assert right.status_code == 200


def test_failures_from_one_address_do_not_block_another(limited, tenant):
    for _ in range(4):
        guess("203.0.113.7")
    assert ApiClient(tenant.token, REMOTE_ADDR="198.51.100.1").get("/jobs").status_code == 200
    assert guess("198.51.100.1").status_code == 401


def test_successful_authentications_spend_nothing(limited, tenant):
    api = ApiClient(tenant.token, REMOTE_ADDR="203.0.113.7")
    assert all(api.get("/jobs").status_code == 200 for _ in range(10))
    assert not RateLimitBucket.objects.filter(key__startswith="authfail:").exists()


def test_missing_header_is_not_counted_as_a_guess(limited):
    for _ in range(5):
        assert ApiClient(REMOTE_ADDR="203.0.113.7").get("/jobs").status_code == 401
    assert guess().status_code == 401


def test_failure_limit_can_be_switched_off(limited, settings):
    settings.OPENQUEUE_AUTH_FAILURE_LIMIT_ENABLED = False
    assert {guess().status_code for _ in range(6)} == {401}


def test_provision_wrong_secrets_spend_a_budget_then_429(limited, settings):
    settings.ADMIN_SECRET = "correct-horse"
    client = ApiClient(REMOTE_ADDR="203.0.113.9")

    def provision(secret):
        return client.post_json(
            "/admin/provision", {"email": "a@example.com"}, HTTP_X_ADMIN_SECRET=secret
        )

    assert [provision("wrong").status_code for _ in range(3)] == [403, 403, 403]
    # Checked before the secret is compared: past the budget even the right one is refused.
    blocked = provision("correct-horse")
    assert blocked.status_code == 429 and "Retry-After" in blocked
    # Its own budget: bearer tokens from the address are not affected.
    assert ApiClient(generate_token(), REMOTE_ADDR="203.0.113.9").get("/jobs").status_code == 401


def test_provision_with_the_right_secret_spends_nothing(limited, settings):
    settings.ADMIN_SECRET = "correct-horse"
    client = ApiClient(REMOTE_ADDR="203.0.113.9")
    for n in range(5):
        response = client.post_json(
            "/admin/provision", {"email": f"u{n}@example.com"}, HTTP_X_ADMIN_SECRET="correct-horse"
        )
        assert response.status_code == 200


def test_provision_compares_the_secret_in_constant_time(settings, monkeypatch):
    import hmac

    settings.ADMIN_SECRET = "correct-horse"
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("api.provision.hmac.compare_digest", spy)
    response = ApiClient().post_json(
        "/admin/provision", {"email": "a@example.com"}, HTTP_X_ADMIN_SECRET="guess"
    )
    assert response.status_code == 403
    assert calls == [(b"guess", b"correct-horse")]


# --- Password sign-in (console and admin) -------------------------------------------


def sign_in(path: str, email: str, password: str, address: str = "203.0.113.7"):
    from django.test import Client

    client = Client(REMOTE_ADDR=address)
    response = client.post(path, {"username": email, "password": password})
    return client, response


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_wrong_passwords_spend_the_budget_then_even_the_right_one_is_refused(limited, path):
    from queues.tests.factories import UserFactory

    user = UserFactory(email="ops@example.com", is_staff=True)
    user.set_password("the right password")
    user.save()

    for _ in range(3):
        _, response = sign_in(path, "ops@example.com", "a wrong guess")
        assert response.status_code == 200  # the form again, with its error
        assert b"Too many failed sign-in attempts" not in response.content

    client, response = sign_in(path, "ops@example.com", "the right password")

    assert response.status_code == 200
    assert b"Too many failed sign-in attempts for this account" in response.content
    assert "_auth_user_id" not in client.session  # not signed in

    # Another address is not affected, and a right password spends nothing.
    client, response = sign_in(path, "ops@example.com", "the right password", "198.51.100.1")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_wrong_passwords_at_one_account_do_not_lock_another_on_the_same_address(limited):
    from queues.tests.factories import UserFactory

    user = UserFactory(email="me@example.com")
    user.set_password("my right password")
    user.save()
    for _ in range(5):
        sign_in("/accounts/login/", "someone-else@example.com", "guess")

    client, response = sign_in("/accounts/login/", "me@example.com", "my right password")

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_a_right_password_gives_its_try_back(limited):
    from queues.tests.factories import UserFactory

    user = UserFactory(email="me@example.com")
    user.set_password("my right password")
    user.save()
    # The budget is 3: ten sign-ins in a row would exhaust it if they spent.
    for _ in range(10):
        _, response = sign_in("/accounts/login/", "me@example.com", "my right password")
        assert response.status_code == 302


def test_password_and_token_failures_have_separate_budgets(limited):
    for _ in range(4):
        sign_in("/accounts/login/", "nobody@example.com", "guess")
    assert guess().status_code == 401


# --- Behind reverse proxies (OPENQUEUE_TRUSTED_PROXIES) ------------------------------


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        (0, "198.51.100.9", "10.0.0.2"),  # no proxies trusted: the socket peer
        (1, "198.51.100.9", "198.51.100.9"),  # one proxy: what it saw
        (1, "6.6.6.6, 198.51.100.9", "198.51.100.9"),  # the client's own claim is ignored
        (2, "6.6.6.6, 198.51.100.9, 10.0.0.1", "198.51.100.9"),  # two proxies
        (2, "198.51.100.9", "10.0.0.2"),  # fewer hops than proxies: the peer
        (1, "", "10.0.0.2"),
    ],
)
def test_client_address_counts_trusted_proxies_from_the_right(
    settings, trusted, forwarded, expected
):
    from types import SimpleNamespace

    from ratelimits.clients import client_address

    settings.OPENQUEUE_TRUSTED_PROXIES = trusted
    request = SimpleNamespace(META={"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": forwarded})
    assert client_address(request) == expected


def test_behind_a_proxy_each_client_has_its_own_budget(limited, settings, tenant):
    settings.OPENQUEUE_TRUSTED_PROXIES = 1
    proxy = "10.0.0.2"

    def guess_via_proxy(client: str):
        return ApiClient(generate_token(), REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=client).get(
            "/jobs"
        )

    assert [guess_via_proxy("198.51.100.9").status_code for _ in range(4)] == [401] * 3 + [429]
    # Another client behind the same proxy is not throttled by the attacker.
    assert guess_via_proxy("192.0.2.44").status_code == 401
    # Spoofing a different address in front does not escape the budget.
    assert guess_via_proxy("192.0.2.44, 198.51.100.9").status_code == 429
