"""How the API writes its responses: always JSON, written by orjson.

Both are DRF extension points (``content_negotiation_class`` and
``renderer_classes`` on ``ApiView``); the admin, the console and the OpenAPI
views keep DRF's defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.utils.encoders import JSONEncoder

# DRF's own encoder for what orjson leaves to it (datetimes, dataclasses,
# Decimal, lazy strings...), so those come out exactly as before.
_drf_default = JSONEncoder().default
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# U+2028 and U+2029 in UTF-8: DRF escapes them (JSON that is also JavaScript).
_LINE_SEPARATORS = (b"\xe2\x80\xa8", b"\xe2\x80\xa9")


class JsonOnlyNegotiation(DefaultContentNegotiation):
    """The API answers JSON whatever ``Accept`` asks for, as the original did.

    DRF's negotiation parses the Accept header on every request to choose
    among renderers; the API has one. (It also answered ``Accept: text/html``
    with 406, which the original never did.) Parser selection is DRF's.
    """

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class OrjsonRenderer(JSONRenderer):
    """DRF's JSONRenderer, byte for byte, written by orjson.

    Compact, UTF-8, key order kept, U+2028/U+2029 escaped, as DRF writes
    them. Whatever orjson will not write (an integer beyond 64 bits in a
    payload) goes through DRF's renderer. Floats in exponent form are the
    one difference: ``1e16`` where Python writes ``1e+16`` (the same number).
    """

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        try:
            body = orjson.dumps(data, default=_drf_default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        if _LINE_SEPARATORS[0] in body or _LINE_SEPARATORS[1] in body:
            body = body.replace(_LINE_SEPARATORS[0], b"\\u2028")
            body = body.replace(_LINE_SEPARATORS[1], b"\\u2029")
        return body
