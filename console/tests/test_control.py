"""The console's queue page, schedules pages and a job's attempts, with Django's test client."""

from __future__ import annotations

import pytest
from django.test import Client

from queues import services
from queues.domain import NewJob
from queues.models import Job, QueueSettings
from queues.tests.factories import JobFactory, UserFactory
from schedules.models import Schedule
from schedules.services import ScheduleSpec, put_schedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return UserFactory()


@pytest.fixture
def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


# --- The queue page --------------------------------------------------------------------


def test_queue_page_shows_the_numbers_and_pause_resume_work(user, client_for, caplog):
    JobFactory.create_batch(2, owner=user, queue_name="emails")
    JobFactory(owner=user, queue_name="emails", leased=True)

    page = client_for.get("/console/queues/emails/")
    assert page.status_code == 200
    assert page.context["queue"].ready == 2 and page.context["queue"].in_flight == 1
    assert "Pause queue" in page.content.decode()

    paused = client_for.post("/console/queues/emails/control/", {"action": "pause"}, follow=True)
    assert QueueSettings.objects.get(owner=user, queue_name="emails").paused
    assert "Resume queue" in paused.content.decode()
    assert any(getattr(r, "actor", "").startswith("console: ") for r in caplog.records)

    client_for.post("/console/queues/emails/control/", {"action": "resume"})
    assert not QueueSettings.objects.get().paused


def test_the_limit_is_set_checked_and_removed(user, client_for):
    refused = client_for.post(
        "/console/queues/q/control/", {"action": "limit", "max_in_flight": "0"}, follow=True
    )
    assert messages_of(refused) == ["Max in flight must be a whole number from 1 to 100000."]
    assert not QueueSettings.objects.exists()

    client_for.post("/console/queues/q/control/", {"action": "limit", "max_in_flight": "5"})
    assert QueueSettings.objects.get().max_in_flight == 5
    client_for.post("/console/queues/q/control/", {"action": "unlimit"})
    assert QueueSettings.objects.get().max_in_flight is None


def test_queue_pages_are_per_user(user, client_for):
    other = UserFactory()
    JobFactory.create_batch(3, owner=other, queue_name="shared")
    QueueSettings.objects.create(owner=other, queue_name="shared", paused=True)

    page = client_for.get("/console/queues/shared/")

    assert page.context["queue"].ready == 0 and not page.context["queue"].paused
    client_for.post("/console/queues/shared/control/", {"action": "resume"})
    assert QueueSettings.objects.get(owner=other).paused  # theirs untouched


def test_queue_list_links_to_queue_pages_and_shows_paused_queues(user, client_for):
    JobFactory(owner=user, queue_name="emails")
    QueueSettings.objects.create(owner=user, queue_name="idle", paused=True)

    body = client_for.get("/console/").content.decode()

    assert 'href="/console/queues/emails/"' in body
    assert 'href="/console/queues/idle/"' in body and "paused" in body


def test_queue_control_needs_a_login_and_a_post():
    assert Client().post("/console/queues/q/control/", {"action": "pause"}).status_code == 302
    user = UserFactory()
    client = Client()
    client.force_login(user)
    assert client.get("/console/queues/q/control/").status_code == 405


# --- Schedules --------------------------------------------------------------------------


FORM = {
    "name": "nightly",
    "queue_name": "reports",
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "payload": '{"kind": "nightly"}',
    "priority": "0",
    "max_retries": "3",
    "enabled": "on",
}


