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

from crmlite.schema.datatypes import key_of
from crmlite.schema.dictionary import Field, Module


def derived_keys(module: Module, data: dict[str, Any]) -> list[tuple[Field, str]]:
    """The (field, normalised value) of each derivable key row of a record with ``data``."""
    return [(f, k) for f in module.derived_key_fields
            if (k := key_of(f, data.get(f.api_name))) is not None]
