"""Data types: validate and normalise what a client sends, key and render what is stored.

``VALIDATORS[data_type](field, value)`` returns the value to store or raises :class:`InvalidValue`
naming what Zoho names in its INVALID_DATA details (``expected_data_type`` or
``maximum_length``). ``None`` (and an empty string for string types) clears a field.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmlite.schema.dictionary import Field

JSON_TYPES = {
    "text": "string", "textarea": "string", "email": "string", "phone": "string",
    "picklist": "string", "website": "string", "autonumber": "string", "date": "string",
    "datetime": "string", "bigint": "string", "multiselectpicklist": "jsonarray",
    "integer": "integer", "double": "double", "currency": "double", "percent": "double",
    "boolean": "boolean", "lookup": "jsonobject", "ownerlookup": "jsonobject",
    "userlookup": "jsonobject", "subform": "jsonarray",
}

# Types a client may give a custom field (POST /settings/fields), with default lengths.
CUSTOM_FIELD_TYPES: dict[str, int | None] = {
    "text": 255, "textarea": 2000, "email": 100, "phone": 30, "picklist": 120,
    "multiselectpicklist": 1000, "integer": 9, "bigint": 18, "double": 16, "currency": 16,
    "percent": 5, "boolean": None, "date": None, "datetime": None, "website": 255,
    "lookup": None,
}
MAX_LENGTH = {"text": 255, "textarea": 32000, "email": 100, "phone": 50, "picklist": 255,
              "multiselectpicklist": 5000, "integer": 9, "bigint": 18, "double": 16,
              "currency": 16, "percent": 5, "website": 450}
UNIQUE_CAPABLE = frozenset({"text", "email", "phone", "integer", "bigint", "website"})

EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+\-'&!#$*/=?^`{|}~]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
PHONE_RE = re.compile(r"^[0-9+\-().\s/#*xX,;extEXT]*[0-9][0-9+\-().\s/#*xX,;extEXT]*$")
WEBSITE_RE = re.compile(r"^(https?://)?[A-Za-z0-9\-._~%]+(\.[A-Za-z0-9\-]+)+(:\d+)?([/?#]\S*)?$",
                        re.IGNORECASE)
# Types whose valid values are strings up to the field's length (validated by _string):
# any string, or (stripped) one that matches the type's pattern (validated by _pattern).
TEXT_TYPES = frozenset({"text", "textarea", "picklist"})
PATTERNS = {"email": EMAIL_RE, "phone": PHONE_RE, "website": WEBSITE_RE}
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)$")
INTEGER_RE = re.compile(r"^[+-]?\d+$")
DECIMAL_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
ID_RE = re.compile(r"^\d{1,19}$")
MAX_ID = 2**63 - 1


class InvalidValue(Exception):
    """The value does not fit the field; ``details`` go into Zoho's INVALID_DATA details."""

    def __init__(self, details: dict[str, Any], message: str = "invalid data") -> None:
        super().__init__(message)
        self.details = details
        self.message = message


class MissingId(Exception):
    """A lookup object without its id: Zoho answers MANDATORY_NOT_FOUND on ``<field>.id``."""


def int_text(n: object) -> str:
    """``str(n)`` of an integer, such as a record id. Compiled code must not call ``str()``
    on a value it knows is an ``int``: mypyc's ``str(int)`` leaks every integer beyond 2**62
    it converts (record ids are 19 digits; its ``CPyTagged_Str`` never releases the boxed
    value), where ``str()`` of an ``object`` is Python's own."""
    return str(n)


def _expected(data_type: str) -> InvalidValue:
    return InvalidValue({"expected_data_type": data_type})


def _too_long(length: int) -> InvalidValue:
    return InvalidValue({"maximum_length": length})


_SCALARS = (str, int, float)


def _string(field: Field, value: Any) -> str | None:
    if type(value) is str:
        text = value
    elif isinstance(value, bool) or not isinstance(value, _SCALARS):
        raise _expected(field.data_type)
    else:
        text = value if isinstance(value, str) else str(value)
    if text == "":
        return None
    if "\x00" in text:  # no database stores a NUL in text (PostgreSQL refuses it)
        raise _expected(field.data_type)
    if field.length and len(text) > field.length:
        raise _too_long(field.length)
    return text


