"""The image's HEALTHCHECK: GET /health on this container's gunicorn; exit 0 on 200.

It sends the first ALLOWED_HOSTS entry as the Host header: a production
ALLOWED_HOSTS (``queue.example.com``) does not list 127.0.0.1, and Django
would answer such a request with 400. Standard library only, since the slim
image has no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe_host() -> str:
    hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost").split(",")]
    first = next((h for h in hosts if h), "localhost")
    # "*" allows anything; ".example.com" also matches example.com itself.
    return "localhost" if first == "*" else first.lstrip(".")


def main() -> int:
    port = os.environ.get("OPENQUEUE_BIND", "0.0.0.0:8000").rpartition(":")[2]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/health", headers={"Host": probe_host()}
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310 - a fixed http:// URL on localhost
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: /health answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
