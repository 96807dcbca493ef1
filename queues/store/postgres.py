"""The PostgreSQL engine: the hot transitions as constant SQL statements.

Enqueue, lease, ack, nack, heartbeat and cancel each run ONE statement, in
autocommit, instead of BEGIN, SELECTs, an UPDATE and COMMIT, and the ORM's
compile step per request (docs/decisions/0006 and 0007). Each statement's
text is rendered once per process from the services' spec
(queues/store/spec.py) and never changes after that; every value is a bound
parameter, and batches travel as ONE JSON array that ``jsonb_array_elements``
or ``jsonb_to_recordset`` takes apart, so a batch of 100 is still one short
statement. Constants (status names) are rendered as SQL literals, so the
planner matches the partial indexes of queues/models.py.

Long-poll leases wait on LISTEN/NOTIFY: every write that makes a job
leasable sends ``pg_notify('openqueue_jobs', '<owner>:<count>:<queue>')`` in
its own transaction, so it is delivered on commit and never before the job
is visible (queues/longpoll.py listens).

Operator actions and maintenance are the ORM engine's (inherited).
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Field, QuerySet

from queues.models import Job, JobAttempt, QueueSettings, job_field
from queues.store.orm import OrmStore, sort_in_order
from queues.store.spec import (
    AfterBackoff,
    And,
    Arg,
    AttemptCol,
    Attempts,
    Branch,
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
    Transition,
    Truthy,
    Unlimited,
    Writes,
    columns_read,
    flatten,
)

CHANNEL = "openqueue_jobs"
_LITERAL = re.compile(r"^[A-Za-z0-9_.:-]*$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_JOBS = Job._meta.db_table
_ATTEMPTS = JobAttempt._meta.db_table
_SETTINGS = QueueSettings._meta.db_table


def _identifier(column: str) -> str:
    if not _IDENTIFIER.match(column):
        raise ValueError(f"unexpected column name {column!r}")
    return column


def _column(name: str) -> str:
    return _identifier(job_field(name).column)


def _attempt_field(name: str) -> Field[Any, Any]:
    field = JobAttempt._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"JobAttempt.{name} is not a concrete field")
    return field


def _attempt_column(name: str) -> str:
    return _identifier(_attempt_field(name).column)


def _literal(value: Any) -> str:
    """A constant of a spec as SQL text (identifier-like strings only)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and _LITERAL.match(value):
        return f"'{value}'"
    raise ValueError(f"pass {value!r} as an Arg, not as a constant")


def _db_type(field: Field[Any, Any]) -> str:
    db_type = field.db_type(connections[DEFAULT_DB_ALIAS])
    if db_type is None:
        raise TypeError(f"{field.name} has no column type")
    return db_type


