"""The REST API's views (contract Part B §2-3 and the batch routes).

Each view parses and validates its input (api/parsing.py, api/schemas.py),
checks the size limits that depend on settings, calls queues/services.py
for every state change (and reads the caller's jobs through their
queryset), and renders the contract's JSON. Errors are exceptions that
api/errors.py turns into the contract's envelope.

Order of checks on every authenticated route (contract §1.1): the JSON body
is parsed (malformed JSON is 422 even without a token), then the bearer
token (401/403), then the rate limit (429), then path, query and body
validation (422), then the service (404/409/413).
"""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from api.errors import PayloadTooLarge
from api.lax import UUID_TEXT
from api.parsing import MISSING, is_small_body, parse_json_body, validate_all
from api.schemas import (
    IDEMPOTENCY_HEADER,
    QUEUE_FILTER,
    STATUS_FILTER,
    AckRequest,
    BatchAckRequest,
    BatchEnqueueOut,
    BatchEnqueueRequest,
    BatchItemsOut,
    BatchLeaseOut,
    BatchLeaseRequest,
    BatchNackRequest,
    DetailOut,
    EnqueueOut,
    EnqueueRequest,
    HeartbeatRequest,
    IdempotencyHeader,
    JobDetailOut,
    JobListOut,
    JobPath,
    JobStatusOut,
    LeaseOrNullOut,
    LeaseRequest,
    ListJobsQuery,
    NackRequest,
    QueuePath,
    QueueStatsListOut,
    ValidationErrorOut,
    field_schema,
    iso,
    job_detail_to_dict,
    job_to_dict,
    json_size,
)
from queues import services
from queues.models import Job, JobStatus

# Every status any authenticated route can answer besides its own (404/409/...):
# the schema fuzzer (api/tests/test_schema_fuzz.py) holds us to it.
ERRORS = {
    401: OpenApiResponse(DetailOut, description="Missing, unknown or revoked token"),
    403: OpenApiResponse(DetailOut, description="The token's user is inactive"),
    405: OpenApiResponse(DetailOut, description="Method Not Allowed"),
    413: OpenApiResponse(DetailOut, description="Request body over OPENQUEUE_MAX_REQUEST_BYTES"),
    422: OpenApiResponse(ValidationErrorOut, description="Validation error (a list of errors)"),
    429: OpenApiResponse(
        DetailOut, description="Rate limit exceeded, or too many failed authentications"
    ),
    503: OpenApiResponse(DetailOut, description="Database unavailable (or read-only): retry"),
}
# The path parameters, as the server reads them (api/lax.py).
JOB_ID = OpenApiParameter(
    "job_id",
    {"type": "string", "pattern": UUID_TEXT},
    OpenApiParameter.PATH,
    description="A UUID: hyphenated in any case, 32 hex digits, urn:uuid:... or {...}. "
    "Anything else is 422.",
)
QUEUE_NAME = OpenApiParameter(
    "queue_name", field_schema(QueuePath, "queue_name"), OpenApiParameter.PATH
)


# The methods whose requests carry a JSON body.
BODY_METHODS = ("POST", "PUT", "PATCH")


class ApiView(APIView):
    """Base of the authenticated API views."""

    # Rate-limit actions (api/throttling.py) by HTTP method.
    rate_limit_actions: dict[str, str] = {}
    # Routes whose POST, PUT or PATCH body is parsed (before authentication, as the original).
    parses_body = True

    @property
    def owner(self) -> User:
        """The authenticated tenant (every view here requires a bearer token)."""
        return cast(User, self.request.user)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        method = request.method or ""
        if method.lower() not in self.http_method_names:
            # Routing comes first in the original: a wrong method is 405 even without a token.
            raise exceptions.MethodNotAllowed(method)
        self.body = MISSING
        if method not in BODY_METHODS or not self.parses_body:
            super().initial(request, *args, **kwargs)
        elif is_small_body(request._request):
            # As the original: malformed JSON is 422 before the credentials.
            self.body = parse_json_body(request._request)
            super().initial(request, *args, **kwargs)
        else:
            # A big body is read only for an authenticated, rate-limited
            # request: anything else is answered without reading it.
            super().initial(request, *args, **kwargs)
            self.body = parse_json_body(request._request)


