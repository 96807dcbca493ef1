"""The original's lax input types, accepted exactly as its JSON Schema says.

The contract keeps the original server's lax coercion (Part B §1): an
integer field also takes a numeric string ("5") or a boolean, a boolean
field takes 0/1 and words such as "yes". The OpenAPI schema says so, in
JSON Schema a client generator or a fuzzer can rely on, and the server
accepts exactly that and nothing more:

- ``lax_int(lo, hi)``: a JSON integer in [lo, hi] (2.0 is one), a string of
  ASCII digits with an optional sign and leading zeros whose value is in
  [lo, hi], blanks around it allowed (no underscores or decimals, which
  pydantic alone would take), or ``true``/``false`` where 1/0 is in range;
- ``LaxBool``: ``true``/``false``, 0/1, or one of pydantic's words in any
  case (true/false, yes/no, on/off, t/f, y/n, 1/0);
- ``UUID_TEXT``: every spelling of a UUID the path accepts;
- ``NO_NUL``: a string without U+0000, which PostgreSQL cannot store.

api/tests/test_schema_fuzz.py holds the server to these schemas with every
check schemathesis has.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

_DIGITS = "[0-9]"
_BLANK_CHARS = " \t\n\r"
_BLANKS = "[ \\t\\n\\r]*"
NO_NUL = "^[^\\u0000]*$"
_HEX = "[0-9a-fA-F]"
_CANONICAL = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
UUID_TEXT = f"^(?:(?:urn:uuid:)?{_CANONICAL}|\\{{{_CANONICAL}\\}}|{_HEX}{{32}})$"


def _same_length(low: str, high: str) -> list[str]:
    """Patterns for the digit strings from ``low`` to ``high``, both of one length."""
    if low == high:
        return [low]
    if len(low) == 1:
        return [f"[{low}-{high}]"]
    rest = len(low) - 1
    if low[0] == high[0]:
        return [low[0] + tail for tail in _same_length(low[1:], high[1:])]
    if low[1:] == "0" * rest and high[1:] == "9" * rest:
        return [f"[{low[0]}-{high[0]}]" + _DIGITS * rest]
    parts = [low[0] + tail for tail in _same_length(low[1:], "9" * rest)]
    first, last = int(low[0]) + 1, int(high[0]) - 1
    if first <= last:
        parts.append((f"[{first}-{last}]" if first < last else str(first)) + _DIGITS * rest)
    parts += [high[0] + tail for tail in _same_length("0" * rest, high[1:])]
    return parts


def _natural_range(low: int, high: int) -> list[str]:
    """Patterns for the decimal numbers ``low..high`` (0 <= low), without leading zeros."""
    if low > high:
        return []
    if len(str(low)) < len(str(high)):
        boundary = 10 ** len(str(low)) - 1
        return _natural_range(low, boundary) + _natural_range(boundary + 1, high)
    return _same_length(str(low), str(high))


def range_pattern(low: int, high: int) -> str:
    """A regular expression for the integers ``low..high`` as ``int()`` reads them.

    An optional sign and any number of leading zeros, as the server accepts
    (``_int_from``): ``+05`` and ``-0`` are 5 and 0; spaces, tabs and line
    breaks around it are ignored.
    """
    branches = []
    if high >= 0:
        branches.append("\\+?0*(?:" + "|".join(_natural_range(max(low, 0), high)) + ")")
    if low < 0:
        branches.append("-0*(?:" + "|".join(_natural_range(max(-high, 1), -low)) + ")")
    if low <= 0 <= high:
        branches.append("-0+")
    return "^" + _BLANKS + "(?:" + "|".join(branches) + ")" + _BLANKS + "$"


def _int_from(value: Any) -> Any:
    # Booleans and numbers go on to pydantic (True is 1, 2.0 is 2, 1.5 is an
    # error); text must be plain digits: what range_pattern describes.
    if isinstance(value, str):
        value = value.strip(_BLANK_CHARS)
        digits = value[1:] if value[:1] in "+-" else value
        if not (digits.isascii() and digits.isdigit()):
            raise PydanticCustomError(
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            )
        return int(value)
    return value


def lax_int(low: int, high: int, schema_high: int | None = None, **field: Any) -> Any:
    """An integer field in [low, high] that takes the original's lax forms (module docstring).

    ``schema_high``: the maximum the schema states, when a setting checks it
    later (a validator of the field's model) and ``high`` is only the type's.
    """
    top = high if schema_high is None else schema_high
    branches: list[dict[str, Any]] = [
        {"type": "integer", "minimum": low, "maximum": top},
        {"type": "string", "pattern": range_pattern(low, top)},
    ]
    booleans = [flag for flag, number in ((False, 0), (True, 1)) if low <= number <= top]
    if booleans:
        branches.append({"type": "boolean", "enum": booleans})
    schema: dict[str, Any] = {"anyOf": branches}
    if "description" in field:
        schema["description"] = field["description"]
    return Annotated[
        int,
        BeforeValidator(_int_from),
        Field(ge=low, le=high, **field),
        WithJsonSchema(schema),
    ]


_WORDS = ["true", "false", "yes", "no", "on", "off", "t", "f", "y", "n"]


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


LaxBool = Annotated[
    bool,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "boolean"},
                {"type": "integer", "enum": [0, 1]},
                {"type": "string", "pattern": "^(?:" + "|".join(map(_any_case, _WORDS)) + "|0|1)$"},
            ]
        }
    ),
]
