"""Searching jobs by the end of their id and by error text (queues/models.py).

The results on both databases; on PostgreSQL also that the query is the one
the index of migration 0009 was built for. An index on an expression serves
only that exact expression: if ``id_tail`` or ``ContainsText`` drifted from
the index, the results would stay right and the console would read every
job again, so the plan is what these tests check.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection

from queues.admin import search_words
from queues.models import Job, JobStatus
from queues.tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

TRIGRAMS = "jobs_dead_error_trgm_idx"
WANTED = uuid.UUID("019ad5c2-8f3a-7abc-8000-0012345a1b2c")


def searched_by(queryset: Any, index: str) -> str:
    """What ``queryset`` looks up in ``index`` (its Index Cond), "" if it does not.

    Sequential scans are priced out, so any usable index wins however few
    rows the test has. A scan of ``index`` without a condition does not
    count: PostgreSQL reads the whole of a partial index rather than the
    table when told to avoid the table.
    """
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        lines = [row[0].strip().removeprefix("->").strip() for row in cursor.fetchall()]
    for line, after in zip(lines, [*lines[1:], ""], strict=True):
        if line.startswith(("Bitmap Index Scan on", "Index Scan using")) and index in line:
            return after if after.startswith("Index Cond:") else ""
    return ""


ALIKE = uuid.UUID("019ad5c2-8f3a-7abc-8000-9912345a1b2c")  # the same last 10 digits


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("2c", {WANTED, ALIKE}),
        ("345a1b2c", {WANTED, ALIKE}),  # as the lists show it
        ("12345A1B2C", {WANTED, ALIKE}),
        ("0012345a1b2c", {WANTED}),
        ("80000012345a1b2c", {WANTED}),  # across a hyphen of the id's text
        ("1b2e", set()),
    ],
)
def test_with_id_ending_finds_the_jobs_whose_id_ends_so(tail, expected):
    user = UserFactory()
    JobFactory(owner=user, id=WANTED)
    JobFactory(owner=user, id=ALIKE)
    JobFactory(owner=user, id=uuid.UUID("019ad5c2-8f3a-7abc-8000-0012345a1b2d"))

    found = Job.objects.for_owner(user).with_id_ending(tail)

    assert {job.pk for job in found} == expected


def test_with_id_ending_sees_only_the_owners_jobs():
    user = UserFactory()
    JobFactory(id=WANTED)  # someone else's

    assert not Job.objects.for_owner(user).with_id_ending("345a1b2c").exists()


@pytest.mark.postgres_only
def test_job_search_by_the_end_of_an_id_uses_the_index():
    JobFactory(id=WANTED)

    cond = searched_by(Job.objects.with_id_ending("345a1b2c"), "jobs_id_tail_idx")

    assert 'reverse("right"((id)::text, 8))' in cond


def test_with_error_containing_ignores_case_and_finds_parts_of_words():
    JobFactory(dead=True, error_text="TimeoutError: upstream took 30 s")
    JobFactory(dead=True, error_text="KeyError: 'customer_id'")
    JobFactory(dead=True, error_text="100% of _ wildcards")
    JobFactory()  # no error text

    def found(text: str) -> list[str]:
        return sorted(j.error_text for j in Job.objects.with_error_containing(text))

    assert found("timeout") == ["TimeoutError: upstream took 30 s"]
    assert found("ERROR:") == ["KeyError: 'customer_id'", "TimeoutError: upstream took 30 s"]
    assert found("stream") == ["TimeoutError: upstream took 30 s"]
    # LIKE's wildcards are searched for as themselves.
    assert found("0%") == ["100% of _ wildcards"]
    assert found("_ w") == ["100% of _ wildcards"]
    assert found("o_ ") == []  # not "of "


def test_error_text_search_finds_jobs_waiting_to_retry_and_cancelled_ones_too():
    dead = JobFactory(dead=True, error_text="TimeoutError: upstream")
    retrying = JobFactory(retry_count=1, error_text="TimeoutError: again")
    cancelled = JobFactory(status=JobStatus.CANCELLED, error_text="timeout, then cancelled")
    JobFactory(status=JobStatus.COMPLETED)  # an ack clears the error text
    JobFactory(dead=True, error_text="KeyError")

    def found(**how) -> set:
        return set(Job.objects.with_error_containing("timeout", **how))

    assert found() == {dead, retrying, cancelled}
    assert found(dead_only=True) == {dead}


def plan_of(queryset: Any) -> str:
    """EXPLAIN of ``queryset`` with sequential scans priced out (see ``searched_by``)."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres_only
