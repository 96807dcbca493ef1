"""Request models and response shapes of the REST API.

Requests are pydantic models: they reproduce the original server's lax
coercion ("5" and 2.0 are ints, "yes" is a bool) and its 422 error objects
exactly, and drf-spectacular turns them into the OpenAPI schema.
Responses are plain dicts built in the contract's key order.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from django.conf import settings
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, RootModel, WithJsonSchema

from api.lax import NO_NUL, LaxBool, lax_int
from queues.control import QueueInfo
from queues.models import (
    INT32_MAX,
    INT32_MIN,
    MAX_IN_FLIGHT_LIMIT,
    QUEUE_NAME_MAX_LENGTH,
    Job,
    JobAttempt,
    JobStatus,
)
from schedules import cron
from schedules.models import NAME_PATTERN as SCHEDULE_NAME_PATTERN
from schedules.models import Schedule

EMAIL_MAX_LENGTH = 254  # accounts.User.email


def _no_nul(value: Any) -> Any:
    """PostgreSQL cannot store U+0000 in text or jsonb: refuse it up front (422, not 500)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters (\\u0000)")
        return value
    # A container: one C-speed dumps instead of a Python walk. Its ASCII text
    # holds "\u0000" only if some key or string holds NUL (or the six
    # characters backslash-u-0000), and only then does the walk decide.
    try:
        if "\\u0000" not in json.dumps(value):
            return value
    except (TypeError, ValueError):
        pass
    _walk_no_nul(value)
    return value


def _walk_no_nul(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _walk_no_nul(item)
    elif isinstance(value, list):
        for item in value:
            _walk_no_nul(item)
    elif isinstance(value, str):
        _no_nul(value)


def _queue_name(value: str) -> str:
    if value == "":
        raise ValueError("queue_name must not be empty")
    if len(value) > QUEUE_NAME_MAX_LENGTH:
        raise ValueError(f"queue_name must be at most {QUEUE_NAME_MAX_LENGTH} characters")
    if "/" in value:
        raise ValueError("queue_name must not contain '/' (it could never be leased)")
    return _no_nul(value)


# What run_at may be, as the schema says: an RFC 3339 date-time (the offset
# may be left out: UTC), or a date (midnight UTC).
_RUN_AT = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?)?$"
)
_NAIVE_RUN_AT = (
    r"^(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-(?:0[1-9]|1[0-2])"
    r"-(?:0[1-9]|1[0-9]|2[0-8])"
    r"[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?$"
)


def parse_run_at(value: str | None) -> datetime | None:
    """ISO 8601 to an aware UTC datetime; naive means UTC; empty means now."""
    if value is None or value == "":
        return None
    if not _RUN_AT.match(value):
        raise ValueError(f"run_at is not an ISO 8601 date-time: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"run_at is not an ISO 8601 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # Within a day of year 1 or 9999, the UTC time is outside what a
        # datetime holds: before year 1 is "due now", after 9999 is "never".
        edge = datetime.min.replace(tzinfo=UTC) if parsed.year == 1 else None
        return edge or datetime.max.replace(tzinfo=UTC)


QUEUE_NAME: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": QUEUE_NAME_MAX_LENGTH,
    "pattern": "^[^/\\u0000]+$",
    "description": "1..255 characters, no '/' and no NUL.",
}
QueueName = Annotated[str, AfterValidator(_queue_name), WithJsonSchema(QUEUE_NAME)]
NoNulStr = Annotated[
    str, AfterValidator(_no_nul), WithJsonSchema({"type": "string", "pattern": NO_NUL})
]
# The integer fields, with the lax forms the original took (api/lax.py). To
# the type checker they are plain ints.
if TYPE_CHECKING:
    Int32 = int
    MaxRetries = int
    LeaseSeconds = int
    WaitSeconds = int
    MaxJobs = int
    Limit = int
    Offset = int