def _pattern(regex: re.Pattern[str]):
    def check(field: Field, value: Any) -> str | None:
        text = _string(field, value)
        if text is not None:
            text = text.strip()
            if not regex.match(text):
                raise _expected(field.data_type)
        return text

    return check


def _integer(field: Field, value: Any) -> int | None:
    if isinstance(value, str) and INTEGER_RE.match(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _expected("integer")
    digits = len(int_text(abs(value)))
    if field.length and digits > field.length:
        raise _too_long(field.length)
    if not -(2**31) <= value < 2**31:
        raise _expected("integer")
    return value


def _bigint(field: Field, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _expected("bigint")
    text = str(value).strip()
    if text == "":
        return None
    if not INTEGER_RE.match(text):
        raise _expected("bigint")
    digits = len(text.lstrip("+-"))
    if digits > (field.length or 18):
        raise _too_long(field.length or 18)
    return text


def _decimal(field: Field, value: Any) -> int | float | None:
    if isinstance(value, str) and DECIMAL_RE.match(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise _expected(field.data_type)
    whole = len(int_text(int(abs(value))))
    if field.length and whole > field.length:
        raise _too_long(field.length)
    if isinstance(value, float):
        places = field.decimal_place if field.decimal_place is not None else 9
        value = round(value, places)
        if value == int(value) and field.data_type == "percent":
            return value
    return value


def _boolean(field: Field, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _expected("boolean")


def _date(field: Field, value: Any) -> str | None:
    if value == "":
        return None
    if not isinstance(value, str) or not DATE_RE.match(value):
        raise _expected("date")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise _expected("date") from None
    return value


def _datetime(field: Field, value: Any) -> str | None:
    if value == "":
        return None
    if not isinstance(value, str) or not DATETIME_RE.match(value):
        raise _expected("datetime")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _expected("datetime") from None
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def record_id(value: Any) -> str | None:
    """A record or user id as a client may send it (string or JSON number), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 < value <= MAX_ID:
        return int_text(value)
    if isinstance(value, str) and ID_RE.match(value.strip()) and 0 < int(value) <= MAX_ID:
        return int_text(int(value))
    return None


def _lookup(field: Field, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        if "id" not in value or value["id"] in (None, ""):
            raise MissingId()
        ident = record_id(value["id"])
    else:
        ident = record_id(value)
    if ident is None:
        raise _expected(field.data_type)
    return {"id": ident}


def _multiselect(field: Field, value: Any) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) and "\x00" not in v
                                              for v in value):
        raise _expected("jsonarray")
    if field.length and len(";".join(value)) > field.length:
        raise _too_long(field.length)
    return value


def _subform(field: Field, value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _expected("jsonarray")
    return value or None


VALIDATORS = {
    "text": _string, "textarea": _string, "picklist": _string,
    **{data_type: _pattern(regex) for data_type, regex in PATTERNS.items()},
    "integer": _integer, "bigint": _bigint, "double": _decimal, "currency": _decimal,
    "percent": _decimal, "boolean": _boolean, "date": _date, "datetime": _datetime,
    "lookup": _lookup, "ownerlookup": _lookup, "userlookup": _lookup,
    "multiselectpicklist": _multiselect, "subform": _subform,
}


def read_only_value(field: Field, value: Any) -> Any:
    """Types a client never writes (autonumber, formula)."""
    raise InvalidValue({}, "the field is read only")


def key_of(field: Field, value: Any) -> str | None:
    """The normalised form under which a value is matched (unique, external, duplicate check).

    External values match exactly; other values match case-insensitively, as Zoho's
    unique fields do by default (``unique: {"case_sensitive": false}``).
    """
    if type(value) is str:  # nearly always: text, email, phone
        text = value.strip()
    elif value is None:
        return None
    elif isinstance(value, bool):
        return "true" if value else "false"
    else:
        text = str(value).strip()
    if field.external_type:
        return text or None
    return text.casefold() or None


def render_datetime(stored: str, tz: Any) -> str:
    return datetime.fromisoformat(stored).astimezone(tz).isoformat()
