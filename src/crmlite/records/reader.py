"""Get and list records, rendered as Zoho renders them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from crmlite.auth.principal import Principal
from crmlite.errors import RequestError, invalid_data, required_param
from crmlite.records.external import resolve
from crmlite.records.render import format_time, user_ref
from crmlite.records.stored import RECORD_COLUMNS, StoredRecord, stored_record
from crmlite.schema.datatypes import int_text, key_of, record_id, render_datetime
from crmlite.schema.dictionary import Field, Module
from crmlite.store.base import Store, Tx, chunks

MAX_PER_PAGE = 200
MAX_FIELDS = 50
MAX_DISCRETE = 2000
MAX_IDS = 100
# Created_Time order is id order: ids grow with creation (schema v3 has no index on it).
SORT_COLUMNS = {"id": "id", "created_time": "id", "modified_time": "modified_time"}
SORT_NAMES = {"id": "id", "created_time": "Created_Time", "modified_time": "Modified_Time"}


def lookup_names(tx: Tx, principal: Principal, module: Module, fields: list[Field],
                 records: list[StoredRecord]) -> dict[tuple[str, int], Any]:
    """Display names of the records that lookups point at: one query per target module."""
    wanted: dict[str, set[int]] = {}
    for f in fields:
        if f.data_type == "lookup":
            for r in records:
                ref = r.data.get(f.api_name)
                if ref:
                    wanted.setdefault(f.lookup_module or "", set()).add(int(ref["id"]))
    names: dict[tuple[str, int], Any] = {}
    for module_name, ids in wanted.items():
        target = principal.dictionary.module(module_name)
        if target is None:
            continue
        for part in chunks(sorted(ids)):
            among, args = tx.member_of("id", part, "bigint")
            for rid, data in tx.execute(
                f"SELECT id, data FROM records WHERE org_id = ? AND module_id = ? AND {among}",
                (principal.org_id, target.id, *args),
            ):
                values = orjson.loads(data)
                names[(module_name, rid)] = values.get(target.display_field) or values.get(
                    "Last_Name")
    return names


def render(rec: StoredRecord, fields: list[Field], principal: Principal,
           names: dict[tuple[str, int], Any]) -> dict[str, Any]:
    users, tz, data = principal.users, principal.user.tz, rec.data
    out: dict[str, Any] = {}
    for f in fields:
        name = f.api_name
        if name == "Owner":
            out[name] = user_ref(users, rec.owner_id, with_email=True)
        elif name == "Created_By":
            out[name] = user_ref(users, rec.created_by, with_email=True)
        elif name == "Modified_By":
            out[name] = user_ref(users, rec.modified_by, with_email=True)
        elif name == "Created_Time":
            out[name] = format_time(rec.created_time, tz)
        elif name == "Modified_Time":
            out[name] = format_time(rec.modified_time, tz)
        elif name == "id":
            continue
        else:
            value = data.get(name)
            if value is not None:
                if f.data_type == "lookup":
                    rid = int(value["id"])
                    value = {"name": names.get((f.lookup_module or "", rid)), "id": int_text(rid)}
                elif f.data_type == "userlookup":
                    value = user_ref(users, int(value["id"]))
                elif f.data_type == "datetime":
                    value = render_datetime(value, tz)
            out[name] = value
    out["id"] = int_text(rec.id)
    return out


def get_record(store: Store, principal: Principal, module: Module, rid: Any,
               by: Field | None = None) -> dict | None:
    """One record by id, or by its value of the external field ``by``; None when absent."""
    with store.read() as tx:
        ident: int | str | None
        if by is None:
            ident = record_id(rid)
        else:
            key = key_of(by, rid)
            found = resolve(tx, principal, module, by, [key]) if key else {}
            ident = found.get(key or "")
        if ident is None:
            return None
        rows = tx.execute(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE org_id = ? AND module_id = ? AND id = ?",
            (principal.org_id, module.id, int(ident)),
        )
        if not rows:
            return None
        rec = stored_record(rows[0])
        names = lookup_names(tx, principal, module, module.fields, [rec])
    return render(rec, module.fields, principal, names)


@dataclass(slots=True)
class ListQuery:
    fields: list[Field]
    page: int
    per_page: int
    sort_by: str
    sort_order: str
    ids: list[int] | None
    external_ids: list[str] | None = None  # with X-EXTERNAL: ids are values of `by`
    by: Field | None = None


def _positive(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_data(param_name=name, expected_data_type="integer") from None
    if value < 1:
        raise invalid_data(param_name=name, expected_data_type="integer")
    return value


def list_query(module: Module, params: Mapping[str, str], fields_required: bool,
               by: Field | None = None) -> ListQuery:
    raw_fields = params.get("fields")
    if raw_fields:
        names = [n.strip() for n in raw_fields.split(",") if n.strip()]
        if len(names) > MAX_FIELDS:
            raise RequestError("LIMIT_EXCEEDED", "Fields limit exceeded",
                               {"limit": MAX_FIELDS, "param_name": "fields"})
        wanted = {n.lower() for n in names}
        fields = [f for f in module.fields if f.api_name.lower() in wanted]
    elif fields_required:
        raise required_param("fields")
    else:
        fields = list(module.fields)
    page = _positive(params, "page", 1)
    per_page = _positive(params, "per_page", MAX_PER_PAGE)
    if per_page > MAX_PER_PAGE:
        raise RequestError("LIMIT_EXCEEDED", "per_page limit exceeded",
                           {"limit": MAX_PER_PAGE, "param_name": "per_page"})
    if (page - 1) * per_page >= MAX_DISCRETE:
        raise RequestError("DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                           "You can only get the first 2000 records without using page_token",
                           {"limit": MAX_DISCRETE})
    sort_by = (params.get("sort_by") or "id").lower()
    if sort_by not in SORT_COLUMNS:
        raise invalid_data(param_name="sort_by", supported_values=list(SORT_NAMES.values()))
    sort_order = (params.get("sort_order") or "desc").lower()
    if sort_order not in ("asc", "desc"):
        raise invalid_data(param_name="sort_order", supported_values=["asc", "desc"])
    ids, external_ids = None, None
    if params.get("ids") and len(params["ids"].split(",")) > MAX_IDS:
        raise RequestError("LIMIT_EXCEEDED", "ids limit exceeded",
                           {"limit": MAX_IDS, "param_name": "ids"})
    if params.get("ids") and by is not None:
        external_ids = [k for k in (key_of(by, i) for i in params["ids"].split(",")) if k]
    elif params.get("ids"):
        parsed = [record_id(i) for i in params["ids"].split(",")]
        if any(i is None for i in parsed):
            raise invalid_data(param_name="ids", expected_data_type="bigint")
        ids = [int(i) for i in parsed if i is not None]
    return ListQuery(fields, page, per_page, sort_by, sort_order, ids, external_ids, by)


def list_records(store: Store, principal: Principal, module: Module,
                 query: ListQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    column = SORT_COLUMNS[query.sort_by]
    direction = "ASC" if query.sort_order == "asc" else "DESC"
    where, args = "org_id = ? AND module_id = ?", [principal.org_id, module.id]
    with store.read() as tx:
        ids = query.ids
        if query.external_ids is not None and query.by is not None:
            ids = sorted(resolve(tx, principal, module, query.by, query.external_ids).values())
        if ids == []:
            where += " AND 0 = 1"
        elif ids is not None:
            among, id_args = tx.member_of("id", ids, "bigint")
            where += f" AND {among}"
            args += id_args
        order = f"ORDER BY {column} {direction}, id {direction}"
        page = f"{order} LIMIT ? OFFSET ?"
        if column != "id":
            # the page's ids first (sorting only id and Modified_Time; no index carries
            # Modified_Time, migrations.py v4), then the rows of that page
            where, page = f"id IN (SELECT id FROM records WHERE {where} {page})", order
        rows = tx.execute(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE {where} {page}",
            (*args, query.per_page + 1, (query.page - 1) * query.per_page),
        )
        records = [stored_record(r) for r in rows[: query.per_page]]
        names = lookup_names(tx, principal, module, query.fields, records)
    data = [render(r, query.fields, principal, names) for r in records]
    info = {
        "per_page": query.per_page,
        "next_page_token": None,
        "count": len(data),
        "sort_by": SORT_NAMES[query.sort_by],
        "page": query.page,
        "previous_page_token": None,
        "page_token_expiry": None,
        "sort_order": query.sort_order,
        "more_records": len(rows) > query.per_page,
    }
    return data, info
