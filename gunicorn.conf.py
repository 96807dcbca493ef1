"""gunicorn settings. Every value can be overridden on the command line or
through GUNICORN_CMD_ARGS; docs/operations.md explains the choices."""

import os

# Sync WSGI with threads: measured faster than ASGI workers for this API
# (stack notes); the threads cover requests waiting on the database.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("OPENQUEUE_THREADS", "4"))
bind = os.environ.get("OPENQUEUE_BIND", "0.0.0.0:8000")
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"  # one line per request on stdout
errorlog = "-"
