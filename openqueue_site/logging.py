"""Structured logs: one JSON object per line on stdout.

``JsonFormatter`` is the formatter of every handler in ``settings.LOGGING``, so
Django's own warnings, errors and tracebacks come out in the same shape as our
events. ``RequestLogMiddleware`` writes the ``http_request`` line of each
request (logger ``openqueue.http``).

Nothing here logs a header, a body or a query string: tokens and payloads
travel only there, so they cannot reach a log line through this module.

This module is imported while logging is configured, before the apps are
loaded: it must not import models.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.functional import empty
from pythonjsonlogger import json as jsonlogger

from ratelimits.clients import client_address

# The id of the request being served by this thread, added to every log line
# written while serving it (job events included), so they can be joined.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "openqueue_request_id", default=None
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
# Extras that Django attaches for its own handlers: `request` is the whole
# HttpRequest (headers included) and `server_time` duplicates `time`.
_DROPPED_EXTRAS = frozenset({"request", "server_time"})

UNMATCHED_ROUTE = "<unmatched>"
STATIC_ROUTE = "<static>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class JsonFormatter(jsonlogger.JsonFormatter):
    """``{"time", "level", "logger", "message", "request_id"?, ...extra fields}`` on one line.

    python-json-logger does the record-to-JSON work (extras, exceptions,
    serialization); this subclass adds ``time`` (UTC ISO 8601 with
    microseconds and ``Z``), names the fields as our events always have, and
    adds the id of the request being served. A traceback becomes the string
    field ``exc_info``, so a multi-line exception is still one line.
    """

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=sorted(_STANDARD_ATTRS | _DROPPED_EXTRAS),
            json_ensure_ascii=False,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = (
            datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z")
        )
        super().add_fields(log_data, record, message_dict)
        request_id = request_id_var.get()
        if request_id is not None:
            log_data.setdefault("request_id", request_id)


def normalized_method(method: str | None) -> str:
    """The HTTP method, or ``other``: a client must not invent label values."""
    method = (method or "").upper()
    return method if method in _METHODS else "other"


def route_template(request: HttpRequest) -> str:
    """The URL pattern that serves ``request`` (``jobs/<str:job_id>/ack``), never the raw path.

    Requests answered before URL resolution (a 413 from the size check, a CORS
    preflight) are resolved here, so they get their route too. Job ids and
    queue names therefore never become a metric label.
    """
    match = getattr(request, "resolver_match", None)
    if match is None:
        if request.path_info.startswith("/" + settings.STATIC_URL.lstrip("/")):
            return STATIC_ROUTE
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED_ROUTE
    if match.route is None:
        return UNMATCHED_ROUTE
    return match.route or "/"  # path("", ...): the site root


def tenant_id(request: HttpRequest) -> int | None:
    """The authenticated user's id, without causing a database query.

    Bearer authentication records it on the request (api/authentication.py);
    a session user (admin, console) counts only if the view already loaded it.
    """
    recorded = getattr(request, "openqueue_tenant_id", None)
    if recorded is not None:
        return recorded
    user = request.__dict__.get("user")
    wrapped = getattr(user, "_wrapped", user)
    if wrapped is empty or wrapped is None:
        return None
    if getattr(wrapped, "is_authenticated", False):
        return wrapped.pk
    return None


http_logger = logging.getLogger("openqueue.http")


class RequestLogMiddleware:
    """One ``http_request`` line per request, at INFO on ``openqueue.http``.

    Fields: request_id, method, route, path, status, duration_ms, tenant_id,
    client_ip (ratelimits/clients.py: the socket peer, or the address
    the trusted proxies saw) and user_agent. It sits just
    inside RequestIdMiddleware so it sees the id and every final status,
    500s included.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request_id = getattr(request, "request_id", None)
        reset = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
            if not http_logger.isEnabledFor(logging.INFO):
                return response
            http_logger.info(
                "http_request",
                extra={
                    "request_id": request_id,
                    "method": normalized_method(request.method),
                    "route": route_template(request),
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "tenant_id": tenant_id(request),
                    "client_ip": client_address(request),
                    "user_agent": request.META.get("HTTP_USER_AGENT", "")[:512],
                },
            )
            return response
        finally:
            request_id_var.reset(reset)
