"""The PostgreSQL pool's checkout check: ping only a connection that sat idle.

Django's pool (``CONN_HEALTH_CHECKS``) pings every connection it hands out:
one more round trip per request, a third of a lease's. A connection that
went back to the pool moments ago is almost certainly still alive, and if
the server did go away in that moment, the request fails with 503 and the
pool drops the broken connection when it comes back. So the ping runs only
for a connection idle for ``OPENQUEUE_DB_POOL_CHECK_IDLE_SECONDS`` or more
(docs/operations.md).
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from psycopg_pool import ConnectionPool

# When each pooled connection was last given back (monotonic seconds).
_returned_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def note_returned(conn: Any) -> None:
    """The pool's ``reset`` callback: remember when ``conn`` came back."""
    _returned_at[conn] = time.monotonic()


def pool_callbacks(idle_seconds: float) -> dict[str, Any]:
    """``check`` and ``reset`` for the pool's options: ping after ``idle_seconds`` idle."""

    def check(conn: Any) -> None:
        returned = _returned_at.get(conn)
        if returned is not None and time.monotonic() - returned < idle_seconds:
            return
        ConnectionPool.check_connection(conn)

    return {"check": check, "reset": note_returned}
