"""A tenant's cron schedules, and the occurrences they have fired."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from queues.models import INT32_MAX, INT32_MIN, QUEUE_NAME_MAX_LENGTH

NAME_MAX_LENGTH = 100
NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"


class Schedule(models.Model):
    """Enqueue a job into ``queue_name`` at every occurrence of ``cron`` in ``timezone``.

    ``next_run_at`` is the next occurrence (UTC), NULL while disabled; the
    maintenance loop fires schedules whose ``next_run_at`` has come
    (schedules/services.py).
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="schedules",
        db_column="user_id",
    )
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH)
    # As given (an alias stays an alias); schedules/cron.py expands it.
    cron = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", db_default="UTC")
    payload = models.JSONField(default=dict, blank=True)
    priority = models.IntegerField(
        default=0,
        db_default=0,
        validators=[MinValueValidator(INT32_MIN), MaxValueValidator(INT32_MAX)],
    )
    max_retries = models.IntegerField(
        default=3, db_default=3, validators=[MinValueValidator(0), MaxValueValidator(INT32_MAX)]
    )
    enabled = models.BooleanField(default=True, db_default=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "schedules"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="schedules_owner_name_uniq"),
            models.CheckConstraint(
                condition=Q(max_retries__gte=0), name="schedules_max_retries_non_negative"
            ),
        ]
        indexes = [
            # The maintenance loop: WHERE enabled AND next_run_at <= now.
            models.Index(
                fields=["next_run_at"], condition=Q(enabled=True), name="schedules_due_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ScheduleRun(models.Model):
    """One occurrence a schedule fired, and the job it enqueued.

    The unique (schedule, occurrence) key is what makes firing exactly-once:
    of several maintenance processes firing the same occurrence, the
    database lets one insert this row; the others roll back their job.
    """

    schedule = models.ForeignKey(
        Schedule, on_delete=models.CASCADE, related_name="runs", db_index=False
    )
    # The cron time fired (UTC), not when the maintenance pass got to it.
    occurrence = models.DateTimeField()
    fired_at = models.DateTimeField()
    # Not a foreign key: retention deletes jobs, and the run stays.
    job_id = models.UUIDField()

    class Meta:
        db_table = "schedule_runs"
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "occurrence"], name="schedule_runs_schedule_occurrence_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.occurrence:%Y-%m-%d %H:%M}"
