"""Metadata routes: fields and modules of the caller's org."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import Response

from crmlite.api.context import (
    caller,
    json_body,
    require_family_scope,
    run,
    store_of,
)
from crmlite.api.records import invalid_method
from crmlite.api.responses import JSON, batch
from crmlite.auth.principal import Principal
from crmlite.errors import RequestError, invalid_module, required_param
from crmlite.schema import fields as field_meta
from crmlite.schema import modules as module_meta
from crmlite.schema.dictionary import Module
from crmlite.store.base import Store

READ = ("read",)
CREATE = ("create", "write")


def _module_param(request: Request, principal: Principal) -> Module:
    name = request.query_params.get("module")
    if not name:
        raise required_param("module")
    module = principal.dictionary.module(name)
    if module is None:  # the fields API names the parameter (fields.json InvalidParamError)
        raise RequestError("INVALID_MODULE", "the module name given seems to be invalid",
                           {"api_name": "module"})
    return module


async def fields(request: Request) -> Response:
    principal = await caller(request)
    if request.method == "GET":
        require_family_scope(principal, "settings.fields", READ)
        module = _module_param(request, principal)
        return JSON({"fields": [field_meta.describe(f, principal.dictionary)
                                for f in module.fields]})
    if request.method == "POST":
        require_family_scope(principal, "settings.fields", CREATE)
        module = _module_param(request, principal)
        body = await json_body(request)
        items = await run(request, _create_fields, store_of(request), principal, module,
                          body.get("fields"))
        return batch(items, 201, key="fields")
    raise invalid_method()


def _create_fields(store: Store, principal: Principal, module: Module, bodies: object) -> list:
    with store.write() as tx:
        return field_meta.create_fields(tx, principal.org_id, module, principal.dictionary, bodies)


async def field(request: Request) -> Response:
    if request.method != "GET":
        raise invalid_method()
    principal = await caller(request)
    require_family_scope(principal, "settings.fields", READ)
    module = _module_param(request, principal)
    wanted = request.path_params["field_id"]
    for f in module.fields:
        if str(f.id) == wanted or f.api_name.lower() == wanted.lower():
            return JSON({"fields": [field_meta.describe(f, principal.dictionary)]})
    raise RequestError("INVALID_DATA", "the id given seems to be invalid", {"id": wanted})


def modified_since(request: Request) -> int | None:
    """``If-Modified-Since`` (ISO-8601 as Zoho documents it, or an HTTP date) as epoch seconds."""
    raw = request.headers.get("if-modified-since")
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            moment = None
    if moment is None:
        raise RequestError("INVALID_DATA", "invalid data", {"param_name": "If-Modified-Since",
                                                            "expected_data_type": "datetime"})
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def not_modified() -> Response:
    return Response(status_code=304)


async def modules(request: Request) -> Response:
    principal = await caller(request)
    if request.method == "GET":
        require_family_scope(principal, "settings.modules", READ)
        since = modified_since(request)
        chosen = [m for m in principal.dictionary.modules
                  if since is None or m.modified_time > since]
        if not chosen:
            return not_modified()
        return JSON({"modules": [module_meta.describe(m, principal.dictionary)
                                 for m in chosen]})
    if request.method == "POST":
        require_family_scope(principal, "settings.modules", CREATE)
        body = await json_body(request)
        items = await run(request, _create_modules, store_of(request), principal,
                          body.get("modules"))
        return batch(items, 201, key="modules")
    raise invalid_method()


def _create_modules(store: Store, principal: Principal, bodies: object) -> list:
    with store.write() as tx:
        return module_meta.create_modules(tx, principal.org_id, principal.dictionary, bodies)


async def module(request: Request) -> Response:
    if request.method != "GET":
        raise invalid_method()
    principal = await caller(request)
    require_family_scope(principal, "settings.modules", READ)
    name = request.path_params["api_name"]
    m = principal.dictionary.module(name)
    if m is None and name.isdigit():
        m = principal.dictionary.by_id.get(int(name))
    if m is None:
        raise invalid_module(name)
    since = modified_since(request)
    if since is not None and m.modified_time <= since:
        return not_modified()
    return JSON({"modules": [module_meta.describe(m, principal.dictionary, with_fields=True)]})
