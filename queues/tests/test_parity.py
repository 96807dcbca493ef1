"""Both storage engines write the same rows: every transition, walked through each.

Each scenario below is a walk of public transitions (queues/services.py)
with injected time. The walk runs once per engine, each on its own tenant
in the same database: on PostgreSQL through PostgresStore (constant SQL) and
through OrmStore (the ORM path runs there too); on SQLite through OrmStore.
After every step the test takes every column of every job of the walk,
normalized (ids and lease tokens become labels, timestamps become offsets
from the walk's start), together with what the step returned.

- On PostgreSQL, the two engines' traces must be equal to each other.
- On both databases, every trace must equal the recorded trace in
  ``parity_golden.json``: that is what makes SQLite's ORM path, PostgreSQL's
  ORM path and PostgreSQL's statements provably the same. The golden file is
  a readable table of what each transition writes; a change to a rule shows
  up in it as a diff to review. Re-record it (on PostgreSQL, where both
  engines must agree first) with::

      OPENQUEUE_PARITY_RECORD=1 DATABASE_URL=postgres://... pytest queues/tests/test_parity.py

- Each scenario also asserts, in plain code, the few facts its name
  promises, so a golden file recorded from a wrong rule cannot pass unseen.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from queues import control, services
from queues.models import Job
from queues.store import OrmStore, PostgresStore, using_store
from queues.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

GOLDEN = Path(__file__).with_name("parity_golden.json")
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
_TIMESTAMPS = {
    f.name for f in Job._meta.concrete_fields if f.get_internal_type() == "DateTimeField"
}


@dataclass
class Walk:
    """One engine's run of a scenario."""

    owner: Any
    jobs: dict[str, uuid.UUID] = field(default_factory=dict)
    # The lease token each job label was last given (what its worker holds).
    tokens: dict[str, str] = field(default_factory=dict)
    # Every token ever seen, in order of appearance, for stable labels.
    token_labels: dict[str, str] = field(default_factory=dict)
    # What a step changed that must be put back when the walk ends (settings).
    undo: list[Callable[[], None]] = field(default_factory=list)

    def label_of(self, job_id: uuid.UUID) -> str:
        return next(label for label, pk in self.jobs.items() if pk == job_id)

    def token_label(self, token: Any) -> str | None:
        if token is None:
            return None
        return self.token_labels.setdefault(str(token), f"token-{len(self.token_labels) + 1}")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def offset(value: datetime | None) -> str | None:
    if value is None:
        return None
    seconds = (value - T0).total_seconds()
    return f"t0{seconds:+.6f}s"


def snapshot(walk: Walk) -> dict[str, dict[str, Any]]:
    """Every column of every job of the walk, normalized, with its attempts."""
    rows = {}
    for job in Job.objects.filter(owner=walk.owner):
        row: dict[str, Any] = {}
        for f in Job._meta.concrete_fields:
            value = getattr(job, f.attname)
            if f.name in ("id", "owner"):
                continue
            if f.name in _TIMESTAMPS:
                value = offset(value)
            elif f.name == "lease_token":
                value = walk.token_label(value)
            row[f.name] = value
        row["attempts"] = [
            {
                "attempt": attempt.attempt,
                "worker_id": attempt.worker_id,
                "leased_at": offset(attempt.leased_at),
                "lease_expires_at": offset(attempt.lease_expires_at),
                "finished_at": offset(attempt.finished_at),
                "outcome": attempt.outcome,
                "error": attempt.error,
            }
            for attempt in job.attempts.order_by("attempt")
        ]
        rows[walk.label_of(job.id)] = row
    return dict(sorted(rows.items()))


# --- Steps: each returns what the transition answered, normalized ----------------------


Step = Callable[[Walk], Any]


def enqueue(
    *labels: str, queue: str = "q", when: float = 0, delay: float | None = None, **fields: Any
) -> Step:
    def step(walk: Walk) -> Any:
        run_at = None if delay is None else at(when + delay)
        jobs = [
            services.NewJob(queue_name=queue, payload={"label": label}, run_at=run_at, **fields)
            for label in labels
        ]
        ids = services.enqueue(owner=walk.owner, jobs=jobs, now=at(when))
        walk.jobs.update(zip(labels, ids, strict=True))
        return list(labels)

    step.__name__ = f"enqueue {', '.join(labels)}"
    return step


