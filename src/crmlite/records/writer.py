"""Insert, update and upsert: plan each record of a batch, then apply the batch at once.

A batch (up to 100 records) is one transaction. Inside it the engine

1. locks the batch's keys (PostgreSQL: advisory locks in sorted order; SQLite already
   holds its single write lock),
2. looks up every key of the batch with one query per key field,
3. plans the records in request order against an in-memory view of the keys, so a later
   record sees what an earlier one wrote,
4. writes the result with a few ``executemany`` statements.

Uniqueness of external and unique values is the database's UNIQUE constraint on
``unique_keys``; should a concurrent writer win a race anyway, the transaction rolls
back and the batch is planned again.

An upsert batch whose records may all be new goes to the store in one call first, where
the store can do that (records/new.py): it inserts them if none of their keys is stored,
else writes nothing and the batch is planned as above.
"""

from __future__ import annotations

import time
from bisect import insort
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from crmlite.auth.principal import Principal
from crmlite.errors import RecordError, RequestError, array_param, invalid_id
from crmlite.records.external import key_lock, key_lock_prefix, resolve, scope_of
from crmlite.records.keys import derived_rows
from crmlite.records.new import insert_new
from crmlite.records.render import user_ref, write_details, write_details_json
from crmlite.records.stored import (
    JOINED_RECORD_COLUMNS,
    RECORD_COLUMNS,
    StoredRecord,
    full_name,
)
from crmlite.records.validation import (
    Candidate,
    candidate,
    check_mandatory,
    invalid,
    json_path,
    mandatory_missing,
)
from crmlite.schema.datatypes import int_text, key_of, record_id
from crmlite.schema.dictionary import Field, Module
from crmlite.store.base import MATCHES_OF, ConflictError, Store, Tx, chunks

Mode = Literal["insert", "update", "upsert"]
MAX_RECORDS = 100
MAX_ATTEMPTS = 8


@dataclass(slots=True, init=False)
class Outcome:
    """What happened to one record of the batch."""

    index: int
    error: RecordError | None
    record: StoredRecord | None
    action: Literal["insert", "update"]
    duplicate_field: str | None
    more_records: bool

    # Written out (init=False) so that mypyc compiles it (see records/stored.py StoredRecord).
    def __init__(self, index: int, error: RecordError | None = None,
                 record: StoredRecord | None = None,
                 action: Literal["insert", "update"] = "insert",
                 duplicate_field: str | None = None, more_records: bool = False) -> None:
        self.index = index
        self.error = error
        self.record = record
        self.action = action
        self.duplicate_field = duplicate_field
        self.more_records = more_records


def duplicate_check_order(module: Module, listed: Sequence[Any] | None) -> list[Field]:
    """Zoho's precedence (§4.2): the listed fields in the given order, then the remaining
    user-unique fields; the system field only when listed or when the list is absent."""
    system = module.system_duplicate_field
    if listed is None:
        order = [system] if system is not None else []
    else:
        order = []
        for position, name in enumerate(listed):
            f = module.field(name) if isinstance(name, str) else None
            if f is None or not (f is system or f.unique):
                raise RequestError(
                    "INVALID_DATA", "invalid data",
                    {"api_name": name if isinstance(name, str) else None,
                     "json_path": f"$.duplicate_check_fields[{position}]",
                     "reason": "not a system duplicate-check field nor a unique field"},
                )
            if f not in order:
                order.append(f)
    order += [f for f in module.unique_fields if f not in order]
    return order


class Replan(Exception):
    """Planning needs values the prefetch skipped: plan the batch again, reading them all."""


