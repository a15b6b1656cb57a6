"""Batches of new records: upserts the store inserts in one call, planner aside.

The first load of a module (a sync job's initial run, a bulk load through the API) sends
upserts whose records are all new. When a batch's outcome cannot depend on its order or on
anything but "none of its keys is stored" (every record keyed by one org-based external
field and by the module's system duplicate-check field at most, no value repeated in the
batch, none cleared, no owner, lookup, unique or other email field given (schema/
dictionary.py ``indexed_fields``), no ``duplicate_check_fields`` nor
``If-Unmodified-Since``), the store (PostgreSQL: :meth:`Tx.insert_new`, one round
trip, no ``BEGIN`` nor ``COMMIT``) takes the locks the planner would take, in its order,
looks every key up and, if none is stored, inserts every record that holds its mandatory
values. Should one be stored, it writes nothing and the planner takes the batch
(records/writer.py); that module's next batches then go to the planner straight away for
a while (:data:`PLANNED_AFTER_A_MATCH`), as a batch that matched is often followed by more,
and for twice as long after each further call that matched (up to
:data:`PLANNED_AT_MOST`): a load of updates, or of batches mixing new and stored records,
soon stops paying a call for nothing; while such a call tries again, the module's other
batches go to the planner (concurrent requests would otherwise all try at once).
A lost race (a deadlock, a lock wait beyond ``lock_timeout``) goes to the planner too, whose
retries take it.
"""

from __future__ import annotations

import time

import orjson

from crmlite.auth.principal import Principal
from crmlite.records.external import key_lock_prefix
from crmlite.records.stored import StoredRecord, full_name
from crmlite.records.validation import Candidate, check_mandatory
from crmlite.schema.dictionary import Field, Module
from crmlite.store.base import ConflictError, NewRecords, Store

# batches of a module that go to the planner after one found a stored key (per process),
# doubled after each further call that found one, up to PLANNED_AT_MOST
PLANNED_AFTER_A_MATCH = 32
PLANNED_AT_MOST = 1024
_planned: dict[tuple[str, int, int], int] = {}  # batches still to plan
_skipped: dict[tuple[str, int, int], int] = {}  # how many the last call that matched skipped


def key_fields(module: Module, cands: list[Candidate]) -> tuple[Field | None, Field | None] | None:
    """The external field and the system duplicate-check field (either may be None) that
    key the valid records of a batch whose records may all be new, or None when the
    batch is not such a batch (see the module's docstring)."""
    if module.unique_fields:
        return None
    match = module.match_field
    indexed = module.indexed_fields  # their match_keys rows: the planner writes them
    ext: Field | None = None
    exts: set[str] = set()
    matches: set[str] = set()
    for c in cands:
        if c.error is not None:
            continue
        if c.clears or c.owner_id is not None or c.lookups:
            return None
        for f in indexed:
            if f.api_name in c.values:
                return None
        for f, k in c.keys.items():
            if k is None:
                return None
            if f is match:
                if k in matches:
                    return None
                matches.add(k)
            elif f is ext or (ext is None and f.external_type == "org"):
                if k in exts:
                    return None
                ext = f
                exts.add(k)
            else:
                return None
    return ext, match


def insert_new(store: Store, principal: Principal, module: Module,
               cands: list[Candidate]) -> list[tuple[int, StoredRecord | None]] | None:
    """Insert an upsert batch's valid records in one call if none of their keys is stored:
    per valid record, in order, its index and the record inserted (None: a mandatory value
    missing, nothing inserted); None when the batch may not go this way or a key is stored
    (nothing written: plan it)."""
    slot = (store.url, principal.org_id, module.id)
    if _planned.get(slot):
        _planned[slot] -= 1
        return None
    fields = key_fields(module, cands)
    valid = [c for c in cands if c.error is None]
    if fields is None or not valid:
        return None
    ext, match = fields
    nothing: list[str | None] = [None] * len(valid)
    exts = [c.keys.get(ext) for c in valid] if ext is not None else nothing
    matches = [c.keys.get(match) for c in valid] if match is not None else nothing
    with_full_name = module.field("Full_Name") is not None
    datas = [{**c.values, "Full_Name": full_name(c.values)} if with_full_name else c.values
             for c in valid]
    ext_prefix = key_lock_prefix(principal, ext) if ext is not None else ""
    match_prefix = key_lock_prefix(principal, match) if match is not None else ""
    grant = principal.unchecked
    batch = NewRecords(
        grant=(grant.token_hash, grant.meta_version) if grant is not None else None,
        org_id=principal.org_id, module_id=module.id, user_id=principal.user.id,
        now=int(time.time()),
        ext_field=ext.id if ext is not None else None,
        ext_locks=[ext_prefix + k for k in exts if k is not None], exts=exts,
        match_field=match.id if match is not None else None,
        match_locks=[match_prefix + k for k in matches if k is not None], matches=matches,
        complete=[check_mandatory(module, c, True) is None for c in valid],
        docs=[orjson.dumps(data).decode() for data in datas],
    )
    last = _skipped.get(slot, 0)
    if last:
        # The last call found a stored key: this one tries again while the module's other
        # batches (a server's concurrent requests) go to the planner, as if it will too.
        _planned[slot] = last
    try:
        with store.write() as tx:
            rows = tx.insert_new(batch)
    except ConflictError:  # a race lost (a deadlock, a lock wait too long): the planner's
        return None        # retries take it
    if not rows:
        _planned[slot] = _skipped[slot] = min(last * 2 or PLANNED_AFTER_A_MATCH,
                                              PLANNED_AT_MOST)
        return None
    _skipped.pop(slot, None)
    _planned.pop(slot, None)
    user_id, now = batch.user_id, batch.now
    return [(valid[n].index, None if rid is None else StoredRecord(
        rid, user_id, user_id, now, user_id, now, datas[n], is_new=True)) for n, rid in rows]
