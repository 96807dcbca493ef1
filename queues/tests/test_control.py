"""The dashboards' live numbers (queues/control.py): right, and read from indexes alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from queues import control
from queues.tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db


def _jobs_of_every_state(owner, queue_name="q"):
    now = timezone.now()
    JobFactory(owner=owner, queue_name=queue_name, created_at=now - timedelta(minutes=5))
    JobFactory(owner=owner, queue_name=queue_name, run_at=now + timedelta(days=1))
    JobFactory(owner=owner, queue_name=queue_name, leased=True)
    JobFactory(owner=owner, queue_name=queue_name, expired=True)
    JobFactory(owner=owner, queue_name=queue_name, dead=True)
    JobFactory(owner=owner, queue_name=queue_name, completed=True)
    JobFactory(owner=owner, queue_name=queue_name, status="cancelled")


def test_health_numbers_count_every_tenants_live_jobs():
    _jobs_of_every_state(UserFactory(), "a")
    _jobs_of_every_state(UserFactory(), "b")

    numbers = control.health_numbers(now=timezone.now())

    assert {key: numbers[key] for key in ("ready", "scheduled", "in_flight", "dead")} == {
        "ready": 2,
        "scheduled": 2,
        "in_flight": 2,  # the expired leases are not
        "dead": 2,
    }
    assert 299 <= numbers["oldest_ready_age_seconds"] < 360
    assert numbers["paused_queues"] == 0


def test_an_empty_install_has_zeros_and_no_oldest_ready_job():
    numbers = control.health_numbers(now=timezone.now())

    assert (numbers["ready"], numbers["in_flight"], numbers["dead"]) == (0, 0, 0)
    assert numbers["oldest_ready_age_seconds"] is None


def test_list_queues_counts_processing_jobs_with_expired_leases_apart_from_in_flight():
    owner = UserFactory()
    _jobs_of_every_state(owner)
    _jobs_of_every_state(UserFactory())  # another tenant's

    (info,) = control.list_queues(owner=owner)

    assert (info.ready, info.scheduled, info.in_flight, info.processing, info.dead) == (
        1,
        1,
        1,
        2,
        1,
    )


@pytest.mark.parametrize("whose", ["tenant", "everyone"])
def test_live_numbers_read_no_column_their_indexes_lack(whose):
    """Each count fixes one status in its WHERE and reads only columns of that
    status's index (run_at rides in the lease index, locked_until in the
    expiry index): a status in a FILTER, or counting ids, would make
    PostgreSQL read the table, most of which is finished jobs
    (docs/benchmarks.md, issue 14)."""
    owner = UserFactory()
    _jobs_of_every_state(owner)
    with CaptureQueriesContext(connection) as queries:
        if whose == "tenant":
            control.list_queues(owner=owner)
        else:
            control.health_numbers(now=timezone.now())
    counts = [
        q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"] and '"jobs"' in q["sql"]
    ]
    assert len(counts) == 3
    for sql in counts:
        aggregates = sql.split(" FROM ")[0]
        assert '"status"' not in aggregates and '"id"' not in aggregates, sql