def lease(when: float, max_jobs: int = 1, queue: str = "q", seconds: int = 30) -> Step:
    def step(walk: Walk) -> Any:
        leases = services.lease_jobs(
            owner=walk.owner,
            queue_name=queue,
            worker_id=f"worker@{when}",
            lease_seconds=seconds,
            max_jobs=max_jobs,
            now=at(when),
        )
        answer = []
        for leased in leases:
            label = walk.label_of(leased.job.id)
            walk.tokens[label] = str(leased.lease_token)
            answer.append([label, walk.token_label(leased.lease_token), leased.recovered])
        return answer

    step.__name__ = f"lease {max_jobs} at {when}s"
    return step


def _token(walk: Walk, label: str, kind: str) -> str:
    if kind == "current":
        return walk.tokens.get(label, str(uuid.UUID(int=2)))  # never leased: no token
    if kind == "stale":
        return str(uuid.UUID(int=1))
    return "not-a-token"


def _job_id(walk: Walk, label: str) -> uuid.UUID:
    return walk.jobs.get(label) or uuid.UUID(int=42)  # an unknown label: a job nobody has


def ack(label: str, when: float, token: str = "current", result: Any = None) -> Step:
    def step(walk: Walk) -> Any:
        try:
            done = services.ack_job(
                owner=walk.owner,
                job_id=_job_id(walk, label),
                lease_token=_token(walk, label, token),
                result=result,
                now=at(when),
            )
        except services.LeaseMismatch:
            return "LeaseMismatch"
        return done.status

    step.__name__ = f"ack {label} ({token}) at {when}s"
    return step


def nack(
    label: str, when: float, error: str = "boom", retry: bool = True, token: str = "current"
) -> Step:
    def step(walk: Walk) -> Any:
        try:
            done = services.nack_job(
                owner=walk.owner,
                job_id=_job_id(walk, label),
                lease_token=_token(walk, label, token),
                error=error,
                retry=retry,
                now=at(when),
            )
        except services.LeaseMismatch:
            return "LeaseMismatch"
        return [done.status, done.dead_reason]

    step.__name__ = f"nack {label} ({token}, retry={retry}, error={error!r}) at {when}s"
    return step


def heartbeat(label: str, when: float, seconds: int = 30, token: str = "current") -> Step:
    def step(walk: Walk) -> Any:
        try:
            until = services.heartbeat_job(
                owner=walk.owner,
                job_id=_job_id(walk, label),
                lease_token=_token(walk, label, token),
                lease_seconds=seconds,
                now=at(when),
            )
        except services.LeaseMismatch:
            return "LeaseMismatch"
        return offset(until)

    step.__name__ = f"heartbeat {label} ({token}) at {when}s"
    return step


def cancel(label: str, when: float) -> Step:
    def step(walk: Walk) -> Any:
        try:
            return services.cancel_job(
                owner=walk.owner, job_id=_job_id(walk, label), now=at(when)
            ).status
        except services.JobNotCancellable:
            return "JobNotCancellable"

    step.__name__ = f"cancel {label} at {when}s"
    return step


def ack_batch(when: float, *items: tuple[str, str]) -> Step:
    def step(walk: Walk) -> Any:
        outcomes = services.ack_jobs(
            owner=walk.owner,
            items=[
                services.AckItem(_job_id(walk, label), _token(walk, label, kind), {"by": label})
                for label, kind in items
            ],
            now=at(when),
        )
        return [None if done is None else done.status for done in outcomes]

    step.__name__ = f"ack batch {items} at {when}s"
    return step


def nack_batch(when: float, *items: tuple[str, str, bool]) -> Step:
    def step(walk: Walk) -> Any:
        outcomes = services.nack_jobs(
            owner=walk.owner,
            items=[
                services.NackItem(
                    _job_id(walk, label), _token(walk, label, kind), f"{label} failed", retry
                )
                for label, kind, retry in items
            ],
            now=at(when),
        )
        return [None if done is None else [done.status, done.dead_reason] for done in outcomes]

    step.__name__ = f"nack batch {items} at {when}s"
    return step


def operator(action: str, when: float, *labels: str, **options: Any) -> Step:
    def step(walk: Walk) -> Any:
        jobs = Job.objects.filter(owner=walk.owner, pk__in=[walk.jobs[label] for label in labels])
        if action == "delete":
            return services.delete_jobs(jobs, batch_size=2)
        run = {
            "requeue": services.requeue_jobs,
            "bury": services.bury_jobs,
            "cancel": services.cancel_jobs,
        }
        return run[action](jobs, now=at(when), batch_size=2, **options)

    step.__name__ = f"operator {action} {', '.join(labels)} {options} at {when}s"
    return step


