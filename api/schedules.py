"""Cron schedules over REST (contract A.4).

``GET /schedules``, ``PUT|GET|DELETE /schedules/{name}`` and
``POST /schedules/{name}/trigger``. PUT is declarative: a deploy script may
send the same schedules every time (201 the first time, 200 after).
Another tenant's schedule of the same name is simply not the caller's (404).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from api.parsing import validate_all
from api.schemas import (
    DetailOut,
    EnqueueOut,
    ScheduleListOut,
    ScheduleOut,
    SchedulePath,
    ScheduleRequest,
    field_schema,
    schedule_to_dict,
)
from api.views import ERRORS, ApiView, check_payload
from schedules import services
from schedules.services import ScheduleSpec

NAME = OpenApiParameter("name", field_schema(SchedulePath, "name"), OpenApiParameter.PATH)
NOT_FOUND = {404: OpenApiResponse(DetailOut, description="No such schedule")}


class SchedulesView(ApiView):
    """The caller's schedules."""

    http_method_names = ["get"]
    rate_limit_actions = {"GET": "schedules"}

    @extend_schema(
        operation_id="list_schedules",
        responses={200: ScheduleListOut, **ERRORS},
        description="Every schedule of the caller, sorted by name.",
    )
    def get(self, request: Request) -> Response:
        return Response([schedule_to_dict(s) for s in services.list_schedules(owner=self.owner)])


class ScheduleView(ApiView):
    """Declare, read or delete one schedule."""

    http_method_names = ["get", "put", "delete"]
    rate_limit_actions = {
        "GET": "schedules",
        "PUT": "schedule_control",
        "DELETE": "schedule_control",
    }

    @extend_schema(
        operation_id="get_schedule",
        parameters=[NAME],
        responses={200: ScheduleOut, **NOT_FOUND, **ERRORS},
    )
    def get(self, request: Request, name: str) -> Response:
        (path,) = validate_all((SchedulePath, {"name": name}, "path"))
        return Response(schedule_to_dict(services.get_schedule(owner=self.owner, name=path.name)))

    @extend_schema(
        operation_id="put_schedule",
        parameters=[NAME],
        request=ScheduleRequest,
        responses={
            201: OpenApiResponse(ScheduleOut, description="Created"),
            200: OpenApiResponse(ScheduleOut, description="Replaced"),
            413: OpenApiResponse(DetailOut, description="Payload over its limit"),
            **ERRORS,
        },
        description=(
            "Create or replace the schedule. The maintenance loop enqueues one job into "
            "queue_name at each occurrence of cron in timezone, exactly once. Replacing it "
            "with the same cron, timezone and enabled keeps next_run_at."
        ),
    )
    def put(self, request: Request, name: str) -> Response:
        path, body = validate_all(
            (SchedulePath, {"name": name}, "path"), (ScheduleRequest, self.body, "body")
        )
        # Every job it enqueues carries this payload: the enqueue limit applies.
        check_payload(body.payload, "Schedule payload", "OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES")
        spec = ScheduleSpec.of(body.model_dump())
        schedule, created = services.put_schedule(owner=self.owner, name=path.name, spec=spec)
        return Response(schedule_to_dict(schedule), status=201 if created else 200)

    @extend_schema(
        operation_id="delete_schedule",
        parameters=[NAME],
        responses={204: None, **NOT_FOUND, **ERRORS},
        description="Jobs the schedule already enqueued stay.",
    )
    def delete(self, request: Request, name: str) -> Response:
        (path,) = validate_all((SchedulePath, {"name": name}, "path"))
        services.delete_schedule(owner=self.owner, name=path.name)
        return Response(status=204)


class ScheduleTriggerView(ApiView):
    """Enqueue one job of a schedule now."""

    http_method_names = ["post"]
    rate_limit_actions = {"POST": "schedule_control"}
    parses_body = False  # nothing to send; an SDK may send an empty JSON body

    @extend_schema(
        operation_id="trigger_schedule",
        parameters=[NAME],
        request=None,
        responses={201: EnqueueOut, **NOT_FOUND, **ERRORS},
        description="One job now, independent of the cron (a disabled schedule too); "
        "next_run_at and last_run_at are left as they are.",
    )
    def post(self, request: Request, name: str) -> Response:
        (path,) = validate_all((SchedulePath, {"name": name}, "path"))
        job_id = services.trigger(owner=self.owner, name=path.name)
        return Response({"job_id": str(job_id), "status": "queued"}, status=201)
