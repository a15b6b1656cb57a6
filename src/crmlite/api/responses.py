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
    """A batch reply of ``items``; its status as :func:`batch_status` says."""
    codes = [None if i.get("status") == "success" else str(i.get("code")) for i in items]
    return JSON({key: items}, status_code=batch_status(codes, success_status))


def batch_json(items: bytes, codes: list[str | None], success_status: int = 200) -> Response:
    """A batch reply whose ``data`` array is rendered already (``items``: JSON), with each
    item's error code in ``codes`` (None for a success)."""
    return Response(b'{"data":' + items + b"}", batch_status(codes, success_status),
                    media_type=JSON_TYPE)


def batch_status(codes: list[str | None], success_status: int = 200) -> int:
    """200/201 when every item succeeded, 207 when some failed, 400 when all failed (or the
    one status all the errors share: 412 ALREADY_MODIFIED)."""
    failed = {code for code in codes if code is not None}
    if not failed:
        return success_status
    if None in codes:
        return 207
    return STATUS.get(failed.pop(), 400) if len(failed) == 1 else 400