def reap(when: float, grace: float = 0) -> Step:
    def step(walk: Walk) -> Any:
        # The reaper sees every tenant: take only this walk's counts.
        mine = Job.objects.filter(owner=walk.owner)
        before = dict(mine.values_list("id", "status"))
        services.reap_expired_leases(now=at(when), grace=timedelta(seconds=grace), batch_size=2)
        after = dict(mine.values_list("id", "status"))
        changed = [walk.label_of(pk) for pk in before if before[pk] != after[pk]]
        return sorted(changed)

    step.__name__ = f"reap at {when}s (grace {grace}s)"
    return step


def queue(when: float, **settings: Any) -> Step:
    """Change the walk's queue "q" (paused, max_in_flight) as an operator would."""

    def step(walk: Walk) -> Any:
        info = control.change_queue(
            owner=walk.owner, queue_name="q", actor="parity", now=at(when), **settings
        )
        return [info.paused, info.max_in_flight, info.ready, info.in_flight]

    step.__name__ = f"queue {settings} at {when}s"
    return step


def keep_attempts(count: int) -> Step:
    def step(walk: Walk) -> Any:
        changed = override_settings(OPENQUEUE_MAX_ATTEMPTS_KEPT=count)
        changed.enable()
        walk.undo.append(changed.disable)
        return count

    step.__name__ = f"keep {count} attempts"
    return step


# --- Scenarios -------------------------------------------------------------------------


def final(trace: list[dict[str, Any]], label: str) -> dict[str, Any]:
    return trace[-1]["jobs"][label]


def _order(trace: list[dict[str, Any]]) -> None:
    leased = [
        entry["outcome"][0][0]
        for entry in trace
        if entry["step"].startswith("lease") and entry["outcome"]
    ]
    assert leased == ["b", "c", "a"]
    assert trace[-1]["outcome"] == []  # d is scheduled for later


def _ack_twice(trace: list[dict[str, Any]]) -> None:
    assert [e["outcome"] for e in trace[-2:]] == ["completed", "LeaseMismatch"]
    assert final(trace, "a")["status"] == "completed" and final(trace, "a")["lease_token"] is None


def _heartbeat(trace: list[dict[str, Any]]) -> None:
    assert [e["outcome"] for e in trace[2:5]] == ["LeaseMismatch", "LeaseMismatch", "t0+15.000000s"]
    assert final(trace, "a")["locked_until"] == "t0+15.000000s"


def _nack_retry(trace: list[dict[str, Any]]) -> None:
    requeued = trace[2]["jobs"]["a"]
    assert requeued["status"] == "pending" and requeued["retry_count"] == 1
    assert requeued["run_at"] == "t0+2.000000s"  # nacked at 1 s, first retry waits 1 s
    assert trace[3]["outcome"] == [] and trace[4]["outcome"][0][0] == "a"


def _nack_no_retry(trace: list[dict[str, Any]]) -> None:
    assert final(trace, "a")["status"] == "dead"
    assert final(trace, "a")["dead_reason"] == "retry_disabled"


def _empty_error(trace: list[dict[str, Any]]) -> None:
    buried = final(trace, "a")
    assert buried["status"] == "dead" and buried["dead_reason"] == "lease_expired"
    assert buried["error_text"] == "lease_expired"  # the empty text a worker sent says nothing


def _exhausted(trace: list[dict[str, Any]]) -> None:
    assert final(trace, "a")["dead_reason"] == "max_retries_exhausted"
    assert final(trace, "a")["retry_count"] == 1


def _retry_false_no_retries(trace: list[dict[str, Any]]) -> None:
    assert final(trace, "a")["dead_reason"] == "max_retries_exhausted"


def _recovered(trace: list[dict[str, Any]]) -> None:
    assert trace[2]["outcome"][0][2] is True  # the second lease recovers the first
    assert trace[2]["jobs"]["a"]["lease_lost_count"] == 1
    assert [e["outcome"] for e in trace[3:]] == ["LeaseMismatch", "completed"]


def _poison(trace: list[dict[str, Any]]) -> None:
    assert [row[0] for row in trace[2]["outcome"]] == ["b"]  # a is buried, b leased instead
    assert final(trace, "a")["status"] == "dead"
    assert final(trace, "a")["dead_reason"] == "lease_expired"
    assert final(trace, "a")["error_text"] == "lease_expired"