class _Sql:
    """Spec expressions and conditions as SQL text with named parameters.

    ``alias`` names the table whose columns ``Col`` reads; ``item_ref``
    renders an ``Item`` for the field it is written to (or compared with),
    and records the item's SQL type in ``item_types``.
    """

    def __init__(
        self,
        alias: str,
        item_ref: Callable[[str, str], str] | None = None,
        attempt_alias: str = _ATTEMPTS,
    ) -> None:
        self.alias = alias
        self.attempt_alias = attempt_alias
        self.item_ref = item_ref or (lambda name, sql_type: f"item.{name}")
        self.item_types: dict[str, str] = {}
        # Conditions already computed elsewhere in the statement: (condition, SQL name).
        self.computed: list[tuple[Cond, str]] = []

    def sets(self, transition: Transition) -> str:
        return ",\n    ".join(
            f"{_column(name)} = {self.expr(expr, job_field(name))}"
            for name, expr in flatten(transition).items()
        )

    def attempt_sets(self, writes: Writes) -> str:
        return ", ".join(
            f"{_attempt_column(name)} = {self.expr(expr, _attempt_field(name))}"
            for name, expr in flatten(writes).items()
        )

    def _item(self, name: str, sql_type: str) -> str:
        self.item_types.setdefault(name, sql_type)
        return self.item_ref(name, sql_type)

    def expr(self, expr: Expr, field: Field) -> str:
        match expr:
            case Col(name):
                return f"{self.alias}.{_column(name)}"
            case AttemptCol(name):
                return f"{self.attempt_alias}.{_attempt_column(name)}"
            case Const(None):
                # Typed: a CASE of two bare NULLs would be text.
                return f"NULL::{_db_type(field)}"
            case Const(value):
                return _literal(value)
            case Now():
                return "%(now)s"
            case Arg(name):
                return f"%(arg_{name})s"
            case Item(name):
                return self._item(name, _db_type(field))
            case NewToken():
                return "gen_random_uuid()"
            case Plus(left, right):
                return f"({self.expr(left, field)} + {self.expr(right, field)})"
            case Coalesce(first, then):
                return f"COALESCE({self.expr(first, field)}, {self.expr(then, field)})"
            case NullIfBlank(value):
                return f"NULLIF({self.expr(value, field)}, '')"
            case If(when, then, otherwise):
                return (
                    f"CASE WHEN {self.cond(when)} THEN {self.expr(then, field)}"
                    f" ELSE {self.expr(otherwise, field)} END"
                )
            case AfterBackoff(schedule, count):
                *steps, last = schedule
                whens = " ".join(f"WHEN {n} THEN {s}" for n, s in enumerate(steps))
                seconds = f"CASE {self.expr(count, field)} {whens} ELSE {last} END"
                return f"(%(now)s + make_interval(secs => {seconds}))"
        raise TypeError(f"the PostgreSQL engine cannot render {expr!r}")

    def cond(self, cond: Cond) -> str:
        for known, name in self.computed:
            if known == cond:
                return name
        match cond:
            case Cmp(left, op, right):
                field = job_field(left.name)
                return f"{self.expr(left, field)} {op} {self.expr(right, field)}"
            case In(left, values):
                listed = ", ".join(_literal(value) for value in values)
                return f"{self.expr(left, job_field(left.name))} IN ({listed})"
            case And(parts):
                return "(" + " AND ".join(self.cond(part) for part in parts) + ")"
            case Or(parts):
                return "(" + " OR ".join(self.cond(part) for part in parts) + ")"
            case Unlimited():
                return (
                    f"NOT EXISTS (SELECT 1 FROM {_SETTINGS} AS limits"  # noqa: S608 - names only
                    f" WHERE limits.user_id = {self.alias}.user_id"
                    f" AND limits.queue_name = {self.alias}.queue_name"
                    " AND limits.max_in_flight IS NOT NULL)"
                )
            case Truthy(Item(name)):
                return self._item(name, "boolean")
        raise TypeError(f"the PostgreSQL engine cannot render {cond!r}")


def _order(alias: str, order: Sequence[str]) -> str:
    return ", ".join(
        f"{alias}.{_column(key[1:])} DESC" if key.startswith("-") else f"{alias}.{_column(key)}"
        for key in order
    )


def _hot_cursor() -> Any:
    """A cursor for the hot statements, which PostgreSQL plans once per connection.

    Django's cursors bind parameters on the client (the query text holds
    the values), so PostgreSQL parses and plans every statement again: a
    third of the lease statement's time. This one binds them on the server,
    and psycopg prepares a statement on a connection once it has run
    ``prepare_threshold`` (5) times there; the pooled connections keep them.
    It is still Django's cursor wrapper (errors mapped to django.db's, queries
    logged in tests). ``OPENQUEUE_DB_PREPARED_STATEMENTS=false`` turns it off
    (a pooler in transaction mode before PgBouncer 1.21 loses prepared
    statements).
    """
    if not settings.OPENQUEUE_DB_PREPARED_STATEMENTS:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        # psycopg's own Cursor binds on the server (Django's default is its ClientCursor).
        cursor = psycopg.Cursor(connection.connection)
        return connection._prepare_cursor(cursor)  # type: ignore[attr-defined]


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- Statements, rendered once per spec ------------------------------------------------


