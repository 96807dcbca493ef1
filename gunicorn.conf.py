"""gunicorn settings. Every value can be overridden on the command line or
through GUNICORN_CMD_ARGS; docs/operations.md explains the choices."""

import os
from typing import Any

# Sync WSGI with threads: measured against uvicorn ASGI workers with
# bench/serving.py (docs/benchmarks.md), gthread was faster in every scenario;
# the threads cover requests waiting on the database. DRF views are sync, so
# under ASGI each one would hop to a single worker thread anyway.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Many threads because a long-poll lease (wait_seconds) holds its thread for
# up to 20 s, but no database connection and no CPU: 200 waiting workers on
# two processes must leave threads for producers. gthread starts threads only
# as needed. settings.OPENQUEUE_LEASE_MAX_WAITERS keeps 16 of them free.
threads = int(os.environ.get("OPENQUEUE_THREADS", "128"))
bind = os.environ.get("OPENQUEUE_BIND", "0.0.0.0:8000")
timeout = 30
graceful_timeout = 20
keepalive = 5
# A safety net, not a fix: a worker is replaced after this many requests (the
# jitter keeps workers from restarting together), so memory that CPython's
# allocator keeps after a burst of big requests is given back eventually.
# Big bodies are bounded where they are read (api/parsing.py).
max_requests = int(os.environ.get("OPENQUEUE_MAX_REQUESTS", "20000"))
max_requests_jitter = max_requests // 10
# Workers signal liveness through a file; on a container's overlay filesystem
# writes to it can stall long enough for the master to kill healthy workers.
# /dev/shm is memory-backed (gunicorn's own Docker advice). gunicorn creates
# its files there with mkstemp (unique names, mode 0600), hence the noqa.
_SHM = "/dev/shm"  # noqa: S108
if os.path.isdir(_SHM):
    worker_tmp_dir = _SHM
# gunicorn >= 25 opens a control socket under $HOME/.gunicorn by default: not
# writable in the image (HOME is the read-only /app), one path shared by every
# instance on a host, and nothing here uses gunicornc.
control_socket_disable = True
# No access log: the app writes one JSON line per request (openqueue.http,
# openqueue_site/logging.py) with the route, tenant and request id that
# gunicorn's line lacks.
accesslog = None
errorlog = "-"


# --- Prometheus multiprocess mode ---------------------------------------------------
# Each worker keeps its metric values in files under PROMETHEUS_MULTIPROC_DIR and
# /metrics sums them (queues/metrics.py). The variable must be set before a
# worker imports prometheus_client; this file runs in the master before the
# fork, so setting it here is early enough. Without it a scrape would show
# one random worker's counts.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="openqueue-prometheus-")
    _own_multiproc_dir = True
else:
    _own_multiproc_dir = False


def on_starting(server: Any) -> None:
    """Start every counter at zero: remove the values of a previous run."""
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    # Only prometheus_client's own files, in case the directory is shared.
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges; its counters stay, so totals never go down."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the directory this file created (never one set by the operator)."""
    if _own_multiproc_dir:
        import shutil

        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
