"""Every operator action leaves a history entry and a log event (openqueue_site/audit.py)."""

from __future__ import annotations

import logging

import pytest
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.test import Client

from accounts.models import ApiToken
from accounts.services import issue_token
from queues.models import Job, JobStatus
from queues.tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db


def events(caplog):
    return [r for r in caplog.records if r.getMessage() == "operator_action"]


def test_a_staff_requeue_in_the_admin_is_in_the_history_and_the_log(admin_client, caplog):
    staff = admin_client.session["_auth_user_id"]
    dead = JobFactory.create_batch(3, dead=True)
    live = JobFactory()
    caplog.set_level(logging.INFO, logger="openqueue.audit")

    admin_client.post(
        "/admin/queues/job/",
        {
            "action": "requeue",
            helpers.ACTION_CHECKBOX_NAME: [str(job.pk) for job in [*dead, live]],
            "confirm": "yes",
        },
    )

    entry = LogEntry.objects.get()
    assert str(entry.user_id) == staff and entry.action_flag == CHANGE
    assert entry.content_type.model_class() is Job
    assert entry.change_message == "requeue 3 jobs (4 selected, 1 skipped)"
    (event,) = events(caplog)
    assert (event.action, event.count, event.model, event.via) == (
        "requeue",
        3,
        "queues.Job",
        "admin",
    )
    assert event.actor == entry.user.email


def test_a_token_revoked_in_the_admin_is_in_the_history(admin_client):
    token = issue_token(owner=UserFactory(), name="old").token

    admin_client.post(
        "/admin/accounts/apitoken/",
        {
            "action": "revoke_selected",
            helpers.ACTION_CHECKBOX_NAME: [str(token.pk)],
            "confirm": "yes",
        },
    )

    entry = LogEntry.objects.get()
    assert entry.content_type.model_class() is ApiToken
    assert entry.change_message.startswith("revoke 1 api token")


def test_console_actions_are_in_the_history_under_the_tenant(caplog):
    user = UserFactory()
    client = Client()
    client.force_login(user)
    caplog.set_level(logging.INFO, logger="openqueue.audit")
    token = issue_token(owner=user, name="worker").token
    dead = JobFactory.create_batch(2, owner=user, dead=True)

    client.post(f"/console/tokens/{token.pk}/revoke/")
    client.post("/console/dlq/action/", {"action": "requeue", "selected": [j.pk for j in dead]})
    client.post(
        "/console/dlq/action/",
        {"discard_one": str(JobFactory(owner=user, dead=True).pk), "confirm": "yes"},
    )

    entries = list(LogEntry.objects.order_by("pk"))
    assert [(e.user_id, e.change_message) for e in entries] == [
        (user.pk, "revoked 1 api token"),
        (user.pk, "requeued 2 jobs (2 selected, 0 skipped)"),
        (user.pk, "discarded 1 job (1 selected, 0 skipped)"),
    ]
    assert entries[0].object_id == str(token.pk)
    assert entries[2].action_flag == DELETION
    assert [e.via for e in events(caplog)] == ["console"] * 3
    assert Job.objects.filter(owner=user, status=JobStatus.PENDING).count() == 2
