"""One exception class per error status of the OpenQueue API.

Every error the server answers carries ``detail``: a message string, or for
422 the list of validation errors (``[{"type", "loc", "msg", ...}]``).
``OpenQueueError`` is the base of everything this package raises, so one
``except OpenQueueError`` catches server errors and transport failures alike.
"""

from __future__ import annotations

from typing import Any


class OpenQueueError(Exception):
    """Base class: an error answer from the server, or no answer at all."""

    status_code: int | None = None

    def __init__(
        self,
        detail: Any = None,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        self.request_id = request_id
        self.headers = headers or {}
        super().__init__(self._message())

    def _message(self) -> str:
        status = f"{self.status_code}: " if self.status_code is not None else ""
        return f"{status}{self.detail}"


class TransportError(OpenQueueError):
    """The server could not be reached, or the connection broke mid-request."""


class APIError(OpenQueueError):
    """An error status this package has no dedicated class for (e.g. 405)."""


class BadRequestError(APIError):
    status_code = 400


class AuthenticationError(APIError):
    """401: the token is missing, unknown or revoked."""

    status_code = 401


class PermissionDeniedError(APIError):
    """403: the token's user is inactive, or a wrong admin secret."""

    status_code = 403


class NotFoundError(APIError):
    """404: no such job, queue route or schedule for this tenant."""

    status_code = 404


class ConflictError(APIError):
    """409: the job is not leased by this lease token (lost lease, repeat ack, ...)."""

    status_code = 409


class PayloadTooLargeError(APIError):
    """413: a payload, result, error text or request body over the server's limit."""

    status_code = 413


class ValidationError(APIError):
    """422: the request was refused as invalid; ``detail`` lists each problem."""

    status_code = 422

    def _message(self) -> str:
        if isinstance(self.detail, list):
            parts = []
            for item in self.detail:
                if isinstance(item, dict):
                    loc = ".".join(str(part) for part in item.get("loc", []))
                    parts.append(f"{loc}: {item.get('msg')}")
                else:
                    parts.append(str(item))
            return f"422: {'; '.join(parts)}"
        return super()._message()


class RateLimitError(APIError):
    """429 after the client's retries ran out; ``retry_after`` is in seconds."""

    status_code = 429

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(APIError):
    """A 5xx answer."""


class ServiceUnavailableError(ServerError):
    status_code = 503


class Permanent(Exception):
    """Raise from a worker handler to fail the job without retrying it (it goes to the DLQ)."""


ERRORS_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_class(status_code: int) -> type[APIError]:
    if status_code in ERRORS_BY_STATUS:
        return ERRORS_BY_STATUS[status_code]
    return ServerError if status_code >= 500 else APIError


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; the server always sends whole seconds."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: the server never sends one
    return max(0.0, seconds)