def test_only_dead_jobs_error_text_is_in_the_trigram_index():
    """A nack that retries writes no trigrams: the common failure stays cheap
    (docs/benchmarks.md, the nack path)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs'"
            " AND indexdef LIKE '%%gin_trgm_ops%%'"
        )
        (name, definition), *others = cursor.fetchall()

    assert others == []
    assert name == "jobs_dead_error_trgm_idx"
    assert "WHERE (((status)::text = 'dead'::text) AND (error_text IS NOT NULL))" in definition


def test_admin_search_matches_each_word_by_queue_owner_or_error_text():
    owner = UserFactory(email="Owner@Example.com")
    smtp = JobFactory(owner=owner, queue_name="emails", dead=True, error_text="SMTP refused")
    other = JobFactory(queue_name="sms", dead=True, error_text="carrier refused: 42")
    JobFactory(queue_name="Emails")

    def found(term: str) -> list[Job]:
        return sorted(search_words(Job.objects.all(), term), key=lambda job: job.pk)

    assert found("refused") == sorted([smtp, other], key=lambda job: job.pk)
    assert found("emails refused") == [smtp]  # every word must match
    assert found("owner@example.com REFUSED") == [smtp]
    assert found('"carrier refused"') == [other]  # quotes keep words together
    assert found("carrier smtp") == []


@pytest.mark.postgres_only
def test_error_searches_use_the_trigram_index_of_a_real_sized_dead_letter_queue():
    """With a test's handful of rows, reading a whole b-tree index of dead
    jobs costs the planner less than any trigram lookup, so the plans are
    read with 3,000 dead jobs (copies of one row, in one INSERT), analyzed,
    and the trigram index's pending list merged as vacuum would. The
    searches of every job also ask the index of the other jobs with an
    error; the DLQ's do not."""
    model = JobFactory(dead=True, error_text="KeyError")
    JobFactory(dead=True, error_text="SMTP refused: timeout")
    JobFactory(retry_count=1, error_text="SMTP refused: timeout")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO jobs SELECT (jsonb_populate_record(NULL::jobs, to_jsonb(j)"
            " || jsonb_build_object('id', gen_random_uuid(), 'error_text', 'KeyError ' || n))).*"
            " FROM jobs j, generate_series(1, 3000) n WHERE j.id = %s",
            [model.pk],
        )
        cursor.execute("SELECT gin_clean_pending_list('jobs_dead_error_trgm_idx')")
        cursor.execute("ANALYZE jobs")
    dead = Job.objects.filter(status=JobStatus.DEAD)
    searches = {
        "console DLQ": (dead.with_error_containing("timeout", dead_only=True), True),
        "every job": (Job.objects.with_error_containing("timeout"), False),
        "admin jobs": (search_words(Job.objects.all(), "refused"), False),
        "admin DLQ": (search_words(dead, "refused", dead_only=True), True),
    }

    for name, (jobs, dead_only) in searches.items():
        plan = plan_of(jobs)
        assert "Bitmap Index Scan on jobs_dead_error_trgm_idx" in plan, (name, plan)
        assert ("jobs_erred_live_idx" not in plan) is dead_only, (name, plan)
        assert len(jobs) == (1 if dead_only else 2), name
