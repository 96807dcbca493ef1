"""The failed-authentication budget under many real concurrent clients (issue 11, item 4).

Two gunicorn processes, clients on many connections at once, all from one
address: what gets through is counted, never timed.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from accounts.tokens import generate_token

pytestmark = [pytest.mark.live_server, pytest.mark.timeout(120)]

RATE, BURST = 1, 5
LIMITS = {
    "OPENQUEUE_AUTH_FAILURE_LIMIT_ENABLED": "true",
    "OPENQUEUE_AUTH_FAILURE_LIMIT": f"{RATE},{BURST}",
    "OPENQUEUE_RATE_LIMIT_ENABLED": "false",
}
# A new connection per request: the requests spread over both processes.
FRESH = {"Connection": "close"}


def hammer(
    threads: int, seconds: float, once: Callable[[httpx.Client], str]
) -> tuple[Counter[str], float]:
    """``threads`` clients calling ``once`` for ``seconds``; the outcomes and the time it took."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    started = time.monotonic()

    def run() -> None:
        with httpx.Client(timeout=30, headers=FRESH) as client:
            while time.monotonic() - started < seconds:
                outcome = once(client)
                with lock:
                    outcomes[outcome] += 1

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes, time.monotonic() - started


def budget(elapsed: float) -> int:
    """Failures the budget allows in ``elapsed`` seconds: the burst plus the refill."""
    return BURST + int(RATE * elapsed) + 1


def test_concurrent_token_guesses_get_no_more_401s_than_the_budget(live_server_factory):
    server = live_server_factory(workers=2, threads=16, env=LIMITS)

    def once(client: httpx.Client) -> str:
        response = client.get(
            server.url + "/jobs", headers={"Authorization": f"Bearer {generate_token()}"}
        )
        return str(response.status_code)

    outcomes, elapsed = hammer(32, 3, once)

    assert outcomes["429"] > 0
    # Spent atomically: 32 clients on two processes cannot race past it.
    assert outcomes["401"] <= budget(elapsed), outcomes


def test_concurrent_password_guesses_check_no_more_than_the_budget(
    live_server_factory, django_user_model
):
    django_user_model.objects.create_user("victim@example.com", "the right one")
    server = live_server_factory(workers=2, threads=16, env=LIMITS)

    def once(client: httpx.Client) -> str:
        page = client.get(server.url + "/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        response = client.post(
            server.url + "/accounts/login/",
            data={
                "username": "victim@example.com",
                "password": generate_token(),
                "csrfmiddlewaretoken": token.group(1) if token else "",
            },
        )
        if "Too many failed sign-in attempts" in response.text:
            return "refused"
        if "Please enter a correct" in response.text:
            return "checked"
        return f"other {response.status_code}"

    outcomes, elapsed = hammer(16, 3, once)

    assert outcomes["refused"] > 0 and set(outcomes) <= {"refused", "checked"}, outcomes
    assert outcomes["checked"] <= budget(elapsed), outcomes


def test_a_stale_token_next_door_never_gets_a_valid_worker_refused(live_server_factory, tenant):
    server = live_server_factory(workers=2, threads=16, env=LIMITS)
    stop = threading.Event()
    stale_answers: Counter[int] = Counter()

    def stale() -> None:
        with httpx.Client(timeout=30, headers=FRESH) as client:
            while not stop.is_set():
                response = client.get(
                    server.url + "/jobs", headers={"Authorization": "Bearer oq_live_stale"}
                )
                stale_answers[response.status_code] += 1

    neighbours = [threading.Thread(target=stale) for _ in range(4)]
    for neighbour in neighbours:
        neighbour.start()
    valid: list[Any] = []
    try:
        with httpx.Client(timeout=30, headers=FRESH) as client:
            while len(valid) < 40 or not stale_answers[429]:
                response = client.post(
                    server.url + "/queues/q/lease",
                    json={"worker_id": "w"},
                    headers={"Authorization": f"Bearer {tenant.token}"},
                )
                valid.append(response.status_code)
    finally:
        stop.set()
        for neighbour in neighbours:
            neighbour.join()

    assert stale_answers[429] > 0  # the address is over its budget...
    assert set(valid) == {200}  # ...and the valid token is served all along