def test_create_edit_trigger_disable_and_delete_a_schedule(user, client_for):
    created = client_for.post("/console/schedules/", FORM, follow=True)
    assert messages_of(created) == ["Schedule nightly created."]
    schedule = Schedule.objects.get(owner=user)
    assert (schedule.cron, schedule.payload) == ("30 2 * * *", {"kind": "nightly"})

    client_for.post("/console/schedules/nightly/", {**FORM, "cron": "@hourly"})
    schedule.refresh_from_db()
    assert schedule.cron == "@hourly" and schedule.next_run_at.minute == 0

    triggered = client_for.post(
        "/console/schedules/nightly/action/", {"action": "trigger"}, follow=True
    )
    assert Job.objects.get(owner=user).schedule_name == "nightly"
    assert any(m.startswith("Triggered: job ") for m in messages_of(triggered))

    client_for.post("/console/schedules/nightly/action/", {"action": "disable"})
    schedule.refresh_from_db()
    assert not schedule.enabled and schedule.next_run_at is None

    confirm = client_for.post("/console/schedules/nightly/action/", {"action": "delete"})
    assert "Delete schedule nightly?" in confirm.content.decode()
    assert Schedule.objects.exists()
    client_for.post("/console/schedules/nightly/action/", {"action": "delete", "confirm": "yes"})
    assert not Schedule.objects.exists()
    assert Job.objects.filter(schedule_name="nightly").count() == 1  # its jobs stay


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("cron", "61 * * * *", "invalid cron expression"),
        ("timezone", "Mars/Olympus", "unknown time zone"),
        ("payload", "{not json", "Not valid JSON"),
        ("payload", '{"a": "\\ud800"}', "lone surrogate"),
        ("payload", '{"a": "\\u0000"}', "NUL characters"),
        ("queue_name", "a/b", "no &#x27;/&#x27;"),
        ("name", "has space", "Use 1 to 100"),
    ],
)
def test_bad_schedule_forms_say_what_is_wrong(user, client_for, field, value, error):
    response = client_for.post("/console/schedules/", {**FORM, field: value})

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Schedule.objects.exists()


def test_a_second_schedule_of_the_same_name_is_refused(user, client_for):
    client_for.post("/console/schedules/", FORM)

    response = client_for.post("/console/schedules/", {**FORM, "cron": "@daily"})

    assert "edit that one" in response.content.decode()
    assert Schedule.objects.get().cron == FORM["cron"]


def test_another_users_schedule_is_not_found(client_for):
    put_schedule(
        owner=UserFactory(), name="theirs", spec=ScheduleSpec(queue_name="q", cron="@daily")
    )

    assert client_for.get("/console/schedules/theirs/").status_code == 404
    assert (
        client_for.post("/console/schedules/theirs/action/", {"action": "trigger"}).status_code
        == 404
    )
    assert client_for.get("/console/schedules/").context["schedules"].count() == 0
    assert not Job.objects.exists()


# --- A job's attempts ----------------------------------------------------------------------


def test_the_job_page_shows_its_attempts_oldest_first(user, client_for):
    (job_id,) = services.enqueue(owner=user, jobs=[NewJob(queue_name="q", payload={})])
    (first,) = services.lease_jobs(
        owner=user, queue_name="q", worker_id="w-one", lease_seconds=30, max_jobs=1
    )
    services.nack_job(
        owner=user, job_id=job_id, lease_token=str(first.lease_token), error="disk full", retry=True
    )
    Job.objects.filter(pk=job_id).update(run_at=first.job.created_at)  # skip the backoff
    services.lease_jobs(owner=user, queue_name="q", worker_id="w-two", lease_seconds=30, max_jobs=1)

    page = client_for.get(f"/console/jobs/{job_id}/")

    attempts = page.context["attempts"]
    assert [(a.attempt, a.outcome, a.worker_id) for a in attempts] == [
        (1, "nacked", "w-one"),
        (2, "in_progress", "w-two"),
    ]
    timeline = page.content.decode().split("<h2>Attempts</h2>")[1].split("</section>")[0]
    assert "disk full" in timeline and timeline.index("w-one") < timeline.index("w-two")


def test_purge_asks_with_the_count_then_deletes_only_that_status(user, client_for):
    JobFactory.create_batch(3, owner=user, queue_name="q", dead=True)
    JobFactory(owner=user, queue_name="q")
    JobFactory(queue_name="q", dead=True)  # someone else's

    asked = client_for.post("/console/queues/q/control/", {"action": "purge", "status": "dead"})
    assert asked.status_code == 200 and asked.context["count"] == 3
    assert Job.objects.filter(status="dead").count() == 4

    client_for.post(
        "/console/queues/q/control/", {"action": "purge", "status": "dead", "confirm": "yes"}
    )
    assert Job.objects.filter(owner=user, status="dead").count() == 0
    assert Job.objects.filter(owner=user, status="pending").count() == 1
    assert Job.objects.filter(status="dead").count() == 1
    refused = client_for.post(
        "/console/queues/q/control/",
        {"action": "purge", "status": "processing", "confirm": "yes"},
        follow=True,
    )
    assert "Only pending or dead jobs can be purged." in refused.content.decode()
