"""The ORM engine: every transition through Django's ORM, on any database.

SQLite (the zero-setup database) uses it for everything; PostgreSQL uses it
for the operator actions and maintenance (queues/store/postgres.py inherits
them) and runs all of it in the parity suite. It turns the services' specs
(queues/store/spec.py) into Django expressions and runs them as guarded
``UPDATE ... RETURNING`` statements: the row count is the truth, never a
value read earlier.

Leasing is a read-then-write: the candidates are locked with
``select_for_update(skip_locked=True)`` in a short transaction (on SQLite
the IMMEDIATE transaction of settings.py serializes writers instead, which
gives the same exclusivity), then written by one UPDATE.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from django.db import IntegrityError, connections, transaction
from django.db.models import (
    BooleanField,
    Case,
    DateTimeField,
    Exists,
    F,
    Field,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    UUIDField,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce as DbCoalesce
from django.db.models.functions import NullIf

from queues.models import Job, JobAttempt, QueueSettings, job_field
from queues.store.spec import (
    LIMITED,
    OPEN,
    PAUSED,
    AfterBackoff,
    And,
    Arg,
    AttemptCol,
    Attempts,
    Cmp,
    Coalesce,
    Col,
    Cond,
    Const,
    Expr,
    Gate,
    If,
    In,
    Item,
    Leased,
    LeaseSpec,
    NewToken,
    Now,
    NullIfBlank,
    Or,
    Plus,
    Scope,
    Transition,
    Truthy,
    Unlimited,
    Writes,
    build,
    columns_read,
    evaluate,
    flatten,
    holds,
)

OnBatch = Callable[[list[dict[str, Any]]], None]

T = TypeVar("T")
_LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">=": "gte", ">": "gt"}
_FIELDS = [field.name for field in Job._meta.concrete_fields]


class RandomUUID(Func):
    """A fresh random UUID (version 4) per row, made by the database."""

    output_field = UUIDField()

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> Any:
        return "gen_random_uuid()", []  # PostgreSQL 13+

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # 32 hex digits (UUIDField's SQLite storage) with the version 4 and
        # RFC 4122 variant bits set. %% because the statement is %-formatted.
        return (
            "lower(hex(randomblob(4)) || hex(randomblob(2)) || '4'"
            " || substr(hex(randomblob(2)), 2) || substr('89ab', 1 + (abs(random()) %% 4), 1)"
            " || substr(hex(randomblob(2)), 2) || hex(randomblob(6)))",
            [],
        )


class _Render:
    """Spec expressions and conditions as Django expressions and Q objects.

    ``items`` are the call's items, each with its ``id``: an ``Item`` value
    becomes a CASE on the primary key when there are several.
    """

    def __init__(
        self,
        now: datetime,
        args: Mapping[str, Any],
        items: Sequence[Mapping[str, Any]] = (),
        key: str = "pk",
    ) -> None:
        # ``key``: the field that holds an item's id (``job_id`` on attempts).
        self.now, self.args, self.items, self.key = now, args, items, key

    def writes(self, transition: Transition) -> dict[str, Any]:
        return {
            name: self.expr(expr, job_field(name)) for name, expr in flatten(transition).items()
        }

    def attempt_writes(self, writes: Writes) -> dict[str, Any]:
        """Writes to attempts (``JobAttempt``): ``AttemptCol`` reads the attempt's own row."""
        fields = {f.name: f for f in JobAttempt._meta.concrete_fields}
        return {name: self.expr(expr, fields[name]) for name, expr in flatten(writes).items()}

    def expr(self, expr: Expr, field: Field) -> Any:
        match expr:
            case Col(name) | AttemptCol(name):
                return F(name)
            case Const(value):
                return Value(value, output_field=field)
            case Now():
                return Value(self.now, output_field=DateTimeField())
            case Arg(name):
                return Value(self.args[name], output_field=field)
            case Item(name):
                if len(self.items) == 1:
                    return Value(self.items[0][name], output_field=field)
                return Case(
                    *(
                        When(
                            **{self.key: item["id"]},
                            then=Value(item[name], output_field=field),
                        )
                        for item in self.items
                    ),
                    default=Value(None, output_field=field),
                    output_field=field,
                )
            case NewToken():
                return RandomUUID()
            case Plus(left, right):
                return self.expr(left, IntegerField()) + self.expr(right, IntegerField())
            case Coalesce(first, then):
                return DbCoalesce(
                    self.expr(first, field), self.expr(then, field), output_field=field
                )
            case NullIfBlank(value):
                return NullIf(self.expr(value, field), Value(""), output_field=field)
            case If(when, then, otherwise):
                return Case(
                    When(self.cond(when), then=self.expr(then, field)),
                    default=self.expr(otherwise, field),
                    output_field=field,
                )
            case AfterBackoff(schedule, count):
                *steps, last = schedule
                return Case(
                    *(
                        When(**{count.name: n}, then=Value(self.now + timedelta(seconds=s)))
                        for n, s in enumerate(steps)
                    ),
                    default=Value(self.now + timedelta(seconds=last)),
                    output_field=DateTimeField(),
                )
        raise TypeError(f"the ORM engine cannot render {expr!r}")

    def cond(self, cond: Cond) -> Q:
        match cond:
            case Cmp(left, op, right):
                field = job_field(left.name)
                return Q(**{f"{left.name}__{_LOOKUPS[op]}": self.expr(right, field)})
            case In(left, values):
                return Q(**{f"{left.name}__in": list(values)})
            case And(parts):
                combined = Q()
                for part in parts:
                    combined &= self.cond(part)
                return combined
            case Or(parts):
                either = Q()
                for part in parts:
                    either |= self.cond(part)
                return either
            case Unlimited():
                return ~Q(
                    Exists(
                        QueueSettings.objects.filter(
                            owner_id=OuterRef("owner_id"),
                            queue_name=OuterRef("queue_name"),
                            max_in_flight__isnull=False,
                        )
                    )
                )
            case Truthy(Item(name)):
                return Q(**{f"{self.key}__in": [item["id"] for item in self.items if item[name]]})
        raise TypeError(f"the ORM engine cannot render {cond!r}")