def _cancel(trace: list[dict[str, Any]]) -> None:
    outcomes = [e["outcome"] for e in trace if e["step"].startswith("cancel")]
    assert outcomes == ["cancelled", "JobNotCancellable", "cancelled", "JobNotCancellable"]


def _batches(trace: list[dict[str, Any]]) -> None:
    assert [e["outcome"] for e in trace[2:4]] == [
        ["completed", None, None, None],
        [["pending", None], None, None],
    ]


def _operators(trace: list[dict[str, Any]]) -> None:
    assert [e["outcome"] for e in trace[-4:]] == [1, 3, 1, 1]
    assert final(trace, "a")["status"] == "pending" and final(trace, "a")["retry_count"] == 0
    assert "e" not in trace[-1]["jobs"]


def _reap(trace: list[dict[str, Any]]) -> None:
    assert trace[-2]["outcome"] == []  # still inside the grace period
    assert trace[-1]["outcome"] == ["a", "b"]
    assert final(trace, "a")["status"] == "pending" and final(trace, "b")["status"] == "dead"


def _backoff(trace: list[dict[str, Any]]) -> None:
    delays = []
    for entry in trace:
        if entry["step"].startswith("nack"):
            job = entry["jobs"]["a"]
            nacked_at = float(entry["step"].rsplit(" at ", 1)[1].rstrip("s"))
            delays.append(round(float(job["run_at"][2:-1]) - nacked_at))
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def _gate(trace: list[dict[str, Any]]) -> None:
    leased = [e["outcome"] for e in trace if e["step"].startswith("lease")]
    assert [len(got) for got in leased] == [2, 0, 0, 1, 0]
    assert trace[3]["outcome"] == [True, 2, 2, 2]  # paused, its limit kept
    statuses = [job["status"] for job in trace[-1]["jobs"].values()]
    assert sorted(statuses) == ["completed", "pending", "processing", "processing"]


def _limited_heartbeat(trace: list[dict[str, Any]]) -> None:
    assert trace[4]["outcome"] == "LeaseMismatch"  # expired, in a limited queue: lost
    assert trace[5]["outcome"] == "completed"  # an ack is not refused for the expiry (§5.4)
    assert trace[6]["outcome"] == "t0+60.000000s"  # a live lease is extended as usual


def _kept(trace: list[dict[str, Any]]) -> None:
    attempts = final(trace, "a")["attempts"]
    assert [a["attempt"] for a in attempts] == [3, 4]
    assert final(trace, "a")["attempt_count"] == 4


def _backoff_walk() -> list[Step]:
    steps: list[Step] = [enqueue("a", max_retries=11)]
    when = 0.0
    for delay in [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]:
        steps += [lease(when), nack("a", when + 0.5)]
        when += 0.5 + delay
    return steps