class _Frozen:
    """A spec as a cache key, by identity: specs are module constants of queues/services.py.

    The key keeps its spec alive, so an id is never reused for another spec.
    """

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Frozen) and other.value is self.value


@functools.cache
def _insert_statement(frozen: _Frozen) -> tuple[str, tuple[str, ...]]:
    """``INSERT ... SELECT`` from a JSON array of rows, plus the wake-up notifications.

    Each row is an array of the item values in ``names`` order. The
    notification counts the new jobs per queue: ``<owner>:<count>:<queue>``.
    """
    names: list[str] = []

    def positional(name: str, sql_type: str) -> str:
        if name not in names:
            names.append(name)
        index = names.index(name)
        return f"(r->{index})" if sql_type == "jsonb" else f"(r->>{index})::{sql_type}"

    render = _Sql(_JOBS, positional)
    flat = flatten(frozen.value)
    columns = ", ".join(_column(name) for name in flat)
    values = ", ".join(render.expr(expr, job_field(name)) for name, expr in flat.items())
    sql = f"""
WITH ins AS (
    INSERT INTO {_JOBS} ({columns})
    SELECT {values}
    FROM jsonb_array_elements(%(rows)s::jsonb) AS r
    RETURNING queue_name
)
SELECT pg_notify(%(channel)s, %(arg_owner)s::text || ':' || count(*) || ':' || queue_name)
FROM ins GROUP BY queue_name
"""  # noqa: S608 - rendered from the spec; every value is a parameter
    return sql, tuple(names)


def _attempt_ctes(attempts: Attempts | None, changed: str, item_types: dict[str, str]) -> list[str]:
    """The data-modifying CTEs that keep the attempt history, fed by CTE ``changed``.

    ``changed`` holds the changed jobs' rows after the transition (its
    ``id`` column is the job's) and, as ``item_<name>``, the item values the
    attempt writes read. Every CTE reads the statement's snapshot, so
    ``current`` (the open attempt, before) and ``start`` (a new row) never
    touch the same row, nor does the trim, which drops only finished ones.
    """
    if attempts is None:
        return []
    render = _Sql(changed, lambda name, sql_type: f"{changed}.item_{name}")
    ctes = []
    if attempts.current is not None:
        flag = attempts.current_flag
        only = "" if flag is None else f" AND {changed}.{_identifier(flag)}"
        ctes.append(f"""attempt_current AS (
    UPDATE {_ATTEMPTS} SET {render.attempt_sets(attempts.current)}
    FROM {changed}
    WHERE {_ATTEMPTS}.job_id = {changed}.id AND {_ATTEMPTS}.finished_at IS NULL{only}
)""")  # noqa: S608 - rendered from the spec; every value is a parameter
    if attempts.start is not None:
        flat = flatten(attempts.start)
        columns = ", ".join(["job_id", *(_attempt_column(name) for name in flat)])
        values = ", ".join(
            [
                f"{changed}.id",
                *(render.expr(expr, _attempt_field(name)) for name, expr in flat.items()),
            ]
        )
        when = "TRUE" if attempts.start_when is None else render.cond(attempts.start_when)
        ctes.append(f"""attempt_start AS (
    INSERT INTO {_ATTEMPTS} ({columns})
    SELECT {values} FROM {changed} WHERE {when}
), attempt_trim AS (
    DELETE FROM {_ATTEMPTS} USING {changed}
    WHERE {_ATTEMPTS}.job_id = {changed}.id AND {changed}.attempt_count > %(keep)s
      AND {_ATTEMPTS}.attempt <= {changed}.attempt_count - %(keep)s
      AND {_ATTEMPTS}.finished_at IS NOT NULL
)""")  # noqa: S608 - rendered from the spec; every value is a parameter
    item_types.update(render.item_types)
    return ctes


def _compact(sql: str) -> str:
    """``sql`` without indentation or blank lines (the statement is the same).

    psycopg caches the conversion of a query's ``%(name)s`` placeholders only
    for texts up to 4,096 bytes; above that it splits the text again on every
    execution (0.2 ms for the lease statement, whose indented text is 4.5 KB).
    """
    return "\n".join(line.strip() for line in sql.splitlines() if line.strip())


