"""The small language in which queues/services.py writes its rules down once.

A transition says what it writes as data: a mapping from a ``Job`` field to
an expression (``Writes``), or a ``Branch`` between two such mappings on a
condition about the row. Selections (which jobs are due, which lease is
held) are conditions too. This module holds only the vocabulary and its
meaning in Python (``evaluate``, ``holds``); no rule lives here.

Each engine turns the same expressions into its own storage work:
queues/store/postgres.py renders them to constant SQL text once per process,
queues/store/orm.py to Django expressions. ``evaluate`` is the reference
meaning both must agree with; the ORM engine also uses it where no database
is involved (a new row's values), and queues/tests/test_parity.py holds the
engines to the same results.

Expressions read the row as it was *before* the transition (``Col``), the
transition's time (``NOW``), one value for the whole call (``Arg``: the
worker id, the new lease expiry) or one value per item of a batch (``Item``:
an ack's result, a nack's error).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


class Expr:
    """A value a transition writes or a condition compares."""


@dataclass(frozen=True)
class Col(Expr):
    """The row's value of a ``Job`` field, before the transition."""

    name: str


@dataclass(frozen=True)
class Const(Expr):
    """A literal: None, a bool, an int or a short identifier-like string."""

    value: Any


@dataclass(frozen=True)
class Now(Expr):
    """The transition's time (injectable: services take ``now``)."""


NOW = Now()


@dataclass(frozen=True)
class Arg(Expr):
    """One value for the whole call (``worker_id``, ``until``, ``owner``)."""

    name: str


@dataclass(frozen=True)
class Item(Expr):
    """One value per item of a batch (``result`` of an ack, ``error`` of a nack)."""

    name: str


@dataclass(frozen=True)
class NewToken(Expr):
    """A fresh random lease token (UUID version 4), one per row."""


NEW_TOKEN = NewToken()


@dataclass(frozen=True)
class AttemptCol(Expr):
    """A field of the job's open attempt (``JobAttempt``), before the transition."""

    name: str


@dataclass(frozen=True)
class Plus(Expr):
    """Integer addition."""

    left: Expr
    right: Expr


@dataclass(frozen=True)
class Coalesce(Expr):
    """``first`` unless it is NULL, else ``then``."""

    first: Expr
    then: Expr


@dataclass(frozen=True)
class NullIfBlank(Expr):
    """NULL for an empty string, the value otherwise."""

    value: Expr


@dataclass(frozen=True)
class If(Expr):
    """``then`` where ``when`` holds, else ``otherwise``."""

    when: Cond
    then: Expr
    otherwise: Expr


@dataclass(frozen=True)
class AfterBackoff(Expr):
    """``NOW`` plus ``schedule[min(count, len(schedule) - 1)]`` seconds."""

    schedule: tuple[int, ...]
    count: Col


# --- Conditions ----------------------------------------------------------------------


class Cond:
    """A condition about a row (and the call's items and arguments)."""


@dataclass(frozen=True)
class Cmp(Cond):
    """``left op right`` with op one of ``=``, ``<``, ``<=``, ``>=``, ``>``; NULL never matches."""

    left: Col
    op: str
    right: Expr

    def __post_init__(self) -> None:
        if self.op not in _COMPARE:
            raise ValueError(f"unknown comparison {self.op!r}")


@dataclass(frozen=True)
class In(Cond):
    """The column's value is one of ``values``."""

    left: Col
    values: tuple[Any, ...]


@dataclass(frozen=True)
class And(Cond):
    parts: tuple[Cond, ...]


@dataclass(frozen=True)
class Or(Cond):
    parts: tuple[Cond, ...]


@dataclass(frozen=True)
class Unlimited(Cond):
    """The job's queue has no ``max_in_flight`` (queues.models.QueueSettings)."""


@dataclass(frozen=True)
class Truthy(Cond):
    """A boolean item value (a nack's ``retry``)."""

    value: Item


def all_of(*parts: Cond) -> Cond:
    return parts[0] if len(parts) == 1 else And(parts)


# --- Transitions ---------------------------------------------------------------------

Writes = Mapping[str, Any]  # field name -> Expr (or a plain Python literal)


@dataclass(frozen=True)
class Branch:
    """``then`` for rows where ``when`` holds, ``otherwise`` for the rest.

    A field written by only one side keeps its value on the other.
    """

    when: Cond
    then: Writes | Branch
    otherwise: Writes | Branch


Transition = Writes | Branch


def as_expr(value: Any) -> Expr:
    return value if isinstance(value, Expr) else Const(value)


def flatten(transition: Transition) -> dict[str, Expr]:
    """One expression per written field: a Branch becomes an ``If`` per field."""
    if not isinstance(transition, Branch):
        return {name: as_expr(value) for name, value in transition.items()}
    then, otherwise = flatten(transition.then), flatten(transition.otherwise)
    flat: dict[str, Expr] = {}
    for name in dict.fromkeys([*then, *otherwise]):
        chosen, other = then.get(name, Col(name)), otherwise.get(name, Col(name))
        # A field both sides write alike needs no condition.
        flat[name] = chosen if chosen == other else If(transition.when, chosen, other)
    return flat


