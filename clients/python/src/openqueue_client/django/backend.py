"""``OpenQueueBackend``: Django's tasks API on an OpenQueue server.

A task becomes one job: its payload is ``{"task": <import path>, "args":
[...], "kwargs": {...}}``, its queue the task's ``queue_name``, its
priority the task's (Django's −100…100 is a sub-range of ours and means the
same: higher first), its ``run_at`` the task's ``run_after``. The job's id is
the result id. ``manage.py openqueue_worker`` runs them.

OPTIONS: ``url``, ``token`` (required), ``max_retries`` (default 0: Django's
API has no retries, a task that raises is FAILED at once; more makes the
server retry it with backoff first), ``timeout`` (seconds, default 10).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from openqueue_client.aio import AsyncClient
from openqueue_client.client import Client
from openqueue_client.django.compat import (
    BaseTaskBackend,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)
from openqueue_client.errors import NotFoundError, ValidationError
from openqueue_client.models import Attempt, Job

STATUSES = {
    "pending": TaskResultStatus.READY,
    "processing": TaskResultStatus.RUNNING,
    "completed": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "dead": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}

# The last line of a Python traceback: "ValueError: message" or
# "myapp.errors.Refused: message" (builtins are printed without a module).
LAST_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


class OpenQueueBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True  # the worker runs coroutines through async_to_sync
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = self.options
        missing = [key for key in ("url", "token") if not options.get(key)]
        if missing:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS'] needs {' and '.join(missing)} for OpenQueueBackend"
            )
        self.url: str = options["url"]
        self.token: str = options["token"]
        self.max_retries = int(options.get("max_retries", 0))
        self.timeout = float(options.get("timeout", 10.0))
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url, self.token, timeout=self.timeout)
        return self._client

    def async_client(self) -> AsyncClient:
        return AsyncClient(self.url, self.token, timeout=self.timeout)

    # --- Enqueue --------------------------------------------------------------

    def _new_result(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        return TaskResult(
            task=task,
            id="",
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=args,  # normalised to JSON types (or TypeError) by TaskResult
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )

    def _enqueue_args(self, result: TaskResult) -> dict[str, Any]:
        task = result.task
        return {
            "queue_name": task.queue_name,
            "payload": {"task": task.module_path, "args": result.args, "kwargs": result.kwargs},
            "priority": task.priority,
            "max_retries": self.max_retries,
            "run_at": task.run_after,
        }

    def _enqueued(self, result: TaskResult, job_id: str) -> TaskResult:
        object.__setattr__(result, "id", job_id)
        object.__setattr__(result, "enqueued_at", datetime.now(timezone.utc))
        task_enqueued.send(type(self), task_result=result)
        return result

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        result = self._new_result(task, args, kwargs)
        enqueued = self.client.enqueue(**self._enqueue_args(result))
        return self._enqueued(result, enqueued.job_id)

    async def aenqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        result = self._new_result(task, args, kwargs)
        async with self.async_client() as client:
            enqueued = await client.enqueue(**self._enqueue_args(result))
        return self._enqueued(result, enqueued.job_id)

    # --- Results --------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult:
        try:
            job = self.client.get_job(result_id)
            attempts = self.client.get_attempts(result_id) if job.started_at else []
        except (NotFoundError, ValidationError):
            raise TaskResultDoesNotExist(result_id) from None
        return self.result_from_job(job, attempts)

    async def aget_result(self, result_id: str) -> TaskResult:
        async with self.async_client() as client:
            try:
                job = await client.get_job(result_id)
                attempts = await client.get_attempts(result_id) if job.started_at else []
            except (NotFoundError, ValidationError):
                raise TaskResultDoesNotExist(result_id) from None
        return self.result_from_job(job, attempts)

    def result_from_job(self, job: Job, attempts: list[Attempt]) -> TaskResult:
        """The ``TaskResult`` of a job this backend enqueued."""
        payload = job.payload if isinstance(job.payload, dict) else {}
        try:
            task = import_string(payload["task"])
        except (KeyError, TypeError, ImportError) as error:
            raise TaskResultDoesNotExist(f"{job.id} is not a task of this project") from error
        if not isinstance(task, Task):
            raise TaskResultDoesNotExist(f"{job.id}: {payload['task']} is not a task")
        status = STATUSES[job.status]
        errors = []
        if job.error_text and job.status != "completed":
            errors.append(
                TaskError(
                    exception_class_path=exception_class_path(job.error_text),
                    traceback=job.error_text,
                )
            )
        result: TaskResult = TaskResult(
            task=task,
            id=job.id,
            status=status,
            enqueued_at=job.created_at,
            started_at=job.started_at,
            last_attempted_at=attempts[-1].leased_at if attempts else job.started_at,
            finished_at=job.finished_at,
            args=payload.get("args", []),
            kwargs=payload.get("kwargs", {}),
            backend=self.alias,
            errors=errors,
            worker_ids=[attempt.worker_id or "" for attempt in attempts],
        )
        if status == TaskResultStatus.SUCCESSFUL and isinstance(job.result, dict):
            object.__setattr__(result, "_return_value", job.result.get("return_value"))
        return result


def exception_class_path(traceback_text: str) -> str:
    """The raised exception's import path, read from the traceback's last line."""
    lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
    match = LAST_LINE.match(lines[-1]) if lines else None
    if match is None:
        return "builtins.Exception"
    name = match.group(1)
    return name if "." in name else f"builtins.{name}"
