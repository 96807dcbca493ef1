"""The pool's checkout check pings only connections that sat idle (openqueue_site/dbpool.py)."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from openqueue_site.dbpool import pool_callbacks

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db]


def _pool(idle_seconds: float) -> ConnectionPool:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return ConnectionPool(
        kwargs=params, min_size=1, max_size=1, open=True, **pool_callbacks(idle_seconds)
    )


def _kill(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    # The backend is gone once it no longer shows in pg_stat_activity.
    for _ in range(500):
        with connection.cursor() as cursor:
            # The test's transaction would keep reading one snapshot of the stats.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} did not exit")


def test_a_connection_given_back_moments_ago_is_used_without_a_ping():
    with _pool(idle_seconds=60) as pool:
        with pool.connection() as conn:
            pid = conn.info.backend_pid
        _kill(pid)
        # No ping at checkout: the dead connection is handed out, and the
        # query on it fails (the request would answer 503)...
        with pytest.raises(psycopg.OperationalError):
            with pool.connection() as conn:
                conn.execute("SELECT 1")
        # ...and the pool drops it: the next checkout gets a live one.
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid != pid


def test_a_connection_idle_longer_than_the_setting_is_pinged_and_replaced():
    with _pool(idle_seconds=0) as pool:
        with pool.connection() as conn:
            pid = conn.info.backend_pid
        _kill(pid)
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid != pid