class Batch:
    """One batch's view of the keys and records it touches, inside its transaction."""

    def __init__(self, tx: Tx, principal: Principal, module: Module, now: int, mode: Mode,
                 complete: bool = False) -> None:
        self.tx = tx
        self.mode = mode
        self.complete = complete  # read every match key, not only the ones expected
        self.principal = principal
        self.module = module
        self.now = now
        self.org_id = principal.org_id
        self.user_id = principal.user.id
        self.unique: dict[tuple[int, int, str], int] = {}
        self.matches: dict[tuple[int, str], list[int]] = {}
        self.fetched_matches: set[str] = set()  # the match_field values read
        self.records: dict[int, StoredRecord] = {}
        # key lookups read the records they find in the same statement (see key_rows)
        self.read_along = tx.single_writer
        self.existing_lookups: set[tuple[str, int]] = set()
        self.new_ids: list[int] = []  # handed out, not yet used (last first)
        self.unplanned = 0  # records of the batch not planned yet
        self.by: Field | None = None  # update addressed by this external field
        self.full_name = module.field("Full_Name") is not None
        # each key field's scope for this caller (records/external.py's rule), looked up
        # for every key of every record
        self.scopes: dict[Field, int] = {f: scope_of(f, principal) for f in module.key_fields}
        self.unmodified_since: int | None = None  # If-Unmodified-Since, epoch seconds

    # -- keys -------------------------------------------------------------------------------
    def lock_names(self, cands: Iterable[Candidate]) -> Iterator[str]:
        """The batch's external and unique keys (lazily: SQLite never asks). The values of
        the system duplicate-check field are locked after these have been looked up, and
        only those :meth:`prefetch` looks up; records are locked as they are read
        (:meth:`load_records`). Every batch locks in this order, each set in one statement,
        so two batches never wait for each other's locks in opposite orders."""
        prefixes: dict[Field, str] = {}
        match_field = self.module.match_field
        for c in cands:
            for f, k in c.keys.items():
                if k is not None and f is not match_field:
                    prefix = prefixes.get(f)
                    if prefix is None:
                        prefix = prefixes[f] = key_lock_prefix(self.principal, f)
                    yield prefix + k
            if c.target_key is not None and self.by is not None:
                yield key_lock(self.principal, self.by, c.target_key)

    def prefetch(self, cands: list[Candidate]) -> None:
        """Read what planning needs: the records the batch's keys match, and their keys.

        Every external and unique value is looked up (each can clash with another record);
        the system duplicate-check field (match_keys) only in upserts, and, unless the
        batch is ``complete``, only for records no external value matched: those go to
        the record their external value names. Should planning need a value it skipped (an
        earlier record of the batch took that external value away), it raises
        :class:`Replan` and the batch is planned again, complete. Those values are locked
        right before they are looked up (an update or insert locks all of them): a record
        its external value names needs no lock on its Email (PostgreSQL).
        """
        tx, module = self.tx, self.module
        ids: set[int] = set()
        if self.by is not None:
            targets = resolve(tx, self.principal, module, self.by,
                              (c.target_key for c in cands if c.target_key is not None))
            for c in cands:
                if c.target_key is not None:
                    c.target_id = targets.get(c.target_key)
        ids.update(c.target_id for c in cands if c.target_id is not None)
        looked_up = {f: values for f in module.key_fields
                     if (values := {k for c in cands if (k := c.keys.get(f)) is not None})}
        match_field = module.match_field
        matching = match_field is not None and self.mode == "upsert" and any(
            c.keys.get(match_field) is not None for c in cands)
        if not ids and len(looked_up) + matching == 1:
            # One lookup statement finds every record the batch reads (a batch holds at most
            # MAX_RECORDS values, one chunk): it may lock them as it reads them, in id order.
            self.read_along = True
        for f, values in looked_up.items():
            self.fetch_unique(f, values, ids)
        if match_field is not None:
            # an upsert looks up (and locks) only what no external value matched, unless
            # complete; an insert or update looks up none, and locks all
            unmatched = [c for c in cands if not matching or not self.matched_externally(c)]
            wanted = {k for c in (cands if self.complete else unmatched)
                      if (k := c.keys.get(match_field)) is not None}
            prefix = key_lock_prefix(self.principal, match_field)
            if matching and wanted and not self.read_along:
                # the locks, the lookup and the ids of the records that may be new, at once
                rows, new_ids = tx.lock_and_match(
                    (prefix + k for k in wanted), self.org_id, module.id, match_field.id,
                    sorted(wanted), len(unmatched))
                self.fetched_matches |= wanted
                self.add_matches(match_field, rows, ids)
                self.new_ids = new_ids[::-1]
            else:
                if wanted:
                    tx.lock_keys(prefix + k for k in wanted)
                if matching:
                    self.fetch_matches(match_field, wanted, ids)
        self.load_records(sorted(ids))
        if len(self.records) < len(ids):
            self.forget_deleted(ids)
        self.check_lookups(cands)

    def forget_deleted(self, ids: set[int]) -> None:
        """Keys read before the record locks may name records deleted meanwhile (a delete
        that held a record's lock commits while this batch waits for it; PostgreSQL): such
        keys are gone with their record."""
        gone = ids - self.records.keys()
        self.unique = {key: rid for key, rid in self.unique.items() if rid not in gone}
        for key, holders in list(self.matches.items()):
            self.matches[key] = [rid for rid in holders if rid not in gone]

    def fetch_unique(self, f: Field, values: set[str], ids: set[int]) -> None:
        scope = self.scopes[f]
        for part in chunks(sorted(values)):
            among, args = self.tx.member_of("k.value", part, "text")
            for value, rid in self.key_rows(
                "unique_keys", "k.org_id = ? AND k.module_id = ? AND k.field_id = ? AND "
                f"k.scope = ? AND {among}", (self.org_id, self.module.id, f.id, scope, *args),
            ):
                self.unique[(f.id, scope, value)] = rid
                ids.add(rid)

    def fetch_matches(self, f: Field, values: set[str], ids: set[int]) -> None:
        self.fetched_matches |= values
        for part in chunks(sorted(values)):
            among, args = self.tx.member_of("k.value", part, "text")
            self.add_matches(f, self.key_rows(
                "match_keys", MATCHES_OF.format(among=among),
                (self.org_id, self.module.id, f.id, *args),
            ), ids)

    def add_matches(self, f: Field, rows: Iterable[Sequence[Any]], ids: set[int]) -> None:
        """The (value, record id) rows of ``f``'s match keys, read."""
        for value, rid in rows:
            holders = self.matches.setdefault((f.id, value), [])
            holders.append(rid)
            if len(holders) > 1:  # oldest first: record ids grow with their creation
                holders.sort()
            ids.add(rid)

    def key_rows(self, table: str, where: str, params: Sequence[Any]) -> list[tuple[str, int]]:
        """The (value, record id) of the rows of key ``table`` (as ``k``) that ``where``
        selects. The records are read along, in the same statement, by a single writer
        (nothing can change them before it commits) or when this is the batch's only
        lookup (they are locked as they are read, :meth:`Tx.lock_rows`); otherwise they are
        read once all are known, locked in one statement (:meth:`load_records`)."""
        tx = self.tx
        if not self.read_along:
            return tx.execute(f"SELECT k.value, k.record_id FROM {table} k WHERE {where}",
                              params)
        sql = (f"SELECT k.value, {JOINED_RECORD_COLUMNS} FROM {table} k "
               f"JOIN records r ON r.id = k.record_id WHERE {where}")
        if not tx.single_writer:
            sql = tx.lock_rows(sql + " ORDER BY r.id", of="r")
        found = []
        for value, *record in tx.execute(sql, params):
            rid = record[2]
            if rid not in self.records:
                self.add_record(record)
            found.append((value, rid))
        return found

    def matched_externally(self, c: Candidate) -> bool:
        """Whether one of the record's external values names a stored record."""
        for f in self.module.external_fields:
            k = c.keys.get(f)
            if k is not None and (f.id, self.scopes[f], k) in self.unique:
                return True
        return False

    def load_records(self, ids: list[int]) -> None:
        """Read the records the batch may change (those not read yet), and so their key
        rows (records/keys.py). Another batch may reach these records through other keys:
        they are locked as they are read, in id order, or its update and ours would
        overwrite each other (PostgreSQL)."""
        tx, records = self.tx, self.records
        for part in chunks([rid for rid in ids if rid not in records]):
            among, args = tx.member_of("id", part, "bigint")
            # by id alone (the primary key; SQLite would rather walk records_by_module), then
            # checked: an id given by the client may name another module's record
            for row in tx.execute(tx.lock_rows(
                f"SELECT org_id, module_id, {RECORD_COLUMNS} FROM records WHERE {among} "
                "ORDER BY id"), args,
            ):
                self.add_record(row)
        if self.module.user_key_fields:
            for part in chunks(ids):
                self.read_user_keys(part)

    def add_record(self, row: Sequence[Any]) -> None:
        """A record read as ``org_id, module_id, RECORD_COLUMNS``, if it is this module's."""
        org, mod, rid, owner, creator, created, modifier, modified, raw = row
        module = self.module
        if org != self.org_id or mod != module.id:
            return
        # Its key rows go to the record only: every value a record of the batch looks up
        # was read by fetch_unique / fetch_matches, stored record or not.
        data = orjson.loads(raw)
        self.records[rid] = StoredRecord(rid, owner, creator, created, modifier, modified,
                                         data, *derived_rows(module, data))

    def read_user_keys(self, ids: Sequence[int]) -> None:
        """User-based external keys: their scope (the writer) is only in ``unique_keys``."""
        tx, records = self.tx, self.records
        by_record, args = tx.member_of("record_id", ids, "bigint")
        for field_id, scope, value, rid in tx.execute(
            "SELECT field_id, scope, value, record_id FROM unique_keys "
            f"WHERE scope <> 0 AND {by_record}", args,
        ):
            rec = records.get(rid)
            if rec is not None:
                rec.keys[field_id] = (scope, value)
                self.unique[(field_id, scope, value)] = rid

    def check_lookups(self, cands: list[Candidate]) -> None:
        """Which lookup targets exist: one query per target module."""
        wanted: dict[str, set[int]] = {}
        for c in cands:
            for f, rid in c.lookups:
                if f.data_type == "lookup":
                    wanted.setdefault(f.lookup_module or "", set()).add(rid)
        for module_name, ids in wanted.items():
            target = self.principal.dictionary.module(module_name)
            if target is None:
                continue
            for part in chunks(sorted(ids)):
                among, args = self.tx.member_of("id", part, "bigint")
                for (rid,) in self.tx.execute(
                    f"SELECT id FROM records WHERE org_id = ? AND module_id = ? AND {among}",
                    (self.org_id, target.id, *args),
                ):
                    self.existing_lookups.add((module_name, rid))

    def find(self, f: Field, k: str | None) -> tuple[int | None, bool]:
        """The record a key of ``f`` matches (oldest first), and whether several match."""
        if k is None:
            return None, False
        if f.is_key:
            return self.unique.get((f.id, self.scopes[f], k)), False
        if not self.complete and k not in self.fetched_matches:
            raise Replan(f"{f.api_name} values not read")
        found = self.matches.get((f.id, k))
        if not found:
            return None, False
        return found[0], len(found) > 1

    # -- planning ---------------------------------------------------------------------------
    def plan(self, c: Candidate, mode: Mode, order: list[Field]) -> Outcome:
        out = Outcome(c.index)
        self.unplanned -= 1
        if c.error is not None:
            out.error = c.error
            return out
        if c.owner_id is not None or c.lookups:
            error = self.check_references(c)
            if error is not None:
                out.error = error
                return out
        target: int | None = None
        if mode == "update":
            if c.target_id not in self.records:
                out.error = (invalid_id(c.target_id) if self.by is None else
                             invalid(c.index, self.by.api_name,
                                     "The value of the external field is invalid."))
                return out
            target = c.target_id
        elif mode == "upsert":
            keys = c.keys
            for f in self.module.external_fields:
                k = keys.get(f)
                if k is not None:
                    target = self.unique.get((f.id, self.scopes[f], k))
                    if target is not None:
                        out.duplicate_field = f.api_name
                        break
            if target is None:
                for f in order:
                    if f in keys:
                        target, out.more_records = self.find(f, keys[f])
                        if target is not None:
                            out.duplicate_field = f.api_name
                            break
        error = self.check_unmodified(target) if self.unmodified_since is not None else None
        if error is None and (target is None or c.clears):  # an update can only clear one
            error = self.check_mandatory(c, target is None)
        out.error = error or self.check_duplicates(c, target)
        if out.error is None:
            out.action = "insert" if target is None else "update"
            out.record = self.apply(c, target)
        else:
            out.duplicate_field, out.more_records = None, False
        return out

    def check_unmodified(self, target: int | None) -> RecordError | None:
        """``If-Unmodified-Since``: a record changed after that moment is not overwritten."""
        if target is None or self.unmodified_since is None:
            return None
        rec = self.records[target]
        if rec.is_new or rec.modified_time <= self.unmodified_since:
            return None
        return RecordError("ALREADY_MODIFIED",
                           "record updated time has already passed if-unmodified-since time",
                           write_details([rec], self.principal.users,
                                         self.principal.user.tz)[0])

    def check_references(self, c: Candidate) -> RecordError | None:
        users = self.principal.users
        if c.owner_id is not None:
            owner = users.get(c.owner_id)
            if owner is None or owner.status != "active":
                return invalid(c.index, "Owner", "invalid data", expected_data_type="ownerlookup")
        for f, rid in c.lookups:
            if f.data_type == "userlookup":
                ok = rid in users
            else:
                module_name = f.lookup_module or ""
                ok = (module_name, rid) in self.existing_lookups or (
                    module_name.lower() == self.module.api_name.lower()
                    and rid in self.records and self.records[rid].is_new
                )
            if not ok:
                return invalid(c.index, f.api_name, "invalid data", id=int_text(rid))
        return None

    def check_mandatory(self, c: Candidate, inserting: bool) -> RecordError | None:
        return check_mandatory(self.module, c, inserting)

    def check_duplicates(self, c: Candidate, target: int | None) -> RecordError | None:
        for f, k in c.keys.items():
            if k is None or not f.is_key:
                continue
            holder = self.unique.get((f.id, self.scopes[f], k))
            if holder is not None and holder != target:
                return self.duplicate(c.index, f, self.records[holder])
        return None

    def duplicate(self, index: int, f: Field, holder: StoredRecord) -> RecordError:
        owner = dict(user_ref(self.principal.users, holder.owner_id))
        user = self.principal.users.get(holder.owner_id)
        if user is not None:
            owner["zuid"] = user.zuid
        return RecordError("DUPLICATE_DATA", "duplicate data", {
            "api_name": f.api_name,
            "json_path": json_path(index, f.api_name),
            "more_records": False,
            "duplicate_record": {
                "id": int_text(holder.id),
                "module": {"api_name": self.module.api_name, "id": int_text(self.module.id)},
                "Owner": owner,
            },
        })

    def apply(self, c: Candidate, target: int | None) -> StoredRecord:
        user_id, now = self.user_id, self.now
        if target is None:
            rid = self.new_id()
            rec = self.records[rid] = StoredRecord(
                rid, c.owner_id or user_id, user_id, now, user_id, now, c.values.copy(),
                stored_keys={}, stored_matches={}, is_new=True)
            for f, k in c.keys.items():  # a new record holds no keys yet
                if k is None:
                    continue
                if f.is_key:
                    scope = self.scopes[f]
                    rec.keys[f.id] = (scope, k)
                    self.unique[(f.id, scope, k)] = rid
                else:  # the newest record of all: last among the holders
                    rec.matches[f.id] = k
                    self.matches.setdefault((f.id, k), []).append(rid)
        else:
            rec = self.records[target]
            rec.dirty = True
            rec.modified_by, rec.modified_time = user_id, now
            if c.owner_id is not None:
                rec.owner_id = c.owner_id
            rec.data.update(c.values)
            for f, k in c.keys.items():
                if f.is_key:
                    old = rec.keys.get(f.id)
                    if (old[1] if old is not None else None) != k:
                        self.move_key(rec, f, k)
                elif rec.matches.get(f.id) != k:
                    self.move_match(rec, f, k)
        data = rec.data
        if c.clears:  # a stored record holds no empty values
            for name in [name for name, value in c.values.items() if value is None]:
                del data[name]
        if self.full_name:
            data["Full_Name"] = full_name(data)
        for f in self.module.indexed_fields:  # the other email fields' match_keys rows
            if f.api_name in c.values:
                k = key_of(f, data.get(f.api_name))
                if rec.matches.get(f.id) != k:
                    self.move_match(rec, f, k)
        return rec

    def new_id(self) -> int:
        """The next new record id; they are handed out for the rest of the batch at once."""
        if not self.new_ids:
            self.new_ids = self.tx.next_ids(self.unplanned + 1)[::-1]  # + this one
        return self.new_ids.pop()

    def move_key(self, rec: StoredRecord, f: Field, new: str | None) -> None:
        old = rec.keys.get(f.id)
        if old is not None and old[1] == new:
            return
        if rec.stored_keys is None:
            rec.stored_keys = dict(rec.keys)
        if old is not None:
            self.unique.pop((f.id, *old), None)
            del rec.keys[f.id]
        if new is not None:
            scope = self.scopes[f]
            rec.keys[f.id] = (scope, new)
            self.unique[(f.id, scope, new)] = rec.id

    def move_match(self, rec: StoredRecord, f: Field, new: str | None) -> None:
        old = rec.matches.get(f.id)
        if old == new:
            return
        if rec.stored_matches is None:
            rec.stored_matches = dict(rec.matches)
        if old is not None:
            holders = self.matches.get((f.id, old))
            if holders and rec.id in holders:
                holders.remove(rec.id)
            del rec.matches[f.id]
        if new is not None:
            rec.matches[f.id] = new
            holders = self.matches.setdefault((f.id, new), [])
            if rec.is_new:  # the newest record of all
                holders.append(rec.id)
            else:
                records = self.records
                insort(holders, rec.id, key=lambda rid: (records[rid].created_time, rid))

    # -- writing ----------------------------------------------------------------------------
    def write(self) -> None:
        tx, org_id, module_id = self.tx, self.org_id, self.module.id
        touched = sorted((r for r in self.records.values() if r.is_new or r.dirty),
                         key=lambda r: r.id)
        new = [r for r in touched if r.is_new]
        changed = [r for r in touched if not r.is_new]
        if new:
            tx.executemany(
                "INSERT INTO records (id, org_id, module_id, owner_id, created_by, created_time, "
                "modified_by, modified_time, data) VALUES (?,?,?,?,?,?,?,?,?)",
                [(r.id, org_id, module_id, r.owner_id, r.created_by, r.created_time,
                  r.modified_by, r.modified_time, orjson.dumps(r.data).decode()) for r in new],
            )
        if changed:
            tx.executemany(
                "UPDATE records SET owner_id = ?, modified_by = ?, modified_time = ?, data = ? "
                "WHERE id = ?",
                [(r.owner_id, r.modified_by, r.modified_time, orjson.dumps(r.data).decode(), r.id)
                 for r in changed],
            )
        gone_keys, new_keys, gone_matches, new_matches = [], [], [], []
        for r in touched:
            if (stored := r.stored_keys) is not None:
                for fid, sv in stored.items():
                    if r.keys.get(fid) != sv:
                        gone_keys.append((org_id, module_id, fid, *sv))
                for fid, sv in r.keys.items():
                    if stored.get(fid) != sv:
                        new_keys.append((org_id, module_id, fid, *sv, r.id))
            if (stored_matches := r.stored_matches) is not None:
                for fid, value in stored_matches.items():
                    if r.matches.get(fid) != value:
                        gone_matches.append((org_id, module_id, fid, value, r.id))
                for fid, value in r.matches.items():
                    if stored_matches.get(fid) != value:
                        new_matches.append((org_id, module_id, fid, value, r.id))
        if gone_keys:
            tx.executemany(
                "DELETE FROM unique_keys WHERE org_id = ? AND module_id = ? AND field_id = ? "
                "AND scope = ? AND value = ?", sorted(gone_keys))
        if gone_matches:
            tx.executemany(
                "DELETE FROM match_keys WHERE org_id = ? AND module_id = ? AND field_id = ? "
                "AND value = ? AND record_id = ?", sorted(gone_matches))
        if new_keys:
            tx.executemany(
                "INSERT INTO unique_keys (org_id, module_id, field_id, scope, value, record_id) "
                "VALUES (?,?,?,?,?,?)", sorted(new_keys))
        if new_matches:
            tx.executemany(
                "INSERT INTO match_keys (org_id, module_id, field_id, value, record_id) "
                "VALUES (?,?,?,?,?)", sorted(new_matches))