SCENARIOS: dict[str, tuple[list[Step], Callable[[list[dict[str, Any]]], None]]] = {
    "lease order: priority, then age; scheduled jobs wait": (
        [
            enqueue("a"),
            enqueue("b", priority=5, when=1),
            enqueue("c", priority=5, when=2),
            enqueue("d", priority=9, when=3, delay=3600),
            lease(10),
            lease(10),
            lease(10),
            lease(10),
        ],
        _order,
    ),
    "ack twice": (
        [enqueue("a"), lease(1), ack("a", 2, result={"ok": True}), ack("a", 3)],
        _ack_twice,
    ),
    "heartbeat with the wrong token": (
        [
            enqueue("a"),
            lease(1),
            heartbeat("a", 2, token="stale"),
            heartbeat("a", 2, token="malformed"),
            heartbeat("a", 5, seconds=10),
        ],
        _heartbeat,
    ),
    "nack with retry, leased again after the backoff": (
        [enqueue("a"), lease(0), nack("a", 1), lease(1.5), lease(2)],
        _nack_retry,
    ),
    "nack with retry false": ([enqueue("a"), lease(0), nack("a", 1, retry=False)], _nack_no_retry),
    "empty error text, then buried for losing its lease": (
        [
            enqueue("a", max_retries=1),
            lease(0),
            nack("a", 1, error=""),
            lease(2),
            lease(40),
            lease(80),
        ],
        _empty_error,
    ),
    "retries exhausted": (
        [enqueue("a", max_retries=1), lease(0), nack("a", 1), lease(3), nack("a", 4)],
        _exhausted,
    ),
    "retry false with no retries left": (
        [enqueue("a", max_retries=0), lease(0), nack("a", 1, retry=False)],
        _retry_false_no_retries,
    ),
    "expired lease recovered": (
        [enqueue("a"), lease(0, seconds=10), lease(20), ack("a", 21, token="stale"), ack("a", 22)],
        _recovered,
    ),
    "poison burial": (
        [enqueue("a", max_retries=0), lease(0, seconds=10), enqueue("b", when=5), lease(20)],
        _poison,
    ),
    "cancel": (
        [
            enqueue("a", "b"),
            cancel("a", 1),
            lease(2),
            cancel("b", 3),
            nack("b", 4),
            cancel("b", 4.5),
            cancel("b", 5),
        ],
        _cancel,
    ),
    "batch lease, ack and nack with good and bad items": (
        [
            enqueue("a", "b", "c", "d"),
            lease(1, max_jobs=3),
            ack_batch(2, ("a", "current"), ("b", "stale"), ("x", "current"), ("a", "current")),
            nack_batch(
                3, ("c", "current", True), ("d", "current", True), ("b", "malformed", False)
            ),
        ],
        _batches,
    ),
    "operator requeue, bury and delete": (
        [
            enqueue("a", "b", "c", "d", "e", max_retries=0),
            lease(1, max_jobs=2),
            nack("a", 2),
            operator("requeue", 3, "a", "c", reset_retries=True),
            operator("bury", 4, "b", "c", "d"),
            operator("cancel", 5, "d", "e"),
            operator("delete", 6, "e"),
        ],
        _operators,
    ),
    "reap: back to pending, poison to the DLQ": (
        [
            enqueue("a"),
            enqueue("b", max_retries=0),
            lease(0, max_jobs=2, seconds=10),
            reap(12, grace=5),
            reap(16, grace=5),
        ],
        _reap,
    ),
    "backoff schedule": (_backoff_walk(), _backoff),
    "max_in_flight and pause hold leases back": (
        [
            enqueue("a", "b", "c", "d"),
            queue(1, max_in_flight=2),
            lease(2, max_jobs=4),
            queue(3, paused=True),
            lease(4),
            ack("a", 5),
            lease(6),
            queue(7, paused=False),
            lease(8, max_jobs=4),
            lease(9),
        ],
        _gate,
    ),
    "heartbeat after expiry in a limited queue": (
        [
            enqueue("a", "b"),
            queue(0, max_in_flight=2),
            lease(1, seconds=10),
            lease(2, seconds=100),
            heartbeat("a", 20),
            ack("a", 21),
            heartbeat("b", 30),
        ],
        _limited_heartbeat,
    ),
    "only the newest attempts are kept": (
        [
            keep_attempts(2),
            enqueue("a", max_retries=5),
            lease(0, seconds=10),
            lease(20, seconds=10),
            nack("a", 21),
            lease(30),
            nack("a", 31),
            lease(40),
        ],
        _kept,
    ),
}


def engines() -> list[Any]:
    if connection.vendor == "postgresql":
        return [PostgresStore(), OrmStore()]
    return [OrmStore()]


def run(steps: list[Step], engine: Any) -> list[dict[str, Any]]:
    walk = Walk(owner=UserFactory())
    trace = []
    with using_store(engine):
        try:
            for step in steps:
                outcome = step(walk)
                trace.append({"step": step.__name__, "outcome": outcome, "jobs": snapshot(walk)})
        finally:
            for undo in reversed(walk.undo):
                undo()
    return json.loads(json.dumps(trace))  # as the golden file holds it


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_engines_write_the_same_rows(name: str) -> None:
    steps, check = SCENARIOS[name]
    traces = {type(engine).__name__: run(steps, engine) for engine in engines()}
    first, *others = traces.values()
    for engine, trace in traces.items():
        assert trace == first, f"{engine} differs from {next(iter(traces))}"
    check(first)

    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("OPENQUEUE_PARITY_RECORD") == "1":
        if connection.vendor != "postgresql":
            pytest.fail("record the golden traces on PostgreSQL, where both engines run")
        golden[name] = first
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        return
    assert name in golden, f"no recorded trace for {name!r}: see this module's docstring"
    assert first == golden[name]


def test_golden_file_holds_only_current_scenarios() -> None:
    assert sorted(json.loads(GOLDEN.read_text())) == sorted(SCENARIOS)
