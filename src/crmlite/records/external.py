"""Addressing records by an external value: the ``X-EXTERNAL: {Module}.{Field}`` header.

``GET``, ``PUT`` and ``DELETE`` accept an external value where Zoho takes a record id
(zoho-crm-api.md §4.6). An org-based value is looked up in the org; a user-based value
among the values the calling user wrote.
"""

from __future__ import annotations

from collections.abc import Iterable

from crmlite.auth.principal import Principal
from crmlite.errors import RequestError
from crmlite.schema.datatypes import int_text
from crmlite.schema.dictionary import Field, Module
from crmlite.store.base import Tx, chunks


def external_field(module: Module, header: str | None) -> Field | None:
    """The external field an ``X-EXTERNAL`` header names for ``module``, or None without one."""
    if header is None or not header.strip():
        return None
    module_name, _, field_name = header.strip().partition(".")
    f = module.field(field_name) if module_name.lower() == module.api_name.lower() else None
    if f is None or f.external_type is None:
        raise RequestError("INVALID_DATA", "the X-EXTERNAL header does not name an external "
                           "field of this module", {"param_name": "X-EXTERNAL"})
    return f


def scope_of(f: Field, principal: Principal) -> int:
    """The scope of a key: the calling user for user-based external fields, else the org."""
    return principal.user.id if f.external_type == "user" else 0


def key_lock(principal: Principal, f: Field, key: str) -> str:
    """The name writers lock to serialise on one key (PostgreSQL advisory locks)."""
    return key_lock_prefix(principal, f) + key


def key_lock_prefix(principal: Principal, f: Field) -> str:
    """What the lock names of ``f``'s keys start with (a batch makes it once per field)."""
    parts = (principal.org_id, f.id, scope_of(f, principal))
    return "".join(f"{int_text(n)}:" for n in parts)  # int_text: ids are beyond 2**62


def resolve(tx: Tx, principal: Principal, module: Module, f: Field,
            keys: Iterable[str]) -> dict[str, int]:
    """Record ids by external key; keys that match nothing are absent."""
    found: dict[str, int] = {}
    scope = scope_of(f, principal)
    # a NUL never matches (and PostgreSQL refuses it in text parameters)
    for part in chunks(sorted({k for k in keys if "\x00" not in k})):
        among, args = tx.member_of("value", part, "text")
        for value, rid in tx.execute(
            "SELECT value, record_id FROM unique_keys WHERE org_id = ? AND module_id = ? "
            f"AND field_id = ? AND scope = ? AND {among}",
            (principal.org_id, module.id, f.id, scope, *args),
        ):
            found[value] = rid
    return found