@dataclass(frozen=True)
class Attempts:
    """What a transition does to the attempt history (``JobAttempt``) of the jobs it changes.

    ``current``: writes to each changed job's open attempt (the one without
    ``finished_at``; there is none on a job that was not processing), which
    ``AttemptCol`` reads. ``start``: a new attempt for each changed job for
    which ``start_when`` holds afterwards, from the job's values after the
    transition (``Col``). A job keeps its newest ``keep`` attempts (a call
    argument): a start drops older finished ones.
    """

    current: Writes | None = None
    start: Writes | None = None
    start_when: Cond | None = None
    # A lease's flag (LeaseSpec.flags) that holds for exactly the jobs that
    # can have an attempt open: ``current`` skips the others.
    current_flag: str | None = None


@dataclass(frozen=True)
class LeaseSpec:
    """What a lease picks and writes (queues/services.py, ``LEASE``).

    ``candidates``: the conditions of each probe (each served by its own
    index); ``order``: the fields of the lease order, ``-`` for descending;
    ``flags``: conditions evaluated on the row before it is written, returned
    with it (``recovered``); ``in_flight``: the jobs a queue's
    ``max_in_flight`` counts.
    """

    candidates: tuple[Cond, ...]
    order: tuple[str, ...]
    writes: Transition
    flags: Mapping[str, Cond]
    in_flight: Cond
    attempts: Attempts


# What a queue's settings (queues.models.QueueSettings) let a lease take.
OPEN = "open"  # no settings in the way: up to the lease's limit
PAUSED = "paused"  # nothing
LIMITED = "limited"  # max_in_flight minus the jobs in flight, counted under the queue's lock
UNCOUNTED = "uncounted"  # limited, but not counted: ask again holding the queue's lock


@dataclass(frozen=True)
class Gate:
    """The queue's state as a lease found it, and how many jobs it let the lease take."""

    state: str
    room: int


@dataclass(frozen=True)
class Leased:
    """What one lease statement did: its rows (job, flags) in lease order, and the gate."""

    rows: list[tuple[Any, dict[str, bool]]]
    gate: Gate


# --- Meaning in Python (the reference both engines agree with) -----------------------


def _lt(a: Any, b: Any) -> bool:
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    return bool(a <= b)


def _ge(a: Any, b: Any) -> bool:
    return bool(a >= b)


def _gt(a: Any, b: Any) -> bool:
    return bool(a > b)


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


_COMPARE = {"=": _eq, "<": _lt, "<=": _le, ">=": _ge, ">": _gt}


@dataclass(frozen=True)
class Scope:
    """What an expression may read besides the row."""

    now: datetime
    args: Mapping[str, Any]
    item: Mapping[str, Any]


def evaluate(expr: Expr, row: Mapping[str, Any], scope: Scope) -> Any:
    """The value of ``expr`` for ``row`` (field name -> value before the transition)."""
    match expr:
        case Col(name):
            return row[name]
        case Const(value):
            return value
        case Now():
            return scope.now
        case Arg(name):
            return scope.args[name]
        case Item(name):
            return scope.item[name]
        case NewToken():
            return uuid.uuid4()
        case Plus(left, right):
            return evaluate(left, row, scope) + evaluate(right, row, scope)
        case Coalesce(first, then):
            value = evaluate(first, row, scope)
            return evaluate(then, row, scope) if value is None else value
        case NullIfBlank(value):
            found = evaluate(value, row, scope)
            return None if found == "" else found
        case If(when, then, otherwise):
            return evaluate(then if holds(when, row, scope) else otherwise, row, scope)
        case AfterBackoff(schedule, count):
            seconds = schedule[min(evaluate(count, row, scope), len(schedule) - 1)]
            return scope.now + timedelta(seconds=seconds)
    raise TypeError(f"not an expression: {expr!r}")


def build(writes: Writes, scope: Scope) -> dict[str, Any]:
    """A new row's values: ``writes`` evaluated with no row before it (an insert)."""
    return {name: evaluate(expr, {}, scope) for name, expr in flatten(writes).items()}


def holds(cond: Cond, row: Mapping[str, Any], scope: Scope) -> bool:
    """Whether ``cond`` holds for ``row``; as in SQL, a comparison with NULL does not."""
    match cond:
        case Cmp(left, op, right):
            a, b = evaluate(left, row, scope), evaluate(right, row, scope)
            return a is not None and b is not None and _COMPARE[op](a, b)
        case In(left, values):
            return evaluate(left, row, scope) in values
        case And(parts):
            return all(holds(part, row, scope) for part in parts)
        case Or(parts):
            return any(holds(part, row, scope) for part in parts)
        case Unlimited():
            raise TypeError("Unlimited reads queue settings: only the engines evaluate it")
        case Truthy(value):
            return bool(evaluate(value, row, scope))
    raise TypeError(f"not a condition: {cond!r}")


def columns_read(*nodes: Expr | Cond | Transition) -> set[str]:
    """The fields a set of expressions, conditions or transitions reads from the row."""
    found: set[str] = set()
    stack: list[Any] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, Col):
            found.add(node.name)
        elif isinstance(node, Branch):
            stack += [node.when, node.then, node.otherwise]
        elif isinstance(node, Mapping):
            stack += list(node.values())
        elif isinstance(node, Expr | Cond):
            stack += [getattr(node, f.name) for f in dataclasses.fields(node)]  # type: ignore[arg-type]
        elif isinstance(node, tuple):
            stack += list(node)
    return found
