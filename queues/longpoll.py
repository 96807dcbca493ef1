"""Long-poll leasing: wake waiting lease requests when a job may have become due.

A lease with ``wait_seconds > 0`` that finds no job waits in its request
thread until one of these happens, then tries to lease again:

- **A notification** (PostgreSQL). Every write that makes a job leasable
  (enqueue, operator requeue, nack with a retry, reaped lease) notifies
  ``<owner_id>:<count>:<queue_name>`` through the storage engine
  (queues/store/postgres.py), so the notification is delivered on commit and
  never before the job is visible. One daemon thread per server process
  (:class:`Hub`) holds its own LISTEN connection, outside Django's pool, and
  wakes ``count`` waiters of that tenant and queue (the longest waiting
  first; not all of them, which would be a thundering herd). One connection per
  process, not one per waiting request: waiting requests hold **no**
  database connection (they close theirs before waiting; with the pool that
  returns it to the pool).
- **The next time a job of the queue becomes leasable on its own**: the
  earliest future ``run_at`` of a pending job (scheduled jobs, a nack's
  backoff) or ``locked_until`` of a processing one (an expired lease is
  leasable). Nobody sends a notification when time passes, so the waiter
  looks this up when it starts waiting and again after every wake-up; a
  notification for a job due later just moves that time.
- **The deadline**: the request answers ``null`` (or an empty list), as a
  lease without a wait does.

Correctness does not depend on notifications: they only decide *when* the
waiter tries again, and each try is an ordinary lease (row locks, SKIP
LOCKED). A spurious wake-up (another waiter won the job)
simply waits again for the remaining time. No wake-up is lost: a waiter
subscribes *before* its first lease attempt, so a job committed after that
attempt notifies it; and whenever the listening connection is (re)established
every waiter is woken once, because notifications sent while nobody
listened are gone. While the listener is disconnected, waiters poll every
``DISCONNECTED_POLL_SECONDS`` instead; it reconnects with a capped backoff.

An engine without LISTEN (the ORM engine, SQLite's) makes waiters poll every
``POLL_SECONDS``, closing the connection between polls (an idle SQLite
connection holds no lock, but this keeps the behaviour the same as on
PostgreSQL).

A waiting request still occupies one gunicorn ``gthread`` thread. Threads
are cheap (no connection, no CPU while waiting), so the default thread
count is high (gunicorn.conf.py), and at most
``OPENQUEUE_LEASE_MAX_WAITERS`` requests per process wait at once, at most
``OPENQUEUE_LEASE_MAX_WAITERS_PER_TENANT`` of them one tenant's: above that
a lease that finds nothing answers at once, as without ``wait_seconds``, so
waiters can never take every thread that producers need, and one tenant
cannot take every slot from the others (docs/operations.md, Serving).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from django.conf import settings
from django.db import connection
from django.utils import timezone

from queues import metrics
from queues.domain import REFUSED_LIMITED, REFUSED_PAUSED
from queues.models import Job
from queues.store import get_store

logger = logging.getLogger("openqueue.notify")

POLL_SECONDS = 0.1
DISCONNECTED_POLL_SECONDS = 0.5
# A queue at its max_in_flight gets room when one of its jobs is acked or
# nacked, which notifies nobody (that would cost every ack a lookup of the
# queue's settings): its waiters look again this often.
LIMITED_POLL_SECONDS = 0.25
# How long one notifies() call blocks: the listener thread checks that its
# connection is alive at least this often.
LISTEN_TIMEOUT_SECONDS = 5.0
RECONNECT_BACKOFF_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

Key = tuple[int, str]


class Attempt(Protocol):
    """One lease attempt's answer: truthy when it leased something (queues.domain.LeaseRound)."""

    @property
    def blocked(self) -> str | None:
        """Why it got nothing although the queue may hold jobs: "paused", "max_in_flight"."""

    def __bool__(self) -> bool: ...


T = TypeVar("T", bound=Attempt)


class _Waiter:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