@functools.cache
def _lease_statement(frozen: _Frozen) -> str:
    """The queue's gate, every probe, the choice between them and the write, in one statement.

    ``gate`` reads the queue's settings (one row or none) and says how many
    jobs the lease may take: the limit, none while paused, and for a queue
    with ``max_in_flight`` what is left of it, counted only when the caller
    holds the queue's lock (``%(exclusive)s``; otherwise none, and the state
    ``uncounted`` tells the caller to ask again with the lock: a count in
    this statement's snapshot could miss a concurrent lease).

    Each probe is its own CTE (FOR UPDATE is not allowed in a UNION), served
    in lease order by its partial index; SKIP LOCKED skips rows other
    leasers hold, and the candidates not chosen are unlocked when the
    statement (or the caller's transaction) ends. ``pick`` evaluates the
    spec's flags on the rows as they were; in the UPDATE, ``jobs.*`` on the
    right-hand side are the values before it too. The attempt history is
    written from the UPDATE's rows. The gate's row is always returned, with
    the leased rows joined to it (none: one row of NULLs).

    The gate's room is a filter (no probe runs when it is 0; the UPDATE takes
    the first ``room`` of the picked rows), never a LIMIT: with a LIMIT the
    planner cannot read, it expects many rows and joins the UPDATE to the
    picked ids by scanning the whole jobs table.
    """
    spec: LeaseSpec = frozen.value
    keep = list(dict.fromkeys(["id", *(key.lstrip("-") for key in spec.order)]))
    branch = [spec.writes.when] if isinstance(spec.writes, Branch) else []
    keep += sorted(columns_read(*spec.flags.values(), *branch) - set(keep))
    selected = ", ".join(f"{_JOBS}.{_column(name)}" for name in keep)
    render = _Sql(_JOBS)
    in_flight = _Sql("counted").cond(spec.in_flight)
    gate = f"""gate AS (
    SELECT
        CASE WHEN s.paused THEN 'paused' WHEN s.max_in_flight IS NULL THEN 'open'
             WHEN %(exclusive)s THEN 'limited' ELSE 'uncounted' END AS state,
        CASE WHEN s.paused THEN 0 WHEN s.max_in_flight IS NULL THEN %(limit)s
             WHEN NOT %(exclusive)s THEN 0
             ELSE GREATEST(0, LEAST(%(limit)s, s.max_in_flight - (
                 SELECT count(*) FROM {_JOBS} AS counted
                 WHERE counted.user_id = %(owner)s AND counted.queue_name = %(queue)s
                   AND {in_flight}))) END AS room
    FROM (SELECT 1) AS one
    LEFT JOIN {_SETTINGS} AS s ON s.user_id = %(owner)s AND s.queue_name = %(queue)s
)"""  # noqa: S608 - rendered from the spec; every value is a parameter
    probes = [
        f"""c{index} AS (
    SELECT {selected} FROM {_JOBS}
    WHERE {_JOBS}.user_id = %(owner)s AND {_JOBS}.queue_name = %(queue)s
      AND {render.cond(cond)} AND (SELECT room FROM gate) > 0
    ORDER BY {_order(_JOBS, spec.order)} LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)"""  # noqa: S608 - rendered from the spec; every value is a parameter
        for index, cond in enumerate(spec.candidates)
    ]
    union = " UNION ALL ".join(f"SELECT * FROM c{n}" for n in range(len(probes)))  # noqa: S608
    candidates = _Sql("candidates")
    flags = "".join(f", {candidates.cond(cond)} AS {name}" for name, cond in spec.flags.items())
    returned = "".join(f", pick.{name}" for name in spec.flags)
    for when in branch:
        # The branch's condition, once per row in pick instead of once per
        # written column in the UPDATE (the rows as they were, either way).
        flags += f", {candidates.cond(when)} AS branch"
        render.computed.append((when, "pick.branch"))
    attempts = _attempt_ctes(spec.attempts, "upd", {})
    return _compact(f"""
WITH {gate}, {", ".join(probes)}, pick AS (
    SELECT candidates.id{flags},
        row_number() OVER (ORDER BY {_order("candidates", spec.order)}) AS position
    FROM ({union}) AS candidates
    ORDER BY {_order("candidates", spec.order)} LIMIT %(limit)s
), upd AS (
    UPDATE {_JOBS} SET
        {render.sets(spec.writes)}
    FROM pick
    WHERE {_JOBS}.id = pick.id AND pick.position <= (SELECT room FROM gate)
    RETURNING {_JOBS}.*{returned}
){"".join(f", {cte}" for cte in attempts)}
SELECT upd.*, gate.state AS gate_state, gate.room AS gate_room
FROM gate LEFT JOIN upd ON TRUE
""")  # noqa: S608 - rendered from the spec; every value is a parameter


