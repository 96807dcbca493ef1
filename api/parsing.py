"""Reading a request: the body as JSON, and validation into the contract's 422.

- Malformed JSON is ``422 json_invalid`` (before authentication, as the
  original: the views call ``parse_json_body`` first, api/views.py).
- ``validate_all`` checks path, query, header and body models together and
  raises one ``RequestValidationError`` listing every error, pydantic style,
  ``loc`` starting with ``body``, ``query``, ``header`` or ``path``
  (contract Part B §1). api/errors.py turns it into the response.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

import pydantic
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from api.errors import BodyTooDense, RequestValidationError, request_too_large

Model = TypeVar("Model", bound=pydantic.BaseModel)

MISSING: Any = object()

# Far below the interpreter's recursion limit: a document that parses must
# also survive the recursive walks after it (validation, json.dumps when the
# row is saved), which run on a deeper stack. ~900 levels parsed but crashed
# the save with RecursionError (a 500).
MAX_JSON_DEPTH = 256


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # 1e400 parses to inf, which neither PostgreSQL's jsonb nor JSON itself can hold.
        raise ValueError(f"number {text} is out of range")
    return value


def _json_invalid(position: int, message: str) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ["body", position],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": message},
            }
        ]
    )


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _too_deep(value: Any, limit: int) -> bool:
    """True if ``value`` nests arrays/objects more than ``limit`` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


# --- Reading the body ---------------------------------------------------------------
#
# A body up to OPENQUEUE_PREAUTH_BODY_BYTES is read and parsed before the
# credentials are looked at, as the original did (malformed JSON is 422 even
# without a token). A bigger one is read only once the request has been
# authenticated (api/views.py, ApiView.initial): an anonymous client can no
# longer make a worker build a 16 MiB document. Chunked bodies have no
# length: the first OPENQUEUE_PREAUTH_BODY_BYTES + 1 bytes decide, and are
# kept for the parse.

_PEEKED = "_openqueue_peeked_body"


def _chunked(request: HttpRequest) -> bool:
    # gunicorn de-chunks wsgi.input and marks it wsgi.input_terminated, so it
    # can be read to its end (Django reads only Content-Length bytes).
    return bool(
        "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        and not request.META.get("CONTENT_LENGTH")
        and request.META.get("wsgi.input_terminated")
    )


def is_small_body(request: HttpRequest) -> bool:
    """Whether the body may be read before authentication (at most OPENQUEUE_PREAUTH_BODY_BYTES)."""
    limit = settings.OPENQUEUE_PREAUTH_BODY_BYTES
    if _chunked(request):
        peeked = request.META["wsgi.input"].read(limit + 1)
        setattr(request, _PEEKED, peeked)
        return len(peeked) <= limit
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) <= limit
    except ValueError:
        return True  # Django reads no body for a malformed length


def read_body(request: HttpRequest) -> bytes:
    """The raw body, chunked transfer encoding included, at most OPENQUEUE_MAX_REQUEST_BYTES."""
    limit = settings.OPENQUEUE_MAX_REQUEST_BYTES
    if _chunked(request):
        data = getattr(request, _PEEKED, b"")
        data += request.META["wsgi.input"].read(limit + 1 - len(data))
        if len(data) > limit:
            raise request_too_large(None)
        return data
    try:
        return request.body
    except RequestDataTooBig:
        raise request_too_large(None) from None


# --- Parsing ------------------------------------------------------------------------
#
# What a parsed document costs in memory depends on its shape, not its size:
# "[{},{},...]" builds a 64-byte dict for every 3 bytes (24 times the body).
# Above DENSITY_CHECK_BYTES a body whose estimated cost exceeds
# MEMORY_MULTIPLE times its size is refused before it is parsed. The
# estimate counts bytes: containers ('{', '['), strings (pairs of '"'),
# elements (','), members (':'), each weighted by what CPython spends on one,
# plus the text itself. Ordinary payloads (objects with named fields, real
# strings) come out at 6 to 10 times their size and pass; a body that passes
# holds at most about 16 times its size while it is parsed
# (api/tests/test_body_limits.py measures 20 shapes).
DENSITY_CHECK_BYTES = 1024 * 1024
MEMORY_MULTIPLE = 12
_CONTAINER, _STRING, _ELEMENT, _MEMBER = 64, 56, 32, 24


