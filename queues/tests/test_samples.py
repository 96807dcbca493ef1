"""Per-minute queue samples for the charts (queues/samples.py), taken by run_maintenance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from queues import samples
from queues.models import JobStatus, QueueSample
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


def test_old_samples_are_purged():
    JobFactory(created_at=at(1), status=JobStatus.COMPLETED, finished_at=at(1, 30))
    samples.take_samples(now=NOW)

    assert samples.purge_samples(older_than=timedelta(hours=26), now=NOW + timedelta(hours=25)) == 0
    assert samples.purge_samples(older_than=timedelta(hours=26), now=NOW + timedelta(hours=27)) == 1


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
