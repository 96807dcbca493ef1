"""Job functions that the CLI tests run in ``openqueue-worker`` subprocesses."""

from __future__ import annotations

import os
import time
from typing import Any


def double(payload: dict[str, Any]) -> dict[str, Any]:
    return {"double": payload["n"] * 2}


def slow_unless_told(payload: dict[str, Any]) -> dict[str, Any]:
    """Runs ``payload["seconds"]`` while OPENQUEUE_TEST_SLOW=1 is set, at once otherwise."""
    if os.environ.get("OPENQUEUE_TEST_SLOW") == "1":
        print("started", flush=True)
        time.sleep(payload["seconds"])
    return {"finished": True}
