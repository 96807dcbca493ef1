"""Cron schedules: declare them, fire their occurrences exactly once, trigger them by hand.

A schedule enqueues an ordinary job (``schedule_name`` set) at each
occurrence of its cron expression in its time zone (schedules/cron.py).
The maintenance loop calls ``fire_due_schedules`` about once a second
(``manage.py run_maintenance``); it fires every enabled schedule whose
``next_run_at`` has come:

- **Exactly once.** The job and a ``ScheduleRun`` row keyed by (schedule,
  occurrence) are written in one transaction, and the unique key decides: of
  several maintenance processes firing the same occurrence, one inserts the
  run, the others' inserts fail and their job rolls back with it. The
  schedules being fired are also row-locked with SKIP LOCKED, so concurrent
  processes split the work instead of repeating it; a crashed process's
  locks go with its transaction, and nothing is left to clean up.
- **No storm after downtime.** A schedule fires its most recent occurrence
  at or before now, once, however many were missed; ``next_run_at`` moves to
  the first occurrence after now.
- ``last_run_at`` is when it last fired (the maintenance pass's clock, not
  the occurrence); triggers by hand leave it and ``next_run_at`` alone.

Declaring (``put_schedule``) is idempotent: a deploy script may PUT the same
schedules every time. An unchanged cron, time zone and enabled flag keep
``next_run_at``, so a PUT landing just after an occurrence came due cannot
skip it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from queues import metrics, services
from queues.domain import NewJob
from schedules import cron
from schedules.models import Schedule, ScheduleRun

logger = logging.getLogger("openqueue.schedules")

DEFAULT_BATCH_SIZE = 100


class ScheduleNotFound(Exception):
    """No schedule of this name belongs to the caller."""


@dataclass(frozen=True)
class ScheduleSpec:
    """What ``PUT /schedules/{name}`` declares (every field; defaults as the contract's)."""

    queue_name: str
    cron: str
    timezone: str = "UTC"
    payload: Any = None
    priority: int = 0
    max_retries: int = 3
    enabled: bool = True

    def __post_init__(self) -> None:
        # Checked here too, so no caller can store what the loop cannot evaluate.
        cron.expand(self.cron)
        cron.zone(self.timezone)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> ScheduleSpec:
        """The spec from a validated form's or request's values (other keys are ignored)."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


@dataclass(frozen=True)
class Fired:
    schedule_name: str
    queue_name: str
    occurrence: datetime
    job_id: uuid.UUID


def payload_problem(value: Any) -> str | None:
    """What keeps ``value`` from being a schedule's payload (forms use it), or None.

    PostgreSQL stores no NUL and no lone surrogate, and every job the
    schedule enqueues carries the payload, so the enqueue size limit applies.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return "Text with a lone surrogate (\\ud800-\\udfff) cannot be stored."
    if "\x00" in _strings(value):
        return "NUL characters (\\u0000) cannot be stored."
    limit = settings.OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES
    if len(text) > limit:
        return f"At most {limit} bytes (OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES), as a job's payload."
    return None


def _strings(value: Any) -> str:
    """Every key and string in ``value``, joined (to look for characters in)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "".join(key + _strings(item) for key, item in value.items())
    if isinstance(value, list):
        return "".join(_strings(item) for item in value)
    return ""


def _first_run(spec_cron: str, zone: str, enabled: bool, now: datetime) -> datetime | None:
    return cron.next_after(spec_cron, zone, now) if enabled else None


def put_schedule(
    *, owner: User, name: str, spec: ScheduleSpec, now: datetime | None = None
) -> tuple[Schedule, bool]:
    """Create or replace ``owner``'s schedule ``name``; returns it and whether it was created."""
    now = now or timezone.now()
    payload = {} if spec.payload is None else spec.payload
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().filter(owner=owner, name=name).first()
        created = schedule is None
        if schedule is None:
            schedule = Schedule(owner=owner, name=name, created_at=now)
            timing_changed = True
        else:
            timing_changed = (schedule.cron, schedule.timezone, schedule.enabled) != (
                spec.cron,
                spec.timezone,
                spec.enabled,
            )
        schedule.queue_name = spec.queue_name
        schedule.cron = spec.cron
        schedule.timezone = spec.timezone
        schedule.payload = payload
        schedule.priority = spec.priority
        schedule.max_retries = spec.max_retries
        schedule.enabled = spec.enabled
        if timing_changed:
            schedule.next_run_at = _first_run(spec.cron, spec.timezone, spec.enabled, now)
        schedule.updated_at = now
        try:
            with transaction.atomic():
                schedule.save(force_insert=created)
        except IntegrityError:
            # A concurrent PUT created it first: replace that one instead.
            if not created:
                raise
            return put_schedule(owner=owner, name=name, spec=spec, now=now)
    logger.info(
        "schedule_created" if created else "schedule_replaced",
        extra={
            "tenant_id": owner.pk,
            "schedule_name": name,
            "queue_name": spec.queue_name,
            "cron": spec.cron,
            "timezone": spec.timezone,
            "enabled": spec.enabled,
        },
    )
    return schedule, created


def get_schedule(*, owner: User, name: str) -> Schedule:
    try:
        return Schedule.objects.get(owner=owner, name=name)
    except Schedule.DoesNotExist:
        raise ScheduleNotFound() from None


def list_schedules(*, owner: User) -> QuerySet[Schedule]:
    return Schedule.objects.filter(owner=owner).order_by("name")


def delete_schedule(*, owner: User, name: str) -> None:
    """Delete the schedule (its run records with it); jobs it enqueued stay."""
    deleted = (
        Schedule.objects.filter(owner=owner, name=name).delete()[1].get(Schedule._meta.label, 0)
    )
    if not deleted:
        raise ScheduleNotFound()
    logger.info("schedule_deleted", extra={"tenant_id": owner.pk, "schedule_name": name})


def set_enabled(
    schedules: QuerySet[Schedule], *, enabled: bool, now: datetime | None = None
) -> int:
    """Enable or disable ``schedules`` (console, admin); returns how many changed.

    Enabling starts from the next occurrence after now: occurrences missed
    while disabled are not fired.
    """
    now = now or timezone.now()
    changed = 0
    for schedule in schedules.filter(enabled=not enabled):
        with transaction.atomic():
            locked = Schedule.objects.select_for_update().filter(pk=schedule.pk).first()
            if locked is None or locked.enabled == enabled:
                continue
            locked.enabled = enabled
            locked.next_run_at = _first_run(locked.cron, locked.timezone, enabled, now)
            locked.updated_at = now
            locked.save(update_fields=["enabled", "next_run_at", "updated_at"])
            changed += 1
        logger.info(
            "schedule_enabled" if enabled else "schedule_disabled",
            extra={"tenant_id": locked.owner_id, "schedule_name": locked.name},
        )
    return changed


def _new_job(schedule: Schedule) -> NewJob:
    return NewJob(
        queue_name=schedule.queue_name,
        payload=schedule.payload,
        priority=schedule.priority,
        max_retries=schedule.max_retries,
        schedule_name=schedule.name,
    )


def trigger(*, owner: User, name: str, now: datetime | None = None) -> uuid.UUID:
    """Enqueue one job of the schedule now, whatever its cron says (and even if disabled)."""
    schedule = get_schedule(owner=owner, name=name)
    (job_id,) = services.enqueue(owner=owner, jobs=[_new_job(schedule)], now=now)
    metrics.record_schedule_run(
        schedule_name=schedule.name, queue_name=schedule.queue_name, job_id=job_id, occurrence=None
    )
    return job_id


def fire_due_schedules(
    *,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> list[Fired]:
    """Fire every enabled schedule whose ``next_run_at`` is at or before ``now``, once each.

    A batch of due schedules per transaction, locked with SKIP LOCKED; each
    fires in a savepoint of its own, so one that fails (a lost race, a cron
    expression that no longer evaluates) leaves the others fired.
    """
    now = now or timezone.now()
    fired: list[Fired] = []
    seen: set[int] = set()
    while True:
        with transaction.atomic():
            batch = list(
                Schedule.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("owner")
                .filter(enabled=True, next_run_at__lte=now)
                .exclude(pk__in=seen)
                .order_by("next_run_at", "pk")[:batch_size]
            )
            done = [found for schedule in batch if (found := _fire(schedule, now))]
        seen.update(schedule.pk for schedule in batch)
        # Counted once committed: a rolled-back firing enqueued nothing.
        for one in done:
            metrics.record_schedule_run(
                schedule_name=one.schedule_name,
                queue_name=one.queue_name,
                job_id=one.job_id,
                occurrence=one.occurrence,
            )
        fired += done
        if progress is not None and done:
            progress(len(fired))
        if len(batch) < batch_size:
            return fired


def _fire(schedule: Schedule, now: datetime) -> Fired | None:
    """Fire ``schedule``'s latest due occurrence, in a savepoint; None if another process did."""
    due = schedule.next_run_at
    assert due is not None  # selected by next_run_at <= now
    try:
        latest = cron.latest_at_or_before(schedule.cron, schedule.timezone, now)
        following = cron.next_after(schedule.cron, schedule.timezone, now)
    except cron.CronError:
        logger.error(
            "schedule_invalid",
            extra={
                "tenant_id": schedule.owner_id,
                "schedule_name": schedule.name,
                "cron": schedule.cron,
            },
        )
        Schedule.objects.filter(pk=schedule.pk).update(next_run_at=None)
        return None
    occurrence = max(latest, due) if latest is not None else due
    try:
        with transaction.atomic():
            (job_id,) = services.enqueue(owner=schedule.owner, jobs=[_new_job(schedule)], now=now)
            ScheduleRun.objects.create(
                schedule=schedule, occurrence=occurrence, fired_at=now, job_id=job_id
            )
            Schedule.objects.filter(pk=schedule.pk).update(last_run_at=now, next_run_at=following)
    except IntegrityError:
        # Fired already (another process, with a stale read): move on past it.
        Schedule.objects.filter(pk=schedule.pk, next_run_at__lte=now).update(next_run_at=following)
        return None
    return Fired(schedule.name, schedule.queue_name, occurrence, job_id)


def count_due_schedules(*, now: datetime | None = None) -> int:
    """How many schedules ``fire_due_schedules`` would fire right now (dry run)."""
    now = now or timezone.now()
    return Schedule.objects.filter(enabled=True, next_run_at__lte=now).count()


def _old_runs(older_than: timedelta, now: datetime | None) -> QuerySet[ScheduleRun]:
    return ScheduleRun.objects.filter(occurrence__lt=(now or timezone.now()) - older_than)


def purge_runs(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete the records of occurrences fired more than ``older_than`` ago."""
    return _old_runs(older_than, now).delete()[0]


def count_old_runs(*, older_than: timedelta, now: datetime | None = None) -> int:
    """How many records ``purge_runs`` would delete right now (dry run)."""
    return _old_runs(older_than, now).count()
