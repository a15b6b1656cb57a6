"""Zoho's OAuth scope grammar, compared case-insensitively.

``ZohoCRM.modules.ALL``, ``ZohoCRM.modules.{OP}``, ``ZohoCRM.modules.{module}.{OP}``
(``module`` is Zoho's lower-case scope name; ``custom`` covers every custom module),
``ZohoCRM.settings.ALL`` / ``ZohoCRM.settings.{family}.{OP}``, ``ZohoCRM.users.{OP}``,
``ZohoCRM.org.{OP}``.
"""

from __future__ import annotations

from functools import lru_cache

# What each engine operation accepts, besides ALL.
READ = ("read",)
CREATE = ("create", "write")
UPDATE = ("update", "write")
UPSERT = ("create", "write")
DELETE = ("delete", "write")

ALL_SCOPES = (
    "ZohoCRM.modules.ALL",
    "ZohoCRM.settings.ALL",
    "ZohoCRM.users.ALL",
    "ZohoCRM.org.ALL",
    "ZohoCRM.bulk.ALL",
    "ZohoCRM.coql.READ",
    "ZohoSearch.securesearch.READ",
)


@lru_cache(maxsize=1024)
def parse(scopes: str) -> frozenset[str]:
    """A token's scope string (comma- or space-separated) as a set of lower-case scopes."""
    return frozenset(s.strip().lower() for s in scopes.replace(" ", ",").split(",") if s.strip())


def allows_module(granted: frozenset[str], scope_name: str, ops: tuple[str, ...]) -> bool:
    if "zohocrm.modules.all" in granted:
        return True
    for op in ops:
        if f"zohocrm.modules.{op}" in granted or f"zohocrm.modules.{scope_name}.{op}" in granted:
            return True
    return f"zohocrm.modules.{scope_name}.all" in granted


def allows_family(granted: frozenset[str], family: str, ops: tuple[str, ...]) -> bool:
    """``family`` is e.g. ``settings.fields``, ``users`` or ``org``."""
    parts = family.split(".")
    for depth in range(1, len(parts) + 1):
        if f"zohocrm.{'.'.join(parts[:depth])}.all" in granted:
            return True
    return any(f"zohocrm.{family}.{op}" in granted for op in ops)


def is_valid(scope: str) -> bool:
    parts = scope.strip().split(".")
    return len(parts) >= 3 and parts[0].lower() in ("zohocrm", "zohosearch", "zohofiles")
