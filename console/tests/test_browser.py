"""The console and the admin in a real browser: Playwright driving Debian's headless Chromium.

pytest-django's ``live_server`` runs the site in a thread of this process, so
the tests set up users and jobs with the ORM and talk to the REST API with
httpx. Playwright's sync API runs an event loop in this thread, which makes
Django refuse ORM calls as "async unsafe": DJANGO_ALLOW_ASYNC_UNSAFE allows
them for this module only (the calls are still plain synchronous ones).

On failure a full-page screenshot lands in .test-results/screenshots/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect, sync_playwright

from accounts.models import ApiToken, User
from accounts.services import issue_token
from queues.models import Job, JobStatus, QueueSettings
from queues.samples import take_samples
from queues.tests.factories import JobFactory

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".test-results" / "screenshots"
PASSWORD = "a-browser-test-password"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (scripts/test.sh does it)")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def log_in(page: Page, base_url: str, email: str, path: str = "/accounts/login/") -> None:
    page.goto(base_url + path)
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.locator("form [type=submit]").click()


def test_tenant_creates_a_token_requeues_from_the_dlq_and_revokes_the_token(
    live_server: Any, transactional_db: None, page: Page
) -> None:
    base = live_server.url
    User.objects.create_user("tenant@example.com", PASSWORD)
    log_in(page, base, "tenant@example.com")
    expect(page.locator("h1")).to_have_text("Queues")

    # A token, created in the console; its secret is shown once, with a curl example.
    page.get_by_role("link", name="API tokens").click()
    page.fill("#id_name", "browser-worker")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("h1")).to_contain_text("browser-worker")
    secret = page.input_value("#token-secret")
    expect(page.locator("#curl-example")).to_contain_text(f"curl -X POST {base}/jobs")
    expect(page.locator("#curl-example")).to_contain_text(f"Bearer {secret}")
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    # Reloading that page shows the token list: no second token, no secret.
    page.reload()
    expect(page.locator("#token-secret")).to_have_count(0)
    expect(page.get_by_text("browser-worker")).to_be_visible()
    assert ApiToken.objects.filter(name="browser-worker").count() == 1

    # With that token over the REST API: enqueue, lease, nack into the DLQ.
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    created = api.post(
        "/jobs", json={"queue_name": "browser", "payload": {"n": 1}, "max_retries": 0}
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["job_id"]
    lease = api.post("/queues/browser/lease", json={"worker_id": "w1"}).json()
    nack = api.post(
        f"/jobs/{job_id}/nack",
        json={"lease_token": lease["lease_token"], "error": "printer on fire", "retry": False},
    )
    assert nack.status_code == 200, nack.text
    assert api.get(f"/jobs/{job_id}").json()["status"] == "dead"

    # Found in the console's DLQ with its error; requeued from there.
    page.get_by_role("link", name="Dead letters").click()
    row = page.locator("tbody tr", has=page.locator(f'input[value="{job_id}"]'))
    expect(row).to_contain_text("printer on fire")
    expect(row).to_contain_text("max_retries_exhausted")
    row.get_by_role("button", name="Requeue").click()
    expect(page.locator(".messages")).to_contain_text("1 requeued, 0 skipped.")

    # Now pending, on its page and over the API.
    page.goto(f"{base}/console/jobs/{job_id}/")
    expect(page.locator(".job-title .badge")).to_have_text("pending")
    assert api.get(f"/jobs/{job_id}").json()["status"] == "pending"

    # Revoked (after a confirmation page): the API answers 401.
    page.get_by_role("link", name="API tokens").click()
    page.get_by_role("link", name="Revoke…").click()
    expect(page.locator("h1")).to_have_text("Revoke “browser-worker”?")
    page.get_by_role("button", name="Yes, revoke it").click()
    expect(page.locator(".messages")).to_contain_text("revoked")
    assert api.get("/jobs").status_code == 401


def test_staff_requeues_a_dead_job_with_the_admin_action(
    live_server: Any, transactional_db: None, page: Page
) -> None:
    base = live_server.url
    User.objects.create_superuser("ops@example.com", PASSWORD)
    job = JobFactory(dead=True, queue_name="emails", retry_count=3, max_retries=3)
    alive = JobFactory(queue_name="emails")
    log_in(page, base, "ops@example.com", path="/admin/login/")

    page.goto(base + "/admin/queues/deadjob/")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.check(f'input[name="_selected_action"][value="{job.pk}"]')
    page.select_option('select[name="action"]', "requeue")
    page.get_by_role("button", name="Go").click()

    # The confirmation page, then the message with the counts.
    expect(page.locator("h1")).to_have_text("Requeue jobs?")
    page.check('input[name="reset_retries"]')
    page.get_by_role("button", name="Yes, requeue 1 job").click()
    expect(page.locator(".messagelist")).to_contain_text("1 requeued, 0 skipped.")
    expect(page.locator("#result_list")).to_have_count(0)  # the DLQ is empty now

    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.retry_count == 0
    assert Job.objects.get(pk=alive.pk).status == JobStatus.PENDING


def test_operator_pauses_a_queue_schedules_a_job_and_reads_its_attempts(
    live_server: Any, transactional_db: None, page: Page
) -> None:
    base = live_server.url
    user = User.objects.create_user("operator@example.com", PASSWORD)
    token = issue_token(owner=user, name="browser").raw
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert api.post("/jobs", json={"queue_name": "billing", "payload": {"n": 1}}).status_code == 201
    log_in(page, base, "operator@example.com")

    # Pause the queue from its page: it says so, and a worker gets nothing.
    page.get_by_role("link", name="billing").click()
    expect(page.locator("h1")).to_contain_text("billing")
    expect(page.locator("h1 .badge")).to_have_text("running")
    page.get_by_role("button", name="Pause queue").click()
    expect(page.locator(".messages")).to_contain_text("paused")
    expect(page.locator("h1 .badge")).to_have_text("paused")
    assert api.post("/queues/billing/lease", json={"worker_id": "w"}).json() is None
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Queues").click()
    expect(page.locator("tbody tr", has_text="billing")).to_contain_text("paused")

    # Resume it: the job is leased, then nacked, so it has an attempt to show.
    page.get_by_role("link", name="billing").click()
    page.get_by_role("button", name="Resume queue").click()
    expect(page.locator("h1 .badge")).to_have_text("running")
    lease = api.post("/queues/billing/lease", json={"worker_id": "worker-7"}).json()
    assert lease is not None
    job_id = lease["job"]["id"]
    nacked = api.post(
        f"/jobs/{job_id}/nack",
        json={"lease_token": lease["lease_token"], "error": "card declined", "retry": True},
    )
    assert nacked.status_code == 200

    # A schedule, created in the console and triggered from its page.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedules").click()
    page.fill("#id_name", "nightly-invoices")
    page.fill("#id_queue_name", "billing")
    page.fill("#id_cron", "30 2 * * *")
    page.fill("#id_timezone", "Europe/Berlin")
    page.fill("#id_payload", '{"kind": "invoices"}')
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator(".messages")).to_contain_text("Schedule nightly-invoices created.")
    expect(page.locator("h1")).to_contain_text("nightly-invoices")
    page.get_by_role("button", name="Trigger now").click()
    expect(page.locator(".messages")).to_contain_text("Triggered: job")
    triggered = Job.objects.get(schedule_name="nightly-invoices")
    assert triggered.queue_name == "billing" and triggered.payload == {"kind": "invoices"}

    # The nacked job's attempts, on its page.
    page.goto(f"{base}/console/jobs/{job_id}/")
    attempt = page.locator(".timeline .attempt").first
    expect(attempt).to_contain_text("Attempt 1")
    expect(attempt).to_contain_text("nacked")
    expect(attempt).to_contain_text("worker-7")
    expect(attempt).to_contain_text("card declined")


LONG_ERROR = (
    'Traceback (most recent call last):\n  File "/srv/app/worker.py", line 42, in handle\n'
    + "psycopg.errors.UniqueViolation:"
    + "_unbroken_identifier" * 40
    + "\n"
    + "context " * 200
)


def _overflow(page: Page) -> int:
    """How many pixels the page is wider than the screen (0: no sideways scrolling)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_the_dlq_and_the_admin_confirmation_fit_the_screen(
    live_server: Any, transactional_db: None, browser: Browser, width: int, height: int
) -> None:
    base = live_server.url
    user = User.objects.create_superuser("ops@example.com", PASSWORD)
    jobs = [
        JobFactory(owner=user, dead=True, queue_name=f"payments-eu-west-{n}", error_text=LONG_ERROR)
        for n in range(3)
    ]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        log_in(page, base, "ops@example.com")
        page.goto(base + "/console/dlq/")
        expect(page.locator('input[name="selected"]')).to_have_count(3)
        assert _overflow(page) <= 0
        # Every row's buttons are on the screen without scrolling sideways.
        for button in page.get_by_role("button", name="Discard", exact=True).all():
            box = button.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width

        # Select the page at once, then requeue them all.
        page.check("#select-page")
        page.get_by_role("button", name="Requeue selected").click()
        expect(page.locator(".messages")).to_contain_text("3 requeued")
        assert Job.objects.filter(pk__in=[j.pk for j in jobs], status="pending").count() == 3

        # The admin's confirmation page fits a phone as well as a desktop.
        Job.objects.filter(pk__in=[j.pk for j in jobs]).update(status=JobStatus.DEAD)
        page.goto(base + "/admin/queues/deadjob/")
        page.check(f'input[name="_selected_action"][value="{jobs[0].pk}"]')
        page.select_option('select[name="action"]', "requeue")
        page.get_by_role("button", name="Go").click()
        expect(page.locator("h1")).to_have_text("Requeue jobs?")
        assert _overflow(page) <= 0
    finally:
        context.close()


