"""The test's steps inside the project: ``python -m demo.steps enqueue|results IDS``; JSON out."""

import asyncio
import json
import sys
from datetime import timedelta

import django

django.setup()

from django.utils import timezone  # noqa: E402
from django_tasks import default_task_backend  # noqa: E402

from demo.tasks import add, explode, report, uses_db  # noqa: E402


def enqueue() -> dict:
    later = add.using(run_after=timezone.now() + timedelta(hours=1), priority=-20)
    results = {
        "add": add.enqueue(2, 3),
        "report": report.enqueue("q4", pages=12),
        "explode": explode.enqueue(),
        "uses_db": uses_db.enqueue(),
        "later": later.enqueue(1, 1),
    }
    results["async_add"] = asyncio.run(add.aenqueue(20, 22))
    return {name: {"id": r.id, "status": r.status} for name, r in results.items()}


def results(ids: list[str]) -> dict:
    out = {}
    for result_id in ids:
        result = default_task_backend.get_result(result_id)
        entry = {"status": result.status, "task": result.task.module_path}
        if result.status == "SUCCESSFUL":
            entry["return_value"] = result.return_value
        if result.errors:
            entry["error_class"] = result.errors[0].exception_class_path
            entry["traceback"] = result.errors[0].traceback
        entry["attempts"] = result.attempts
        entry["async_status"] = asyncio.run(default_task_backend.aget_result(result_id)).status
        out[result_id] = entry
    return out


if __name__ == "__main__":
    step = sys.argv[1]
    if step == "missing":
        try:
            default_task_backend.get_result(sys.argv[2])
        except Exception as error:
            print(json.dumps({"raised": type(error).__name__}))
    else:
        print(json.dumps(enqueue() if step == "enqueue" else results(sys.argv[2:])))