@functools.cache
def _update_statement(
    guard: _Frozen, writes: _Frozen, attempts: _Frozen, returning: tuple[str, ...]
) -> str:
    """A guarded UPDATE of the caller's jobs joined to a JSON array of items by id.

    With attempt writes, the UPDATE is a CTE whose rows feed them (with the
    item values they read), and the statement returns the same columns.
    """
    render = _Sql(_JOBS)
    sets = render.sets(writes.value)
    where = render.cond(guard.value)
    attempt_items: dict[str, str] = {}
    ctes = _attempt_ctes(attempts.value, "changed", attempt_items)
    item_types = {**render.item_types, **attempt_items}
    declared = ", ".join(
        ["id uuid", *(f"{name} {sql_type}" for name, sql_type in item_types.items())]
    )
    columns = ", ".join(f"{_JOBS}.{_column(name)}" for name in returning)
    update = f"""UPDATE {_JOBS} SET
    {sets}
FROM jsonb_to_recordset(%(items)s::jsonb) AS item({declared})
WHERE {_JOBS}.id = item.id AND {_JOBS}.user_id = %(owner)s AND {where}"""  # noqa: S608
    if not ctes:
        return f"{update}\nRETURNING {columns}\n"
    named = ", ".join(f"{_JOBS}.{_column(name)} AS r{n}" for n, name in enumerate(returning))
    extra = "".join(f", item.{name} AS item_{name}" for name in attempt_items)
    listed = ", ".join(f"r{n}" for n in range(len(returning)))
    return f"""
WITH changed AS (
{update}
RETURNING {named}, {_JOBS}.id{extra}
){"".join(f", {cte}" for cte in ctes)}
SELECT {listed} FROM changed
"""  # noqa: S608 - rendered from the spec; every value is a parameter


# --- Rows to Job instances ----------------------------------------------------------------


@functools.cache
def _row_plan(columns: tuple[str, ...]) -> tuple[list[int], list[Any], list[str]]:
    """How to turn a ``RETURNING jobs.*, ...`` row into a Job, worked out once per shape.

    Returns, in the model's field order, the row index of each field's
    column and that field's converters (with the column they need), plus the
    names of the extra columns. ``Job.objects.raw()`` redid this per query:
    about a third of a single lease's Python calls.
    """
    index = {name: i for i, name in enumerate(columns)}
    positions: list[int] = []
    converters: list[Any] = []
    for field in Job._meta.concrete_fields:
        positions.append(index[field.column])
        col = field.get_col(_JOBS)
        found = connection.ops.get_db_converters(col) + field.get_db_converters(connection)  # type: ignore[attr-defined]
        converters.append((found, col) if found else None)
    known = {field.column for field in Job._meta.concrete_fields}
    return positions, converters, [name for name in columns if name not in known]


_JOB_ATTNAMES = [field.attname for field in Job._meta.concrete_fields]


