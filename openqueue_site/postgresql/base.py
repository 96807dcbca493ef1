"""Django's PostgreSQL backend, with a pool that pings only connections that sat idle.

``settings.py`` selects it (``ENGINE = "openqueue_site.postgresql"``) when
the pool is on. Django's pool pings every connection it hands out when
``CONN_HEALTH_CHECKS`` is on, and never when it is off; this one pings a
connection only after it sat idle (openqueue_site/dbpool.py). Everything
else is Django's: the pool is built with the arguments Django's own
``pool`` property uses and kept where Django's methods (``close_pool``,
``get_new_connection``) look for it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

from openqueue_site.dbpool import pool_callbacks


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> Any:
        this: Any = self  # django-stubs predate Django's pool
        options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not options:
            return None
        if self.alias not in this._connection_pools:
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # as Django's: it sets the mode later
            pool = ConnectionPool(
                kwargs=connect_kwargs,
                open=False,
                configure=this._configure_connection,
                **pool_callbacks(settings.OPENQUEUE_DB_POOL_CHECK_IDLE_SECONDS),
                **({} if options is True else options),
            )
            # As Django's: the first thread to get here wins.
            this._connection_pools.setdefault(self.alias, pool)
        return this._connection_pools[self.alias]
