"""``openqueue-worker``: run a Python function for every job of one or more queues.

    openqueue-worker --url http://localhost:8000 --token oq_live_… \\
        --queue emails --concurrency 4 myapp.jobs:send_email

The function receives the job's payload (a dict); what it returns becomes
the job's result. ``--burst`` exits 0 once none of the queues has a job
ready. Exit status: 0 when stopped (SIGTERM/SIGINT, or burst done), 1 when
the server refused the worker (wrong token, queue name), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from openqueue_client import __version__
from openqueue_client.client import Client
from openqueue_client.errors import OpenQueueError
from openqueue_client.models import Job
from openqueue_client.worker import Worker


def load_function(target: str) -> Callable[..., Any]:
    """``module.path:function`` (or ``module.path:Class.method``), imported from the cwd too."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected module:function, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as gunicorn and rq do: the project's own modules
    function: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        function = getattr(function, part)
    if not callable(function):
        raise ValueError(f"{target} is not callable")
    return function


def payload_handler(function: Callable[[Any], Any]) -> Callable[[Job], Any]:
    def handle(job: Job) -> Any:
        return function(job.payload)

    return handle


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="openqueue-worker",
        description="Run FUNCTION(payload) for every job of the given queues.",
    )
    p.add_argument("function", metavar="module:function", help="what runs each job's payload")
    p.add_argument("--url", default=os.environ.get("OPENQUEUE_URL"), help="$OPENQUEUE_URL")
    p.add_argument("--token", default=os.environ.get("OPENQUEUE_TOKEN"), help="$OPENQUEUE_TOKEN")
    p.add_argument(
        "--queue", "-q", dest="queues", action="append", required=True, help="repeatable"
    )
    p.add_argument("--concurrency", "-c", type=int, default=1, help="jobs at once (default 1)")
    p.add_argument("--lease-seconds", type=int, default=30, help="renewed by heartbeats")
    p.add_argument("--wait-seconds", type=int, default=10, help="long-poll, 0-20 (default 10)")
    p.add_argument("--grace-seconds", type=float, default=30.0, help="for running jobs at shutdown")
    p.add_argument("--worker-id", help="shown in the attempts (default host:pid:random)")
    p.add_argument("--burst", action="store_true", help="exit once no job is ready")
    p.add_argument("--log-level", default="INFO", help="default INFO: one line per job")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.url or not args.token:
        parser().error("--url and --token (or OPENQUEUE_URL and OPENQUEUE_TOKEN) are required")
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per job is the worker's; httpx would add one per request.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))
    try:
        function = load_function(args.function)
    except (ImportError, AttributeError, ValueError) as error:
        parser().error(f"cannot load {args.function}: {error}")
    with Client(args.url, args.token) as client:
        try:
            worker = Worker(
                client,
                args.queues,
                payload_handler(function),
                concurrency=args.concurrency,
                lease_seconds=args.lease_seconds,
                wait_seconds=args.wait_seconds,
                grace_seconds=args.grace_seconds,
                burst=args.burst,
                worker_id=args.worker_id,
            )
        except ValueError as error:
            parser().error(str(error))
        try:
            worker.run()
        except OpenQueueError as error:
            print(f"openqueue-worker: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