def _job_from_row(columns: tuple[str, ...], row: tuple[Any, ...]) -> tuple[Job, dict[str, Any]]:
    """A Job from a raw row, and the extra columns (the lease's flags) by name."""
    positions, converters, extras = _row_plan(columns)
    values = []
    for position, conversion in zip(positions, converters, strict=True):
        value = row[position]
        if conversion is not None:
            found, col = conversion
            for convert in found:
                value = convert(value, col, connection)
        values.append(value)
    job = Job.from_db(connection.alias, _JOB_ATTNAMES, values)
    return job, {name: row[columns.index(name)] for name in extras}


class PostgresStore(OrmStore):
    """The ORM engine with PostgreSQL's hot paths and LISTEN/NOTIFY."""

    listens = True

    def insert(
        self,
        *,
        owner_id: int,
        items: Sequence[Mapping[str, Any]],
        writes: Writes,
        now: datetime,
    ) -> None:
        """Insert the jobs and wake long-poll leases in ONE autocommit statement."""
        sql, names = _insert_statement(_Frozen(writes))
        rows = [[_jsonable(item[name]) for name in names] for item in items]
        params: dict[str, Any] = {
            "arg_owner": owner_id,
            "now": now,
            "rows": _dumps(rows),
            "channel": CHANNEL,
        }
        # Inside a caller's transaction a failed insert must not abort it: use a
        # savepoint there (the API runs in autocommit and pays nothing for this).
        with transaction.atomic() if connection.in_atomic_block else _nothing():
            with _hot_cursor() as cursor:
                cursor.execute(sql, params)

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
        """One statement; ``exclusive``: the queue's lock first (in the caller's transaction)."""
        params = {
            "owner": owner_id,
            "queue": queue_name,
            "now": now,
            "limit": limit,
            "keep": keep,
            "exclusive": exclusive,
            **{f"arg_{name}": value for name, value in args.items()},
        }
        with _hot_cursor() as cursor:
            if exclusive:
                cursor.execute(
                    f"SELECT 1 FROM {_SETTINGS} WHERE user_id = %s AND queue_name = %s FOR UPDATE",  # noqa: S608
                    [owner_id, queue_name],
                )
            cursor.execute(_lease_statement(_Frozen(spec)), params)
            columns = tuple(col.name for col in cursor.description)
            rows = cursor.fetchall()
        gate = Gate(state=rows[0][-2], room=rows[0][-1])
        id_at = columns.index("id")
        leased = [_job_from_row(columns, row) for row in rows if row[id_at] is not None]
        for _, extras in leased:
            del extras["gate_state"], extras["gate_room"]
        # RETURNING has no order: restore the lease order.
        sort_in_order(leased, spec.order, lambda pair, name: getattr(pair[0], name))
        return Leased(rows=leased, gate=gate)

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
        if not items:
            return []
        sql = _update_statement(
            _Frozen(guard), _Frozen(writes), _Frozen(attempts), tuple(returning)
        )
        params = {
            "owner": owner_id,
            "now": now,
            "items": _dumps([{k: _jsonable(v) for k, v in item.items()} for item in items]),
            **{f"arg_{name}": value for name, value in (args or {}).items()},
        }
        with _hot_cursor() as cursor:
            cursor.execute(sql, params)
            return [dict(zip(returning, row, strict=True)) for row in cursor.fetchall()]

    # --- LISTEN/NOTIFY ---------------------------------------------------------------

    def notify(self, owner_id: int, queue_names: Sequence[str]) -> None:
        """Wake waiting leases of ``owner_id``: one payload per queue, with its job count.

        Sent inside the caller's transaction, it is delivered when that
        transaction commits and dropped on rollback.
        """
        counts: dict[str, int] = {}
        for name in queue_names:
            counts[name] = counts.get(name, 0) + 1
        if not counts:
            return
        payloads = sorted(f"{owner_id}:{count}:{name}" for name, count in counts.items())
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload",
                [CHANNEL, payloads],
            )

    def wake_queue(self, owner_id: int, queue_name: str) -> None:
        """Wake every lease waiting on the queue (a count of 0: all of them), on commit."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, f"{owner_id}:0:{queue_name}"])

    def interrupt_listeners(self) -> None:
        """End every listener's current wait at once (an empty notification)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])

    def listener_factory(self) -> Callable[[], Any]:
        """Opens a LISTEN connection of its own, outside Django's pool, when called.

        Django's connection parameters are read now, in the calling thread.
        """
        params = connection.get_connection_params()
        # Minus what only Django's own connection wrapper understands.
        params = {k: v for k, v in params.items() if k not in ("cursor_factory", "context")}
        return functools.partial(_Listener, params)

    # --- Reads the admin needs -------------------------------------------------------

    def estimated_count(self, queryset: QuerySet[Any]) -> int:
        """Exact for small results, PostgreSQL's estimate for big ones (queues/admin.py)."""
        return _estimated_count(queryset)

    def queue_names(self, using: str, limit: int | None, owner_id: int | None = None) -> list[str]:
        """The distinct queue names without reading every job: a loose index scan.

        A recursive query jumps from one name to the next through an index
        that starts with the queue name (jobs_queue_id_idx), or with the
        tenant and the queue name for one tenant (jobs_owner_queue_status_idx):
        one index probe per queue instead of a DISTINCT over the whole table.
        """
        owner = "" if owner_id is None else "user_id = %(owner)s AND "
        with connections[using].cursor() as cursor:
            cursor.execute(
                f"""
                WITH RECURSIVE names(name) AS (
                    (SELECT queue_name FROM jobs WHERE {owner}TRUE ORDER BY queue_name LIMIT 1)
                    UNION ALL
                    SELECT (SELECT queue_name FROM jobs WHERE {owner}queue_name > names.name
                            ORDER BY queue_name LIMIT 1)
                    FROM names WHERE names.name IS NOT NULL
                )
                SELECT name FROM names WHERE name IS NOT NULL LIMIT %(limit)s
                """,  # noqa: S608 - the only interpolation is a constant condition
                {"owner": owner_id, "limit": limit},
            )
            return [name for (name,) in cursor.fetchall()]


