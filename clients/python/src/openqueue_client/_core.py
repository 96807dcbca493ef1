"""What the sync and async clients share: requests as data, retries, error mapping.

Each API route is a function in ``routes.py`` that returns a ``Call``: the
request to send and how to read the answer. ``Client`` and ``AsyncClient``
only differ in how they send it, so a route's rules live in one place.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from openqueue_client import __version__
from openqueue_client.errors import (
    OpenQueueError,
    TransportError,
    error_class,
    parse_retry_after,
)

T = TypeVar("T")

NO_BODY: Any = object()


def segment(value: str) -> str:
    """A path segment: a queue or schedule name may hold spaces, ``?`` or unicode."""
    return quote(str(value), safe="")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = NO_BODY
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    # Safe to send twice: GET/PUT/PATCH/DELETE, heartbeat, and an enqueue
    # that carries an idempotency key. Only these are retried after a
    # connection broke mid-request (the server may have acted on it).
    idempotent: bool = False
    # Seconds the server may hold the request on purpose (long-poll).
    holds_for: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a request again.

    - 429: always (the server refused it before doing anything), after
      ``Retry-After`` seconds (at most ``max_retry_after``).
    - The connection could not be opened (nothing was sent): always.
    - The connection broke or timed out after the request was sent: only
      for idempotent calls, since the server may have acted on it.

    ``retries`` counts the extra tries; the delay grows from ``backoff``
    doubling, with jitter, up to ``max_backoff``.
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 10.0
    max_retry_after: float = 60.0
    sleep_jitter: Callable[[float], float] = field(
        default=lambda delay: delay * random.uniform(0.5, 1.0),  # noqa: S311 (jitter, not crypto)
        repr=False,
    )

    def backoff_delay(self, attempt: int) -> float:
        return self.sleep_jitter(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        if response.status_code != 429 or attempt > self.retries:
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is None:
            return self.backoff_delay(attempt)
        return min(retry_after, self.max_retry_after)

    def after_error(
        self, attempt: int, error: httpx.TransportError, call: Call[Any]
    ) -> float | None:
        if attempt > self.retries:
            return None
        nothing_sent = isinstance(
            error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
        )
        if nothing_sent or call.idempotent:
            return self.backoff_delay(attempt)
        return None


NO_RETRIES = RetryPolicy(retries=0)


class BaseClient:
    """Configuration shared by ``Client`` and ``AsyncClient``."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.headers = {"User-Agent": f"openqueue-client/{__version__}", **(headers or {})}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def _request_args(self, call: Call[Any]) -> dict[str, Any]:
        args: dict[str, Any] = {
            "method": call.method,
            "url": call.path,
            "params": call.params,
            "headers": call.headers,
            # A long-poll answers after up to ``holds_for`` seconds by design.
            "timeout": self.timeout + call.holds_for,
        }
        if call.body is not NO_BODY:
            args["json"] = call.body
        return args

    @staticmethod
    def _result(call: Call[T], response: httpx.Response) -> T:
        if response.status_code >= 400:
            raise api_error(response)
        return call.parse(response)

    @staticmethod
    def _transport_error(error: httpx.TransportError, call: Call[Any]) -> OpenQueueError:
        return TransportError(f"{call.method} {call.path}: {type(error).__name__}: {error}")


def api_error(response: httpx.Response) -> OpenQueueError:
    """The exception for an error answer, carrying the server's ``detail``."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = response.text or response.reason_phrase
    return error_class(response.status_code)(
        detail,
        status_code=response.status_code,
        request_id=response.headers.get("x-request-id"),
        headers=dict(response.headers),
    )