def candidates(module: Module, data: Any, mode: Mode, path_id: Any = None,
               by: Field | None = None) -> list[Candidate]:
    """Validate a request's ``data`` array; request-level errors raise RequestError.

    On the update path each record names its target by ``id``, by ``path_id`` (the URL's
    record id or external value), or, with ``by``, by its value of that external field.
    """
    data = array_param(data, "data", MAX_RECORDS, "Record count exceeded")
    cands = []
    for index, body in enumerate(data):
        cand = candidate(module, index, body, with_id=mode == "update")
        if mode == "update" and cand.error is None:
            target_by(cand, body, path_id, by)
        cands.append(cand)
    return cands


def target_by(cand: Candidate, body: dict[str, Any], path_id: Any, by: Field | None) -> None:
    if by is not None:
        given = cand.keys.get(by)
        if path_id is not None:
            target = key_of(by, path_id)
            if by in cand.keys and given != target:
                cand.fail(RecordError("NOT_ALLOWED", "the external field addressed by the "
                                      "URL cannot be changed",
                                      {"api_name": by.api_name,
                                       "json_path": json_path(cand.index, by.api_name)}))
                return
        else:
            target = given
        if target is None:
            cand.fail(mandatory_missing(cand.index, by.api_name))
        cand.target_key = target
        return
    raw = path_id if path_id is not None else body.get("id")
    if raw is None:
        cand.fail(mandatory_missing(cand.index, "id"))
        return
    rid = record_id(raw)
    if rid is None:
        cand.fail(invalid_id(raw))
    else:
        cand.target_id = int(rid)


