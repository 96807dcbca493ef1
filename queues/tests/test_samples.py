"""Per-minute queue samples for the charts (queues/samples.py), taken by run_maintenance."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from queues import samples
from queues.models import JobStatus, QueueSample, SampleTotal
from queues.tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 0, 30, tzinfo=UTC)  # the minute 11:59 has just ended
M = timedelta(minutes=1)


def at(minute: int, second: int = 10) -> datetime:
    """A moment in the minute ``minute`` minutes before 12:00."""
    return datetime(2026, 11, 30, 12, 0, second, tzinfo=UTC) - minute * M


def test_each_ended_minute_counts_enqueued_completed_dead_and_the_last_one_the_depth():
    user = UserFactory()
    JobFactory.create_batch(3, owner=user, queue_name="q", created_at=at(1))
    JobFactory(owner=user, queue_name="q", created_at=at(2), status=JobStatus.COMPLETED,
               finished_at=at(1, 40))  # fmt: skip
    JobFactory(owner=user, queue_name="q", created_at=at(2), dead=True, finished_at=at(1, 50))
    JobFactory(owner=user, queue_name="q", created_at=NOW)  # this minute: not yet
    JobFactory(owner=user, queue_name="other", created_at=at(1))

    written = samples.take_samples(now=NOW)

    rows = {(s.queue_name, s.minute): s for s in QueueSample.objects.all()}
    assert written == len(rows) == 3
    last = rows[("q", at(1, 0))]
    assert (last.enqueued, last.completed, last.dead, last.depth) == (3, 1, 1, 4)
    earlier = rows[("q", at(2, 0))]
    assert (earlier.enqueued, earlier.completed, earlier.dead, earlier.depth) == (2, 0, 0, None)
    assert rows[("other", at(1, 0))].depth == 1


def test_a_minute_is_sampled_once_however_often_or_by_how_many():
    user = UserFactory()
    JobFactory.create_batch(2, owner=user, queue_name="q", created_at=at(1))
    samples.take_samples(now=NOW)
    JobFactory(
        owner=user, queue_name="q", created_at=at(1, 59)
    )  # committed late: the minute is already sampled

    assert samples.take_samples(now=NOW) == 0
    assert samples.take_samples(now=NOW + timedelta(seconds=20)) == 0
    assert QueueSample.objects.get().enqueued == 2


def test_after_downtime_at_most_an_hour_is_filled_in():
    user = UserFactory()
    JobFactory(owner=user, queue_name="q", created_at=at(90), status=JobStatus.COMPLETED,
               finished_at=at(90, 20))  # fmt: skip
    JobFactory(owner=user, queue_name="q", created_at=at(30), status=JobStatus.COMPLETED,
               finished_at=at(30, 20))  # fmt: skip

    samples.take_samples(now=NOW)

    assert [s.minute for s in QueueSample.objects.order_by("minute")] == [at(30, 0)]


def test_series_buckets_every_interval_with_zeros_and_the_last_depth():
    user = UserFactory()
    JobFactory.create_batch(2, owner=user, queue_name="q", created_at=at(3))
    JobFactory(owner=user, queue_name="q", created_at=at(1))
    JobFactory(queue_name="q", created_at=at(1))  # another tenant
    samples.take_samples(now=NOW)

    hour = samples.series(owner=user, now=NOW, span=timedelta(hours=1), bucket=M)
    assert len(hour) == 60 and hour[-1].start == at(1, 0)
    assert [b.enqueued for b in hour[-3:]] == [2, 0, 1]
    assert hour[-1].depth == 3 and hour[-2].depth is None
    day = samples.series(owner=user, now=NOW, span=timedelta(days=1), bucket=15 * M)
    assert len(day) == 96 and day[-1].enqueued == 3
    everyone = samples.series(owner=None, now=NOW, span=timedelta(hours=1), bucket=M)
    assert everyone[-1].enqueued == 2


def test_old_samples_and_their_totals_are_purged():
    JobFactory(created_at=at(1), status=JobStatus.COMPLETED, finished_at=at(1, 30))
    samples.take_samples(now=NOW)

    assert samples.purge_samples(older_than=timedelta(hours=26), now=NOW + timedelta(hours=25)) == 0
    # The queue's sample, its tenant's total and the site's.
    assert samples.purge_samples(older_than=timedelta(hours=26), now=NOW + timedelta(hours=27)) == 3
    assert not QueueSample.objects.exists() and not SampleTotal.objects.exists()


def test_each_sampled_minute_is_summed_per_tenant_and_for_the_site():
    ada, bob = UserFactory(), UserFactory()
    JobFactory.create_batch(2, owner=ada, queue_name="emails", created_at=at(2))
    JobFactory(owner=ada, queue_name="sms", created_at=at(2), dead=True, finished_at=at(1, 5))
    JobFactory(owner=bob, queue_name="emails", created_at=at(1))

    samples.take_samples(now=NOW)

    def total(owner, minute):
        row = SampleTotal.objects.get(owner=owner, minute=at(minute, 0))
        return row.enqueued, row.completed, row.dead, row.depth

    assert total(ada, 2) == (3, 0, 0, None)  # depth is measured in the last minute only
    assert total(ada, 1) == (0, 0, 1, 2)
    assert total(bob, 1) == (1, 0, 0, 1)
    assert total(None, 2) == (3, 0, 0, None)
    assert total(None, 1) == (1, 0, 1, 3)
    assert SampleTotal.objects.count() == 5
    # A second pass over the same minutes writes nothing twice.
    samples.roll_up(start=at(2, 0), end=at(0, 0))
    assert SampleTotal.objects.count() == 5


def test_sampled_minutes_without_totals_are_summed_by_the_next_pass():
    """Sample rows whose totals were never written (a pass that failed before
    summing them, or the previous release's maintenance during an upgrade)."""
    user = UserFactory()
    QueueSample.objects.create(owner=user, queue_name="q", minute=at(3, 0), enqueued=7)
    QueueSample.objects.create(owner=user, queue_name="q", minute=at(1, 0), enqueued=2)

    samples.take_samples(now=NOW)  # samples nothing: 11:59 has a sample already

    hour = {"now": NOW, "span": timedelta(hours=1), "bucket": M}
    every = samples.series(owner=user, **hour)
    assert [b.enqueued for b in every[-3:]] == [7, 0, 2]
    assert every == samples.series(owner=user, queue_name="q", **hour)
    assert [b.enqueued for b in samples.series(owner=None, **hour)[-3:]] == [7, 0, 2]


def test_the_charts_of_every_queue_read_the_same_numbers_as_the_queues_summed():
    user = UserFactory()
    for minute, queue in [(3, "a"), (3, "b"), (2, "b"), (1, "a"), (1, "c")]:
        JobFactory(owner=user, queue_name=queue, created_at=at(minute))
    JobFactory(owner=user, queue_name="a", created_at=at(1), dead=True, finished_at=at(1, 30))
    samples.take_samples(now=NOW)
    hour = {"now": NOW, "span": timedelta(hours=1), "bucket": M}

    every = samples.series(owner=user, **hour)
    per_queue = [samples.series(owner=user, queue_name=q, **hour) for q in "abc"]

    for i, bucket in enumerate(every):
        assert bucket.enqueued == sum(s[i].enqueued for s in per_queue)
        assert bucket.dead == sum(s[i].dead for s in per_queue)
    assert [b.enqueued for b in every[-3:]] == [2, 1, 3]
    assert every[-1].depth == 5  # pending in a, b and c at the last minute


def test_the_upgrade_sums_the_samples_taken_before_it():
    """Migration 0010 fills the totals of the minutes sampled before it, so
    the charts keep their past day across the upgrade."""
    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module("queues.migrations.0010_dead_letter_indexes_sample_totals")
    ada, bob = UserFactory(), UserFactory()
    QueueSample.objects.create(owner=ada, queue_name="a", minute=at(5, 0), enqueued=4, depth=7)
    QueueSample.objects.create(owner=ada, queue_name="b", minute=at(5, 0), completed=2)
    QueueSample.objects.create(owner=bob, queue_name="a", minute=at(5, 0), dead=1, depth=1)

    # The function reads only the editor's connection (SQLite refuses a
    # real schema editor inside the test's transaction).
    migration.sum_past_samples(apps, SimpleNamespace(connection=connection))

    rows = {
        row.owner_id: (row.enqueued, row.completed, row.dead, row.depth)
        for row in SampleTotal.objects.filter(minute=at(5, 0))
    }
    assert rows == {ada.pk: (4, 2, 0, 7), bob.pk: (0, 0, 1, 1), None: (4, 2, 1, 8)}


def _sampled(user, now):
    JobFactory.create_batch(4, owner=user, queue_name="emails", created_at=now - M)
    JobFactory(owner=user, queue_name="emails", dead=True, created_at=now - M, finished_at=now - M)
    JobFactory(queue_name="emails", created_at=now - M)  # another tenant
    samples.take_samples(now=now)


def test_the_console_shows_the_tenants_charts_and_each_queues(client):
    user = UserFactory()
    now = timezone.now()
    _sampled(user, now)
    client.force_login(user)

    overview = client.get("/console/").content.decode()
    assert overview.count("<svg") == 4
    assert 'aria-label="Jobs per minute, last hour: 5 enqueued, 0 completed, 1 dead"' in overview
    queue = client.get("/console/queues/emails/").content.decode()
    assert 'aria-label="Jobs per 15 minutes, last day: 5 enqueued, 0 completed, 1 dead"' in queue
    assert "Pending jobs, last hour: 4 pending now" in queue


def test_the_admin_front_page_shows_every_tenants_numbers_and_charts(admin_client):
    now = timezone.now()
    _sampled(UserFactory(), now)

    page = admin_client.get("/admin/")

    health = page.context["health"]
    assert (health["ready"], health["dead"], health["in_flight"]) == (5, 1, 0)
    body = page.content.decode()
    assert 'aria-label="Jobs per minute, last hour: 6 enqueued, 0 completed, 1 dead"' in body
