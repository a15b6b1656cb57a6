"""Delete records by id (or by external value): one transaction, their keys with them."""

from __future__ import annotations

from typing import Any

import orjson

from crmlite.auth.principal import Principal
from crmlite.errors import RecordError, RequestError, invalid_id, required_param
from crmlite.records.external import key_lock, resolve
from crmlite.records.keys import derived_rows
from crmlite.records.writer import MAX_RECORDS
from crmlite.schema.datatypes import int_text, key_of, record_id
from crmlite.schema.dictionary import Field, Module
from crmlite.store.base import Store, Tx


def delete_records(store: Store, principal: Principal, module: Module, ids: list[str],
                   by: Field | None = None) -> list[dict[str, Any]]:
    """One ``data[]`` item per id (or ``by`` value), in the given order."""
    ids = [i.strip() for i in ids if i.strip()]
    if not ids:
        raise required_param("ids")
    if len(ids) > MAX_RECORDS:
        raise RequestError("LIMIT_EXCEEDED", "Record count exceeded",
                           {"limit": MAX_RECORDS, "param_name": "ids"})
    with store.write() as tx:
        if by is None:
            parsed = [record_id(i) for i in ids]
            targets = [int(p) if p is not None else None for p in parsed]
        else:
            keys = [key_of(by, i) or "" for i in ids]
            tx.lock_keys(key_lock(principal, by, k) for k in keys)
            found = resolve(tx, principal, module, by, keys)
            targets = [found.get(k) for k in keys]
        wanted = sorted({t for t in targets if t is not None})
        existing: set[int] = set()
        if wanted:
            among, args = tx.member_of("id", wanted, "bigint")
            rows = tx.execute(tx.lock_rows(
                f"SELECT id, data FROM records WHERE org_id = ? AND module_id = ? AND {among} "
                "ORDER BY id"), (principal.org_id, module.id, *args))
            existing = {rid for rid, _ in rows}
            delete_keys(tx, principal.org_id, module, rows)
    items = []
    deleted: set[int] = set()
    for raw, rid in zip(ids, targets, strict=True):
        if rid is not None and rid in existing and rid not in deleted:
            deleted.add(rid)
            text = int_text(rid)
            details = {"id": text} if by is None else {by.api_name: raw, "id": text}
            items.append({"code": "SUCCESS", "details": details, "message": "record deleted",
                          "status": "success"})
        elif by is None:
            items.append(invalid_id(raw).body())
        else:
            items.append(RecordError("INVALID_DATA", "The value of the external field is invalid.",
                                     {by.api_name: raw}).body())
    return items


def delete_keys(tx: Tx, org_id: int, module: Module, rows: list[tuple[int, str]]) -> None:
    """Delete records (``(id, data)`` rows) with their key rows (records/keys.py)."""
    if not rows:
        return
    unique, matches = [], []
    for rid, data in rows:
        keys, matched = derived_rows(module, orjson.loads(data))
        unique += [(org_id, module.id, fid, k) for fid, (_, k) in keys.items()]
        matches += [(org_id, module.id, fid, k, rid) for fid, k in matched.items()]
    if unique:
        tx.executemany("DELETE FROM unique_keys WHERE org_id = ? AND module_id = ? AND "
                       "field_id = ? AND scope = 0 AND value = ?", sorted(unique))
    if matches:
        tx.executemany("DELETE FROM match_keys WHERE org_id = ? AND module_id = ? AND "
                       "field_id = ? AND value = ? AND record_id = ?", sorted(matches))
    gone = sorted(rid for rid, _ in rows)
    if module.user_key_fields:
        by_record, args = tx.member_of("record_id", gone, "bigint")
        tx.execute(f"DELETE FROM unique_keys WHERE scope <> 0 AND {by_record}", args)
    among, args = tx.member_of("id", gone, "bigint")
    tx.execute(f"DELETE FROM records WHERE {among}", args)