def check_payload(value: Any, what: str, setting: str) -> None:
    limit = getattr(settings, setting)
    size = json_size(value)
    if size > limit:
        raise PayloadTooLarge(what, setting, limit, size)


def _new_job(request: EnqueueRequest, what: str) -> services.NewJob:
    check_payload(request.payload, what, "OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES")
    return services.NewJob(
        queue_name=request.queue_name,
        payload=request.payload,
        priority=request.priority,
        max_retries=request.max_retries,
        run_at=request.run_at,  # type: ignore[arg-type]  # parsed to datetime
    )


class JobsView(ApiView):
    """List the caller's jobs, or enqueue one job."""

    http_method_names = ["get", "post"]
    rate_limit_actions = {"GET": "list_jobs", "POST": "enqueue"}

    @extend_schema(
        operation_id="list_jobs",
        parameters=[
            OpenApiParameter("queue_name", QUEUE_FILTER, description="Empty: every queue"),
            OpenApiParameter("status", STATUS_FILTER, description="Empty: every status"),
            OpenApiParameter(
                "limit", field_schema(ListJobsQuery, "limit"), description="Default 50"
            ),
            OpenApiParameter(
                "offset", field_schema(ListJobsQuery, "offset"), description="Default 0"
            ),
        ],
        responses={200: JobListOut, **ERRORS},
        description="The caller's jobs, newest first (created_at DESC, id DESC).",
    )
    def get(self, request: Request) -> Response:
        (query,) = validate_all((ListJobsQuery, request.query_params.dict(), "query"))
        jobs = Job.objects.for_owner(self.owner)
        if query.queue_name is not None:
            jobs = jobs.in_queue(query.queue_name)
        if query.status is not None:
            jobs = jobs.filter(status=query.status)
        total = jobs.count()
        page = jobs.order_by("-created_at", "-id")[query.offset : query.offset + query.limit]
        return Response(
            {
                "items": [job_to_dict(job) for job in page],
                "total": total,
                "limit": query.limit,
                "offset": query.offset,
            }
        )

    @extend_schema(
        operation_id="enqueue",
        request=EnqueueRequest,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                IDEMPOTENCY_HEADER,
                OpenApiParameter.HEADER,
                description="1..255 printable ASCII characters. A repeat within "
                "OPENQUEUE_IDEMPOTENCY_WINDOW_SECONDS returns the existing job (200).",
            )
        ],
        responses={
            201: EnqueueOut,
            200: OpenApiResponse(EnqueueOut, description="The job an earlier request created"),
            413: DetailOut,
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        key = request.META.get("HTTP_IDEMPOTENCY_KEY")
        if key is not None:
            return self._post_idempotent(request, key)
        (body,) = validate_all((EnqueueRequest, self.body, "body"))
        (job_id,) = services.enqueue(owner=self.owner, jobs=[_new_job(body, "Job payload")])
        return Response({"job_id": str(job_id), "status": "queued"}, status=201)

    def _post_idempotent(self, request: Request, key: str) -> Response:
        # Apart from the plain path so that one pays nothing for the feature.
        header, body = validate_all(
            (IdempotencyHeader, {"idempotency-key": key}, "header"),
            (EnqueueRequest, self.body, "body"),
        )
        (result,) = services.enqueue_jobs_idempotent(
            owner=self.owner,
            jobs=[_new_job(body, "Job payload")],
            keys=[header.idempotency_key],
        )
        return Response(
            {"job_id": str(result.job.id), "status": "queued"},
            status=201 if result.created else 200,
        )


class BatchView(ApiView):
    """Enqueue many jobs in one atomic request."""

    http_method_names = ["post"]
    rate_limit_actions = {"POST": "enqueue"}

    @extend_schema(
        operation_id="enqueue_batch",
        request=BatchEnqueueRequest,
        responses={
            201: BatchEnqueueOut,
            200: OpenApiResponse(
                BatchEnqueueOut, description="Every item's idempotency key matched an existing job"
            ),
            413: DetailOut,
            **ERRORS,
        },
        description="All jobs are created or none (at most OPENQUEUE_MAX_BATCH_SIZE). "
        "An item whose idempotency_key matches a job enqueued within the window returns "
        "that job's id instead of a new one; 201 if any job was created, else 200.",
    )
    def post(self, request: Request) -> Response:
        (body,) = validate_all((BatchEnqueueRequest, self.body, "body"))
        new_jobs = [_new_job(item, f"Payload of jobs[{i}]") for i, item in enumerate(body.jobs)]
        keys = [item.idempotency_key for item in body.jobs]
        if any(key is not None for key in keys):
            results = services.enqueue_jobs_idempotent(owner=self.owner, jobs=new_jobs, keys=keys)
            created = any(result.created for result in results)
            return Response(
                {"job_ids": [str(r.job.id) for r in results], "count": len(results)},
                status=201 if created else 200,
            )
        ids = services.enqueue(owner=self.owner, jobs=new_jobs)
        return Response({"job_ids": [str(job_id) for job_id in ids], "count": len(ids)}, status=201)


class JobStatusView(ApiView):
    """The status of one job."""

    http_method_names = ["get"]

    @extend_schema(
        operation_id="get_job_status",
        parameters=[JOB_ID],
        responses={200: JobStatusOut, 404: DetailOut, **ERRORS},
    )
    def get(self, request: Request, job_id: str) -> Response:
        (path,) = validate_all((JobPath, {"job_id": job_id}, "path"))
        job = services.get_job(owner=self.owner, job_id=path.job_id)
        return Response({"job_id": str(job.id), "status": job.status})


class JobDetailView(ApiView):
    """One job with its payload, result and timestamps."""

    http_method_names = ["get"]

    @extend_schema(
        operation_id="get_job",
        parameters=[JOB_ID],
        responses={200: JobDetailOut, 404: DetailOut, **ERRORS},
        description="The job; schedule_name names the schedule that enqueued it (else null).",
    )
    def get(self, request: Request, job_id: str) -> Response:
        (path,) = validate_all((JobPath, {"job_id": job_id}, "path"))
        job = services.get_job(owner=self.owner, job_id=path.job_id)
        return Response(job_detail_to_dict(job))


class CancelView(ApiView):
    """Cancel a pending job."""

    http_method_names = ["post"]
    parses_body = False  # SDKs send an empty body with Content-Type: application/json

    @extend_schema(
        operation_id="cancel_job",
        parameters=[JOB_ID],
        request=None,
        responses={200: JobStatusOut, 404: DetailOut, **ERRORS},
        description="Only a pending job can be cancelled; anything else is 404.",
    )
    def post(self, request: Request, job_id: str) -> Response:
        (path,) = validate_all((JobPath, {"job_id": job_id}, "path"))
        services.cancel_job(owner=self.owner, job_id=path.job_id)
        return Response({"job_id": str(path.job_id), "status": "cancelled"})


class LeaseView(ApiView):
    """Lease the next due job of a queue."""

    http_method_names = ["post"]
    rate_limit_actions = {"POST": "lease"}

    @extend_schema(
        operation_id="lease",
        parameters=[QUEUE_NAME],
        request=LeaseRequest,
        responses={200: OpenApiResponse(LeaseOrNullOut, description="A lease, or null"), **ERRORS},
        description="Lease the next due job of the queue. No job: 200 with the body null. "
        "With wait_seconds, wait up to that long for a job first (long-poll).",
    )
    def post(self, request: Request, queue_name: str) -> Response | HttpResponse:
        path, body = validate_all(
            (QueuePath, {"queue_name": queue_name}, "path"), (LeaseRequest, self.body, "body")
        )
        lease = services.lease_job(
            owner=self.owner,
            queue_name=path.queue_name,
            worker_id=body.worker_id,
            lease_seconds=body.lease_seconds,
            wait_seconds=body.wait_seconds,
        )
        if lease is None:
            return HttpResponse(b"null", content_type="application/json")
        return Response(
            {
                "job": job_to_dict(lease.job),
                "lease_token": str(lease.lease_token),
                "lease_expires_at": iso(lease.lease_expires_at),
            }
        )


class AckView(ApiView):
    """Complete a leased job, optionally with a result object."""

    http_method_names = ["post"]
    rate_limit_actions = {"POST": "ack"}

    @extend_schema(
        operation_id="ack",
        parameters=[JOB_ID],
        request=AckRequest,
        responses={200: JobStatusOut, 409: DetailOut, 413: DetailOut, **ERRORS},
    )
    def post(self, request: Request, job_id: str) -> Response:
        path, body = validate_all(
            (JobPath, {"job_id": job_id}, "path"), (AckRequest, self.body, "body")
        )
        if body.result is not None:
            check_payload(body.result, "Result", "OPENQUEUE_MAX_RESULT_PAYLOAD_BYTES")
        services.ack_job(
            owner=self.owner, job_id=path.job_id, lease_token=body.lease_token, result=body.result
        )
        return Response({"job_id": str(path.job_id), "status": "completed"})


class NackView(ApiView):
    """Fail a leased job: retry it after a backoff, or move it to the DLQ."""

    http_method_names = ["post"]
    rate_limit_actions = {"POST": "nack"}

    @extend_schema(
        operation_id="nack",
        parameters=[JOB_ID],
        request=NackRequest,
        responses={200: JobStatusOut, 409: DetailOut, 413: DetailOut, **ERRORS},
        description="Retry after min(2^retry_count, 300) s, or move the job to the DLQ.",
    )
    def post(self, request: Request, job_id: str) -> Response:
        path, body = validate_all(
            (JobPath, {"job_id": job_id}, "path"), (NackRequest, self.body, "body")
        )
        size = len(body.error.encode("utf-8"))
        limit = settings.OPENQUEUE_MAX_ERROR_TEXT_BYTES
        if size > limit:
            raise PayloadTooLarge("Error text", "OPENQUEUE_MAX_ERROR_TEXT_BYTES", limit, size)
        services.nack_job(
            owner=self.owner,
            job_id=path.job_id,
            lease_token=body.lease_token,
            error=body.error,
            retry=body.retry,
        )
        return Response({"job_id": str(path.job_id), "status": "failed_or_requeued"})


class HeartbeatView(ApiView):
    """Extend the lease of a job that is still being worked on."""

    http_method_names = ["post"]
    rate_limit_actions = {"POST": "heartbeat"}

    @extend_schema(
        operation_id="heartbeat",
        parameters=[JOB_ID],
        request=HeartbeatRequest,
        responses={200: JobStatusOut, 409: DetailOut, **ERRORS},
        description="Set the lease to expire lease_seconds from now.",
    )
    def post(self, request: Request, job_id: str) -> Response:
        path, body = validate_all(
            (JobPath, {"job_id": job_id}, "path"), (HeartbeatRequest, self.body, "body")
        )
        services.heartbeat_job(
            owner=self.owner,
            job_id=path.job_id,
            lease_token=body.lease_token,
            lease_seconds=body.lease_seconds,
        )
        return Response({"job_id": str(path.job_id), "status": "lease_extended"})


class QueueStatsView(ApiView):
    """Job counts by status for each of the caller's queues."""

    http_method_names = ["get"]
    rate_limit_actions = {"GET": "queue_stats"}

    @extend_schema(operation_id="queue_stats", responses={200: QueueStatsListOut, **ERRORS})
    def get(self, request: Request) -> Response:
        rows = Job.objects.for_owner(self.owner).stats_by_queue()
        return Response(
            [
                {
                    "queue_name": row["queue_name"],
                    **{status: row[status] for status in JobStatus.values},
                    "total": row["total"],
                    "oldest_pending_created_at": iso(row["oldest_pending_created_at"]),
                }
                for row in rows
            ]
        )


# --- Batch API (issue 5): outside every contract route --------------------------------


def lease_to_dict(lease: services.Lease) -> dict[str, Any]:
    """One lease in the shape of POST /queues/{queue}/lease."""
    return {
        "job": job_to_dict(lease.job),
        "lease_token": str(lease.lease_token),
        "lease_expires_at": iso(lease.lease_expires_at),
    }


class BatchLeaseView(ApiView):
    """Lease up to max_jobs due jobs of a queue in one call."""

    http_method_names = ["post"]
    rate_limit_actions = {"POST": "lease"}

    @extend_schema(
        operation_id="lease_batch",
        parameters=[QUEUE_NAME],
        request=BatchLeaseRequest,
        responses={200: BatchLeaseOut, **ERRORS},
        description=(
            "Lease up to max_jobs (1..OPENQUEUE_MAX_LEASE_BATCH, default 10) due jobs in lease "
            "order, in one transaction. No job due: 200 with an empty list. With wait_seconds, "
            "wait up to that long for a job first (long-poll)."
        ),
    )
    def post(self, request: Request, queue_name: str) -> Response:
        path, body = validate_all(
            (QueuePath, {"queue_name": queue_name}, "path"),
            (BatchLeaseRequest, self.body, "body"),
        )
        leases = services.lease_jobs(
            owner=self.owner,
            queue_name=path.queue_name,
            worker_id=body.worker_id,
            lease_seconds=body.lease_seconds,
            max_jobs=body.max_jobs,
            wait_seconds=body.wait_seconds,
        )
        return Response({"leases": [lease_to_dict(lease) for lease in leases]})


MISMATCH = {"status": 409, "detail": "Job not found, not leased, or lease token mismatch"}


def _too_large(value: Any, what: str, setting: str) -> dict[str, Any] | None:
    """The per-item 413 of a value over its limit, or None."""
    try:
        check_payload(value, what, setting)
    except PayloadTooLarge as exc:
        return {"status": 413, "detail": str(exc)}
    return None


def _item_results(
    items: list[Any],
    refused: dict[int, dict[str, Any]],
    outcomes: list[services.Finished | None],
    status: str,
) -> Response:
    """``{"results": [...]}`` in request order: ``outcomes`` covers the items not refused."""
    results = []
    done = iter(outcomes)
    for index, item in enumerate(items):
        error = refused.get(index) or (MISMATCH if next(done) is None else None)
        entry: dict[str, Any] = {"job_id": str(item.job_id)}
        if error is None:
            entry["status"] = status
        else:
            entry["error"] = error
        results.append(entry)
    return Response({"results": results})


class BatchAckView(ApiView):
    """Complete many leased jobs; one outcome per item."""

    http_method_names = ["post"]
    rate_limit_actions = {"POST": "ack"}

    @extend_schema(
        operation_id="ack_batch",
        request=BatchAckRequest,
        responses={200: BatchItemsOut, **ERRORS},
        description=(
            "Per item: status completed, or an error (409 lease mismatch, 413 result too "
            "large). One bad item does not fail the others."
        ),
    )
    def post(self, request: Request) -> Response:
        (body,) = validate_all((BatchAckRequest, self.body, "body"))
        refused: dict[int, dict[str, Any]] = {}
        for index, item in enumerate(body.items):
            if item.result is not None and (
                error := _too_large(
                    item.result, f"Result of items[{index}]", "OPENQUEUE_MAX_RESULT_PAYLOAD_BYTES"
                )
            ):
                refused[index] = error
        outcomes = services.ack_jobs(
            owner=self.owner,
            items=[
                services.AckItem(job_id=i.job_id, lease_token=i.lease_token, result=i.result)
                for n, i in enumerate(body.items)
                if n not in refused
            ],
        )
        return _item_results(body.items, refused, outcomes, "completed")


class BatchNackView(ApiView):
    """Fail many leased jobs (retry after a backoff, or the DLQ); one outcome per item."""

    http_method_names = ["post"]
    rate_limit_actions = {"POST": "nack"}

    @extend_schema(
        operation_id="nack_batch",
        request=BatchNackRequest,
        responses={200: BatchItemsOut, **ERRORS},
        description=(
            "Per item: status failed_or_requeued, or an error (409 lease mismatch, 413 error "
            "text too large). One bad item does not fail the others."
        ),
    )
    def post(self, request: Request) -> Response:
        (body,) = validate_all((BatchNackRequest, self.body, "body"))
        limit = settings.OPENQUEUE_MAX_ERROR_TEXT_BYTES
        refused: dict[int, dict[str, Any]] = {}
        for index, item in enumerate(body.items):
            size = len(item.error.encode("utf-8"))
            if size > limit:
                detail = PayloadTooLarge(
                    f"Error text of items[{index}]", "OPENQUEUE_MAX_ERROR_TEXT_BYTES", limit, size
                )
                refused[index] = {"status": 413, "detail": str(detail)}
        outcomes = services.nack_jobs(
            owner=self.owner,
            items=[
                services.NackItem(
                    job_id=i.job_id, lease_token=i.lease_token, error=i.error, retry=i.retry
                )
                for n, i in enumerate(body.items)
                if n not in refused
            ],
        )
        return _item_results(body.items, refused, outcomes, "failed_or_requeued")