# Below this many rows an exact COUNT(*) is cheap; above it the count is estimated.
EXACT_COUNT_LIMIT = 10_000


def _estimated_count(queryset: QuerySet[Any]) -> int:
    """Unfiltered: ``pg_class.reltuples`` (refreshed by ANALYZE and autovacuum).
    Filtered: a count capped at EXACT_COUNT_LIMIT + 1 rows, and only a result
    bigger than that is replaced by the planner's estimate.
    """
    db = connections[queryset.db]
    if not queryset.query.where:
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [queryset.model._meta.db_table],
            )
            row = cursor.fetchone()
        if row and row[0] > EXACT_COUNT_LIMIT:
            return int(row[0])
        return queryset.count()
    capped = queryset.order_by()[: EXACT_COUNT_LIMIT + 1].count()
    if capped <= EXACT_COUNT_LIMIT:
        return capped
    plan = json.loads(queryset.order_by().explain(format="json"))
    return max(int(plan[0]["Plan"]["Plan Rows"]), capped)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class _Listener:
    """One LISTEN connection: yields ``(owner_id, queue_name, count)`` per notification."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def __enter__(self) -> _Listener:
        import psycopg

        self.conn = psycopg.connect(**self.params, autocommit=True)
        self.conn.execute(f"LISTEN {CHANNEL}")
        self.backend_pid = self.conn.info.backend_pid
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def wakeups(self, timeout: float) -> Iterator[tuple[int, str, int] | None]:
        """Notifications for ``timeout`` seconds at most; None for a bare interruption.

        Raises ValueError (with the payload) for a payload that is not ours.
        """
        for note in self.conn.notifies(timeout=timeout):
            if not note.payload:
                yield None
                continue
            owner, _, rest = note.payload.partition(":")
            count, _, queue_name = rest.partition(":")
            try:
                yield int(owner), queue_name, int(count)
            except ValueError:
                raise ValueError(note.payload[:300]) from None

    def ping(self) -> None:
        """A dead connection raises here rather than hanging."""
        self.conn.execute("SELECT 1")
