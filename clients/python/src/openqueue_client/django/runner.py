"""Running one task job inside the Django project (``manage.py openqueue_worker``)."""

from __future__ import annotations

import json
from typing import Any

from django.db import close_old_connections, connections
from django.utils.module_loading import import_string

from openqueue_client.django.compat import (
    Task,
    TaskContext,
    TaskResult,
    TaskResultStatus,
    task_finished,
    task_started,
)
from openqueue_client.errors import Permanent
from openqueue_client.models import Job


def run_task(job: Job, backend: Any) -> dict[str, Any]:
    """Call the job's task; the return value becomes the job's result.

    Each job starts and ends without database connections of its thread, as
    Django's own workers do: a connection the task broke or left in a
    transaction never leaks into the next task.
    """
    close_old_connections()
    try:
        task = load_task(job)
        result = running_result(job, task, backend)
        task_started.send(type(backend), task_result=result)
        try:
            if task.takes_context:
                value = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
            else:
                value = task.call(*result.args, **result.kwargs)
        except BaseException:
            object.__setattr__(result, "status", TaskResultStatus.FAILED)
            task_finished.send(type(backend), task_result=result)
            raise
        try:
            return_value = json.loads(json.dumps(value))
        except (TypeError, ValueError) as error:
            raise Permanent(
                f"{task.module_path} returned a value that is not JSON: {error}"
            ) from error
        object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
        object.__setattr__(result, "_return_value", return_value)
        task_finished.send(type(backend), task_result=result)
        return {"return_value": return_value}
    finally:
        connections.close_all()


def load_task(job: Job) -> Task:
    payload = job.payload if isinstance(job.payload, dict) else {}
    path = payload.get("task")
    if not isinstance(path, str):
        raise Permanent(f"job {job.id} is not a task: its payload has no 'task' path")
    task = import_string(path)
    if not isinstance(task, Task):
        raise Permanent(f"{path} is not a task (decorate it with @task)")
    return task


def running_result(job: Job, task: Task, backend: Any) -> TaskResult:
    payload = job.payload
    return TaskResult(
        task=task,
        id=job.id,
        status=TaskResultStatus.RUNNING,
        enqueued_at=job.created_at,
        started_at=job.started_at,
        last_attempted_at=job.started_at,
        finished_at=None,
        args=payload.get("args", []),
        kwargs=payload.get("kwargs", {}),
        backend=backend.alias,
        errors=[],
        # TaskContext.attempt counts these: the attempt this run is.
        worker_ids=[""] * job.attempt,
    )
