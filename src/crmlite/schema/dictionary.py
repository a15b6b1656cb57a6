"""Modules and fields of one org, loaded from the store and cached per process.

Every change to an org's modules or fields bumps ``orgs.meta_version`` in the same
transaction; a cached dictionary is used only while its version is current, so
several server processes see each other's custom fields at once.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from crmlite.schema.datatypes import (
    JSON_TYPES,
    PATTERNS,
    TEXT_TYPES,
    VALIDATORS,
    read_only_value,
)
from crmlite.store.base import Store, Tx


@dataclass(slots=True, eq=False)
class Field:
    id: int
    module_id: int
    api_name: str
    field_label: str
    data_type: str
    length: int | None
    decimal_place: int | None
    system_mandatory: bool
    read_only: bool
    custom_field: bool
    unique: bool
    external_type: str | None
    external_show: bool
    extra: dict[str, Any]
    sequence_number: int
    # Its values live in ``unique_keys``: unique fields and external fields.
    is_key: bool = field(init=False)
    # Its values are matched at all (unique_keys, or match_keys for the system field).
    is_matched: bool = field(init=False, default=False)

    # datatypes' validator for this field's data type
    validator: Callable[[Field, Any], Any] = field(init=False)
    # A writable field of a string type: a string that fits (``max_length``, no NUL, and,
    # stripped, ``pattern`` if the type has one) is stored without calling the validator
    # (records/validation.py's fast path).
    text_like: bool = field(init=False, default=False)
    max_length: int = field(init=False, default=0)
    pattern: re.Pattern[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.is_key = self.unique or self.external_type is not None
        self.is_matched = self.is_key
        self.validator = VALIDATORS.get(self.data_type, read_only_value)
        if self.data_type == "autonumber":
            self.read_only = True
        self.pattern = PATTERNS.get(self.data_type)
        self.text_like = (self.data_type in TEXT_TYPES or self.pattern is not None) and (
            not self.read_only)
        self.max_length = self.length or sys.maxsize

    @property
    def json_type(self) -> str:
        return JSON_TYPES.get(self.data_type, "string")

    @property
    def lookup_module(self) -> str | None:
        return self.extra.get("lookup_module")


@dataclass(slots=True, eq=False)
class Module:
    """A module and its fields; the derived lists are computed once, by :meth:`index`."""

    id: int
    api_name: str
    module_name: str
    singular_label: str
    plural_label: str
    generated_type: str
    scope_name: str
    duplicate_check_field: str | None
    display_field: str
    sequence_number: int
    created_time: int
    modified_time: int
    fields: list[Field] = field(default_factory=list)
    by_key: dict[str, Field] = field(default_factory=dict)
    by_name: dict[str, Field] = field(default_factory=dict)
    system_duplicate_field: Field | None = None
    # The system duplicate-check field when it is not unique: matched via ``match_keys``.
    match_field: Field | None = None
    external_fields: list[Field] = field(default_factory=list)
    unique_fields: list[Field] = field(default_factory=list)
    key_fields: list[Field] = field(default_factory=list)
    # The module's other email fields (neither external, unique nor the system
    # duplicate-check field): their values are kept in ``match_keys`` too, never matched
    # by an upsert, so that a search by email (records/search.py) reads an index.
    indexed_fields: list[Field] = field(default_factory=list)
    # The fields whose key rows follow from a record's values alone (the matched ones but
    # user-based external fields, whose rows also name the user who wrote them, and the
    # indexed ones).
    derived_key_fields: list[Field] = field(default_factory=list)
    user_key_fields: list[Field] = field(default_factory=list)
    mandatory_fields: list[Field] = field(default_factory=list)
    # The ``text_like`` fields by api_name (records/validation.py's fast path).
    text_fields: dict[str, Field] = field(default_factory=dict)

    def field(self, api_name: str) -> Field | None:
        found = self.by_name.get(api_name)
        return found if found is not None else self.by_key.get(api_name.lower())

    def index(self) -> None:
        fields = self.fields
        self.by_name = {f.api_name: f for f in fields}
        self.by_key = {f.api_name.lower(): f for f in fields}
        self.external_fields = [f for f in fields if f.external_type]
        self.unique_fields = [f for f in fields if f.unique]
        self.key_fields = [f for f in fields if f.is_key]
        self.mandatory_fields = [f for f in fields if f.system_mandatory]
        system = self.by_key.get((self.duplicate_check_field or "").lower())
        self.system_duplicate_field = system
        self.match_field = system if system is not None and not system.is_key else None
        if self.match_field is not None:
            self.match_field.is_matched = True
        self.text_fields = {f.api_name: f for f in fields if f.text_like}
        self.user_key_fields = [f for f in fields if f.external_type == "user"]
        self.indexed_fields = [f for f in fields if f.data_type == "email" and not f.is_matched]
        self.derived_key_fields = [f for f in fields if (f.is_matched and f.external_type != "user")
                                   or f in self.indexed_fields]


@dataclass(slots=True)
class DataDictionary:
    org_id: int
    version: int
    modules: list[Module]
    by_key: dict[str, Module]
    by_id: dict[int, Module]

    def module(self, api_name: str) -> Module | None:
        return self.by_key.get(api_name.lower())


FIELD_COLUMNS = (
    "id, module_id, api_name, field_label, data_type, length, decimal_place, system_mandatory, "
    "read_only, custom_field, is_unique, external_type, external_show, extra, sequence_number"
)
MODULE_COLUMNS = (
    "id, api_name, module_name, singular_label, plural_label, generated_type, scope_name, "
    "duplicate_check_field, display_field, sequence_number, created_time, modified_time"
)

_cache: dict[tuple[str, int], DataDictionary] = {}


def _field(row: tuple[Any, ...]) -> Field:
    return Field(
        id=row[0], module_id=row[1], api_name=row[2], field_label=row[3], data_type=row[4],
        length=row[5], decimal_place=row[6], system_mandatory=bool(row[7]),
        read_only=bool(row[8]), custom_field=bool(row[9]), unique=bool(row[10]),
        external_type=row[11], external_show=bool(row[12]), extra=orjson.loads(row[13]),
        sequence_number=row[14],
    )


def read(tx: Tx, org_id: int, version: int) -> DataDictionary:
    modules = [
        Module(*row)
        for row in tx.execute(
            f"SELECT {MODULE_COLUMNS} FROM modules WHERE org_id = ? ORDER BY sequence_number, id",
            (org_id,),
        )
    ]
    by_id = {m.id: m for m in modules}
    for row in tx.execute(
        f"SELECT {FIELD_COLUMNS} FROM fields WHERE org_id = ? ORDER BY sequence_number, id",
        (org_id,),
    ):
        f = _field(row)
        by_id[f.module_id].fields.append(f)
    for module in modules:
        module.index()
    return DataDictionary(org_id, version, modules, {m.api_name.lower(): m for m in modules}, by_id)


def current_version(tx: Tx, org_id: int) -> int:
    rows = tx.execute("SELECT meta_version FROM orgs WHERE id = ?", (org_id,))
    return int(rows[0][0]) if rows else 0


def load(store: Store, org_id: int, version: int | None = None) -> DataDictionary:
    """The org's dictionary at ``version`` (read from the store when ``None``)."""
    with store.read() as tx:
        if version is None:
            version = current_version(tx, org_id)
        key = (store.url, org_id)
        cached = _cache.get(key)
        if cached is not None and cached.version == version:
            return cached
        dictionary = read(tx, org_id, version)
    _cache[key] = dictionary
    return dictionary


def bump_version(tx: Tx, org_id: int) -> None:
    tx.execute("UPDATE orgs SET meta_version = meta_version + 1 WHERE id = ?", (org_id,))
