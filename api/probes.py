"""The unauthenticated routes: liveness, readiness and the Prometheus scrape.

``/metrics`` builds a fresh registry per scrape: under gunicorn every worker
is its own process, so prometheus_client's multiprocess mode (set up by
gunicorn.conf.py) keeps each worker's counters in a file and the scrape sums
them; the gauges read from the database (queues.metrics.DatabaseCollector)
are added at scrape time.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import detail_response
from api.schemas import DetailOut, StatusOut
from queues.metrics import DatabaseCollector


class PublicView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    http_method_names = ["get"]


class HealthView(PublicView):
    @extend_schema(operation_id="health", responses={200: StatusOut})
    def get(self, request: Request) -> Response:
        """Liveness: the process answers. Touches no database."""
        return Response({"status": "ok"})


class ReadyView(PublicView):
    @extend_schema(operation_id="ready", responses={200: StatusOut, 503: DetailOut})
    def get(self, request: Request) -> Response:
        """Readiness: the database answers ``SELECT 1``; 503 otherwise."""
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except Exception:
            return Response({"detail": "Database not ready"}, status=503)
        return Response({"status": "ready"})


# --- /metrics ------------------------------------------------------------------------


class _DefaultRegistry(Collector):
    """The process's default registry, as one collector of a per-scrape registry."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    """A fresh registry per scrape: every worker's values, plus the database gauges.

    In multiprocess mode the default registry holds only this worker's
    values, so the worker files are read instead (collectors registered on
    the default registry are not exported then; that includes the default
    process_* and python_* collectors, which would describe one random worker).
    """
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_DefaultRegistry())
    registry.register(DatabaseCollector())
    return registry


def _authorized(request: HttpRequest, expected: str) -> bool:
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), expected.encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: Prometheus text format.

    With ``OPENQUEUE_METRICS_TOKEN`` set, only ``Authorization: Bearer <token>``
    gets in (compared in constant time); anything else is 401. Without one,
    anyone may scrape only if ``OPENQUEUE_METRICS_PUBLIC`` (the default
    outside production): the metrics name every tenant's queues.
    """
    if request.method not in ("GET", "HEAD"):
        response = detail_response(405, "Method Not Allowed")
        response["Allow"] = "GET, HEAD"
        return response
    expected = settings.OPENQUEUE_METRICS_TOKEN
    if expected and not _authorized(request, expected):
        response = detail_response(401, "Not authenticated")
        response["WWW-Authenticate"] = "Bearer"
        return response
    if not expected and not settings.OPENQUEUE_METRICS_PUBLIC:
        return detail_response(
            403,
            "Metrics are not public in production: set OPENQUEUE_METRICS_TOKEN for your "
            "scraper, or OPENQUEUE_METRICS_PUBLIC=true.",
        )
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
