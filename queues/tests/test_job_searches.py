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
from queues.models import Job
from queues.tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

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


@pytest.mark.postgres_only
def test_error_text_search_uses_the_trigram_index():
    JobFactory(dead=True, error_text="TimeoutError: upstream took 30 s")

    cond = searched_by(Job.objects.with_error_containing("timeout"), "jobs_error_text_trgm_idx")

    assert "error_text ~~* '%timeout%'::text" in cond


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
def test_admin_search_by_error_text_uses_the_trigram_index():
    JobFactory(dead=True, error_text="SMTP refused")

    cond = searched_by(search_words(Job.objects.all(), "refused"), "jobs_error_text_trgm_idx")

    assert "error_text ~~* '%refused%'::text" in cond
