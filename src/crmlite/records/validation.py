"""Checks one record of a request body against its module's fields.

The result is a :class:`Candidate`: the values to write (already normalised), or
the first error Zoho would report for the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crmlite.errors import RecordError
from crmlite.schema import datatypes
from crmlite.schema.dictionary import Field, Module


@dataclass(slots=True, init=False)
class Candidate:
    index: int
    # the values to write by api_name (None: clear the field), and whether any is None
    values: dict[str, Any]
    clears: bool
    owner_id: int | None
    target_id: int | None  # update by id
    target_key: str | None  # update by external value (X-EXTERNAL)
    error: RecordError | None
    # lookup and userlookup ids to check (an empty tuple until the first one)
    lookups: list[tuple[Field, int]] | tuple[()]
    # normalised match keys of the values given for external, unique and duplicate-check
    # fields (None: the value is being cleared)
    keys: dict[Field, str | None]

    # Written out (init=False) so that mypyc compiles it (see records/stored.py StoredRecord).
    def __init__(self, index: int, values: dict[str, Any] | None = None, clears: bool = False,
                 owner_id: int | None = None, target_id: int | None = None,
                 target_key: str | None = None, error: RecordError | None = None,
                 lookups: list[tuple[Field, int]] | tuple[()] = (),
                 keys: dict[Field, str | None] | None = None) -> None:
        self.index = index
        self.values = {} if values is None else values
        self.clears = clears
        self.owner_id = owner_id
        self.target_id = target_id
        self.target_key = target_key
        self.error = error
        self.lookups = lookups
        self.keys = {} if keys is None else keys

    def fail(self, error: RecordError) -> None:
        if self.error is None:
            self.error = error


def json_path(index: int, api_name: str) -> str:
    return f"$.data[{index}].{api_name}"


def invalid(index: int, api_name: str, message: str = "invalid data", **extra: Any) -> RecordError:
    return RecordError("INVALID_DATA", message,
                       {**extra, "api_name": api_name, "json_path": json_path(index, api_name)})


def mandatory_missing(index: int, api_name: str, path: str | None = None) -> RecordError:
    return RecordError("MANDATORY_NOT_FOUND", "required field not found",
                       {"api_name": api_name, "json_path": path or json_path(index, api_name)})


def check_mandatory(module: Module, c: Candidate, inserting: bool) -> RecordError | None:
    """A mandatory value missing from a record to insert, or cleared by an update."""
    for f in module.mandatory_fields:
        name = f.api_name
        if inserting:
            if c.values.get(name) is None:
                return mandatory_missing(c.index, name)
        elif name in c.values and c.values[name] is None:
            return mandatory_missing(c.index, name)
    return None


def candidate(module: Module, index: int, body: Any, *, with_id: bool = False) -> Candidate:
    """Validate ``body`` (the record at ``data[index]``).

    ``with_id``: the update path, where ``id`` names the record to change.
    """
    cand = Candidate(index)
    if not isinstance(body, dict):
        cand.fail(RecordError("INVALID_DATA", "invalid data",
                              {"expected_data_type": "jsonobject", "api_name": "data",
                               "json_path": f"$.data[{index}]"}))
        return cand
    texts, values, keys = module.text_fields, cand.values, cand.keys
    for name, raw in body.items():
        # the common case first: a string that fits a field of a string type
        f = texts.get(name)
        if f is not None and type(raw) is str and len(raw) <= f.max_length and "\x00" not in raw:
            if f.pattern is None:
                value = raw or None
            else:  # as datatypes._pattern: stripped, and it must match
                value = raw.strip() if raw else None
                if value is not None and not f.pattern.match(value):
                    if not field_value(cand, module, name, raw):
                        return cand  # the validator's error
                    continue
            values[name] = value
            if value is None:
                cand.clears = True
            if f.is_matched:
                keys[f] = datatypes.key_of(f, value)
        elif not (with_id and name == "id") and not field_value(cand, module, name, raw):
            return cand
    return cand


def field_value(cand: Candidate, module: Module, name: str, raw: Any) -> bool:
    """Validate one value into ``cand``; False once the record has failed."""
    f = module.field(name)
    if f is None:
        return True  # Zoho ignores keys that are not fields of the module (and `$` keys)
    index = cand.index
    try:
        if f.read_only:
            raise datatypes.InvalidValue({}, "the field is read only")
        value = None if raw is None else f.validator(f, raw)
    except datatypes.MissingId:
        cand.fail(mandatory_missing(index, "id", f"{json_path(index, f.api_name)}.id"))
        return False
    except datatypes.InvalidValue as exc:
        cand.fail(invalid(index, f.api_name, exc.message, **exc.details))
        return False
    if f.data_type == "ownerlookup":
        if value is None:
            cand.fail(mandatory_missing(index, "id", f"{json_path(index, f.api_name)}.id"))
            return False
        cand.owner_id = int(value["id"])
        return True
    if value is not None and f.data_type in ("lookup", "userlookup"):
        if not cand.lookups:
            cand.lookups = []
        cand.lookups.append((f, int(value["id"])))
    cand.values[f.api_name] = value
    if value is None:
        cand.clears = True
    if f.is_matched:
        cand.keys[f] = datatypes.key_of(f, value)
    return True