else:
    Int32 = lax_int(INT32_MIN, INT32_MAX)
    MaxRetries = lax_int(0, INT32_MAX)
    LeaseSeconds = lax_int(1, 3600)
    WaitSeconds = lax_int(
        0,
        20,
        description="Long-poll: wait up to this many seconds for a job when none is due "
        "(0: answer at once).",
    )
    # At most OPENQUEUE_MAX_LEASE_BATCH, checked when the request is (tests change it).
    MaxJobs = Annotated[
        lax_int(1, INT32_MAX, schema_high=settings.OPENQUEUE_MAX_LEASE_BATCH),
        AfterValidator(lambda value: _lease_batch_size(value)),
    ]
    Limit = lax_int(1, 200)
    Offset = lax_int(0, 2**62)
# Any JSON object with no NUL in any key or string, at any depth (the
# recursive component is added to the schema in settings.py, APPEND_COMPONENTS).
# pydantic resolves every "$ref" it meets while it builds a model's schema,
# and this one is added afterwards (openapi_postprocess): a placeholder then.
_NUL_FREE = {"x-openqueue-ref": "NulFreeValue"}
NUL_FREE_OBJECT: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": NO_NUL},
    "additionalProperties": _NUL_FREE,
}
NUL_FREE_VALUE: dict[str, Any] = {
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "number"},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": _NUL_FREE},
        NUL_FREE_OBJECT,
    ]
}
JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(_no_nul),
    WithJsonSchema(NUL_FREE_OBJECT),
]


class EnqueueRequest(BaseModel):
    queue_name: QueueName = "default"
    payload: JsonObject
    priority: Int32 = 0
    max_retries: MaxRetries = 3
    run_at: Annotated[
        str | None,
        AfterValidator(parse_run_at),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "format": "date-time"},
                    {"type": "string", "pattern": _NAIVE_RUN_AT},
                    {"type": "string", "format": "date"},
                    {"type": "string", "enum": [""]},
                    {"type": "null"},
                ],
                "description": "An RFC 3339 date-time (an offset is converted to UTC; without "
                "one it is UTC) or a date (midnight UTC). Empty or null: now.",
            }
        ),
    ] = None


def _batch_size(value: Any) -> Any:
    # Checked before the items are validated, so a huge batch fails fast.
    limit = settings.OPENQUEUE_MAX_BATCH_SIZE
    if isinstance(value, list) and len(value) > limit:
        raise ValueError(
            f"a batch holds at most {limit} jobs (OPENQUEUE_MAX_BATCH_SIZE), got {len(value)}"
        )
    return value


# Idempotency keys: 1..255 printable ASCII characters (space included).
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x20-\x7e]+$")]
# In a header the key cannot begin or end with a space: HTTP trims them.
IDEMPOTENCY_HEADER = {
    "type": "string",
    "pattern": "^[\\x21-\\x7e](?:[\\x20-\\x7e]{0,253}[\\x21-\\x7e])?$",
}


class IdempotencyHeader(BaseModel):
    """The ``Idempotency-Key`` header of ``POST /jobs`` (422 loc ["header", "idempotency-key"])."""

    idempotency_key: Annotated[IdempotencyKey | None, Field(alias="idempotency-key")] = None


class BatchEnqueueItem(EnqueueRequest):
    idempotency_key: Annotated[
        IdempotencyKey | None,
        Field(description="Like the Idempotency-Key header of POST /jobs, per job."),
    ] = None


class BatchEnqueueRequest(BaseModel):
    jobs: Annotated[
        list[BatchEnqueueItem],
        BeforeValidator(_batch_size),
        Field(json_schema_extra={"maxItems": settings.OPENQUEUE_MAX_BATCH_SIZE}),
    ]


class LeaseRequest(BaseModel):
    worker_id: NoNulStr
    lease_seconds: LeaseSeconds = 30
    wait_seconds: WaitSeconds = 0


class AckRequest(BaseModel):
    lease_token: str
    result: JsonObject | None = None


class NackRequest(BaseModel):
    lease_token: str
    error: NoNulStr
    retry: LaxBool = True


