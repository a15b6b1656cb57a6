"""``GET /crm/{version}/{module}/search``: criteria, email, phone or word (zoho-crm-api.md §3.6)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from crmlite.api.context import (
    caller,
    module_of,
    require_module_scope,
    run,
    scope_mismatch,
    store_of,
    version_of,
)
from crmlite.api.records import invalid_method
from crmlite.api.responses import JSON, no_content
from crmlite.auth import scopes
from crmlite.records import search as engine

# Zoho asks for this scope besides the module's READ (Z7:search-records "Scope").
SEARCH_SCOPES = ("zohosearch.securesearch.read", "zohosearch.securesearch.all")


async def search(request: Request) -> Response:
    if request.method != "GET":
        raise invalid_method()
    principal = await caller(request)
    module = module_of(principal, request.path_params["module"])
    require_module_scope(principal, module, scopes.READ)
    if not any(s in principal.scopes for s in SEARCH_SCOPES):
        raise scope_mismatch()
    query = engine.search_query(module, request.query_params)
    data, info = await run(request, engine.search_records, store_of(request), principal, module,
                           query, version_of(request))
    if not data:
        return no_content()
    return JSON({"data": data, "info": info})
