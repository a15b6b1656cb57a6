"""Zoho's JSON envelopes and the HTTP status of each error code."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from crmlite.errors import ZohoError

JSON_TYPE = "application/json;charset=UTF-8"

STATUS = {
    "AUTHENTICATION_FAILURE": 401,
    "INVALID_TOKEN": 401,
    "OAUTH_SCOPE_MISMATCH": 401,
    "NO_PERMISSION": 403,
    "INVALID_URL_PATTERN": 404,
    "RESOURCE_NOT_FOUND": 404,
    "ALREADY_MODIFIED": 412,
    "TOO_MANY_REQUESTS": 429,
    "INTERNAL_ERROR": 500,
}


class JSON(Response):
    media_type = JSON_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(exc: ZohoError) -> JSON:
    return JSON(exc.body(), status_code=STATUS.get(exc.code, 400))


def no_content() -> Response:
    return Response(status_code=204)


def batch(items: list[dict[str, Any]], success_status: int = 200, key: str = "data") -> JSON:
    """200/201 when every item succeeded, 207 when some failed, 400 when all failed."""
    ok = sum(1 for i in items if i.get("status") == "success")
    if ok == len(items):
        status = success_status
    elif ok:
        status = 207
    else:  # all failed: 400, or the one status all the errors share (412 ALREADY_MODIFIED)
        codes = {str(i.get("code")) for i in items}
        status = STATUS.get(codes.pop(), 400) if len(codes) == 1 else 400
    return JSON({key: items}, status_code=status)
