"""A faster loader for PostgreSQL ``timestamptz`` values.

Django loads timestamps through a subclass of psycopg's pure-Python
``TimestamptzLoader``, so every timestamp in a result row costs a regular
expression and a dozen Python calls; with six timestamps per job that was a
third of the Python calls of a 100-job batch lease (docs/benchmarks.md). In
the ISO DateStyle every PostgreSQL session uses by default, the text form is
one that ``datetime.fromisoformat`` (C code) reads directly. Anything else
(another DateStyle, BC dates, ``infinity``) falls back to Django's loader,
so the values are the same; only the cost changes.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from psycopg.adapt import Loader
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

TIMESTAMPTZ_OID = pg_types["timestamptz"].oid


@functools.cache
def fast_loader(base: type[Loader]) -> type[Loader]:
    """``base`` (Django's loader for the connection's time zone) with an ISO fast path."""

    class FastTimestamptzLoader(base):  # type: ignore[valid-type, misc]
        def load(self, data: Any) -> datetime:
            try:
                value = datetime.fromisoformat(bytes(data).decode())
            except ValueError:
                return super().load(data)
            tz = getattr(self, "timezone", None)
            # Django's loader: the instant in its time zone, or naive without one.
            return value.astimezone(tz) if tz is not None else value.replace(tzinfo=None)

    return FastTimestamptzLoader


def install(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: use the fast loader on a PostgreSQL connection.

    Django sends the signal each time it takes a connection, from the pool
    too; a flag on the psycopg connection makes the repeat cost one lookup.
    """
    if connection.vendor != "postgresql":
        return
    conn = connection.connection
    if getattr(conn, "_openqueue_fast_timestamps", False):
        return
    base = conn.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
    if base is not None:
        conn.adapters.register_loader("timestamptz", fast_loader(base))
    conn._openqueue_fast_timestamps = True