def estimated_memory(raw: bytes) -> int:
    """An estimate, in bytes, of what ``json.loads`` builds from ``raw``."""
    containers = raw.count(b"{") + raw.count(b"[")
    elements = raw.count(b",") + containers
    return (
        containers * _CONTAINER
        + raw.count(b'"') // 2 * _STRING
        + elements * _ELEMENT
        + raw.count(b":") * _MEMBER
        + len(raw)
    )


def _decode(raw: bytes) -> str:
    """The body as text. Strict: invalid bytes and UTF-8-encoded surrogates are refused.

    JSON's own detection picks UTF-8 (with or without a BOM), UTF-16 or
    UTF-32, as ``json.loads`` on bytes would; unlike it, nothing is let
    through with ``surrogatepass`` (a lone surrogate cannot be stored).
    """
    encoding = json.detect_encoding(raw)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _json_invalid(exc.start, f"the body is not valid {encoding}: {exc.reason}") from None


def parse_json_body(request: HttpRequest) -> Any:
    """The request body as JSON, or MISSING when there is none.

    Like the original: the body is JSON when Content-Type is absent,
    ``application/json`` or ``application/*+json``; any other type yields the
    raw text, which then fails validation as "not an object".
    """
    raw = read_body(request)
    media = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    is_json = media in ("", "application/json") or (
        media.startswith("application/") and media.endswith("+json")
    )
    if not raw.strip():
        return MISSING
    if not is_json:
        return raw.decode("utf-8", errors="replace")
    if len(raw) > DENSITY_CHECK_BYTES and estimated_memory(raw) > MEMORY_MULTIPLE * len(raw):
        raise BodyTooDense(
            f"Request body of {len(raw)} bytes holds too many small JSON values: parsed, they "
            f"would take more than {MEMORY_MULTIPLE} times its size in memory. Send it in "
            "smaller requests, or with fewer, larger values."
        )
    text = _decode(raw)
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise _json_invalid(exc.pos, exc.msg) from None
    except (ValueError, RecursionError) as exc:
        # NaN/Infinity, out-of-range numbers, absurd nesting.
        raise _json_invalid(0, str(exc) or exc.__class__.__name__) from None
    # "\ud800" without its pair parses to a lone surrogate, which no UTF-8
    # text (nor PostgreSQL) can hold: refuse it here instead of failing later.
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise _json_invalid(0, "lone UTF-16 surrogate (\\ud800-\\udfff without its pair)")
    # Each level of nesting needs an opening bracket: a body with no more of
    # them than the limit cannot be too deep, so the walk is skipped (a
    # 100-job batch spent a quarter of its Python calls in it).
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets > MAX_JSON_DEPTH and _too_deep(value, MAX_JSON_DEPTH):
        raise _json_invalid(0, f"nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def convert_errors(exc: pydantic.ValidationError, where: str) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors(include_url=False):
        item = {
            "type": error["type"],
            "loc": [where, *error["loc"]],
            "msg": error["msg"],
            "input": _jsonable(error.get("input")),
        }
        if error.get("ctx"):
            item["ctx"] = _jsonable(error["ctx"])
        errors.append(item)
    return errors


def validate(model: type[Model], data: Any, where: str) -> tuple[Model | None, list[dict]]:
    """Validate ``data`` against ``model``; return (instance, []) or (None, errors)."""
    if where == "body" and (data is MISSING or data is None):
        return None, [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
    if not isinstance(data, dict):
        return None, [
            {
                "type": "model_attributes_type",
                "loc": [where],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": _jsonable(data),
            }
        ]
    try:
        return model.model_validate(data), []
    except pydantic.ValidationError as exc:
        return None, convert_errors(exc, where)


def validate_all(*checks: tuple[type[pydantic.BaseModel], Any, str]) -> list[Any]:
    """Validate path, query and body together and report every error at once."""
    results, errors = [], []
    for model, data, where in checks:
        instance, found = validate(model, data, where)
        results.append(instance)
        errors.extend(found)
    if errors:
        raise RequestValidationError(errors)
    return results
