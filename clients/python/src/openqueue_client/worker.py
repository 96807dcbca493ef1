"""``Worker``: lease jobs, run a handler for each, heartbeat, ack or nack, stop gracefully.

    worker = Worker(client, ["emails"], send_email, concurrency=4)
    worker.run()      # until SIGTERM/SIGINT, or until nothing is ready with burst=True

One thread leases (long-poll; a batch lease when ``concurrency`` > 1), each
job runs in a thread of its own, and one thread heartbeats every running
job once half its lease has passed, so a job may run longer than its lease.

What happens to a job:

- the handler returns: ack, with the return value as the result (a dict
  as is, None as no result, anything else as ``{"value": ...}``);
- the handler raises: nack with the traceback, retried by the server's
  backoff while the job has retries left, else the DLQ;
- the handler raises ``Permanent``: nack without retry (straight to the DLQ);
- shutdown: leasing stops; running jobs get ``grace_seconds`` to finish;
  a job still running then is nacked with retry, so the server hands it to
  another worker after its backoff (a nack counts as a try: a job with no
  retries left goes to the DLQ).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from openqueue_client.client import Client
from openqueue_client.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    OpenQueueError,
    Permanent,
    PermissionDeniedError,
    ValidationError,
)
from openqueue_client.models import Job, Lease

logger = logging.getLogger("openqueue_client.worker")

Handler = Callable[[Job], Any]

# Errors that no retry will fix: a wrong token, a wrong queue name or lease
# setting (a name with "/" matches no route: 404).
FATAL_ERRORS = (AuthenticationError, PermissionDeniedError, ValidationError, NotFoundError)


@dataclass
class WorkerStats:
    """What a ``run`` did, counted per job outcome."""

    acked: int = 0
    retried: int = 0
    dead: int = 0
    abandoned: int = 0  # nacked at shutdown (also counted in retried or dead)
    lost: int = 0  # the lease was gone when the job finished (409)


@dataclass(eq=False)
class _Running:
    lease: Lease
    started: float
    renew_at: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    settled: bool = False  # acked or nacked: nothing more is sent for it


class Worker:
    """Runs ``handler(job)`` for the jobs of ``queues``.

    ``lease_seconds`` is how long each lease lasts before a heartbeat renews
    it; ``wait_seconds`` (0–20) how long a lease request waits for a job
    (long-poll; also the longest a shutdown waits for the lease in flight).
    With ``burst`` the worker returns once none of its queues has a job
    ready and nothing is running (jobs scheduled for later do not count).
    """

    def __init__(
        self,
        client: Client,
        queues: Sequence[str] | str,
        handler: Handler,
        *,
        concurrency: int = 1,
        lease_seconds: int = 30,
        wait_seconds: int = 10,
        grace_seconds: float = 30.0,
        burst: bool = False,
        worker_id: str | None = None,
        max_error_bytes: int = 8000,
    ) -> None:
        if isinstance(queues, str):
            queues = [queues]
        if not queues:
            raise ValueError("a worker needs at least one queue")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 1 <= lease_seconds <= 3600:
            raise ValueError("lease_seconds must be between 1 and 3600")
        if not 0 <= wait_seconds <= 20:
            raise ValueError("wait_seconds must be between 0 and 20")
        self.client = client
        self.queues = list(queues)
        self.handler = handler
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.grace_seconds = grace_seconds
        self.burst = burst
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.max_error_bytes = max_error_bytes
        self.stats = WorkerStats()
        self._stopping = threading.Event()
        self._hard_stop = threading.Event()
        self._changed = threading.Condition()
        self._running: set[_Running] = set()
        self._next_queue = 0
        self._fatal: BaseException | None = None
        self._stats_lock = threading.Lock()

    # --- Control ----------------------------------------------------------------

    def stop(self, *, graceful: bool = True) -> None:
        """Stop leasing; running jobs get ``grace_seconds`` (none if not ``graceful``)."""
        if not graceful:
            self._hard_stop.set()
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()

    def run(self, *, install_signal_handlers: bool = True) -> WorkerStats:
        """Work until stopped (or, with ``burst``, until no job is ready); returns the counts.

        Raises the error that stopped it when the server refused the worker
        for good (a wrong token, queue name or setting).
        """
        restore = self._install_signal_handlers() if install_signal_handlers else {}
        heartbeats = threading.Thread(
            target=self._heartbeat_loop, name="openqueue-heartbeat", daemon=True
        )
        heartbeats.start()
        logger.info(
            "worker %s started: queues=%s concurrency=%d lease=%ds%s",
            self.worker_id,
            ",".join(self.queues),
            self.concurrency,
            self.lease_seconds,
            " burst" if self.burst else "",
        )
        try:
            self._lease_loop()
        finally:
            self._shut_down()
            heartbeats.join(timeout=5)
            for signum, previous in restore.items():
                signal.signal(signum, previous)
        logger.info("worker %s stopped: %s", self.worker_id, self.stats)
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._stopping.is_set():
                logger.warning("second signal: giving running jobs back now")
                self.stop(graceful=False)
                return
            logger.info(
                "%s: no new jobs; %d running get %ss to finish",
                signal.Signals(signum).name,
                len(self._running),
                self.grace_seconds,
            )
            self.stop()

        restore: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            restore[signum] = signal.getsignal(signum)
            signal.signal(signum, on_signal)
        return restore

    # --- Leasing ----------------------------------------------------------------

    def _lease_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            free = self._wait_for_room()
            if free == 0:
                continue
            try:
                leases = self._lease_any(free, wait=0)
                if not leases:
                    if self.burst:
                        if not self._running:
                            logger.info("burst: no job ready in %s", ",".join(self.queues))
                            return
                        # Something is running: look again when it ends (or in a second).
                        with self._changed:
                            self._changed.wait(timeout=1.0)
                        continue
                    leases = self._long_poll(free)
            except FATAL_ERRORS as error:
                logger.error("the server refused this worker: %s", error)
                self._fatal = error
                return
            except OpenQueueError as error:
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                logger.warning("lease failed (%s); trying again in %.1fs", error, delay)
                self._stopping.wait(delay)
                continue
            failures = 0
            for lease in leases:
                self._start(lease)

    def _wait_for_room(self) -> int:
        with self._changed:
            while len(self._running) >= self.concurrency and not self._stopping.is_set():
                self._changed.wait()
            return 0 if self._stopping.is_set() else self.concurrency - len(self._running)

    def _lease_any(self, free: int, *, wait: int) -> list[Lease]:
        """Try each queue once, starting after the one that last gave work."""
        count = len(self.queues)
        for step in range(count):
            index = (self._next_queue + step) % count
            leases = self._lease(self.queues[index], free, wait)
            if leases:
                self._next_queue = (index + 1) % count
                return leases
            if self._stopping.is_set():
                break
        return []

    def _long_poll(self, free: int) -> list[Lease]:
        # One request waits on one queue, so several queues share the wait:
        # a job in any of them waits at most about ``wait_seconds``.
        if self.wait_seconds == 0:
            # No long-poll: look again in a second rather than asking in a loop.
            self._stopping.wait(1.0)
            return []
        count = len(self.queues)
        wait = self.wait_seconds if count == 1 else max(1, self.wait_seconds // count)
        return self._lease_any(free, wait=wait)

    def _lease(self, queue: str, free: int, wait: int) -> list[Lease]:
        if self.concurrency == 1:
            lease = self.client.lease(
                queue,
                worker_id=self.worker_id,
                lease_seconds=self.lease_seconds,
                wait_seconds=wait,
            )
            return [] if lease is None else [lease]
        return self.client.lease_batch(
            queue,
            worker_id=self.worker_id,
            max_jobs=min(free, 100),
            lease_seconds=self.lease_seconds,
            wait_seconds=wait,
        )

    # --- Running jobs ------------------------------------------------------------

    def _start(self, lease: Lease) -> None:
        now = time.monotonic()
        running = _Running(lease=lease, started=now, renew_at=now + self.lease_seconds / 2)
        with self._changed:
            self._running.add(running)
        threading.Thread(
            target=self._execute,
            args=(running,),
            name=f"openqueue-job-{lease.job_id[-8:]}",
            daemon=True,  # a job still running after the grace period must not hold the exit
        ).start()

    def _execute(self, running: _Running) -> None:
        job = running.lease.job
        try:
            result = as_result(self.handler(job))
        except Permanent:
            self._nack(running, self._error_text(), retry=False)
        except BaseException:  # SystemExit in a job is its failure, not the worker's
            self._nack(running, self._error_text(), retry=True)
        else:
            self._ack(running, result)
        finally:
            self._forget(running)

    def _ack(self, running: _Running, result: dict[str, Any] | None) -> None:
        with running.lock:
            if running.settled:
                self._log(running, "finished after being given back; its result is dropped")
                return
            running.settled = True
            try:
                self.client.ack(running.lease.job_id, running.lease.lease_token, result)
            except ConflictError:
                self._count("lost")
                self._log(running, "done, but its lease was lost (not acked)")
            except OpenQueueError as error:
                self._count("lost")
                self._log(running, f"done, but the ack failed ({error}); leased again later")
            else:
                self._count("acked")
                self._log(running, "acked")

    def _nack(self, running: _Running, error: str, *, retry: bool, why: str = "failed") -> None:
        with running.lock:
            if running.settled:
                return
            running.settled = True
            job = running.lease.job
            try:
                self.client.nack(job.id, running.lease.lease_token, error, retry=retry)
            except ConflictError:
                self._count("lost")
                self._log(running, f"{why}, but its lease was lost (not nacked)")
                return
            except OpenQueueError as exc:
                self._count("lost")
                self._log(running, f"{why}, but the nack failed ({exc}); leased again later")
                return
        if why != "failed":
            self._count("abandoned")
        if retry and job.retry_count < job.max_retries:
            self._count("retried")
            outcome = f"{why}, will retry"
        else:
            self._count("dead")
            outcome = f"{why}, to the DLQ"
        last_line = error.strip().splitlines()[-1] if error.strip() else ""
        self._log(running, f"{outcome}: {last_line}", level=logging.WARNING)

    def _forget(self, running: _Running) -> None:
        with self._changed:
            self._running.discard(running)
            self._changed.notify_all()

    def _error_text(self) -> str:
        text = traceback.format_exc()
        encoded = text.encode("utf-8")
        if len(encoded) <= self.max_error_bytes:
            return text
        # The end of a traceback says what was raised: keep that.
        marker = "[traceback truncated]\n"
        keep = self.max_error_bytes - len(marker)
        return marker + encoded[-keep:].decode("utf-8", errors="ignore")

    def _log(self, running: _Running, outcome: str, level: int = logging.INFO) -> None:
        job = running.lease.job
        logger.log(
            level,
            "job %s queue=%s attempt=%d %.3fs %s",
            job.id,
            job.queue_name,
            job.attempt,
            time.monotonic() - running.started,
            outcome,
        )

    def _count(self, outcome: str) -> None:
        with self._stats_lock:
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)

    # --- Heartbeats ----------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        tick = min(1.0, self.lease_seconds / 4)
        while True:
            with self._changed:
                if self._stopping.is_set() and all(r.settled for r in self._running):
                    return
                due = [r for r in self._running if not r.settled and r.renew_at <= time.monotonic()]
            for running in due:
                self._heartbeat(running)
            with self._changed:
                # Woken early by a job ending or by stop(), so shutdown does not wait a tick.
                self._changed.wait(timeout=tick)

    def _heartbeat(self, running: _Running) -> None:
        lease = running.lease
        try:
            self.client.heartbeat(lease.job_id, lease.lease_token, lease_seconds=self.lease_seconds)
        except ConflictError:
            if not running.settled:
                running.renew_at = float("inf")
                self._log(running, "lease lost: another worker may run it", level=logging.WARNING)
        except OpenQueueError as error:
            # Try again on the next tick; the lease still has half its time.
            logger.warning("heartbeat of job %s failed: %s", lease.job_id, error)
        else:
            running.renew_at = time.monotonic() + self.lease_seconds / 2

    # --- Shutdown -----------------------------------------------------------------

    def _shut_down(self) -> None:
        self._stopping.set()
        deadline = time.monotonic() + self.grace_seconds
        with self._changed:
            while self._running and not self._hard_stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(timeout=min(left, 0.5))
            unfinished = list(self._running)
        for running in unfinished:
            self._nack(
                running,
                f"worker {self.worker_id} stopped: the job did not finish within "
                f"its grace period of {self.grace_seconds:g}s",
                retry=True,
                why="given back at shutdown",
            )
        with self._changed:
            self._changed.notify_all()


def as_result(value: Any) -> dict[str, Any] | None:
    """A handler's return value as an ack result: the API stores a JSON object or null."""
    result = value if value is None or isinstance(value, dict) else {"value": value}
    if result is not None:
        try:
            json.dumps(result)
        except (TypeError, ValueError) as error:
            raise Permanent(f"the handler's result is not JSON: {error}") from error
    return result
