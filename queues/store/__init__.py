"""The storage seam: what queues/services.py asks of a database engine.

The services own every rule (queues/services.py writes them as data, in the
vocabulary of queues/store/spec.py); an engine only stores: it turns those
specs into statements and runs them. Two engines:

- ``OrmStore`` (queues/store/orm.py): Django's ORM. SQLite, the zero-setup
  database, uses it; it runs on PostgreSQL too, where the parity suite
  (queues/tests/test_parity.py) walks it beside the other engine.
- ``PostgresStore`` (queues/store/postgres.py): the hot transitions
  (enqueue, lease, ack, nack, heartbeat, cancel) as constant SQL statements,
  one round trip each, plus LISTEN/NOTIFY for long-poll leases; the cold
  ones (operator actions, maintenance) are the ORM engine's.

``get_store()`` is the only place that looks at the database vendor.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections

from queues.store.orm import OrmStore
from queues.store.postgres import PostgresStore

__all__ = ["OrmStore", "PostgresStore", "get_store", "using_store"]

ORM = OrmStore()
POSTGRES = PostgresStore()

_forced: contextvars.ContextVar[OrmStore | None] = contextvars.ContextVar(
    "openqueue_forced_store", default=None
)


def get_store(using: str = DEFAULT_DB_ALIAS) -> OrmStore:
    """The engine for database ``using``: PostgreSQL's own, or the ORM's."""
    forced = _forced.get()
    if forced is not None:
        return forced
    return POSTGRES if connections[using].vendor == "postgresql" else ORM


@contextmanager
def using_store(store: OrmStore) -> Iterator[OrmStore]:
    """Run the services on ``store`` whatever the database (the parity suite does)."""
    reset = _forced.set(store)
    try:
        yield store
    finally:
        _forced.reset(reset)