def _lease_batch_size(value: Any) -> Any:
    limit = settings.OPENQUEUE_MAX_LEASE_BATCH
    if isinstance(value, int) and value > limit:
        raise ValueError(f"max_jobs must be at most {limit} (OPENQUEUE_MAX_LEASE_BATCH)")
    return value


def _items_size(value: Any) -> Any:
    # Checked before the items are validated, so a huge batch fails fast.
    limit = settings.OPENQUEUE_MAX_BATCH_SIZE
    if isinstance(value, list) and len(value) > limit:
        raise ValueError(
            f"a batch holds at most {limit} items (OPENQUEUE_MAX_BATCH_SIZE), got {len(value)}"
        )
    return value


class BatchLeaseRequest(BaseModel):
    worker_id: NoNulStr
    lease_seconds: LeaseSeconds = 30
    max_jobs: MaxJobs = 10
    wait_seconds: WaitSeconds = 0


class AckItemRequest(AckRequest):
    job_id: uuid.UUID


class NackItemRequest(NackRequest):
    job_id: uuid.UUID


_MAX_ITEMS = Field(json_schema_extra={"maxItems": settings.OPENQUEUE_MAX_BATCH_SIZE})


class BatchAckRequest(BaseModel):
    items: Annotated[list[AckItemRequest], BeforeValidator(_items_size), _MAX_ITEMS]


class BatchNackRequest(BaseModel):
    items: Annotated[list[NackItemRequest], BeforeValidator(_items_size), _MAX_ITEMS]


class HeartbeatRequest(BaseModel):
    lease_token: str
    lease_seconds: LeaseSeconds = 30


class ProvisionRequest(BaseModel):
    # Checked as an address by the view (Django's validator), at most 254 long.
    email: Annotated[
        str, WithJsonSchema({"type": "string", "format": "email", "maxLength": EMAIL_MAX_LENGTH})
    ]
    rotate: LaxBool = False


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


# The filters of GET /jobs, as the query string carries them: empty means "no filter".
QUEUE_FILTER = {"anyOf": [QUEUE_NAME, {"type": "string", "enum": [""]}]}
STATUS_FILTER = {"type": "string", "enum": [*JobStatus.values, ""]}


class ListJobsQuery(BaseModel):
    queue_name: Annotated[QueueName | None, BeforeValidator(_empty_is_none)] = None
    status: Annotated[JobStatus | None, BeforeValidator(_empty_is_none)] = None
    limit: Limit = 50
    offset: Offset = 0


class JobPath(BaseModel):
    job_id: uuid.UUID


class QueuePath(BaseModel):
    queue_name: QueueName


# --- Queue control, attempts, schedules (contract A.4) ------------------------------

if TYPE_CHECKING:
    MaxInFlight = int
else:
    MaxInFlight = lax_int(1, MAX_IN_FLIGHT_LIMIT)


class QueuePatchRequest(BaseModel):
    """``PATCH /queues/{name}``: either key may be left out (``model_fields_set`` says which)."""

    paused: LaxBool = False
    max_in_flight: Annotated[
        MaxInFlight | None,
        Field(description=f"1..{MAX_IN_FLIGHT_LIMIT}, or null for no limit."),
    ] = None


class PurgeRequest(BaseModel):
    status: Annotated[
        Literal["pending", "dead"], Field(description="Which of the queue's jobs to delete.")
    ]


def _cron(value: str) -> str:
    try:
        cron.expand(value)
    except cron.CronError as exc:
        raise ValueError(str(exc)) from None
    return value


def _timezone(value: str) -> str:
    try:
        cron.zone(value)
    except cron.CronError as exc:
        raise ValueError(str(exc)) from None
    return value