def write_records(store: Store, principal: Principal, module: Module, data: Any, mode: Mode,
                  duplicate_check_fields: Any = None, path_id: Any = None,
                  by: Field | None = None, unmodified_since: int | None = None) -> list[Outcome]:
    """Insert, update or upsert the records of one request; one transaction for the batch."""
    if duplicate_check_fields is not None and not isinstance(duplicate_check_fields, list):
        raise RequestError("INVALID_DATA", "invalid data",
                           {"expected_data_type": "jsonarray", "api_name": "duplicate_check_fields",
                            "json_path": "$.duplicate_check_fields"})
    order = duplicate_check_order(module, duplicate_check_fields) if mode == "upsert" else []
    cands = candidates(module, data, mode, path_id, by if mode == "update" else None)
    if (mode == "upsert" and duplicate_check_fields is None and unmodified_since is None
            and store.inserts_new()):
        inserted = insert_new(store, principal, module, cands)
        if inserted is not None:
            return new_outcomes(module, cands, inserted)
    complete = False
    for _attempt in range(MAX_ATTEMPTS):
        try:
            with store.write() as tx:
                if (grant := principal.unchecked) is not None:  # auth/principal.py
                    tx.hold_grant(grant.token_hash, grant.meta_version)
                batch = Batch(tx, principal, module, int(time.time()), mode, complete)
                batch.by = by if mode == "update" else None
                batch.unmodified_since = unmodified_since
                valid = [c for c in cands if c.error is None]
                tx.lock_keys(batch.lock_names(valid))
                batch.prefetch(valid)
                batch.unplanned = len(cands)
                outcomes = [batch.plan(c, mode, order) for c in cands]
                batch.write()
                return outcomes
        except ConflictError:
            continue
        except Replan:  # rolled back before anything was written: plan again, complete
            complete = True
            continue
    raise RequestError("TOO_MANY_REQUESTS",
                       "the records could not be written because of concurrent writes; try again",
                       {})


