"""The ASGI application: routes, and Zoho's error shape for everything that goes wrong."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crmlite.api import oauth, records, search, settings, users
from crmlite.api.arrival import ArrivalOrder, InOrder
from crmlite.api.context import url_pattern
from crmlite.api.responses import JSON, error
from crmlite.errors import RequestError
from crmlite.store.base import Store

log = logging.getLogger("crmlite")
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def not_found(request: Request) -> Response:
    raise url_pattern()


async def on_zoho_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return error(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error(url_pattern())
    if exc.status_code == 405:
        return error(records.invalid_method())
    return JSON({"code": "INVALID_REQUEST", "details": {}, "message": str(exc.detail),
                 "status": "error"}, status_code=exc.status_code)


async def on_crash(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return JSON({"code": "INTERNAL_ERROR", "details": {}, "message": "Internal Server Error",
                 "status": "error"}, status_code=500)


def create_app(store: Store) -> Starlette:
    crm = "/crm/{version}"
    routes = [
        Route("/oauth/v2/token", oauth.token, methods=ALL_METHODS),
        Route("/oauth/v2/token/revoke", oauth.revoke, methods=ALL_METHODS),
        Route("/oauth/v2/auth", oauth.authorize, methods=ALL_METHODS),
        Route(f"{crm}/settings/fields", settings.fields, methods=ALL_METHODS),
        Route(f"{crm}/settings/fields/{{field_id}}", settings.field, methods=ALL_METHODS),
        Route(f"{crm}/settings/modules", settings.modules, methods=ALL_METHODS),
        Route(f"{crm}/settings/modules/{{api_name}}", settings.module, methods=ALL_METHODS),
        Route(f"{crm}/users", users.users, methods=ALL_METHODS),
        Route(f"{crm}/users/{{user_id}}", users.user, methods=ALL_METHODS),
        Route(f"{crm}/org", users.org, methods=ALL_METHODS),
        Route(f"{crm}/{{module}}/upsert", records.upsert, methods=ALL_METHODS),
        Route(f"{crm}/{{module}}/search", search.search, methods=ALL_METHODS),
        Route(f"{crm}/{{module}}", records.module_collection, methods=ALL_METHODS),
        Route(f"{crm}/{{module}}/{{record_id}}", records.module_record, methods=ALL_METHODS),
        Route("/{path:path}", not_found, methods=ALL_METHODS),
    ]
    # SQLite's requests hold the loop while they run: each round's in their clients' order
    middleware = [Middleware(InOrder, order=ArrivalOrder())] if store.dialect == "sqlite" else []
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            RequestError: on_zoho_error,
            HTTPException: on_http_error,
            Exception: on_crash,
        },
    )
    app.state.store = store
    return app
