"""A record's key rows, derived from its values.

The writer stores, for every matched value of a record, ``key_of(field, value)``: in
``unique_keys`` (external and unique fields, scope 0 = the org) or ``match_keys`` (the
module's system duplicate-check field). So the rows of a stored record follow from its
``data``, and the engine computes them instead of reading them back. User-based external
values are the exception: their rows carry the user who wrote them (``scope``), which the
values do not tell; they are read by record (index ``unique_keys_user_scoped``).
"""

from __future__ import annotations

from typing import Any

import orjson

from crmlite.schema import dictionary
from crmlite.schema.datatypes import key_of
from crmlite.schema.dictionary import Module
from crmlite.store.base import Tx

BACKFILL_CHUNK = 1000  # records read at a time by index_email_values


def derived_rows(module: Module, data: dict[str, Any]
                 ) -> tuple[dict[int, tuple[int, str]], dict[int, str]]:
    """The derivable key rows of a record with ``data``, as :class:`StoredRecord` holds
    them: ``unique_keys`` (field id -> (scope 0, value)) and ``match_keys`` (field id ->
    value)."""
    keys: dict[int, tuple[int, str]] = {}
    matches: dict[int, str] = {}
    for f in module.derived_key_fields:
        k = key_of(f, data.get(f.api_name))
        if k is not None:
            if f.is_key:
                keys[f.id] = (0, k)
            else:
                matches[f.id] = k
    return keys, matches


def index_email_values(tx: Tx) -> None:
    """The ``match_keys`` rows of the email fields that crmlite before schema version 9 did
    not keep (``Module.indexed_fields``), for every stored record (migrations.py v9)."""
    for (org_id,) in tx.execute("SELECT id FROM orgs ORDER BY id"):
        for module in dictionary.read(tx, org_id, 0).modules:
            fields = module.indexed_fields
            last = 0
            while fields:
                rows = tx.execute(
                    "SELECT id, data FROM records WHERE org_id = ? AND module_id = ? AND id > ? "
                    f"ORDER BY id LIMIT {BACKFILL_CHUNK}", (org_id, module.id, last))
                if not rows:
                    break
                found = []
                for rid, raw in rows:
                    data = orjson.loads(raw)
                    for f in fields:
                        k = key_of(f, data.get(f.api_name))
                        if k is not None:
                            found.append((org_id, module.id, f.id, k, rid))
                if found:
                    tx.executemany("INSERT INTO match_keys (org_id, module_id, field_id, value, "
                                   "record_id) VALUES (?,?,?,?,?)", found)
                last = rows[-1][0]
