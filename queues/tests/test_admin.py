"""The operators' admin: job and DLQ lists, and the bulk actions through services."""

from __future__ import annotations

import pytest
from django.contrib.admin import helpers

from accounts.models import User
from accounts.services import issue_token
from queues.models import DeadReason, Job, JobStatus
from queues.tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

JOBS = "/admin/queues/job/"
DLQ = "/admin/queues/deadjob/"


def act(client, url, action, selected=(), confirm=True, **extra):
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [str(pk) for pk in selected], **extra}
    if confirm:
        data["confirm"] = "yes"
    return client.post(url, data, follow=confirm)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_job_list_shows_badges_retries_and_filters(admin_client):
    JobFactory(queue_name="emails", dead=True, retry_count=3, max_retries=3)
    JobFactory(queue_name="sms")
    response = admin_client.get(JOBS)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="oq-badge"' in body and "3/3" in body
    assert admin_client.get(JOBS + "?queue=emails").context["cl"].result_count == 1
    assert admin_client.get(JOBS + "?status=pending").context["cl"].result_count == 1


def test_job_search_by_id_queue_owner_and_error(admin_client):
    owner = UserFactory(email="owner@example.com")
    job = JobFactory(owner=owner, queue_name="emails", dead=True, error_text="SMTP refused")
    JobFactory(queue_name="other")
    for term in [str(job.pk), "emails", "owner@example.com", "refused"]:
        cl = admin_client.get(JOBS, {"q": term}).context["cl"]
        assert [j.pk for j in cl.result_list] == [job.pk], term


def test_job_detail_is_read_only_with_pretty_json(admin_client):
    job = JobFactory(payload={"b": 1, "a": "<x>"}, result=None)
    response = admin_client.get(f"{JOBS}{job.pk}/change/")
    body = response.content.decode()
    assert response.status_code == 200
    pretty = "{\n  &quot;a&quot;: &quot;&lt;x&gt;&quot;,\n  &quot;b&quot;: 1\n}"
    assert f'<pre class="oq-json">{pretty}</pre>' in body
    assert 'name="_save"' not in body and 'name="status"' not in body
    # Saving by hand is refused.
    assert admin_client.post(f"{JOBS}{job.pk}/change/", {"status": "completed"}).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_jobs_cannot_be_added_by_hand(admin_client):
    assert admin_client.get(f"{JOBS}add/").status_code == 403


def test_requeue_action_shows_a_confirmation_page_first(admin_client):
    dead = JobFactory(dead=True)
    pending = JobFactory()
    response = act(admin_client, JOBS, "requeue", [dead.pk, pending.pk], confirm=False)
    assert response.status_code == 200
    assert response.templates[0].name == "admin/action_confirmation.html"
    assert response.context["eligible_count"] == 1 and response.context["skip_count"] == 1
    dead.refresh_from_db()
    assert dead.status == JobStatus.DEAD


def test_requeue_action_changes_eligible_rows_and_reports_skipped(admin_client):
    dead = JobFactory.create_batch(2, dead=True, retry_count=3)
    pending = JobFactory()
    response = act(admin_client, JOBS, "requeue", [*(d.pk for d in dead), pending.pk])
    assert "2 requeued, 1 skipped (their status does not allow it)." in messages_of(response)
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 3
    assert set(Job.objects.values_list("retry_count", flat=True)) == {3, 0}


def test_requeue_action_can_reset_retries(admin_client):
    job = JobFactory(dead=True, retry_count=3)
    act(admin_client, JOBS, "requeue", [job.pk], reset_retries="on")
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.retry_count == 0


def test_cancel_bury_and_delete_actions(admin_client):
    pending, leased, done = JobFactory(), JobFactory(leased=True), JobFactory(completed=True)
    everything = [pending.pk, leased.pk, done.pk]
    cancelled = act(admin_client, JOBS, "cancel", everything)
    assert "1 cancelled, 2 skipped (their status does not allow it)." in messages_of(cancelled)
    buried = act(admin_client, JOBS, "bury", [leased.pk])
    assert "1 sent to the DLQ, 0 skipped." in messages_of(buried)
    leased.refresh_from_db()
    assert leased.status == JobStatus.DEAD and leased.dead_reason == DeadReason.OPERATOR
    assert leased.lease_token is None
    assert "3 deleted, 0 skipped." in messages_of(act(admin_client, JOBS, "delete", everything))
    assert not Job.objects.exists()


def test_select_across_acts_on_the_whole_filtered_list(admin_client):
    JobFactory.create_batch(60, queue_name="emails", dead=True)  # more than one page (50)
    other = JobFactory(queue_name="sms", dead=True)
    first_page = list(Job.objects.filter(queue_name="emails").values_list("pk", flat=True)[:50])
    url = JOBS + "?queue=emails"
    confirm = act(admin_client, url, "requeue", first_page, confirm=False, select_across="1")
    assert confirm.context["selected_count"] == 60
    response = act(admin_client, url, "requeue", first_page, select_across="1")
    assert "60 requeued, 0 skipped." in messages_of(response)
    other.refresh_from_db()
    assert other.status == JobStatus.DEAD


def test_dlq_lists_only_dead_jobs_and_filters_by_reason(admin_client):
    dead = JobFactory(dead=True, queue_name="emails")
    operator = JobFactory(dead=True, dead_reason=DeadReason.OPERATOR)
    JobFactory()
    JobFactory(completed=True)
    cl = admin_client.get(DLQ).context["cl"]
    assert {j.pk for j in cl.result_list} == {dead.pk, operator.pk}
    cl = admin_client.get(DLQ, {"dead_reason__exact": "operator"}).context["cl"]
    assert [j.pk for j in cl.result_list] == [operator.pk]
    cl = admin_client.get(DLQ, {"queue": "emails"}).context["cl"]
    assert [j.pk for j in cl.result_list] == [dead.pk]


