"""Every error the API answers, in the contract's envelope (Part B §1).

- ``{"detail": "<message>"}`` for HTTP errors;
- ``422 {"detail": [{"type", "loc", "msg", "input", "ctx"?}, ...]}`` for
  validation errors.

Services raise plain domain exceptions (``JobNotFound``, ``LeaseMismatch``,
...); ``exception_handler`` is the one place that maps them, and DRF's own
exceptions, to a status code. The Django-level views at the bottom answer
for requests that never reached DRF (unknown routes, 500s).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions, views
from rest_framework.response import Response

from queues.domain import JobNotCancellable, JobNotFound, LeaseMismatch
from ratelimits.buckets import TooManyAuthFailures
from schedules.services import ScheduleNotFound

logger = logging.getLogger("openqueue.api")


class RequestValidationError(Exception):
    """422: ``errors`` is the list of pydantic-style error objects."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


class PayloadTooLarge(Exception):
    """413: a body, payload, result or error text over its configured limit."""

    def __init__(self, what: str, setting: str, limit: int, size: int | None = None) -> None:
        size_text = f" is {size} bytes," if size is not None else " is"
        super().__init__(f"{what}{size_text} over the limit of {limit} bytes ({setting}).")


class BodyTooDense(Exception):
    """413: a big body whose parsed values would take too much memory (api/parsing.py)."""


def request_too_large(size: int | None) -> PayloadTooLarge:
    limit = settings.OPENQUEUE_MAX_REQUEST_BYTES
    return PayloadTooLarge("Request body", "OPENQUEUE_MAX_REQUEST_BYTES", limit, size)


def error_response(status: int, detail: Any, headers: dict[str, str] | None = None) -> Response:
    return Response({"detail": detail}, status=status, headers=headers)


def _retry_after(wait: float | None) -> dict[str, str]:
    # Never missing and never 0: whole seconds until the next token, at least 1.
    return {"Retry-After": str(max(1, math.ceil(wait or 1)))}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map domain and framework errors to the contract's status codes and envelope."""
    if isinstance(exc, RequestValidationError):
        return error_response(422, exc.errors)
    if isinstance(exc, PayloadTooLarge | BodyTooDense):
        return error_response(413, str(exc))
    if isinstance(exc, JobNotFound):
        return error_response(404, "Job not found")
    if isinstance(exc, JobNotCancellable):
        return error_response(404, "Job not found or not cancellable")
    if isinstance(exc, ScheduleNotFound):
        return error_response(404, "Schedule not found")
    if isinstance(exc, LeaseMismatch):
        return error_response(409, "Job not found, not leased, or lease token mismatch")
    if isinstance(exc, TooManyAuthFailures):
        return error_response(429, exc.detail, _retry_after(exc.wait))
    if isinstance(exc, exceptions.Throttled):
        return error_response(429, "Rate limit exceeded", _retry_after(exc.wait))  # type: ignore[attr-defined]
    if isinstance(exc, exceptions.MethodNotAllowed):
        return error_response(405, "Method Not Allowed")
    if isinstance(exc, exceptions.NotFound):
        return error_response(404, "Not Found")
    if isinstance(exc, OperationalError | InterfaceError):
        return database_unavailable(exc)
    response = views.exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict):
        detail = response.data.get("detail", response.data)
        response.data = {"detail": str(detail) if not isinstance(detail, list) else detail}
    return response


def database_unavailable(exc: Exception) -> Response:
    """503 for a database that cannot take the request right now (docs/reliability.md).

    Down, restarting, out of pool connections, locked past the busy timeout,
    or a read-only SQLite file: the client may retry, and the log says why.
    """
    logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    if "readonly database" in str(exc):
        return error_response(503, "Database is read-only")
    return error_response(503, "Database unavailable")


# --- Django-level error views (requests that never reached DRF) ------------------


def detail_response(status: int, detail: str) -> JsonResponse:
    """A ``{"detail": ...}`` response for code paths outside DRF (compact, like DRF's)."""
    return JsonResponse(
        {"detail": detail}, status=status, json_dumps_params={"separators": (",", ":")}
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return detail_response(404, "Not Found")


def server_error(request: HttpRequest) -> JsonResponse:
    return detail_response(500, "Internal Server Error")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return detail_response(400, "Bad Request")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return detail_response(403, "Forbidden")
