"""Delete records by id: one transaction, their keys with them."""

from __future__ import annotations

from typing import Any

from crmlite.auth.principal import Principal
from crmlite.errors import RequestError, invalid_id, required_param
from crmlite.records.writer import MAX_RECORDS
from crmlite.schema.datatypes import record_id
from crmlite.schema.dictionary import Module
from crmlite.store.base import Store, placeholders


def delete_records(store: Store, principal: Principal, module: Module,
                   ids: list[str]) -> list[dict[str, Any]]:
    """One ``data[]`` item per id, in the given order."""
    ids = [i.strip() for i in ids if i.strip()]
    if not ids:
        raise required_param("ids")
    if len(ids) > MAX_RECORDS:
        raise RequestError("LIMIT_EXCEEDED", "Record count exceeded",
                           {"limit": MAX_RECORDS, "param_name": "ids"})
    parsed = [record_id(i) for i in ids]
    wanted = sorted({int(p) for p in parsed if p is not None})
    with store.write() as tx:
        existing: set[int] = set()
        if wanted:
            tx.lock_keys(f"{principal.org_id}:record:{rid}" for rid in wanted)
            marks = placeholders(len(wanted))
            existing = {row[0] for row in tx.execute(
                f"SELECT id FROM records WHERE org_id = ? AND module_id = ? AND id IN ({marks})",
                (principal.org_id, module.id, *wanted))}
        gone = sorted(existing)
        if gone:
            marks = placeholders(len(gone))
            tx.execute(f"DELETE FROM unique_keys WHERE record_id IN ({marks})", gone)
            tx.execute(f"DELETE FROM match_keys WHERE record_id IN ({marks})", gone)
            tx.execute(f"DELETE FROM records WHERE id IN ({marks})", gone)
    items = []
    deleted: set[int] = set()
    for raw, rid in zip(ids, parsed, strict=True):
        if rid is not None and int(rid) in existing and int(rid) not in deleted:
            deleted.add(int(rid))
            items.append({"code": "SUCCESS", "details": {"id": rid}, "message": "record deleted",
                          "status": "success"})
        else:
            items.append(invalid_id(raw).body())
    return items
