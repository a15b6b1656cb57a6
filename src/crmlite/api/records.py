"""Record routes: insert, update, upsert, get, list, delete."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from crmlite.api.context import (
    caller,
    json_body,
    module_of,
    require_module_scope,
    run,
    store_of,
    version_of,
)
from crmlite.api.responses import JSON, batch, batch_json, no_content
from crmlite.auth import scopes
from crmlite.auth.principal import Principal
from crmlite.errors import RequestError, required_param
from crmlite.records import reader
from crmlite.records.deletion import delete_records
from crmlite.records.external import external_field
from crmlite.records.writer import Mode, item_codes, items_json, write_records
from crmlite.schema.dictionary import Field, Module
from crmlite.store.base import GrantChanged

# Zoho asks for `fields` on list calls from v7 on (zoho-crm-api.md §3.4, §10).
FIELDS_REQUIRED_FROM = 7.0


def invalid_method() -> RequestError:
    return RequestError("INVALID_REQUEST_METHOD",
                        "The http request method type is not a valid one",
                        {"resource_path_index": 0})


def addressed_by(request: Request, module: Module) -> Field | None:
    """The external field of an ``X-EXTERNAL`` header (GET, PUT and DELETE use it)."""
    return external_field(module, request.headers.get("x-external"))


def unmodified_since(request: Request) -> int | None:
    """``If-Unmodified-Since: 2024-01-15T15:26:49+05:30`` as epoch seconds."""
    raw = request.headers.get("if-unmodified-since")
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise RequestError("INVALID_DATA", "invalid data", {"param_name": "If-Unmodified-Since",
                                                            "expected_data_type": "datetime"})
    return int(moment.timestamp())


async def _write(request: Request, mode: Mode, ops: tuple[str, ...], success: int,
                 path_id: str | None = None) -> Response:
    principal = await caller(request, remember=True)
    if principal.unchecked is None:  # checked against the store just now
        return await _write_as(principal, request, mode, ops, success, path_id)
    try:
        return await _write_as(principal, request, mode, ops, success, path_id)
    except GrantChanged:  # revoked, or the org's metadata changed since it was checked
        pass
    except RequestError as exc:
        # refused before its write held the grant: perhaps for a module or a field the
        # remembered dictionary does not know yet (but a busy store stays busy)
        if exc.code == "TOO_MANY_REQUESTS":
            raise
    return await _write_as(await caller(request), request, mode, ops, success, path_id)


async def _write_as(principal: Principal, request: Request, mode: Mode, ops: tuple[str, ...],
                    success: int, path_id: str | None) -> Response:
    module = module_of(principal, request.path_params["module"])
    require_module_scope(principal, module, ops)
    by = addressed_by(request, module) if mode == "update" else None
    since = unmodified_since(request) if mode != "insert" else None
    body = await json_body(request)
    outcomes = await run(request, write_records, store_of(request), principal, module,
                         body.get("data"), mode, body.get("duplicate_check_fields"), path_id, by,
                         since)
    return batch_json(items_json(outcomes, principal, mode, by), item_codes(outcomes), success)


async def upsert(request: Request) -> Response:
    if request.method != "POST":
        raise invalid_method()
    return await _write(request, "upsert", scopes.UPSERT, 200)


async def module_collection(request: Request) -> Response:
    method = request.method
    if method == "POST":
        return await _write(request, "insert", scopes.CREATE, 201)
    if method == "PUT":
        return await _write(request, "update", scopes.UPDATE, 200)
    if method == "GET":
        return await _list(request)
    if method == "DELETE":
        principal = await caller(request)
        module = module_of(principal, request.path_params["module"])
        require_module_scope(principal, module, scopes.DELETE)
        ids = request.query_params.get("ids")
        if ids is None:
            raise required_param("ids")
        replies = await run(request, delete_records, store_of(request), principal, module,
                            ids.split(","), addressed_by(request, module))
        return batch(replies)
    raise invalid_method()


async def _list(request: Request) -> Response:
    principal = await caller(request)
    module = module_of(principal, request.path_params["module"])
    require_module_scope(principal, module, scopes.READ)
    query = reader.list_query(module, request.query_params,
                              version_of(request) >= FIELDS_REQUIRED_FROM,
                              addressed_by(request, module))
    data, info = await run(request, reader.list_records, store_of(request), principal, module,
                           query)
    if not data:
        return no_content()
    return JSON({"data": data, "info": info})


async def module_record(request: Request) -> Response:
    method = request.method
    record_id = request.path_params["record_id"]
    if method == "PUT":
        return await _write(request, "update", scopes.UPDATE, 200, path_id=record_id)
    principal = await caller(request)
    module = module_of(principal, request.path_params["module"])
    if method == "GET":
        require_module_scope(principal, module, scopes.READ)
        record = await run(request, reader.get_record, store_of(request), principal, module,
                           record_id, addressed_by(request, module))
        return no_content() if record is None else JSON({"data": [record]})
    if method == "DELETE":
        require_module_scope(principal, module, scopes.DELETE)
        replies = await run(request, delete_records, store_of(request), principal, module,
                            [record_id], addressed_by(request, module))
        return batch(replies)
    raise invalid_method()
