"""Per-request plumbing shared by the routes: the store, the caller, the body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from crmlite.auth import scopes
from crmlite.auth.principal import Principal, authenticate, remembered
from crmlite.auth.tokens import TokenRefused
from crmlite.errors import RequestError, invalid_module
from crmlite.schema.dictionary import Module
from crmlite.store.base import Store
from crmlite.store.bridge import greenlet_spawn

VERSIONS = {"v2": 2.0, "v2.1": 2.1, "v3": 3.0, "v4": 4.0, "v5": 5.0, "v6": 6.0, "v7": 7.0,
            "v8": 8.0}
T = TypeVar("T")


def store_of(request: Request) -> Store:
    return request.app.state.store


async def run(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the engine on the event loop.

    SQLite: inline (one writer, no thread hop; api/arrival.py orders the requests).
    PostgreSQL: in a greenlet, whose store calls await asyncpg on this loop while other
    requests run (store/bridge.py). Any other store: in a thread.
    """
    dialect = store_of(request).dialect
    if dialect == "sqlite":
        return fn(*args, **kwargs)
    if dialect == "postgresql":
        return await greenlet_spawn(fn, *args, **kwargs)
    return await run_in_threadpool(fn, *args, **kwargs)


def version_of(request: Request) -> float:
    version = VERSIONS.get(request.path_params.get("version", ""))
    if version is None:
        raise url_pattern()
    return version


def url_pattern() -> RequestError:
    return RequestError("INVALID_URL_PATTERN",
                        "Please check if the URL trying to access is a correct one", {})


def scope_mismatch() -> RequestError:
    return RequestError("OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL", {})


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "").strip()
    for prefix in ("zoho-oauthtoken ", "bearer "):
        if header.lower().startswith(prefix):
            return header[len(prefix):].strip() or None
    return None


async def caller(request: Request, remember: bool = False) -> Principal:
    """The principal of the request's token. ``remember``: one this process checked before
    will do, for a write that holds its grant (auth/principal.py)."""
    version_of(request)
    token = bearer(request)
    if token is None:
        raise RequestError("AUTHENTICATION_FAILURE", "Authentication failed", {})
    if remember and (principal := remembered(store_of(request), token)) is not None:
        return principal
    try:
        principal = await run(request, authenticate, store_of(request), token)
    except TokenRefused:
        principal = None
    if principal is None:
        raise RequestError("INVALID_TOKEN", "invalid oauth token", {})
    return principal


def module_of(principal: Principal, name: str) -> Module:
    module = principal.dictionary.module(name)
    if module is None:
        raise invalid_module(name)
    return module


def require_module_scope(principal: Principal, module: Module, ops: tuple[str, ...]) -> None:
    if not scopes.allows_module(principal.scopes, module.scope_name, ops):
        raise scope_mismatch()


def require_family_scope(principal: Principal, family: str, ops: tuple[str, ...]) -> None:
    if not scopes.allows_family(principal.scopes, family, ops):
        raise scope_mismatch()


async def json_body(request: Request) -> dict[str, Any]:
    """The body as JSON whatever the Content-Type (Zoho's SDK sends none)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError("INVALID_DATA", "invalid data",
                           {"reason": "the request body is not valid JSON"}) from None
    if not isinstance(body, dict):
        raise RequestError("INVALID_DATA", "invalid data",
                           {"expected_data_type": "jsonobject", "json_path": "$"})
    return body