@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_the_admin_front_page_shows_every_tenants_health_and_charts(
    live_server: Any, transactional_db: None, browser: Browser, width: int, height: int
) -> None:
    base = live_server.url
    User.objects.create_superuser("ops@example.com", PASSWORD)
    first = User.objects.create_user("first@example.com", PASSWORD)
    second = User.objects.create_user("second@example.com", PASSWORD)
    JobFactory.create_batch(2, owner=first, queue_name="emails")
    JobFactory(owner=first, queue_name="emails", run_at=timezone.now() + timedelta(days=7))
    JobFactory(owner=first, queue_name="emails", leased=True)
    JobFactory(owner=second, queue_name="reports")
    JobFactory.create_batch(2, owner=second, queue_name="reports", dead=True)
    QueueSettings.objects.create(owner=second, queue_name="reports", paused=True)
    take_samples(now=timezone.now() - timedelta(minutes=1))
    take_samples(now=timezone.now())
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        log_in(page, base, "ops@example.com", path="/admin/login/")
        page.goto(base + "/admin/")
        numbers = dict(
            zip(
                page.locator(".oq-numbers dt").all_text_contents(),
                page.locator(".oq-numbers dd").all_text_contents(),
                strict=True,
            )
        )
        assert {key: numbers[key] for key in ("Ready", "Scheduled", "In flight", "Dead")} == {
            "Ready": "3",
            "Scheduled": "1",
            "In flight": "1",
            "Dead": "2",
        }
        assert numbers["Paused queues"] == "1"
        expect(page.locator(".oq-charts svg")).to_have_count(3)
        assert _overflow(page) <= 0
        # The numbers lead to the lists they count.
        page.locator(".oq-numbers").get_by_role("link", name="2").click()
        expect(page.locator("#result_list tbody tr")).to_have_count(2)
    finally:
        context.close()