class Hub:
    """One process's LISTEN connection and the lease requests waiting on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Per key, the waiters in arrival order (a dict as an ordered set):
        # the longest-waiting are woken first.
        self._waiters: dict[Key, dict[_Waiter, None]] = {}
        self._count = 0
        self._per_owner: Counter[int] = Counter()
        self._thread: threading.Thread | None = None
        self._store: Any = None
        self._pid = 0
        self._stopping = threading.Event()
        self.listening = threading.Event()
        # The listening connection's server process id (tests, diagnostics).
        self.backend_pid: int | None = None

    @contextmanager
    def subscribe(self, owner_id: int, queue_name: str) -> Iterator[_Waiter | None]:
        """Register a waiter for (owner, queue); yields None when there is no slot for it.

        No slot: the process already has OPENQUEUE_LEASE_MAX_WAITERS waiters,
        or this tenant has OPENQUEUE_LEASE_MAX_WAITERS_PER_TENANT of them.
        """
        key = (owner_id, queue_name)
        waiter: _Waiter | None = None
        with self._lock:
            if (
                self._count < settings.OPENQUEUE_LEASE_MAX_WAITERS
                and self._per_owner[owner_id] < settings.OPENQUEUE_LEASE_MAX_WAITERS_PER_TENANT
            ):
                waiter = _Waiter()
                self._count += 1
                self._per_owner[owner_id] += 1
                self._waiters.setdefault(key, {})[waiter] = None
        if waiter is not None and get_store().listens:
            self._ensure_listener()
        try:
            yield waiter
        finally:
            if waiter is not None:
                with self._lock:
                    self._count -= 1
                    self._per_owner[owner_id] -= 1
                    if not self._per_owner[owner_id]:
                        del self._per_owner[owner_id]
                    waiters = self._waiters.get(key)
                    if waiters is not None:
                        waiters.pop(waiter, None)
                        if not waiters:
                            del self._waiters[key]
                # A wake-up this waiter got but will not use (it leased
                # another job, or its time is up) belongs to the next one.
                if waiter.event.is_set():
                    self.wake(key, 1)

    @property
    def waiting(self) -> int:
        """Requests waiting in this process right now."""
        return self._count

    def wake(self, key: Key | None = None, count: int | None = None) -> None:
        """Wake ``count`` waiters of ``key`` (all of them when None), or every waiter.

        Waking only as many as there are new jobs avoids a thundering herd:
        200 waiters on one queue would otherwise all run a lease query for
        each enqueued job, and all but one of them would find nothing.
        Waiters already woken and not yet back to waiting are skipped.
        """
        with self._lock:
            if key is None:
                targets = [w for waiters in self._waiters.values() for w in waiters]
            else:
                targets = [w for w in self._waiters.get(key, ()) if not w.event.is_set()]
                if count is not None:
                    targets = targets[:count]
        for waiter in targets:
            waiter.event.set()

    # --- the listener thread ---------------------------------------------------------

    def _ensure_listener(self) -> None:
        pid = os.getpid()
        with self._lock:
            # A forked child inherits the parent's state but not its thread.
            if self._thread is not None and self._pid == pid and self._thread.is_alive():
                return
            self._pid = pid
            self._stopping.clear()
            self.listening.clear()
            self._store = get_store()
            self._thread = threading.Thread(
                target=self._run,
                args=(self._store.listener_factory(),),
                name="openqueue-listen",
                daemon=True,
            )
            self._thread.start()

    def _run(self, open_listener: Callable[[], Any]) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                with open_listener() as listener:
                    self.backend_pid = listener.backend_pid
                    failures = 0
                    # Whatever was sent while nobody listened is lost: let
                    # every waiter look again (before ``listening`` says we
                    # hear everything from now on).
                    self.wake()
                    self.listening.set()
                    while not self._stopping.is_set():
                        self._dispatch(listener)
                        listener.ping()
            except Exception:
                self.listening.clear()
                if self._stopping.is_set():
                    return
                delay = RECONNECT_BACKOFF_SECONDS[min(failures, len(RECONNECT_BACKOFF_SECONDS) - 1)]
                failures += 1
                logger.warning(
                    "lease_listener_disconnected", exc_info=True, extra={"retry_in": delay}
                )
                time.sleep(delay)

    def _dispatch(self, listener: Any) -> None:
        """Wake the waiters each notification names, for at most LISTEN_TIMEOUT_SECONDS."""
        wakeups = listener.wakeups(LISTEN_TIMEOUT_SECONDS)
        while True:
            try:
                wakeup = next(wakeups)
            except StopIteration:
                return
            except ValueError as exc:  # a payload that is not ours
                logger.warning("lease_listener_bad_payload", extra={"payload": str(exc)})
                continue
            if wakeup is not None:  # None: stop()'s interruption
                owner_id, queue_name, count = wakeup
                # A count of 0 wakes them all (a queue was resumed or its limit changed).
                self.wake((owner_id, queue_name), count or None)

    def stop(self) -> None:
        """Close the listening connection and end its thread (tests: before the DB is dropped)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._stopping.set()
        self._store.interrupt_listeners()
        thread.join(LISTEN_TIMEOUT_SECONDS + 5)
        self.listening.clear()


hub = Hub()


def _release_connection() -> None:
    # Inside a transaction (a test's atomic block) the connection cannot be
    # given back; everywhere else it goes back to the pool while we wait.
    if not connection.in_atomic_block:
        connection.close()


def wait_for(
    *,
    owner_id: int,
    queue_name: str,
    wait_seconds: int,
    attempt: Callable[[], T],
) -> T:
    """Call ``attempt`` until it returns something truthy or ``wait_seconds`` pass.

    ``attempt`` is one lease attempt (queues/services.py); its last result
    is returned, so a timeout returns its empty answer. A paused queue's
    waiters sleep until a notification (resuming sends one) or the deadline;
    a queue at its max_in_flight is looked at again every
    ``LIMITED_POLL_SECONDS``.
    A request that starts waiting counts in ``openqueue_lease_waits_total``.
    """
    if wait_seconds <= 0:
        return attempt()
    deadline = time.monotonic() + wait_seconds
    with hub.subscribe(owner_id, queue_name) as waiter:
        result = attempt()
        if result or waiter is None:
            return result
        metrics.record_lease_wait(queue_name)
        polling = not get_store().listens
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return result
            if polling:
                pause = POLL_SECONDS
            else:
                if result.blocked == REFUSED_PAUSED:
                    pause = left  # until resumed
                else:
                    now = timezone.now()
                    due = Job.objects.next_leasable_at(owner_id, queue_name, now)
                    pause = left if due is None else max((due - now).total_seconds(), 0.0)
                    if result.blocked == REFUSED_LIMITED:
                        pause = min(pause, LIMITED_POLL_SECONDS)
                if not hub.listening.is_set():
                    pause = min(pause, DISCONNECTED_POLL_SECONDS)
            _release_connection()
            waiter.event.wait(min(pause, left))
            waiter.event.clear()
            result = attempt()
            if result:
                return result