# A cron expression is more than a regular expression can say (a day that
# never comes, a range backwards): the schema names the format, "cron", and
# the description says what it takes (the schema fuzzer generates valid ones).
CronText = Annotated[
    str,
    AfterValidator(_no_nul),
    AfterValidator(_cron),
    WithJsonSchema(
        {
            "type": "string",
            "format": "cron",
            "description": "Five fields (minute hour day-of-month month day-of-week) with *, "
            "lists, ranges, steps and names, or @hourly, @daily, @weekly, @monthly, @yearly "
            f"(@midnight, @annually); at most {cron.MAX_LENGTH} characters.",
            "examples": ["*/15 * * * *", "0 9 * * MON-FRI", "@daily"],
        }
    ),
]
TimeZone = Annotated[
    str,
    AfterValidator(_no_nul),
    AfterValidator(_timezone),
    WithJsonSchema(
        {
            "type": "string",
            "enum": sorted(cron.zone_names()),
            "description": "An IANA time zone name.",
            "examples": ["UTC", "Europe/Berlin"],
        }
    ),
]
JsonValue = Annotated[Any, AfterValidator(_no_nul), WithJsonSchema(_NUL_FREE)]


class ScheduleRequest(BaseModel):
    """``PUT /schedules/{name}``: the whole schedule (what is left out takes its default)."""

    queue_name: QueueName
    cron: CronText
    timezone: TimeZone = "UTC"
    payload: Annotated[JsonValue, Field(description="Any JSON value; default {}.")] = None
    priority: Int32 = 0
    max_retries: MaxRetries = 3
    enabled: LaxBool = True


class SchedulePath(BaseModel):
    name: Annotated[
        str,
        Field(pattern=SCHEDULE_NAME_PATTERN),
        WithJsonSchema(
            {
                "type": "string",
                "pattern": SCHEDULE_NAME_PATTERN,
                "description": "1..100 characters of A-Z, a-z, 0-9, _ . : -",
            }
        ),
    ]