def _keyed_parts(guard: Cond) -> tuple[list[tuple[str, str]], list[Cond]]:
    """Split a guard into per-item keys (``field = Item``) and plain conditions."""
    parts = guard.parts if isinstance(guard, And) else (guard,)
    keys: list[tuple[str, str]] = []
    rest: list[Cond] = []
    for part in parts:
        if isinstance(part, Cmp) and part.op == "=" and isinstance(part.right, Item):
            keys.append((part.left.name, part.right.name))
        else:
            rest.append(part)
    return keys, rest


def sort_in_order(rows: list[T], order: Sequence[str], value: Callable[[T, str], Any]) -> None:
    """Sort ``rows`` by ``order`` (field names, ``-`` for descending), in place.

    ``value(row, name)`` reads a field of a row. One stable sort per key,
    the last key first.
    """
    for key in reversed(order):

        def by(row: T, name: str = key.lstrip("-")) -> Any:
            return value(row, name)

        rows.sort(key=by, reverse=key.startswith("-"))


def _deleted_jobs(result: tuple[int, dict[str, int]]) -> int:
    """Jobs deleted, from ``QuerySet.delete()``'s answer (whose total counts their attempts too)."""
    return result[1].get(Job._meta.label, 0)


def _job(row: Mapping[str, Any], using: str) -> Job:
    """A saved Job from every field's value (``update_returning`` of all fields)."""
    return Job.from_db(
        using,
        [field.attname for field in Job._meta.concrete_fields],
        [row[field.name] for field in Job._meta.concrete_fields],
    )


