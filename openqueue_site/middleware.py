"""Cross-cutting HTTP behaviour that must hold for every response.

Request ids, the HTTP metrics, the request-size limit, the 307 for a
trailing slash, and the browser-only middleware that steps aside on the
API's paths (which are read from api/urls.py, so a new route cannot be
forgotten).
"""

from __future__ import annotations

import functools
import re
import time
import uuid
from collections.abc import Callable

from corsheaders import middleware as cors_middleware
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, is_valid_path
from prometheus_client import Counter, Histogram

from api.errors import detail_response, request_too_large
from openqueue_site.logging import normalized_method, route_template

_REQUEST_ID_OK = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,199}$")


class RequestIdMiddleware:
    """Echo ``X-Request-ID`` (stripped) or a fresh UUID4 on every response.

    It sits outside everything that can answer, errors included, so 404, 405,
    413, 422, 429 and 500 responses carry the id too. An incoming id that is
    not printable ASCII or is over 200 characters is replaced, so a client
    cannot inject header content.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # META, not request.headers: that builds a dict of every header first.
        incoming = request.META.get("HTTP_X_REQUEST_ID", "").strip()
        request_id = incoming if _REQUEST_ID_OK.match(incoming) else str(uuid.uuid4())
        request.request_id = request_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


HTTP_REQUESTS = Counter(
    "openqueue_http_requests_total",
    "HTTP requests by method, URL route template and status code.",
    ["method", "route", "status_code"],
)
HTTP_DURATION = Histogram(
    "openqueue_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and URL route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class HttpMetricsMiddleware:
    """``openqueue_http_*`` for every response, labelled by route template.

    It sits just inside RequestIdMiddleware, so 404, 405, 413, 429 and 500
    responses are counted too (Django turns an exception into a 500 response
    before it reaches this layer).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = normalized_method(request.method)
        route = route_template(request)
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)
        return response


class RequestSizeLimitMiddleware:
    """413 with a JSON detail when Content-Length is over OPENQUEUE_MAX_REQUEST_BYTES.

    Checked before anything reads the body; without it Django would answer
    an oversized body with its HTML 400 page.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.OPENQUEUE_MAX_REQUEST_BYTES:
            return detail_response(413, str(request_too_large(length)))
        return self.get_response(request)


class TemporaryRedirect(HttpResponseRedirect):
    status_code = 307  # keeps the method and body, unlike 301/302


class TrailingSlashRedirectMiddleware:
    """``/jobs/`` answers 307 to ``/jobs`` when only the slash is wrong (as the original)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        path = request.path_info
        if response.status_code == 404 and len(path) > 1 and path.endswith("/"):
            if is_valid_path(path.rstrip("/")):
                target = request.get_full_path().replace(path, path.rstrip("/"), 1)
                return TemporaryRedirect(request.build_absolute_uri(target))
        return response


# --- Browser-only middleware ------------------------------------------------------
#
# Sessions, the auth middleware's request.user and messages serve the admin
# and the console. The JSON API authenticates every request with a bearer
# token, so on its paths those three only cost time (about a tenth of
# /health's CPU, measured interleaved in one process: docs/benchmarks.md).
# There (every route of api/urls.py) they step aside; everywhere else
# (admin, console, static files) they run as usual. CSRF runs everywhere
# (cheap, and the API's DRF views are CSRF-exempt).


@functools.cache
def _api_paths() -> tuple[frozenset[str], tuple[str, ...]]:
    """The API's exact paths and path prefixes, read once from api/urls.py.

    A route without converters is an exact path (``/jobs``, ``/health``);
    one with converters is the literal text before its first converter
    (``/jobs/``, ``/queues/``).
    """
    from api.urls import urlpatterns

    exact: set[str] = set()
    prefixes: set[str] = set()
    for pattern in urlpatterns:
        if not isinstance(pattern, URLPattern):
            raise ImproperlyConfigured("api/urls.py must hold plain path() routes")
        route = "/" + str(pattern.pattern)
        if "<" in route:
            prefixes.add(route.split("<", 1)[0])
        else:
            exact.add(route)
    return frozenset(exact), tuple(sorted(prefixes))


def is_api_path(path: str) -> bool:
    """True for the API's routes (api/urls.py), which need no browser middleware."""
    exact, prefixes = _api_paths()
    return path in exact or path.rstrip("/") in exact or path.startswith(prefixes)


class ApiCorsMiddleware(cors_middleware.CorsMiddleware):
    """django-cors-headers, on the API's paths only (settings.py, CORS_*).

    The console, the sign-in page and the admin send no CORS headers at all.
    """

    def is_enabled(self, request: HttpRequest) -> bool:
        return is_api_path(request.path_info)


class BrowserOnlyMixin:
    """Make a ``MiddlewareMixin`` middleware step aside on the API's paths.

    Only ``__call__`` (process_request/process_response) is bypassed.
    """

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_path(request.path_info):
            return self.get_response(request)  # type: ignore[attr-defined]
        return super().__call__(request)  # type: ignore[misc]


class SessionMiddleware(BrowserOnlyMixin, sessions_middleware.SessionMiddleware):
    """Django's, skipped on the API's paths."""


class AuthenticationMiddleware(BrowserOnlyMixin, auth_middleware.AuthenticationMiddleware):
    """Django's, skipped on the API's paths (DRF authenticates bearer tokens there)."""


class MessageMiddleware(BrowserOnlyMixin, messages_middleware.MessageMiddleware):
    """Django's, skipped on the API's paths."""
