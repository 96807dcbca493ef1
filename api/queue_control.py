"""Queue control and attempt history over REST (contract A.4).

``GET /queues``, ``GET|PATCH /queues/{queue_name}``,
``POST /queues/{queue_name}/purge`` and ``GET /jobs/{job_id}/attempts``.
Like every route: bearer-authenticated, rate-limited under their own action
names (OPENQUEUE_RATE_LIMITS), scoped to the caller (another tenant's queue
is simply the caller's own empty queue of that name; another tenant's job
is 404), and 422 for bad input.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from api.parsing import MISSING, validate_all
from api.schemas import (
    AttemptsOut,
    DetailOut,
    JobPath,
    PurgeOut,
    PurgeRequest,
    QueueListOut,
    QueueOut,
    QueuePatchRequest,
    QueuePath,
    attempt_to_dict,
    queue_to_dict,
)
from api.views import ERRORS, JOB_ID, QUEUE_NAME, ApiView
from queues import control, services
from queues.control import UNCHANGED
from schedules.services import list_schedules

API = "api"


class QueuesView(ApiView):
    """The caller's queues."""

    http_method_names = ["get"]
    rate_limit_actions = {"GET": "queues"}

    @extend_schema(
        operation_id="list_queues",
        responses={200: QueueListOut, **ERRORS},
        description="Every queue that has jobs, a schedule or settings, sorted by name.",
    )
    def get(self, request: Request) -> Response:
        scheduled = list_schedules(owner=self.owner).values_list("queue_name", flat=True)
        queues = control.list_queues(owner=self.owner, also=scheduled)
        return Response([queue_to_dict(info) for info in queues])


class QueueView(ApiView):
    """One queue: its numbers and settings; pause, resume and max_in_flight."""

    http_method_names = ["get", "patch"]
    rate_limit_actions = {"GET": "queues", "PATCH": "queue_control"}

    @extend_schema(
        operation_id="get_queue",
        parameters=[QUEUE_NAME],
        responses={200: QueueOut, **ERRORS},
        description="A queue with nothing in it answers zeros, not 404.",
    )
    def get(self, request: Request, queue_name: str) -> Response:
        (path,) = validate_all((QueuePath, {"queue_name": queue_name}, "path"))
        return Response(
            queue_to_dict(control.queue_info(owner=self.owner, queue_name=path.queue_name))
        )

    @extend_schema(
        operation_id="update_queue",
        parameters=[QUEUE_NAME],
        request=QueuePatchRequest,
        responses={200: QueueOut, **ERRORS},
        description=(
            "Pause or resume the queue, and/or set max_in_flight (null: no limit). A key left "
            "out (or the whole body) is left as it is. A paused queue accepts enqueues and "
            "leases nothing; resuming wakes waiting long-polls."
        ),
    )
    def patch(self, request: Request, queue_name: str) -> Response:
        # No body at all changes nothing, like {}: every key is optional.
        data = {} if self.body is MISSING else self.body
        path, body = validate_all(
            (QueuePath, {"queue_name": queue_name}, "path"), (QueuePatchRequest, data, "body")
        )
        given = body.model_fields_set
        info = control.change_queue(
            owner=self.owner,
            queue_name=path.queue_name,
            paused=body.paused if "paused" in given else UNCHANGED,
            max_in_flight=body.max_in_flight if "max_in_flight" in given else UNCHANGED,
            actor=API,
        )
        return Response(queue_to_dict(info))


class QueuePurgeView(ApiView):
    """Delete a queue's pending or dead jobs."""

    http_method_names = ["post"]
    rate_limit_actions = {"POST": "queue_control"}

    @extend_schema(
        operation_id="purge_queue",
        parameters=[QUEUE_NAME],
        request=PurgeRequest,
        responses={200: PurgeOut, **ERRORS},
        description=(
            "Delete the queue's jobs in that status, in bounded batches "
            "(OPENQUEUE_MAINTENANCE_BATCH_SIZE rows per transaction); a pending job leased "
            "meanwhile stays."
        ),
    )
    def post(self, request: Request, queue_name: str) -> Response:
        path, body = validate_all(
            (QueuePath, {"queue_name": queue_name}, "path"), (PurgeRequest, self.body, "body")
        )
        deleted = control.purge_queue(
            owner=self.owner,
            queue_name=path.queue_name,
            status=body.status,
            actor=API,
            batch_size=settings.OPENQUEUE_MAINTENANCE_BATCH_SIZE,
        )
        return Response({"deleted": deleted})


class JobAttemptsView(ApiView):
    """Every attempt of a job, oldest first."""

    http_method_names = ["get"]
    rate_limit_actions = {"GET": "attempts"}

    @extend_schema(
        operation_id="get_job_attempts",
        parameters=[JOB_ID],
        responses={200: AttemptsOut, 404: OpenApiResponse(DetailOut), **ERRORS},
        description=(
            "One attempt per lease, oldest first: its worker, lease times, outcome, error and "
            "duration. At most OPENQUEUE_MAX_ATTEMPTS_KEPT are kept (the oldest go first); "
            "attempt numbers keep counting."
        ),
    )
    def get(self, request: Request, job_id: str) -> Response:
        (path,) = validate_all((JobPath, {"job_id": job_id}, "path"))
        job, attempts = services.job_attempts(owner=self.owner, job_id=path.job_id)
        return Response({"job_id": str(job.id), "attempts": [attempt_to_dict(a) for a in attempts]})
