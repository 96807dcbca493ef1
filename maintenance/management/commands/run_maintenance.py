"""``manage.py run_maintenance``: reclaim expired leases, fire schedules, delete old jobs.

One pass by default, for cron; ``--loop`` repeats it every ``--interval``
seconds as a long-running process (SIGTERM or SIGINT stop it after the current
step), and between passes fires due schedules every
``OPENQUEUE_SCHEDULE_CHECK_SECONDS`` (1 s), so a schedule fires within about
a second of its time. A pass is:

1. ``reap_expired_leases``: processing jobs whose lease ran out (more than
   ``OPENQUEUE_LEASE_REAP_GRACE_SECONDS`` ago) go back to pending; poison jobs
   (leases lost more than ``max_retries`` times) go to the DLQ with
   ``dead_reason = "lease_expired"``.
2. ``fire_schedules``: every enabled schedule whose next occurrence has come
   enqueues its job, exactly once (schedules/services.py).
3. ``sample_queues``: the per-minute numbers of every queue for the charts
   (jobs enqueued, completed, dead; pending), for each minute that ended
   and is not sampled yet (queues/samples.py). Not in a dry run.
4. One purge per finished status, oldest first, deleting the jobs that
   finished more than ``OPENQUEUE_RETENTION_<STATUS>_DAYS`` ago (0 keeps them),
   then the records of schedule occurrences older than
   ``OPENQUEUE_RETENTION_SCHEDULE_RUNS_DAYS``, then the queue samples older
   than ``OPENQUEUE_RETENTION_SAMPLES_HOURS``.

Every step works in batches of ``--batch-size`` rows, one short transaction
each, locking with SKIP LOCKED: producers and workers are never blocked for
long, and two copies running at once split the work instead of repeating it.
``--dry-run`` counts what a pass would do and changes nothing.

Each step prints one line with its counts and elapsed time (and the same
record goes to the ``openqueue.maintenance`` logger); long deletes print a
progress line per full batch. A pass that cannot reach the database exits 1
with a one-line error; in ``--loop`` mode the error is reported and the pass
is retried at the next interval.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from argparse import SUPPRESS, ArgumentParser, ArgumentTypeError
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError, connections
from django.utils import timezone

from queues import samples, services
from schedules import services as schedules

logger = logging.getLogger("openqueue.maintenance")

MAX_BATCH_SIZE = 50_000
# Purged in this order; the keys of settings.OPENQUEUE_RETENTION_DAYS.
PURGED_STATUSES = ("completed", "cancelled", "dead")


def _aware_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}") from None
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 1 <= value <= MAX_BATCH_SIZE:
        raise ArgumentTypeError(f"must be between 1 and {MAX_BATCH_SIZE}, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise ArgumentTypeError(f"must be > 0, got {value}")
    return value


@dataclass
class PassResult:
    requeued: int = 0
    buried: int = 0
    fired: int = 0
    deleted: int = 0


class Command(BaseCommand):
    help = (
        "Reclaim expired leases, fire due schedules and delete finished jobs past retention "
        "(one pass, or --loop)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--loop",
            action="store_true",
            help="Keep running, one pass every --interval seconds and due schedules fired "
            "every OPENQUEUE_SCHEDULE_CHECK_SECONDS between passes, until SIGTERM/SIGINT.",
        )
        parser.add_argument(
            "--interval",
            type=_positive_float,
            default=None,
            help="Seconds between passes with --loop "
            "(default: OPENQUEUE_MAINTENANCE_INTERVAL_SECONDS).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be reaped, fired and deleted; change nothing.",
        )
        parser.add_argument(
            "--batch-size",
            type=_batch_size,
            default=None,
            help="Rows per transaction (default: OPENQUEUE_MAINTENANCE_BATCH_SIZE).",
        )
        # The clock of the pass, for tests and for replaying a pass by hand;
        # hidden because operators never need it.
        parser.add_argument("--now", type=_aware_datetime, default=None, help=SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        self.dry_run = options["dry_run"]
        self.batch_size = options["batch_size"] or settings.OPENQUEUE_MAINTENANCE_BATCH_SIZE
        self.fixed_now: datetime | None = options["now"]
        self.stopping = False
        if not options["loop"]:
            try:
                self.run_pass()
            except (OperationalError, InterfaceError) as exc:
                raise CommandError(self.database_error(exc), returncode=1) from exc
            return
        interval = options["interval"] or settings.OPENQUEUE_MAINTENANCE_INTERVAL_SECONDS
        self.loop(interval)

    # --- loop mode -------------------------------------------------------------------

    def loop(self, interval: float) -> None:
        received: list[str] = []
        # The wait between passes selects on this pipe, and Python's C-level
        # signal handler writes to it (set_wakeup_fd). A flag alone is not
        # enough: a signal landing just before select() starts would only be
        # seen when the interval is over. (threading.Event.set() from a handler
        # has the same race and can also deadlock.)
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        previous_wakeup = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)

        def request_stop(signum: int, frame: FrameType | None) -> None:
            # Only a flag: the step in progress finishes and commits, then the
            # loop notices and exits.
            received.append(signal.Signals(signum).name)
            self.stopping = True

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        check = settings.OPENQUEUE_SCHEDULE_CHECK_SECONDS
        try:
            self.say(
                f"maintenance loop started: one pass every {interval:g} s, "
                f"due schedules fired every {check:g} s"
            )
            next_pass = time.monotonic()
            while not self.stopping:
                try:
                    if time.monotonic() >= next_pass:
                        self.run_pass()
                        next_pass = time.monotonic() + interval
                    else:
                        self.fire_between_passes()
                except (OperationalError, InterfaceError) as exc:
                    # A database restart must not kill the maintenance
                    # process: report it and try again next interval.
                    self.stderr.write(self.database_error(exc))
                    logger.error(self.database_error(exc))
                    connections.close_all()
                    next_pass = time.monotonic() + interval
                deadline = min(next_pass, time.monotonic() + check)
                while not self.stopping and (left := deadline - time.monotonic()) > 0:
                    if select.select([wake_read], [], [], left)[0]:
                        os.read(wake_read, 512)
            self.say(f"maintenance loop stopped ({', '.join(received) or 'no signal'})")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            os.close(wake_read)
            os.close(wake_write)

    # --- one pass --------------------------------------------------------------------

    def run_pass(self) -> PassResult:
        started = time.monotonic()
        now = self.fixed_now or timezone.now()
        mode = " (dry run)" if self.dry_run else ""
        result = PassResult()

        reaped, seconds = self.timed(self.reap, now)
        result.requeued, result.buried = reaped.requeued, reaped.buried
        self.report(
            f"reap_expired_leases{mode}: requeued={reaped.requeued} buried={reaped.buried} "
            f"({seconds:.3f} s)",
            step="reap_expired_leases",
            requeued=reaped.requeued,
            buried=reaped.buried,
            seconds=seconds,
        )

        if not self.stopping:
            fired, seconds = self.timed(self.fire, now)
            result.fired = fired
            self.report(
                f"fire_schedules{mode}: fired={fired} ({seconds:.3f} s)",
                step="fire_schedules",
                fired=fired,
                seconds=seconds,
            )

        if not self.stopping and not self.dry_run:
            sampled, seconds = self.timed(self.sample, now)
            self.report(
                f"sample_queues: rows={sampled} ({seconds:.3f} s)",
                step="sample_queues",
                rows=sampled,
                seconds=seconds,
            )

        for status in PURGED_STATUSES:
            if self.stopping:
                break
            days = settings.OPENQUEUE_RETENTION_DAYS[status]
            if not days:
                self.report(
                    f"purge {status}: kept forever "
                    f"(OPENQUEUE_RETENTION_{status.upper()}_DAYS is 0)",
                    step=f"purge_{status}",
                    deleted=0,
                )
                continue
            deleted, seconds = self.timed(self.purge, status, timedelta(days=days), now)
            result.deleted += deleted
            self.report(
                f"purge {status} older than {days} days{mode}: deleted={deleted} ({seconds:.3f} s)",
                step=f"purge_{status}",
                deleted=deleted,
                seconds=seconds,
            )

        days = settings.OPENQUEUE_RETENTION_SCHEDULE_RUNS_DAYS
        if days and not self.stopping:
            runs, seconds = self.timed(self.purge_runs, timedelta(days=days), now)
            self.report(
                f"purge schedule runs older than {days} days{mode}: deleted={runs} "
                f"({seconds:.3f} s)",
                step="purge_schedule_runs",
                deleted=runs,
                seconds=seconds,
            )

        hours = settings.OPENQUEUE_RETENTION_SAMPLES_HOURS
        if not self.stopping and not self.dry_run:
            gone, seconds = self.timed(self.purge_samples, timedelta(hours=hours), now)
            self.report(
                f"purge queue samples and their totals older than {hours} hours: deleted={gone}"
                f" ({seconds:.3f} s)",
                step="purge_queue_samples",
                deleted=gone,
                seconds=seconds,
            )

        seconds = time.monotonic() - started
        self.report(
            f"maintenance pass done{mode}: requeued={result.requeued} buried={result.buried} "
            f"fired={result.fired} deleted={result.deleted} ({seconds:.3f} s)",
            step="pass",
            requeued=result.requeued,
            buried=result.buried,
            fired=result.fired,
            deleted=result.deleted,
            seconds=seconds,
            dry_run=self.dry_run,
        )
        return result

    def fire_between_passes(self) -> None:
        """The loop's check between passes: quiet unless something fired."""
        now = self.fixed_now or timezone.now()
        fired, seconds = self.timed(self.fire, now)
        if fired:
            mode = " (dry run)" if self.dry_run else ""
            self.report(
                f"fire_schedules{mode}: fired={fired} ({seconds:.3f} s)",
                step="fire_schedules",
                fired=fired,
                seconds=seconds,
            )

    def fire(self, now: datetime) -> int:
        if self.dry_run:
            return schedules.count_due_schedules(now=now)
        return len(schedules.fire_due_schedules(now=now))

    def sample(self, now: datetime) -> int:
        return samples.take_samples(now=now)

    def purge_samples(self, older_than: timedelta, now: datetime) -> int:
        return samples.purge_samples(older_than=older_than, now=now)

    def purge_runs(self, older_than: timedelta, now: datetime) -> int:
        if self.dry_run:
            return schedules.count_old_runs(older_than=older_than, now=now)
        return schedules.purge_runs(older_than=older_than, now=now)

    def reap(self, now: datetime) -> services.Reaped:
        grace = timedelta(seconds=settings.OPENQUEUE_LEASE_REAP_GRACE_SECONDS)
        if self.dry_run:
            return services.count_expired_leases(now=now, grace=grace)
        return services.reap_expired_leases(now=now, grace=grace, batch_size=self.batch_size)

    def purge(self, status: str, older_than: timedelta, now: datetime) -> int:
        if self.dry_run:
            return services.count_purgeable_jobs(status=status, older_than=older_than, now=now)
        started = time.monotonic()

        def progress(deleted: int) -> None:
            # Called after every batch; a full batch means more may follow,
            # so a long delete shows it is moving. The step line covers the rest.
            if deleted % self.batch_size == 0:
                self.report(
                    f"  purge {status}: {deleted} deleted so far "
                    f"({time.monotonic() - started:.3f} s)",
                    step=f"purge_{status}_progress",
                    deleted=deleted,
                )

        return services.purge_finished_jobs(
            status=status,
            older_than=older_than,
            now=now,
            batch_size=self.batch_size,
            progress=progress,
        )

    # --- output ----------------------------------------------------------------------

    @staticmethod
    def timed(step: Any, *args: Any) -> tuple[Any, float]:
        started = time.monotonic()
        value = step(*args)
        return value, time.monotonic() - started

    def report(self, line: str, **fields: Any) -> None:
        if self.verbosity > 0:
            self.stdout.write(line)
        # The same facts as fields, for the JSON log (openqueue_site/logging.py).
        fields = {k: round(v, 4) if isinstance(v, float) else v for k, v in fields.items()}
        logger.info(line, extra=fields)

    def say(self, line: str) -> None:
        if self.verbosity > 0:
            self.stdout.write(line)
        logger.info(line)

    @staticmethod
    def database_error(exc: Exception) -> str:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"run_maintenance: database unavailable: {first_line}"