def field_schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The JSON Schema of one field of ``model``, as a path or query parameter.

    A parameter is text: a JSON boolean (a lax integer's other form) cannot
    be sent in one, so that branch is left out.
    """
    schema: dict[str, Any] = model.model_json_schema()["properties"][name]
    found = {key: value for key, value in schema.items() if key not in ("title", "default")}
    if "anyOf" in found:
        found["anyOf"] = [branch for branch in found["anyOf"] if branch.get("type") != "boolean"]
    return found


def openapi_postprocess(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular hook: add the recursive NUL-free JSON value the payloads refer to."""
    result.setdefault("components", {}).setdefault("schemas", {})["NulFreeValue"] = NUL_FREE_VALUE
    return _with_refs(result)


def _with_refs(node: Any) -> Any:
    if isinstance(node, dict):
        if set(node) == {"x-openqueue-ref"}:
            return {"$ref": f"#/components/schemas/{node['x-openqueue-ref']}"}
        return {key: _with_refs(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_refs(value) for value in node]
    return node


# --- Responses -------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """UTC, ISO 8601, always with microseconds and a ``Z`` (contract A.3 #2)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def job_to_dict(job: Job) -> dict[str, Any]:
    """The Job object, keys in the contract's order (Part B §3.7)."""
    return {
        "id": str(job.id),
        "queue_name": job.queue_name,
        "status": job.status,
        "priority": job.priority,
        "payload": job.payload,
        "result": job.result,
        "error_text": job.error_text,
        "retry_count": job.retry_count,
        "max_retries": job.max_retries,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }


def job_detail_to_dict(job: Job) -> dict[str, Any]:
    """``GET /jobs/{id}/detail``: the Job object with ``schedule_name`` appended (A.4)."""
    return {**job_to_dict(job), "schedule_name": job.schedule_name}


def queue_to_dict(info: QueueInfo) -> dict[str, Any]:
    """The queue object (contract A.4), keys in the contract's order."""
    return {
        "queue_name": info.queue_name,
        "paused": info.paused,
        "max_in_flight": info.max_in_flight,
        "ready": info.ready,
        "scheduled": info.scheduled,
        "in_flight": info.in_flight,
        "dead": info.dead,
        "oldest_ready_age_seconds": info.oldest_ready_age_seconds,
    }


def attempt_to_dict(attempt: JobAttempt) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "worker_id": attempt.worker_id,
        "leased_at": iso(attempt.leased_at),
        "lease_expires_at": iso(attempt.lease_expires_at),
        "finished_at": iso(attempt.finished_at),
        "outcome": attempt.outcome,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
    }


def schedule_to_dict(schedule: Schedule) -> dict[str, Any]:
    """The schedule object (contract A.4): the PUT body's fields, then the schedule's own."""
    return {
        "name": schedule.name,
        "queue_name": schedule.queue_name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "payload": schedule.payload,
        "priority": schedule.priority,
        "max_retries": schedule.max_retries,
        "enabled": schedule.enabled,
        "next_run_at": iso(schedule.next_run_at),
        "last_run_at": iso(schedule.last_run_at),
        "created_at": iso(schedule.created_at),
        "updated_at": iso(schedule.updated_at),
    }


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: what the size limits measure."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


# --- Response models, for the OpenAPI schema only ---------------------------------


class JobOut(BaseModel):
    id: uuid.UUID
    queue_name: str
    status: JobStatus
    priority: int
    payload: dict[str, Any] | None
    result: dict[str, Any] | None
    error_text: str | None
    retry_count: int
    max_retries: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class EnqueueOut(BaseModel):
    job_id: uuid.UUID
    status: Annotated[str, Field(examples=["queued"])]


class BatchEnqueueOut(BaseModel):
    job_ids: list[uuid.UUID]
    count: int


class JobListOut(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


class JobStatusOut(BaseModel):
    job_id: uuid.UUID
    status: str


class LeaseOut(BaseModel):
    job: JobOut
    lease_token: uuid.UUID
    lease_expires_at: datetime


class BatchLeaseOut(BaseModel):
    leases: list[LeaseOut]


class ItemErrorOut(BaseModel):
    status: Annotated[int, Field(examples=[409])]
    detail: Any


class BatchItemOut(BaseModel):
    job_id: uuid.UUID
    status: Annotated[str | None, Field(examples=["completed"])] = None
    error: ItemErrorOut | None = None


class BatchItemsOut(BaseModel):
    results: list[BatchItemOut]


class LeaseOrNullOut(RootModel[LeaseOut | None]):
    """The lease route's 200 body: a lease, or the JSON ``null`` when no job is due."""


class StatusOut(BaseModel):
    """``/health`` and ``/ready``."""

    status: Annotated[str, Field(examples=["ok"])]


class QueueStatsOut(BaseModel):
    queue_name: str
    pending: int
    processing: int
    completed: int
    failed: int
    cancelled: int
    dead: int
    total: int
    oldest_pending_created_at: datetime | None


class QueueStatsListOut(RootModel[list[QueueStatsOut]]):
    pass


class JobDetailOut(JobOut):
    schedule_name: str | None


class QueueOut(BaseModel):
    queue_name: str
    paused: bool
    max_in_flight: int | None
    ready: int
    scheduled: int
    in_flight: int
    dead: int
    oldest_ready_age_seconds: float | None


class QueueListOut(RootModel[list[QueueOut]]):
    pass


class PurgeOut(BaseModel):
    deleted: int


class AttemptOut(BaseModel):
    attempt: int
    worker_id: str | None
    leased_at: datetime
    lease_expires_at: datetime
    finished_at: datetime | None
    outcome: Literal["in_progress", "acked", "nacked", "lease_expired", "cancelled"]
    error: str | None
    duration_ms: int | None


class AttemptsOut(BaseModel):
    job_id: uuid.UUID
    attempts: list[AttemptOut]


class ScheduleOut(BaseModel):
    name: str
    queue_name: str
    cron: str
    timezone: str
    payload: Any
    priority: int
    max_retries: int
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ScheduleListOut(RootModel[list[ScheduleOut]]):
    pass


class ProvisionOut(BaseModel):
    token: str
    email: str
    created: bool


class DetailOut(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    type: str
    loc: list[str | int]
    msg: str
    input: Any
    ctx: dict[str, Any] | None = None


class ValidationErrorOut(BaseModel):
    """422: every error of the request at once, pydantic style (contract Part B §1)."""

    detail: list[ValidationErrorItem]
