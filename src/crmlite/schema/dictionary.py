"""Modules and fields of one org, loaded from the store and cached per process.

Every change to an org's modules or fields bumps ``orgs.meta_version`` in the same
transaction; a cached dictionary is used only while its version is current, so
several server processes see each other's custom fields at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from crmlite.schema.datatypes import JSON_TYPES
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

    @property
    def json_type(self) -> str:
        return JSON_TYPES.get(self.data_type, "string")

    @property
    def is_key(self) -> bool:
        """Its values live in ``unique_keys``: unique fields and external fields."""
        return self.unique or self.external_type is not None

    @property
    def lookup_module(self) -> str | None:
        return self.extra.get("lookup_module")


@dataclass(slots=True, eq=False)
class Module:
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

    def field(self, api_name: str) -> Field | None:
        return self.by_key.get(api_name.lower())

    @property
    def system_duplicate_field(self) -> Field | None:
        return self.field(self.duplicate_check_field) if self.duplicate_check_field else None

    @property
    def external_fields(self) -> list[Field]:
        return [f for f in self.fields if f.external_type]

    @property
    def unique_fields(self) -> list[Field]:
        return [f for f in self.fields if f.unique]

    @property
    def key_fields(self) -> list[Field]:
        return [f for f in self.fields if f.is_key]

    @property
    def mandatory_fields(self) -> list[Field]:
        return [f for f in self.fields if f.system_mandatory]

    @property
    def match_field(self) -> Field | None:
        """The system duplicate-check field when it is not unique: matched via ``match_keys``."""
        f = self.system_duplicate_field
        return f if f is not None and not f.is_key else None


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
        module = by_id[f.module_id]
        module.fields.append(f)
        module.by_key[f.api_name.lower()] = f
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
