"""The fast timestamptz loader (queues/store/pgtypes.py) reads what Django's reads."""

from __future__ import annotations

import pytest
from django.db import connection
from psycopg.pq import Format

from queues.store import pgtypes

pytestmark = [pytest.mark.django_db, pytest.mark.postgres_only]

VALUES = [
    "2026-11-28 04:01:32.868122+00",
    "2026-11-28 04:01:32+00",
    "2026-11-28 04:01:32.000001+00",
    "1999-12-31 23:59:59.999999+00",
    "0999-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "2026-03-29 01:30:00+05:30",
    "1880-01-01 00:00:00+00:19:32",
]


def _load(loader_class, text: str):
    return loader_class(pgtypes.TIMESTAMPTZ_OID, connection.connection).load(text.encode())


def test_fast_loader_is_installed_and_agrees_with_djangos():
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz", [VALUES[0]])
        (value,) = cursor.fetchone()
    installed = connection.connection.adapters.get_loader(pgtypes.TIMESTAMPTZ_OID, Format.TEXT)
    assert installed.__name__ == "FastTimestamptzLoader"
    django_loader = installed.__mro__[1]
    for text in VALUES:
        assert _load(installed, text) == _load(django_loader, text), text
    assert value == _load(django_loader, VALUES[0])
    assert value.tzinfo is not None and value.utcoffset().total_seconds() == 0


def test_forms_fromisoformat_cannot_read_fall_back_to_djangos_loader():
    installed = connection.connection.adapters.get_loader(pgtypes.TIMESTAMPTZ_OID, Format.TEXT)
    django_loader = installed.__mro__[1]
    for text in ["infinity", "0044-03-15 00:00:00+00 BC"]:
        with pytest.raises(Exception) as fast_error:
            _load(installed, text)
        with pytest.raises(Exception) as django_error:
            _load(django_loader, text)
        assert type(fast_error.value) is type(django_error.value)