class OrmStore:
    """Storage through Django's ORM; queues/store/__init__.py explains the seam."""

    # No LISTEN/NOTIFY: long-poll leases poll (queues/longpoll.py).
    listens = False

    # --- Enqueue ---------------------------------------------------------------------

    def insert(
        self,
        *,
        owner_id: int,
        items: Sequence[Mapping[str, Any]],
        writes: Writes,
        now: datetime,
    ) -> None:
        """Create one job per item, atomically, and wake the queues' waiting leases."""
        jobs = [self._new_job(owner_id, item, writes, now) for item in items]
        with transaction.atomic():
            Job.objects.bulk_create(jobs)
            self.notify(owner_id, [job.queue_name for job in jobs])

    def insert_keyed(
        self,
        *,
        owner_id: int,
        items: Sequence[Mapping[str, Any]],
        keys: Sequence[str | None],
        writes: Writes,
        now: datetime,
        expires_at: datetime,
    ) -> list[tuple[Job, bool]]:
        """Create the jobs, except where ``owner_id`` already holds a live job with the key.

        Returns each item's job and whether it was created. The partial unique
        index (owner, idempotency_key) decides between concurrent requests:
        each keyed insert runs in a savepoint; the loser of a race gets an
        IntegrityError (on PostgreSQL only once the winner has committed) and
        returns the winner's row. All or nothing.
        """
        results: list[tuple[Job, bool]] = []
        with transaction.atomic():
            for item, key in zip(items, keys, strict=True):
                job = self._new_job(owner_id, item, writes, now)
                if key is None:
                    job.save(force_insert=True)
                    results.append((job, True))
                else:
                    results.append(self._insert_or_existing(job, key, now, expires_at))
            self.notify(owner_id, [job.queue_name for job, created in results if created])
        return results

    def _new_job(
        self, owner_id: int, item: Mapping[str, Any], writes: Writes, now: datetime
    ) -> Job:
        values = build(writes, Scope(now=now, args={"owner": owner_id}, item=item))
        values["owner_id"] = values.pop("owner")
        return Job(**values)

    @staticmethod
    def _insert_or_existing(
        job: Job, key: str, now: datetime, expires_at: datetime
    ) -> tuple[Job, bool]:
        # Three rounds cover every interleaving: the conflicting row can vanish
        # (purged) or expire between our insert and our read; each round either
        # returns or has removed the obstacle it saw.
        for _ in range(3):
            job.idempotency_key, job.idempotency_expires_at = key, expires_at
            job._state.adding = True
            try:
                with transaction.atomic():  # a savepoint: the conflict must not abort the batch
                    job.save(force_insert=True)
            except IntegrityError:
                pass
            else:
                return job, True
            existing = Job.objects.filter(owner_id=job.owner_id, idempotency_key=key).first()
            if existing is None:
                continue
            if (
                existing.idempotency_expires_at is not None
                and existing.idempotency_expires_at > now
            ):
                return existing, False
            # The window is over: release the old job's key (the job itself
            # stays) in this same transaction, then insert again.
            Job.objects.filter(pk=existing.pk, idempotency_key=key).update(
                idempotency_key=None, idempotency_expires_at=None
            )
        raise IntegrityError(f"could not enqueue with idempotency key {key!r}")

    # --- Lease -----------------------------------------------------------------------

    def lease(
        self,
        *,
        spec: LeaseSpec,
        owner_id: int,
        queue_name: str,
        limit: int,
        now: datetime,
        args: Mapping[str, Any],
        keep: int,
        exclusive: bool = False,
    ) -> Leased:
        """Lock up to ``limit`` candidates in lease order and write ``spec.writes`` to them.

        The queue's settings decide how many it may take (``_gate``). Each
        probe fetches at most that many rows through its own index, skipping
        rows other leasers hold; the best of them are written by one UPDATE,
        and their attempts recorded. Runs in a transaction of its own, or in
        the caller's without a savepoint. ``exclusive`` changes nothing
        here: a limited queue is always counted under its lock.
        """
        render = _Render(now, args)
        queue = Job.objects.filter(owner_id=owner_id, queue_name=queue_name)
        fields = list(dict.fromkeys(["id", *(key.lstrip("-") for key in spec.order)]))
        fields += sorted(columns_read(*spec.flags.values()) - set(fields))
        with transaction.atomic(savepoint=False):
            gate = self._gate(spec, owner_id, queue_name, limit, render)
            if not gate.room:
                return Leased(rows=[], gate=gate)
            found = [
                row
                for cond in spec.candidates
                for row in queue.filter(render.cond(cond))
                .order_by(*spec.order)
                .select_for_update(skip_locked=True)
                .values(*fields)[: gate.room]
            ]
            sort_in_order(found, spec.order, dict.__getitem__)
            picked = found[: gate.room]
            if not picked:
                return Leased(rows=[], gate=gate)
            scope = Scope(now=now, args=args, item={})
            flags = {
                row["id"]: {name: holds(cond, row, scope) for name, cond in spec.flags.items()}
                for row in picked
            }
            rows = Job.objects.filter(pk__in=list(flags)).update_returning(
                _FIELDS, **render.writes(spec.writes)
            )
            flag = spec.attempts.current_flag
            open_ids = None if flag is None else {pk for pk, f in flags.items() if f[flag]}
            self._record_attempts(
                spec.attempts, rows, now=now, args=args, keep=keep, open_ids=open_ids
            )
        leased = [(_job(row, queue.db), flags[row["id"]]) for row in rows]
        order = {row["id"]: index for index, row in enumerate(picked)}
        leased.sort(key=lambda pair: order[pair[0].id])
        return Leased(rows=leased, gate=gate)

    @staticmethod
    def _gate(spec: LeaseSpec, owner_id: int, queue_name: str, limit: int, render: _Render) -> Gate:
        """How many jobs the queue's settings let this lease take (inside its transaction).

        A limited queue's settings row is locked first (a no-op on SQLite,
        whose write transactions are serialized anyway), so two leasers
        count one after the other, each seeing the other's leases.
        """
        settings_row = QueueSettings.objects.filter(owner_id=owner_id, queue_name=queue_name)
        found = settings_row.values_list("paused", "max_in_flight").first()
        if found is None or (not found[0] and found[1] is None):
            return Gate(OPEN, limit)
        if found[0]:
            return Gate(PAUSED, 0)
        locked = settings_row.select_for_update().values_list("paused", "max_in_flight").first()
        if locked is None or locked[1] is None or locked[0]:
            # Changed since the first read: go by what holds now.
            return Gate(PAUSED, 0) if locked and locked[0] else Gate(OPEN, limit)
        in_flight = (
            Job.objects.filter(owner_id=owner_id, queue_name=queue_name)
            .filter(render.cond(spec.in_flight))
            .count()
        )
        return Gate(LIMITED, max(0, min(limit, locked[1] - in_flight)))

    # --- Attempt history -------------------------------------------------------------

    @staticmethod
    def _record_attempts(
        attempts: Attempts | None,
        rows: Sequence[Mapping[str, Any]],
        *,
        now: datetime,
        args: Mapping[str, Any],
        items: Sequence[Mapping[str, Any]] = (),
        keep: int = 0,
        open_ids: set[Any] | None = None,
    ) -> None:
        """``attempts`` for the changed jobs ``rows`` (each with ``id``; their values after).

        ``open_ids``, when the caller knows them: the jobs that can have an
        attempt open (the others' ``current`` write is skipped). Inside the
        transition's transaction: the history changes with the job or not at all.
        """
        if attempts is None or not rows:
            return
        ids = [row["id"] for row in rows]
        if open_ids is not None:
            ids = [pk for pk in ids if pk in open_ids]
        if attempts.current is not None and ids:
            changed = set(ids)
            render = _Render(now, args, [i for i in items if i["id"] in changed], key="job_id")
            JobAttempt.objects.filter(job_id__in=ids, finished_at__isnull=True).update(
                **render.attempt_writes(attempts.current)
            )
        if attempts.start is not None:
            scope = Scope(now=now, args=args, item={})
            started = [
                row
                for row in rows
                if attempts.start_when is None or holds(attempts.start_when, row, scope)
            ]
            JobAttempt.objects.bulk_create(
                JobAttempt(
                    job_id=row["id"],
                    **{
                        name: evaluate(expr, row, scope)
                        for name, expr in flatten(attempts.start).items()
                    },
                )
                for row in started
            )
            # Only jobs past ``keep`` attempts have any to drop.
            over = [row["id"] for row in started if row["attempt_count"] > keep]
            if over:
                JobAttempt.objects.filter(
                    job_id__in=over,
                    finished_at__isnull=False,
                    attempt__lte=F("job__attempt_count") - keep,
                ).delete()

    # --- Guarded updates -------------------------------------------------------------

    def update_items(
        self,
        *,
        owner_id: int,
        items: Sequence[Mapping[str, Any]],
        guard: Cond,
        writes: Transition,
        returning: Sequence[str],
        now: datetime,
        args: Mapping[str, Any] | None = None,
        attempts: Attempts | None = None,
    ) -> list[dict[str, Any]]:
        """One guarded UPDATE of the caller's jobs ``items[i]["id"]``; the rows it changed.

        ``guard`` may compare a field with an item's value (``lease_token =
        Item("token")``): each row must then match its own item. Item ids
        must be distinct. ``attempts`` are written in the same transaction.
        """
        if not items:
            return []
        render = _Render(now, args or {}, items)
        keys, rest = _keyed_parts(guard)
        db = connections[Job.objects.db]
        fields = [Job._meta.pk, *(job_field(name) for name, _ in keys)]
        params: list[Any] = []
        for item in items:
            params.append(fields[0].get_db_prep_value(item["id"], db))
            for field, (_, item_name) in zip(fields[1:], keys, strict=True):
                params.append(field.get_db_prep_value(item[item_name], db))
        # A row-value IN (PostgreSQL; SQLite >= 3.15) instead of an OR of Q
        # objects, which cost more to build and compile than the UPDATE took
        # to run. Only column names are interpolated; values are parameters.
        table = db.ops.quote_name(Job._meta.db_table)
        columns = ", ".join(f"{table}.{db.ops.quote_name(f.column)}" for f in fields)
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        matched = RawSQL(  # noqa: S611
            f"({columns}) IN ({', '.join([row] * len(items))})",
            params,
            output_field=BooleanField(),
        )
        guarded = Job.objects.filter(matched, owner_id=owner_id)
        for part in rest:
            guarded = guarded.filter(render.cond(part))
        if attempts is None:
            return guarded.update_returning(list(returning), **render.writes(writes))
        with transaction.atomic():
            rows = guarded.update_returning(list(returning), **render.writes(writes))
            self._record_attempts(attempts, rows, now=now, args=args or {}, items=items)
        return rows

    def update_selection(
        self,
        jobs: QuerySet[Job],
        *,
        guard: Cond,
        writes: Transition,
        returning: Sequence[str],
        now: datetime,
        batch_size: int,
        on_batch: OnBatch | None = None,
        progress: Callable[[int], None] | None = None,
        attempts: Attempts | None = None,
    ) -> int:
        """``writes`` to the rows of ``jobs`` where ``guard`` holds; returns how many changed.

        A bounded batch per transaction, in primary-key order: one long write
        transaction would block every producer on SQLite and hold many row
        locks on PostgreSQL. Each batch re-applies the guard, so a row that
        changed meanwhile is skipped, never overwritten. After each batch has
        committed, ``on_batch`` sees its changed rows and ``progress`` the
        running total.
        """
        render = _Render(now, {})
        guard_q = render.cond(guard)
        values = render.writes(writes)
        changed = 0
        for pks in self._pages(jobs.filter(guard_q), batch_size):
            with transaction.atomic():
                rows = Job.objects.filter(guard_q, pk__in=pks).update_returning(
                    list(returning), **values
                )
                self._record_attempts(attempts, rows, now=now, args={})
            changed += len(rows)
            if on_batch is not None and rows:
                on_batch(rows)
            if progress is not None:
                progress(changed)
        return changed

    def update_locked(
        self,
        jobs: QuerySet[Job],
        *,
        guard: Cond,
        writes: Transition,
        returning: Sequence[str],
        now: datetime,
        batch_size: int,
        on_batch: OnBatch | None = None,
        attempts: Attempts | None = None,
    ) -> int:
        """Like ``update_selection`` for work several processes share (maintenance).

        ``jobs`` is taken in its own order, a batch at a time, locking with
        SKIP LOCKED: two copies running at once split the rows instead of
        waiting on each other or doing them twice.
        """
        render = _Render(now, {})
        guard_q = render.cond(guard)
        values = render.writes(writes)

        def act(pks: list[uuid.UUID]) -> list[dict[str, Any]]:
            rows = Job.objects.filter(guard_q, pk__in=pks).update_returning(
                list(returning), **values
            )
            self._record_attempts(attempts, rows, now=now, args={})
            return rows

        changed = 0
        for rows in self._locked_batches(jobs, batch_size, act):
            changed += len(rows)
            if on_batch is not None and rows:
                on_batch(rows)
        return changed

    def delete_selection(
        self,
        jobs: QuerySet[Job],
        *,
        batch_size: int,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete ``jobs`` for good, a batch per transaction; returns how many."""
        deleted = 0
        for pks in self._pages(jobs, batch_size):
            with transaction.atomic():
                deleted += _deleted_jobs(Job.objects.filter(pk__in=pks).delete())
            if progress is not None:
                progress(deleted)
        return deleted

    def delete_locked(
        self,
        jobs: QuerySet[Job],
        *,
        guard: Cond,
        now: datetime,
        batch_size: int,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete ``jobs`` in their order, a batch at a time, with SKIP LOCKED (retention).

        Each batch re-applies ``guard``: a row that changed since it was picked stays.
        """
        guard_q = _Render(now, {}).cond(guard)
        deleted = 0
        for count in self._locked_batches(
            jobs,
            batch_size,
            lambda pks: _deleted_jobs(Job.objects.filter(guard_q, pk__in=pks).delete()),
        ):
            deleted += count
            if progress is not None:
                progress(deleted)
        return deleted

    @staticmethod
    def _locked_batches(
        jobs: QuerySet[Job], batch_size: int, act: Callable[[list[uuid.UUID]], T]
    ) -> Iterator[T]:
        """``act`` on the next ``batch_size`` rows of ``jobs`` nobody holds, until none are left.

        Each batch is one transaction: its rows are locked (SKIP LOCKED) and
        acted on inside it; its result is yielded once it has committed.
        """
        while True:
            with transaction.atomic():
                pks = list(
                    jobs.select_for_update(skip_locked=True).values_list("pk", flat=True)[
                        :batch_size
                    ]
                )
                done = act(pks) if pks else None
            if pks:
                yield cast(T, done)
            if len(pks) < batch_size:
                return

    @staticmethod
    def _pages(jobs: QuerySet[Job], batch_size: int) -> Iterator[list[uuid.UUID]]:
        """The primary keys of ``jobs``, ascending, ``batch_size`` at a time."""
        last_pk = None
        while True:
            page = jobs.order_by("pk")
            if last_pk is not None:
                page = page.filter(pk__gt=last_pk)
            pks = list(page.values_list("pk", flat=True)[:batch_size])
            if not pks:
                return
            yield pks
            last_pk = pks[-1]

    # --- Selections --------------------------------------------------------------------

    def where(self, jobs: QuerySet[Job], cond: Cond, *, now: datetime) -> QuerySet[Job]:
        """The rows of ``jobs`` for which ``cond`` holds at ``now``."""
        return jobs.filter(self.condition(cond, now=now))

    def condition(self, cond: Cond, *, now: datetime) -> Q:
        """``cond`` at ``now`` as a Q object (a filter, or an aggregate's filter)."""
        return _Render(now, {}).cond(cond)

    # --- Waking long-poll leases ---------------------------------------------------

    def notify(self, owner_id: int, queue_names: Sequence[str]) -> None:
        """Tell waiting leases that jobs may be leasable: nothing to do, waiters poll."""

    def wake_queue(self, owner_id: int, queue_name: str) -> None:
        """Wake every lease waiting on the queue (it was resumed): nothing to do, waiters poll."""

    def open_listener(self) -> Any:
        raise NotImplementedError("the ORM engine has no LISTEN; long-poll leases poll")

    # --- Reads the admin needs -------------------------------------------------------

    def estimated_count(self, queryset: QuerySet[Any]) -> int:
        """The number of rows of ``queryset`` (exact here; PostgreSQL estimates big ones)."""
        return queryset.count()

    def queue_names(self, using: str, limit: int | None, owner_id: int | None = None) -> list[str]:
        """Distinct queue names of every tenant (or ``owner_id``'s), in order, at most ``limit``."""
        jobs = Job.objects.using(using)
        if owner_id is not None:
            jobs = jobs.filter(owner_id=owner_id)
        names = jobs.order_by("queue_name").values_list("queue_name", flat=True).distinct()
        return list(names if limit is None else names[:limit])
