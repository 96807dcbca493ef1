"""The console's job pages, with Django's test client."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from queues.models import DeadReason, Job, JobStatus, QueueSample
from queues.tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return UserFactory()


@pytest.fixture
def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def test_console_pages_require_login():
    job = JobFactory()
    for url in ["/console/", "/console/jobs/", f"/console/jobs/{job.pk}/", "/console/dlq/"]:
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_root_redirects_to_the_console():
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"] == "/console/"


def test_queue_overview_counts_by_status_and_shows_only_my_queues(user, client_for):
    JobFactory.create_batch(2, owner=user, queue_name="emails")
    JobFactory(owner=user, queue_name="emails", run_at=timezone.now() + timedelta(hours=1))
    JobFactory(owner=user, queue_name="emails", leased=True)
    JobFactory(owner=user, queue_name="emails", expired=True)  # still processing
    JobFactory(owner=user, queue_name="emails", dead=True)
    JobFactory(owner=user, queue_name="emails", completed=True)
    JobFactory(queue_name="someone-elses-queue", dead=True)
    response = client_for.get("/console/")
    assert response.status_code == 200
    rows = response.context["queues"]
    assert [row["queue_name"] for row in rows] == ["emails"]
    assert rows[0]["counts"] == [("pending", 3), ("processing", 2), ("dead", 1)]
    assert rows[0]["scheduled"] == 1
    assert rows[0]["oldest_ready_age"]
    assert b"someone-elses-queue" not in response.content


def test_queue_overview_shows_the_last_days_throughput_from_the_samples(user, client_for):
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    JobFactory(owner=user, queue_name="emails")
    for ago, enqueued, completed in [(2, 5, 3), (60, 7, 4), (25 * 60, 100, 100)]:
        QueueSample.objects.create(
            owner=user,
            queue_name="emails",
            minute=minute - timedelta(minutes=ago),
            enqueued=enqueued,
            completed=completed,
        )
    QueueSample.objects.create(
        owner=UserFactory(), queue_name="emails", minute=minute - timedelta(minutes=2), completed=9
    )

    response = client_for.get("/console/")

    (row,) = response.context["queues"]
    # The day's minutes only (not the one 25 h ago), and only mine.
    assert row["last_day"] == {"enqueued": 12, "completed": 7, "dead": 0}
    assert 'data-label="completed, 24 h"><a' in response.content.decode()


def test_a_queue_of_only_scheduled_jobs_has_no_oldest_ready_age(user, client_for):
    next_week = timezone.now() + timedelta(days=7)
    JobFactory(owner=user, queue_name="later", run_at=next_week, created_at=timezone.now())
    JobFactory(owner=user, queue_name="now", created_at=timezone.now() - timedelta(minutes=5))

    rows = {row["queue_name"]: row for row in client_for.get("/console/").context["queues"]}

    assert rows["later"]["pending"] == 1 and rows["later"]["scheduled"] == 1
    assert rows["later"]["oldest_ready_age"] == ""
    assert rows["now"]["scheduled"] == 0 and rows["now"]["oldest_ready_age"] == "5 min"


def test_job_list_filters_by_queue_and_status_and_paginates(user, client_for):
    JobFactory.create_batch(55, owner=user, queue_name="a")
    JobFactory(owner=user, queue_name="a", dead=True)
    JobFactory(owner=user, queue_name="b")
    response = client_for.get("/console/jobs/?queue=a&status=pending")
    page = response.context["page"]
    assert page.paginator.count == 55 and len(page.object_list) == 50
    assert all(j.queue_name == "a" and j.status == "pending" for j in page.object_list)
    second = client_for.get("/console/jobs/?queue=a&status=pending&page=2")
    assert len(second.context["page"].object_list) == 5
    assert b"queue=a&amp;status=pending&amp;page=1" in second.content


def test_job_page_shows_payload_result_error_and_lease(user, client_for):
    job = JobFactory(owner=user, dead=True, payload={"to": "<b>x</b>"}, error_text="Boom <script>")
    response = client_for.get(f"/console/jobs/{job.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "&quot;to&quot;: &quot;&lt;b&gt;x&lt;/b&gt;&quot;" in body  # pretty and escaped
    assert "Boom &lt;script&gt;" in body
    assert "Requeue now" in body


def test_another_users_job_is_404_everywhere(client_for):
    theirs = JobFactory(dead=True)
    assert client_for.get(f"/console/jobs/{theirs.pk}/").status_code == 404
    assert client_for.post(f"/console/jobs/{theirs.pk}/requeue/").status_code == 404
    assert client_for.post(f"/console/jobs/{theirs.pk}/cancel/").status_code == 404
    assert client_for.post(f"/console/jobs/{theirs.pk}/run-now/").status_code == 404
    assert client_for.post("/console/dlq/action/", {"requeue_one": theirs.pk}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == JobStatus.DEAD


def test_dlq_lists_only_my_dead_jobs_with_reason_and_error(user, client_for):
    mine = JobFactory(owner=user, dead=True, error_text="timeout talking to smtp")
    JobFactory(owner=user)  # pending: not in the DLQ
    JobFactory(dead=True)  # someone else's
    response = client_for.get("/console/dlq/")
    assert [j.pk for j in response.context["page"].object_list] == [mine.pk]
    assert b"timeout talking to smtp" in response.content
    assert DeadReason.MAX_RETRIES_EXHAUSTED.encode() in response.content


def test_dlq_requeue_one(user, client_for):
    job = JobFactory(owner=user, dead=True)
    response = client_for.post("/console/dlq/action/", {"requeue_one": job.pk}, follow=True)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert "1 requeued, 0 skipped." in [str(m) for m in response.context["messages"]]


def test_dlq_requeue_selected_skips_other_users_and_live_jobs(user, client_for):
    dead = JobFactory.create_batch(2, owner=user, dead=True)
    pending = JobFactory(owner=user)
    theirs = JobFactory(dead=True)
    ids = [dead[0].pk, dead[1].pk, pending.pk, theirs.pk, "not-a-uuid"]
    response = client_for.post(
        "/console/dlq/action/", {"action": "requeue", "selected": ids}, follow=True
    )
    assert "2 requeued, 2 skipped." in [str(m) for m in response.context["messages"]]
    assert Job.objects.filter(pk__in=[d.pk for d in dead], status="pending").count() == 2
    theirs.refresh_from_db()
    assert theirs.status == JobStatus.DEAD


def test_dlq_requeue_all_of_a_queue_asks_first(user, client_for):
    JobFactory.create_batch(3, owner=user, dead=True, queue_name="emails")
    other_queue = JobFactory(owner=user, dead=True, queue_name="sms")
    data = {"action": "requeue", "all": "1", "queue": "emails"}
    confirm = client_for.post("/console/dlq/action/", data)
    assert confirm.status_code == 200 and confirm.context["count"] == 3
    assert Job.objects.filter(status="dead").count() == 4  # nothing yet
    client_for.post("/console/dlq/action/", {**data, "confirm": "yes"})
    assert Job.objects.filter(queue_name="emails", status="pending").count() == 3
    other_queue.refresh_from_db()
    assert other_queue.status == JobStatus.DEAD


def test_dlq_discard_asks_then_deletes_only_dead_jobs(user, client_for):
    job = JobFactory(owner=user, dead=True)
    confirm = client_for.post("/console/dlq/action/", {"discard_one": job.pk})
    assert confirm.status_code == 200 and b"Yes, discard 1 job" in confirm.content
    assert Job.objects.filter(pk=job.pk).exists()
    client_for.post("/console/dlq/action/", {"discard_one": job.pk, "confirm": "yes"})
    assert not Job.objects.filter(pk=job.pk).exists()


def test_console_forms_need_a_csrf_token(user):
    job = JobFactory(owner=user, dead=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/console/dlq/action/", {"requeue_one": job.pk}).status_code == 403
    assert client.post(f"/console/jobs/{job.pk}/requeue/").status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.DEAD


def test_staff_see_a_link_to_the_admin(client_for, user):
    assert b'href="/admin/"' not in client_for.get("/console/").content
    user.is_staff = True
    user.save()
    assert b'href="/admin/"' in client_for.get("/console/").content


def test_login_page_logs_in_and_lands_on_the_console():
    user = UserFactory(email="ana@example.com")
    user.set_password("correct horse battery")
    user.save()
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    response = client.post(
        "/accounts/login/", {"username": "ana@example.com", "password": "correct horse battery"}
    )
    assert response.status_code == 302 and response["Location"] == "/console/"
    assert client.get("/console/").status_code == 200
    logout = client.post("/accounts/logout/")
    assert logout.status_code == 302 and logout["Location"] == "/accounts/login/"


def test_api_paths_skip_browser_state_but_the_console_keeps_it(user, tenant):
    """Sessions, CSRF and messages serve the console; the bearer-token API ignores them.

    A logged-in browser session is no credential for the API, and an API
    response never sets a session, CSRF or messages cookie; the console on
    the same client still has its session and its CSRF check.
    """
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/console/").status_code == 200

    # The session cookie rides along, but the API wants a bearer token.
    assert browser.get("/jobs").status_code == 401
    assert browser.post("/jobs", {}, content_type="application/json").status_code == 401

    # With a token (and no CSRF token) the API works and sets no cookie.
    for method, path in [("get", "/jobs"), ("post", "/jobs"), ("get", "/health")]:
        response = getattr(browser, method)(
            path,
            {"queue_name": "q", "payload": {}} if method == "post" else None,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {tenant.token}",
        )
        assert response.status_code in (200, 201), (path, response.content)
        assert not response.cookies, (path, response.cookies)

    # The console is untouched: still logged in, still CSRF-protected.
    assert browser.get("/console/").status_code == 200
    job = JobFactory(owner=user, dead=True)
    assert browser.post(f"/console/jobs/{job.pk}/requeue/").status_code == 403


@pytest.mark.parametrize("path", ["/console/jobs/", "/console/dlq/"])
@pytest.mark.parametrize("queue", ["%00", "a%00b", "x" * 300])
def test_a_queue_filter_no_job_can_match_shows_an_empty_list(user, client_for, path, queue):
    JobFactory(owner=user, queue_name="emails", dead=True)

    response = client_for.get(f"{path}?queue={queue}")

    # NUL used to reach PostgreSQL, which refuses it even in a query: a 500.
    assert response.status_code == 200
    assert len(response.context["page"].object_list) == 0


def test_dlq_action_on_a_queue_name_with_nul_changes_nothing(user, client_for):
    job = JobFactory(owner=user, queue_name="emails", dead=True)

    response = client_for.post(
        "/console/dlq/action/",
        {"action": "requeue", "all": "1", "queue": "emails\x00", "confirm": "yes"},
    )

    assert response.status_code == 302
    assert Job.objects.get(pk=job.pk).status == JobStatus.DEAD


def test_jobs_of_the_same_millisecond_read_differently_in_the_lists(user, client_for):
    # Two UUIDv7 ids of one millisecond: the same first 12 hex digits.
    first = uuid.UUID("019ad5c2-8f3a-7abc-8000-00000000a1b2")
    second = uuid.UUID("019ad5c2-8f3a-7def-9fff-ffffffff0c3d")
    for job_id in (first, second):
        JobFactory(owner=user, queue_name="q", id=job_id, dead=True)

    for url in ("/console/jobs/", "/console/dlq/"):
        body = client_for.get(url).content.decode()
        shown = re.findall(r'title="([0-9a-f-]{36})">([^<]+)</a>', body)
        assert sorted(shown) == sorted(
            [(str(first), "019ad5c2…0000a1b2"), (str(second), "019ad5c2…ffff0c3d")]
        ), url


def test_a_missing_job_in_the_console_is_an_html_page_with_navigation(client_for):
    theirs = JobFactory()

    for url in (f"/console/jobs/{theirs.pk}/", f"/console/jobs/{uuid.uuid4()}/", "/console/nope/"):
        response = client_for.get(url)
        assert response.status_code == 404, url
        assert response["Content-Type"].startswith("text/html"), url
        body = response.content.decode()
        assert 'href="/console/"' in body and "Not found" in body, url
        assert str(theirs.pk) not in body


def test_an_unknown_api_route_is_still_the_contracts_json_404(client_for):
    response = client_for.get("/no-such-route")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_a_dead_jobs_page_offers_discard_and_requeue_with_reset(user, client_for):
    job = JobFactory(owner=user, dead=True, retry_count=3, max_retries=3, error_text="boom")
    page = client_for.get(f"/console/jobs/{job.pk}/").content.decode()
    assert 'name="discard_one"' in page and 'name="reset_retries"' in page

    # Discard asks first, then deletes.
    asked = client_for.post("/console/dlq/action/", {"discard_one": str(job.pk)})
    assert asked.status_code == 200 and Job.objects.filter(pk=job.pk).exists()

    client_for.post(f"/console/jobs/{job.pk}/requeue/", {"reset_retries": "on"})
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.retry_count == 0


def test_a_requeued_jobs_old_error_says_it_came_from_an_earlier_attempt(user, client_for):
    job = JobFactory(owner=user, dead=True, error_text="printer on fire")
    assert "<h2>Error</h2>" in client_for.get(f"/console/jobs/{job.pk}/").content.decode()

    client_for.post(f"/console/jobs/{job.pk}/requeue/")
    page = client_for.get(f"/console/jobs/{job.pk}/").content.decode()

    assert "Error of an earlier attempt" in page and "printer on fire" in page


@pytest.mark.parametrize(
    "search",
    [
        "019ad5c2-8f3a-7abc-8000-00000000a1b2",  # whole
        "019AD5C28F3A7ABC800000000000A1B2",  # whole, upper case, no hyphens
        "019ad5c2-8f3a-7abc",  # the beginning
        "0000a1b2",  # the end, as the lists show it
        "019ad5c2…0000a1b2",  # the lists' form
        "019ad5c2...0000a1b2",
    ],
)
def test_find_a_job_by_whole_or_partial_id(user, client_for, search):
    wanted = JobFactory(owner=user, id=uuid.UUID("019ad5c2-8f3a-7abc-8000-00000000a1b2"))
    JobFactory(owner=user, id=uuid.UUID("019ad5c2-8f3a-7def-9fff-ffffffff0c3d"))
    JobFactory(id=uuid.UUID("019ad5c2-8f3a-7abc-8000-00000000a1b3"))  # someone else's

    page = client_for.get("/console/jobs/", {"q": search}).context["page"]

    assert [job.pk for job in page.object_list] == [wanted.pk]


@pytest.mark.parametrize("search", ["not-an-id", "019ad5c2-zz", "0" * 33, "\x00"])
def test_a_search_that_cannot_be_an_id_says_what_can_be(user, client_for, search):
    JobFactory(owner=user)

    response = client_for.get("/console/jobs/", {"q": search})

    assert response.status_code == 200
    assert list(response.context["page"].object_list) == []
    assert "A job id: whole, its beginning, its end" in response.content.decode()


def test_dlq_searches_error_text_and_groups_by_error(user, client_for):
    for _ in range(3):
        JobFactory(owner=user, dead=True, error_text="TimeoutError: upstream took 30 s\n  at x")
    JobFactory(owner=user, dead=True, error_text="KeyError: 'customer_id'")
    JobFactory(dead=True, error_text="TimeoutError: someone else's")

    found = client_for.get("/console/dlq/", {"q": "timeout"}).context["page"]
    assert found.paginator.count == 3

    groups = list(client_for.get("/console/dlq/", {"group": "error"}).context["groups"])
    assert [(g["head"].split("\n")[0], g["count"]) for g in groups] == [
        ("TimeoutError: upstream took 30 s", 3),
        ("KeyError: 'customer_id'", 1),
    ]
    one_group = client_for.get("/console/dlq/", {"error": groups[1]["head"]}).context["page"]
    assert [job.error_text for job in one_group.object_list] == ["KeyError: 'customer_id'"]


def test_in_flight_groups_my_leases_by_worker_and_shows_no_one_elses(user, client_for):
    now = timezone.now()
    a1 = JobFactory(
        owner=user,
        leased=True,
        locked_by="worker-a",
        queue_name="q",
        started_at=now - timedelta(minutes=3),
        locked_until=now + timedelta(seconds=40),
    )
    a2 = JobFactory(owner=user, leased=True, locked_by="worker-a", queue_name="q")
    b1 = JobFactory(
        owner=user,
        leased=True,
        locked_by="worker-b",
        queue_name="q",
        locked_until=now - timedelta(seconds=5),
    )
    JobFactory(leased=True, locked_by="their-worker")
    JobFactory(owner=user)  # pending: not in flight

    response = client_for.get("/console/in-flight/")

    workers = dict(response.context["workers"])
    assert list(workers) == ["worker-a", "worker-b"]
    assert [row["job"].pk for row in workers["worker-a"]] == [a1.pk, a2.pk]
    assert workers["worker-a"][0]["running"] == "3 min"
    assert workers["worker-a"][0]["expires_in"] in ("39 s", "40 s")
    assert workers["worker-b"][0]["job"].pk == b1.pk and workers["worker-b"][0]["expired"]
    assert b"their-worker" not in response.content


def test_in_flight_rows_link_the_job_and_its_queue_with_exact_utc_times(user, client_for):
    started = timezone.now() - timedelta(minutes=2)
    job = JobFactory(owner=user, leased=True, queue_name="mail out", started_at=started)

    body = client_for.get("/console/in-flight/").content.decode()

    short = f"{str(job.pk)[:8]}…{str(job.pk)[-8:]}"
    assert f'href="/console/jobs/{job.pk}/" title="{job.pk}">{short}</a>' in body
    assert 'href="/console/queues/mail%20out/">mail out</a>' in body
    assert f'title="started {started:%Y-%m-%d %H:%M:%S} UTC">2 min</td>' in body
    assert f'title="until {job.locked_until:%Y-%m-%d %H:%M:%S} UTC">' in body


def test_list_times_are_relative_with_the_exact_utc_time_on_hover(user, client_for):
    created = timezone.now() - timedelta(minutes=12)
    JobFactory(owner=user, created_at=created, dead=True, dead_at=created)

    for url in ("/console/jobs/", "/console/dlq/"):
        body = client_for.get(url).content.decode()
        assert f'title="{created:%Y-%m-%d %H:%M:%S} UTC">12 min ago</time>' in body, url


def test_scheduled_and_retrying_views_with_run_now(user, client_for):
    now = timezone.now()
    scheduled = JobFactory(owner=user, run_at=now + timedelta(hours=2))
    retrying = JobFactory(
        owner=user, run_at=now + timedelta(seconds=40), retry_count=2, error_text="ECONNRESET"
    )
    JobFactory(owner=user)  # due now: in neither view

    view = client_for.get("/console/jobs/", {"status": "scheduled"})
    assert [job.pk for job in view.context["page"].object_list] == [scheduled.pk]
    assert "in 1 h" in view.content.decode() or "in 2 h" in view.content.decode()
    view = client_for.get("/console/jobs/", {"status": "retrying"})
    assert [job.pk for job in view.context["page"].object_list] == [retrying.pk]
    assert "ECONNRESET" in view.content.decode() and "Run now" in view.content.decode()
    assert "Run now" in client_for.get(f"/console/jobs/{scheduled.pk}/").content.decode()

    client_for.post(f"/console/jobs/{scheduled.pk}/run-now/")

    scheduled.refresh_from_db()
    assert scheduled.run_at <= timezone.now()
    assert not client_for.get("/console/jobs/", {"status": "scheduled"}).context["page"].object_list
