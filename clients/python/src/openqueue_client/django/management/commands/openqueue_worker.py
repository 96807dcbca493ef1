"""``manage.py openqueue_worker``: run this project's tasks from an OpenQueue server."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from openqueue_client.errors import OpenQueueError
from openqueue_client.models import Job
from openqueue_client.worker import Worker


class Command(BaseCommand):
    help = (
        "Run the tasks enqueued through OpenQueueBackend: lease from the backend's queues, "
        "run each task, ack its return value or nack its exception. Stops on SIGTERM/SIGINT "
        "(running tasks get --grace-seconds), or with --burst once no task is ready."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backend", default="default", help="the TASKS alias (default)")
        parser.add_argument(
            "--queue",
            dest="queues",
            action="append",
            help="repeatable; default: the backend's QUEUES",
        )
        parser.add_argument("--concurrency", type=int, default=1)
        parser.add_argument("--lease-seconds", type=int, default=30)
        parser.add_argument("--wait-seconds", type=int, default=10)
        parser.add_argument("--grace-seconds", type=float, default=30.0)
        parser.add_argument("--worker-id")
        parser.add_argument("--burst", action="store_true", help="exit once no task is ready")

    def handle(self, *args: Any, **options: Any) -> None:
        from openqueue_client.django.backend import OpenQueueBackend
        from openqueue_client.django.compat import task_backends
        from openqueue_client.django.runner import run_task

        backend = task_backends[options["backend"]]
        if not isinstance(backend, OpenQueueBackend):
            raise CommandError(f"TASKS[{options['backend']!r}] is not an OpenQueueBackend")
        queues = options["queues"] or sorted(backend.queues) or ["default"]
        self._log_to_stderr(options["verbosity"])

        def handler(job: Job) -> Any:
            return run_task(job, backend)

        try:
            worker = Worker(
                backend.client,
                queues,
                handler,
                concurrency=options["concurrency"],
                lease_seconds=options["lease_seconds"],
                wait_seconds=options["wait_seconds"],
                grace_seconds=options["grace_seconds"],
                burst=options["burst"],
                worker_id=options["worker_id"],
            )
            worker.run()
        except (ValueError, OpenQueueError) as error:
            raise CommandError(str(error)) from error

    @staticmethod
    def _log_to_stderr(verbosity: int) -> None:
        log = logging.getLogger("openqueue_client")
        if not log.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(handler)
        log.setLevel(logging.WARNING if verbosity == 0 else logging.INFO)
        # One line per task is the worker's; httpx would add one per request.
        if verbosity < 3:
            logging.getLogger("httpx").setLevel(logging.WARNING)