def test_every_admin_list_is_readable_at_1280_px_without_scrolling_sideways(
    live_server: Any, transactional_db: None, page: Page
) -> None:
    base = live_server.url
    User.objects.create_superuser("ops@example.com", PASSWORD)
    owner = User.objects.create_user("a-rather-long-tenant-address@example.com", PASSWORD)
    issue_token(owner=owner, name="billing-worker-eu-west-1")
    JobFactory(owner=owner, queue_name="payments-eu-west-1", dead=True, error_text=LONG_ERROR)
    JobFactory(owner=owner, queue_name="payments-eu-west-1")
    log_in(page, base, "ops@example.com", path="/admin/login/")

    for path in (
        "/admin/queues/job/",
        "/admin/queues/deadjob/",
        "/admin/accounts/apitoken/",
        "/admin/accounts/user/",
    ):
        page.goto(base + path)
        expect(page.locator("#result_list")).to_be_visible()
        hidden = page.evaluate(
            "(() => { const r = document.querySelector('.results');"
            " return r.scrollWidth - r.clientWidth; })()"
        )
        widths = page.evaluate(
            "Array.from(document.querySelectorAll('#result_list thead th'))"
            ".map(th => th.innerText.trim() + '=' + th.offsetWidth).join(', ')"
        )
        assert hidden <= 0, f"{path}: {hidden} px of columns out of view ({widths})"
        assert _overflow(page) <= 0, path