def test_dlq_requeue_action(admin_client):
    job = JobFactory(dead=True)
    response = act(admin_client, DLQ, "requeue", [job.pk])
    assert "1 requeued, 0 skipped." in messages_of(response)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert admin_client.get(DLQ).context["cl"].result_count == 0


def test_django_delete_selected_is_replaced_by_the_batched_delete(admin_client):
    response = admin_client.get(JOBS)
    choices = [value for value, _ in response.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in choices
    assert {"requeue", "cancel", "bury", "delete"} <= set(choices)


def test_admin_pages_are_staff_only(client):
    user = UserFactory()
    client.force_login(user)
    assert client.get(JOBS).status_code == 302


def test_user_admin_creates_and_deactivates_users(admin_client):
    response = admin_client.post(
        "/admin/accounts/user/add/",
        {
            "email": "new@example.com",
            "usable_password": "true",
            "password1": "a-long-enough-pass-9",
            "password2": "a-long-enough-pass-9",
        },
    )
    assert response.status_code == 302, response.content
    user = User.objects.get(email="new@example.com")
    assert user.check_password("a-long-enough-pass-9")
    active = UserFactory()
    selection = {"action": "deactivate_selected", helpers.ACTION_CHECKBOX_NAME: [user.pk]}
    page = admin_client.post("/admin/accounts/user/", selection)
    assert page.status_code == 200 and user.email in page.content.decode()
    user.refresh_from_db()
    assert user.is_active  # nothing happens before "Yes"
    response = admin_client.post(
        "/admin/accounts/user/", {**selection, "confirm": "yes"}, follow=True
    )
    assert "1 deactivated, 0 skipped." in messages_of(response)
    user.refresh_from_db()
    active.refresh_from_db()
    assert not user.is_active and active.is_active
    assert admin_client.get(f"/admin/accounts/user/{user.pk}/change/").status_code == 200


def test_token_admin_never_shows_the_hash(admin_client):
    issued = issue_token(owner=UserFactory(), name="ci")
    listing = admin_client.get("/admin/accounts/apitoken/").content.decode()
    detail = admin_client.get(f"/admin/accounts/apitoken/{issued.token.pk}/change/")
    assert detail.status_code == 200
    for body in (listing, detail.content.decode()):
        assert "ci" in body
        assert issued.token.token_hash not in body and issued.raw not in body


def test_token_revoke_confirmation_states_how_many_will_be_revoked(admin_client):
    owner = UserFactory()
    tokens = [issue_token(owner=owner, name=f"t{n}").token for n in range(12)]
    tokens[0].revoked_at = tokens[0].created_at
    tokens[0].save()
    selection = {
        "action": "revoke_selected",
        helpers.ACTION_CHECKBOX_NAME: [str(token.pk) for token in tokens],
    }

    page = admin_client.post("/admin/accounts/apitoken/", selection)

    # Only a sample is listed, but the page states the real count it will revoke.
    assert page.context["eligible_count"] == 11 and len(page.context["rows"]) == 10
    body = page.content.decode()
    assert "<strong>11</strong> will be revoked; 1 will be skipped (already revoked)" in body
    assert "Yes, revoke 11 API tokens" in body
    response = admin_client.post(
        "/admin/accounts/apitoken/", {**selection, "confirm": "yes"}, follow=True
    )
    assert "11 revoked, 1 skipped (already revoked)." in messages_of(response)
    assert not owner.api_tokens.filter(revoked_at=None).exists()


def test_the_dlq_footer_counts_dead_letter_jobs(admin_client):
    JobFactory.create_batch(2, dead=True)

    body = admin_client.get(DLQ).content.decode()

    assert "2 dead-letter jobs" in body and "Dead-letter queue</" not in body


def test_tokens_filter_by_active_or_revoked(admin_client):
    owner = UserFactory()
    active = issue_token(owner=owner, name="active-one").token
    revoked = issue_token(owner=owner, name="revoked-one").token
    revoked.revoked_at = revoked.created_at
    revoked.save()

    page = admin_client.get("/admin/accounts/apitoken/")
    assert [
        c["display"] for c in page.context["cl"].filter_specs[0].choices(page.context["cl"])
    ] == [
        "All",
        "Active",
        "Revoked",
    ]
    only_revoked = admin_client.get("/admin/accounts/apitoken/?state=revoked").context["cl"]
    assert [t.pk for t in only_revoked.result_list] == [revoked.pk]
    only_active = admin_client.get("/admin/accounts/apitoken/?state=active").context["cl"]
    assert [t.pk for t in only_active.result_list] == [active.pk]


def test_lists_have_no_owner_filter_listing_every_user_but_search_by_email(admin_client):
    UserFactory.create_batch(30)
    mine = JobFactory(dead=True)
    JobFactory(dead=True)

    for url in (JOBS, DLQ, "/admin/queues/queuesettings/", "/admin/schedules/schedule/"):
        titles = [spec.title for spec in admin_client.get(url).context["cl"].filter_specs]
        assert "owner" not in titles, url
    found = admin_client.get(f"{DLQ}?q={mine.owner.email}").context["cl"].result_list
    assert [job.pk for job in found] == [mine.pk]