def new_outcomes(module: Module, cands: list[Candidate],
                 inserted: list[tuple[int, StoredRecord | None]]) -> list[Outcome]:
    """The outcomes of a batch of new records inserted in one call (records/new.py), as
    the planner gives them."""
    outcomes = [Outcome(c.index, error=c.error) for c in cands]
    for index, record in inserted:
        if record is None:
            outcomes[index].error = check_mandatory(module, cands[index], True)
        else:
            outcomes[index].record = record
    return outcomes


_SUCCESS = b'{"code":"SUCCESS",'
_DETAILS = b'"details":'
_MESSAGES = {"insert": b',"message":"record added","status":"success"}',
             "update": b',"message":"record updated","status":"success"}'}


def items_json(outcomes: list[Outcome], principal: Principal, mode: Mode,
               by: Field | None = None) -> bytes:
    """The ``data[]`` array Zoho answers, one item per record (echoing ``by``'s value, if
    given), as JSON. A record was written exactly when its outcome holds it (no error)."""
    written = [o.record for o in outcomes if o.record is not None]
    details = iter(write_details_json(written, principal.users, principal.user.tz))
    upsert = mode == "upsert"
    fields: dict[str | None, bytes] = {None: b"null"}  # duplicate_field's values
    parts = []
    for outcome in outcomes:
        rec = outcome.record
        if rec is None:
            assert outcome.error is not None
            parts.append(orjson.dumps(outcome.error.body()))
            continue
        d = next(details)
        if outcome.more_records:
            d += b',"more_records":true'
        if by is not None:
            d += b"," + orjson.dumps({by.api_name: rec.data.get(by.api_name)})[1:-1]
        action = outcome.action
        if upsert:
            name = outcome.duplicate_field
            field = fields.get(name)
            if field is None:
                field = fields[name] = orjson.dumps(name)
            head = b"".join((_SUCCESS, b'"duplicate_field":', field, b',"action":"',
                             action.encode(), b'",', _DETAILS))
        else:
            head = _SUCCESS + _DETAILS
        parts.append(b"".join((head, d, b"}", _MESSAGES[action])))
    return b"[" + b",".join(parts) + b"]"


def item_codes(outcomes: list[Outcome]) -> list[str | None]:
    """Each item's error code, None for a record written (for the reply's HTTP status)."""
    return [o.error.code if o.record is None and o.error is not None else None
            for o in outcomes]