@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_console_page_fits_the_screen_in_light_and_dark(
    live_server: Any,
    transactional_db: None,
    browser: Browser,
    width: int,
    height: int,
    scheme: str,
) -> None:
    base = live_server.url
    user = User.objects.create_user("tenant@example.com", PASSWORD)
    queue = "payments-eu-west-1-with-a-long-name"
    dead = JobFactory(owner=user, queue_name=queue, dead=True, error_text=LONG_ERROR)
    JobFactory(owner=user, queue_name=queue, leased=True, locked_by="worker-" + "x" * 40)
    JobFactory(owner=user, queue_name=queue, payload={"blob": "y" * 3000})
    issue_token(owner=user, name="billing-worker-eu-west-1")
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        log_in(page, base, "tenant@example.com")
        for path in (
            "/console/",
            f"/console/queues/{queue}/",
            "/console/jobs/",
            f"/console/jobs/{dead.pk}/",
            "/console/in-flight/",
            "/console/dlq/",
            "/console/dlq/?group=error",
            "/console/schedules/",
            "/console/tokens/",
        ):
            page.goto(base + path)
            expect(page.locator("h1")).to_be_visible()
            assert _overflow(page) <= 0, f"{path}: wider than the screen"
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        dark = background == "rgb(15, 20, 28)"
        assert dark == (scheme == "dark"), background
    finally:
        context.close()


def test_live_pages_refresh_themselves_and_can_be_paused(
    live_server: Any, transactional_db: None, page: Page
) -> None:
    base = live_server.url
    user = User.objects.create_user("tenant@example.com", PASSWORD)
    log_in(page, base, "tenant@example.com")
    page.goto(base + "/console/in-flight/")
    expect(page.get_by_text("Nothing in flight")).to_be_visible()
    toggle = page.get_by_role("button", name="Live updates: on")
    expect(toggle).to_have_attribute("aria-pressed", "true")

    # A worker leases a job: the open page shows it by itself.
    JobFactory(owner=user, queue_name="emails", leased=True, locked_by="worker-live")
    expect(page.get_by_text("worker-live")).to_be_visible(timeout=15_000)

    # Paused, and still paused on the next page load.
    toggle.click()
    expect(page.get_by_role("button", name="Live updates: paused")).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name="Live updates: paused")).to_have_attribute(
        "aria-pressed", "false"
    )


def test_operator_finds_a_job_by_id_and_requeues_a_whole_queues_dead_jobs(
    live_server: Any, transactional_db: None, page: Page
) -> None:
    base = live_server.url
    user = User.objects.create_user("tenant@example.com", PASSWORD)
    wanted = JobFactory(owner=user, queue_name="emails", dead=True, error_text="SMTP 550")
    JobFactory.create_batch(4, owner=user, queue_name="emails", dead=True, error_text="SMTP 421")
    JobFactory(owner=user, queue_name="other", dead=True)
    log_in(page, base, "tenant@example.com")

    # Find a job from the end of its id, as a list shows it (e.g. pasted from a log).
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.fill('input[name="q"]', str(wanted.pk)[-8:])
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.data tbody tr")).to_have_count(1)
    page.get_by_role("link", name=f"{str(wanted.pk)[:8]}…{str(wanted.pk)[-8:]}").click()
    expect(page.locator("pre.error-text")).to_have_text("SMTP 550")

    # Requeue every dead job of one queue, after the confirmation.
    page.goto(base + "/console/dlq/")
    row = page.locator("tr", has=page.get_by_role("link", name="emails", exact=True))
    row.get_by_role("button", name="Requeue all").click()
    page.get_by_role("button", name="Yes").click()
    expect(page.locator(".messages")).to_contain_text("5 requeued")
    assert Job.objects.filter(queue_name="emails", status="pending").count() == 5
    assert Job.objects.get(queue_name="other").status == JobStatus.DEAD
