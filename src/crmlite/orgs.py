"""Orgs and their users; the bootstrap that makes an empty database usable.

The first command that meets an empty database creates one org, its admin user and
the standard modules with their standard fields (schema/catalogue.py).
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from crmlite.schema.catalogue import STANDARD_MODULES, SYSTEM_FIELDS, FieldSpec, ModuleSpec
from crmlite.schema.dictionary import bump_version, current_version
from crmlite.store.base import Store, Tx

DEFAULT_ADMIN_EMAIL = "admin@crmlite.local"
USER_COLUMNS = ("id, org_id, zuid, email, first_name, last_name, role, profile, status, "
                "time_zone, created_time, created_by")


@dataclass(slots=True)
class Org:
    id: int
    zgid: str
    company_name: str
    primary_email: str
    time_zone: str
    currency: str
    created_time: int
    meta_version: int


@dataclass(eq=False)
class User:
    id: int
    org_id: int
    zuid: str
    email: str
    first_name: str | None
    last_name: str
    role: str
    profile: str
    status: str
    time_zone: str
    created_time: int
    created_by: int | None

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}" if self.first_name else self.last_name

    @cached_property
    def tz(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    @cached_property
    def minified(self) -> dict[str, str]:
        """``{"name", "id"}`` as records carry it (shared: never mutate)."""
        return {"name": self.full_name, "id": str(self.id)}

    @cached_property
    def minified_with_email(self) -> dict[str, str]:
        return {"name": self.full_name, "id": str(self.id), "email": self.email}


class UserExists(Exception):
    pass


def random_zid() -> str:
    """A 9-digit Zoho-style zgid / zuid."""
    return str(100_000_000 + secrets.randbelow(900_000_000))


def default_time_zone() -> str:
    return os.environ.get("CRMLITE_TIME_ZONE") or "UTC"


def _insert_module(tx: Tx, org_id: int, spec: ModuleSpec, seq: int, now: int,
                   fields: tuple[FieldSpec, ...]) -> int:
    (module_id,) = tx.next_ids(1)
    tx.execute(
        "INSERT INTO modules (id, org_id, api_name, api_key, module_name, singular_label, "
        "plural_label, generated_type, scope_name, duplicate_check_field, display_field, "
        "sequence_number, created_time, modified_time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (module_id, org_id, spec.api_name, spec.api_name.lower(), spec.plural_label,
         spec.singular_label, spec.plural_label, spec.generated_type, spec.scope_name,
         spec.duplicate_check_field, spec.display_field, seq, now, now),
    )
    ids = tx.next_ids(len(fields))
    tx.executemany(
        "INSERT INTO fields (id, org_id, module_id, api_name, api_key, field_label, data_type, "
        "length, decimal_place, system_mandatory, read_only, custom_field, is_unique, "
        "external_type, external_show, extra, sequence_number, created_time) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [(fid, org_id, module_id, f.api_name, f.api_name.lower(), f.field_label, f.data_type,
          f.length, f.decimal_place, int(f.mandatory), int(f.read_only), 0, 0, None, 0,
          orjson.dumps(f.extra).decode(), n, now)
         for n, (fid, f) in enumerate(zip(ids, fields, strict=True), start=1)],
    )
    return module_id


def create_module(tx: Tx, org_id: int, spec: ModuleSpec) -> int:
    now = int(time.time())
    (seq,) = tx.execute("SELECT COALESCE(MAX(sequence_number), 0) + 1 FROM modules "
                        "WHERE org_id = ?", (org_id,))[0]
    module_id = _insert_module(tx, org_id, spec, seq, now, (*spec.fields, *SYSTEM_FIELDS))
    bump_version(tx, org_id)
    return module_id


def bootstrap(store: Store) -> Org:
    """The first org of the database, created (with its admin and modules) when absent."""
    with store.read() as tx:
        org = first_org(tx)
    if org is not None:
        return org
    with store.write() as tx:
        tx.lock_keys(["bootstrap"])  # PostgreSQL: one bootstrap at a time (SQLite: one writer)
        org = first_org(tx)  # another process may have won the race
        if org is not None:
            return org
        now = int(time.time())
        org_id, admin_id = tx.next_ids(2)
        tz = default_time_zone()
        tx.execute(
            "INSERT INTO orgs (id, zgid, company_name, primary_email, time_zone, currency, "
            "created_time, meta_version) VALUES (?,?,?,?,?,?,?,0)",
            (org_id, random_zid(), "crmlite", DEFAULT_ADMIN_EMAIL, tz,
             "US Dollar - USD", now),
        )
        _insert_user(tx, admin_id, org_id, DEFAULT_ADMIN_EMAIL, "crmlite", "Admin",
                     "CEO", "Administrator", tz, now, None)
        for seq, spec in enumerate(STANDARD_MODULES, start=1):
            _insert_module(tx, org_id, spec, seq, now, (*spec.fields, *SYSTEM_FIELDS))
        return first_org(tx)  # type: ignore[return-value]


def first_org(tx: Tx) -> Org | None:
    rows = tx.execute("SELECT id, zgid, company_name, primary_email, time_zone, currency, "
                      "created_time, meta_version FROM orgs ORDER BY id LIMIT 1")
    return Org(*rows[0]) if rows else None


def _insert_user(tx: Tx, user_id: int, org_id: int, email: str, first: str | None, last: str,
                 role: str, profile: str, tz: str, now: int, created_by: int | None) -> None:
    tx.execute(
        f"INSERT INTO users ({USER_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (user_id, org_id, random_zid(), email, first, last, role, profile, "active",
         tz, now, created_by),
    )


def add_user(store: Store, org_id: int, email: str, name: str,
             time_zone: str | None = None, created_by: int | None = None) -> User:
    first, _, last = name.strip().rpartition(" ")
    email = email.strip()
    with store.write() as tx:
        if tx.execute("SELECT 1 FROM users WHERE org_id = ? AND lower(email) = ?",
                      (org_id, email.lower())):
            raise UserExists(email)
        (user_id,) = tx.next_ids(1)
        _insert_user(tx, user_id, org_id, email, first or None, last or email, "Standard",
                     "Standard", time_zone or default_time_zone(), int(time.time()), created_by)
        bump_version(tx, org_id)
        return users_by_id(tx, org_id)[user_id]


def users_by_id(tx: Tx, org_id: int) -> dict[int, User]:
    return {row[0]: User(*row) for row in
            tx.execute(f"SELECT {USER_COLUMNS} FROM users WHERE org_id = ? ORDER BY id",
                       (org_id,))}


def find_user(tx: Tx, org_id: int, email: str) -> User | None:
    for user in users_by_id(tx, org_id).values():
        if user.email.lower() == email.strip().lower():
            return user
    return None


def admin_user(tx: Tx, org_id: int) -> User:
    return next(iter(users_by_id(tx, org_id).values()))


_directory: dict[tuple[str, int], tuple[int, dict[int, User]]] = {}


def directory(store: Store, org_id: int, version: int | None = None) -> dict[int, User]:
    """The org's users by id, cached per process while ``meta_version`` holds."""
    with store.read() as tx:
        if version is None:
            version = current_version(tx, org_id)
        cached = _directory.get((store.url, org_id))
        if cached is not None and cached[0] == version:
            return cached[1]
        users = users_by_id(tx, org_id)
    _directory[(store.url, org_id)] = (version, users)
    return users
