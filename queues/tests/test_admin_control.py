"""The admin for the engine features: queue settings, schedules, and a job's attempts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from queues import services
from queues.domain import NewJob
from queues.models import Job, QueueSettings
from queues.tests.factories import JobFactory, UserFactory
from queues.tests.test_admin import act, messages_of
from schedules.models import Schedule
from schedules.services import ScheduleSpec, put_schedule

pytestmark = pytest.mark.django_db

QUEUES = "/admin/queues/queuesettings/"
SCHEDULES = "/admin/schedules/schedule/"
MINUTE = timedelta(minutes=1)


def settings_row(owner, name, **fields):
    return QueueSettings.objects.create(owner=owner, queue_name=name, **fields)


def test_pause_and_resume_actions_confirm_first_and_log_the_operator(admin_client, caplog):
    owner = UserFactory()
    running = settings_row(owner, "a")
    paused = settings_row(owner, "b", paused=True)

    page = act(admin_client, QUEUES, "pause", [running.pk, paused.pk], confirm=False)
    assert page.status_code == 200
    assert "Pause queues?" in page.content.decode()
    assert not QueueSettings.objects.get(pk=running.pk).paused

    done = act(admin_client, QUEUES, "pause", [running.pk, paused.pk])

    assert messages_of(done) == ["1 paused, 1 skipped (already paused)."]
    assert QueueSettings.objects.get(pk=running.pk).paused
    assert any(
        r.message == "queue_paused" and r.actor.startswith("admin: ") for r in caplog.records
    )
    act(admin_client, QUEUES, "resume", [running.pk, paused.pk])
    assert not QueueSettings.objects.filter(paused=True).exists()


def test_the_queue_settings_list_counts_each_queues_valid_leases_in_one_query(admin_client):
    ada, bob = UserFactory(), UserFactory()
    for owner, name in [(ada, "emails"), (ada, "sms"), (bob, "emails")]:
        settings_row(owner, name, max_in_flight=10)
    JobFactory.create_batch(3, owner=ada, queue_name="emails", leased=True)
    JobFactory(owner=ada, queue_name="emails", leased=True, locked_until=timezone.now() - MINUTE)
    JobFactory(owner=ada, queue_name="emails")  # pending
    JobFactory.create_batch(2, owner=bob, queue_name="emails", leased=True)

    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(QUEUES)

    shown = {
        (row.owner_id, row.queue_name): row.in_flight_now for row in page.context["cl"].result_list
    }
    assert shown == {(ada.pk, "emails"): 3, (ada.pk, "sms"): 0, (bob.pk, "emails"): 2}
    # Not a query per row: the counts ride in the list's own query.
    assert sum('"jobs"' in q["sql"] for q in queries.captured_queries) == 1


def test_set_max_in_flight_asks_for_a_number_in_range(admin_client):
    row = settings_row(UserFactory(), "a")

    refused = act(admin_client, QUEUES, "set_max_in_flight", [row.pk], max_in_flight="0")

    assert "Max in flight: between 1 and 100000." in refused.content.decode()
    assert QueueSettings.objects.get().max_in_flight is None
    done = act(admin_client, QUEUES, "set_max_in_flight", [row.pk], max_in_flight="4")
    assert messages_of(done) == ["1 limited, 0 skipped."]
    assert QueueSettings.objects.get().max_in_flight == 4
    act(admin_client, QUEUES, "remove_limit", [row.pk])
    assert QueueSettings.objects.get().max_in_flight is None


def test_a_queue_can_be_added_and_edited_through_the_form(admin_client):
    owner = UserFactory()
    added = admin_client.post(
        f"{QUEUES}add/",
        {"owner": owner.pk, "queue_name": "emails", "paused": "on", "max_in_flight": "3"},
    )
    assert added.status_code == 302
    row = QueueSettings.objects.get()
    assert (row.queue_name, row.paused, row.max_in_flight) == ("emails", True, 3)

    bad = admin_client.post(f"{QUEUES}{row.pk}/change/", {"max_in_flight": "0"})
    assert bad.status_code == 200 and "greater than or equal to 1" in bad.content.decode()
    admin_client.post(f"{QUEUES}{row.pk}/change/", {"max_in_flight": ""})
    row.refresh_from_db()
    assert (row.paused, row.max_in_flight) == (False, None)


def test_the_job_page_shows_its_attempts(admin_client):
    owner = UserFactory()
    (job_id,) = services.enqueue(owner=owner, jobs=[NewJob(queue_name="q", payload={})])
    (lease,) = services.lease_jobs(
        owner=owner, queue_name="q", worker_id="worker-42", lease_seconds=30, max_jobs=1
    )
    services.nack_job(
        owner=owner, job_id=job_id, lease_token=str(lease.lease_token), error="boom", retry=False
    )

    body = admin_client.get(f"/admin/queues/job/{job_id}/change/").content.decode()

    assert "worker-42" in body and "nacked" in body and "boom" in body
    assert Job.objects.get().status == "dead"


def test_schedules_are_edited_through_the_same_rules_as_the_api(admin_client):
    owner = UserFactory()
    form = {
        "owner": owner.pk,
        "name": "nightly",
        "queue_name": "reports",
        "cron": "61 * * * *",
        "timezone": "Mars/Olympus",
        "payload": '{"a": 1}',
        "priority": "0",
        "max_retries": "3",
        "enabled": "on",
    }
    refused = admin_client.post(f"{SCHEDULES}add/", form)
    body = refused.content.decode()
    assert "invalid cron expression" in body and "unknown time zone" in body
    assert not Schedule.objects.exists()

    added = admin_client.post(f"{SCHEDULES}add/", {**form, "cron": "@daily", "timezone": "UTC"})

    assert added.status_code == 302
    schedule = Schedule.objects.get()
    assert schedule.next_run_at is not None and schedule.payload == {"a": 1}


def test_schedule_actions_enable_disable_and_trigger(admin_client):
    owner = UserFactory()
    schedule, _ = put_schedule(
        owner=owner, name="s", spec=ScheduleSpec(queue_name="q", cron="@hourly")
    )

    act(admin_client, SCHEDULES, "disable", [schedule.pk])
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_run_at) == (False, None)

    done = act(admin_client, SCHEDULES, "trigger_now", [schedule.pk])
    assert messages_of(done) == ["1 triggered, 0 skipped."]
    assert Job.objects.get().schedule_name == "s"

    act(admin_client, SCHEDULES, "enable", [schedule.pk])
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_run_at is not None
    page = admin_client.get(f"{SCHEDULES}{schedule.pk}/change/").content.decode()
    assert "Last 10 runs" in page
