"""Fixtures for the client's tests: a real OpenQueue server (gunicorn on the test database).

The client is not the database's subject, so its tests run in the
PostgreSQL leg only (scripts/test.sh runs the suite once per database).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from conftest import ServerProcess, Tenant, start_server


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Marked before the repository's conftest reads the "client" marker (one leg only).
    for item in items:
        if "clients/python/tests" in str(item.path):
            item.add_marker(pytest.mark.client)


@pytest.fixture(scope="module")
def server(django_db_setup: None, django_db_blocker: object) -> Iterator[ServerProcess]:
    # One server per module; it outlives each test's flush (as api/tests/test_sdk.py).
    process = start_server(workers=2, threads=8)
    yield process
    process.stop()


@pytest.fixture
def token(make_tenant: Callable[..., Tenant]) -> str:
    return make_tenant().token
