"""Field metadata: describe fields as Zoho's fields API does, and create custom fields."""

from __future__ import annotations

import time
from typing import Any

import orjson

from crmlite.errors import RecordError, array_param
from crmlite.schema.datatypes import CUSTOM_FIELD_TYPES, MAX_LENGTH, UNIQUE_CAPABLE
from crmlite.schema.dictionary import DataDictionary, Field, Module, bump_version
from crmlite.schema.naming import api_name_from_label, is_valid_api_name
from crmlite.store.base import Tx

MAX_UNIQUE_FIELDS = 2
MAX_FIELDS_PER_REQUEST = 100


# ``length`` of the types whose length a client does not choose, as Zoho reports it.
DEFAULT_LENGTHS = {"date": 20, "datetime": 120, "boolean": 5, "lookup": 120, "ownerlookup": 120,
                   "userlookup": 120, "subform": 2000, "autonumber": 255, "bigint": 18}
NUMBER_TYPES = frozenset({"integer", "bigint", "double", "currency", "percent"})
UI_TYPES = {"text": 1, "textarea": 3, "email": 25, "phone": 33, "website": 21, "picklist": 2,
            "multiselectpicklist": 100, "integer": 32, "bigint": 32, "double": 38,
            "currency": 36, "percent": 39, "boolean": 301, "date": 24, "datetime": 333,
            "lookup": 133, "ownerlookup": 8, "userlookup": 133, "subform": 500,
            "autonumber": 35}


def describe(f: Field, dictionary: DataDictionary) -> dict[str, Any]:
    """One field as ``GET /settings/fields`` renders it: every key of Zoho's ``fields`` schema
    (../shared/reference/zoho-oas-v8/fields.json), with Zoho's values for what crmlite lacks
    (no tooltips, encryption, formulas or history tracking: those are null or empty)."""
    module = dictionary.by_id.get(f.module_id)
    data_type = f.data_type
    lookup: dict[str, Any] = {}
    if data_type == "lookup" and f.lookup_module:
        target = dictionary.module(f.lookup_module)
        lookup = {
            "display_label": f.field_label,
            "api_name": f.api_name,
            "module": {"api_name": target.api_name if target else f.lookup_module,
                       "id": str(target.id) if target else None},
            "id": str(f.id),
            "query_details": {},
            "revalidate_filter_during_edit": False,
            "show_fields": [],
        }
    picklist = [
        {"display_value": v["display_value"], "actual_value": v["actual_value"],
         "reference_value": v["display_value"], "sequence_number": n, "type": "used",
         "colour_code": None, "id": str(f.id * 1000 + n)}
        for n, v in enumerate(f.extra.get("pick_list_values", []), start=1)
    ]
    read_only = f.read_only
    editable = not read_only
    return {
        "associated_module": None,
        "webhook": editable,
        "operation_type": {"web_update": editable, "api_create": editable,
                           "web_create": editable, "api_update": editable},
        "colour_code_enabled_by_system": False,
        "field_label": f.field_label,
        "tooltip": None,
        "type": "used",
        "field_read_only": read_only,
        "customizable_properties": [],
        "display_label": f.field_label,
        "read_only": read_only,
        "association_details": None,
        "businesscard_supported": editable,
        "multi_module_lookup": {},
        "id": str(f.id),
        "created_time": None,
        "filterable": data_type not in ("subform", "textarea"),
        "visible": True,
        "refer_from_field": None,
        "profiles": [],
        "view_type": {"view": True, "edit": editable, "quick_create": False,
                      "create": editable},
        "separator": False,
        "searchable": data_type not in ("subform",),
        "external": ({"show": f.external_show, "type": f.external_type,
                      "allow_multiple_config": False} if f.external_type else None),
        "api_name": f.api_name,
        "unique": {"case_sensitive": False} if f.unique else {},
        "enable_colour_code": False,
        "pick_list_values": picklist,
        "system_mandatory": f.system_mandatory,
        "virtual_field": False,
        "json_type": f.json_type,
        "crypt": None,
        "created_source": "api" if f.custom_field else "default",
        "display_type": -1,
        "ui_type": UI_TYPES.get(data_type, 1),
        "modified_time": None,
        "email_parser": {"fields_update_supported": False, "record_operations_supported": False},
        "currency": ({"rounding_option": "normal", "precision": f.decimal_place or 2}
                     if data_type == "currency" else {}),
        "custom_field": f.custom_field,
        "lookup": lookup,
        "convert_mapping": None,
        "rollup_summary": None,
        "length": f.length if f.length is not None else DEFAULT_LENGTHS.get(data_type, 0),
        "display_field": module is not None and module.display_field == f.api_name,
        "pick_list_values_sorted_lexically": False,
        "sortable": data_type not in ("subform", "multiselectpicklist", "textarea"),
        "sequence_number": f.sequence_number,
        "quick_sequence_number": str(f.sequence_number),
        "history_tracking": None,
        "data_type": data_type,
        "formula": {},
        "decimal_place": f.decimal_place,
        "mass_update": editable and data_type not in ("subform", "lookup"),
        "multiselectlookup": {},
        "multiuserlookup": None,
        "auto_number": ({"prefix": None, "suffix": None, "start_number": 1,
                         "starting_number_length": 1} if data_type == "autonumber" else {}),
        "autonumber": None,
        "sub_module": None,
        "subform": None,
        "sharing_properties": None,
        "file_upolad_optionlist": [],
        "layout_associations": [],
        "allowed_modules": [],
        "additional_column": None,
        "column_name": f.api_name.upper(),
        "category": 0,
        "show_type": 7,
        "common.picklist": None,
        "hipaa_compliance_enabled": False,
        "hipaa_compliance": None,
        "_update_existing_records": False,
        "number_separator": data_type in NUMBER_TYPES,
        "textarea": ({"type": "large" if (f.length or 0) > 2000 else "small"}
                     if data_type == "textarea" else None),
        "static_field": False,
        "blueprint_supported": False,
        "available_in_user_layout": True,
        "private": None,
    }


def _error(code: str, message: str, index: int, key: str, **extra: Any) -> RecordError:
    return RecordError(code, message, {**extra, "api_name": key,
                                       "json_path": f"$.fields[{index}].{key}"})


def _spec(module: Module, dictionary: DataDictionary, index: int, body: Any,
          taken: set[str]) -> dict[str, Any]:
    """Validate one field definition; raises RecordError."""
    if not isinstance(body, dict):
        raise RecordError("INVALID_DATA", "invalid data",
                          {"expected_data_type": "jsonobject", "json_path": f"$.fields[{index}]"})
    label = body.get("field_label")
    if not isinstance(label, str) or not label.strip():
        raise _error("MANDATORY_NOT_FOUND", "required field not found", index, "field_label")
    label = label.strip()
    data_type = body.get("data_type")
    if data_type is None:
        raise _error("MANDATORY_NOT_FOUND", "required field not found", index, "data_type")
    if not isinstance(data_type, str) or data_type not in CUSTOM_FIELD_TYPES:
        raise _error("INVALID_DATA", "invalid data", index, "data_type",
                     supported_values=sorted(CUSTOM_FIELD_TYPES))
    api_name = body.get("api_name") or api_name_from_label(label)
    if not isinstance(api_name, str) or not is_valid_api_name(api_name):
        raise _error("INVALID_DATA", "invalid data", index, "api_name")
    if api_name.lower() in taken:
        raise _error("DUPLICATE_DATA", "duplicate data", index, "api_name")
    length = body.get("length", CUSTOM_FIELD_TYPES[data_type])
    limit = MAX_LENGTH.get(data_type)
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                               or length < 1):
        raise _error("INVALID_DATA", "invalid data", index, "length",
                     expected_data_type="integer")
    if limit is not None and length is not None and length > limit:
        raise _error("INVALID_DATA", "invalid data", index, "length", maximum_length=limit)
    unique = body.get("unique")
    is_unique = bool(unique) if not isinstance(unique, dict) else True
    if isinstance(unique, dict) and unique.get("case_sensitive") is True:
        raise _error("INVALID_DATA", "case sensitive unique fields are not supported", index,
                     "unique")
    if is_unique and data_type not in UNIQUE_CAPABLE:
        raise _error("INVALID_DATA", "this data type cannot be unique", index, "unique")
    external = body.get("external")
    external_type = None
    external_show = False
    if external is not None:
        if not isinstance(external, dict) or external.get("type") not in ("org", "user"):
            raise _error("INVALID_DATA", "invalid data", index, "external",
                         supported_values=["org", "user"])
        if data_type != "text":
            raise _error("INVALID_DATA", "only single line fields can be external fields",
                         index, "external")
        external_type = external["type"]
        external_show = bool(external.get("show", False))
    extra: dict[str, Any] = {}
    if data_type == "lookup":
        target = body.get("lookup", {})
        target_name = (target.get("module") or {}).get("api_name") if isinstance(
            target, dict) and isinstance(target.get("module"), dict) else None
        if not isinstance(target_name, str) or dictionary.module(target_name) is None:
            raise _error("INVALID_DATA", "invalid data", index, "lookup")
        extra["lookup_module"] = dictionary.module(target_name).api_name  # type: ignore[union-attr]
    if data_type in ("picklist", "multiselectpicklist"):
        values = body.get("pick_list_values") or []
        if not isinstance(values, list):
            raise _error("INVALID_DATA", "invalid data", index, "pick_list_values")
        extra["pick_list_values"] = [
            {"display_value": str(v.get("display_value", v.get("actual_value", ""))),
             "actual_value": str(v.get("actual_value", v.get("display_value", "")))}
            for v in values if isinstance(v, dict)
        ]
    decimal_place = body.get("decimal_place")
    if data_type in ("double", "currency") and decimal_place is None:
        decimal_place = 2
    return {"api_name": api_name, "label": label, "data_type": data_type, "length": length,
            "decimal_place": decimal_place, "unique": is_unique, "external_type": external_type,
            "external_show": external_show, "extra": extra}


def create_fields(tx: Tx, org_id: int, module: Module, dictionary: DataDictionary,
                  bodies: Any) -> list[dict[str, Any]]:
    """Create custom fields; one reply item per definition, in order."""
    bodies = array_param(bodies, "fields", MAX_FIELDS_PER_REQUEST)
    taken = {f.api_name.lower() for f in module.fields}
    unique_count = len(module.unique_fields)
    (seq,) = tx.execute("SELECT COALESCE(MAX(sequence_number), 0) FROM fields "
                        "WHERE module_id = ?", (module.id,))[0]
    now = int(time.time())
    items: list[dict[str, Any]] = []
    created = 0
    for index, body in enumerate(bodies):
        try:
            spec = _spec(module, dictionary, index, body, taken)
            if spec["unique"] and unique_count >= MAX_UNIQUE_FIELDS:
                raise RecordError("LIMIT_EXCEEDED", "unique field limit exceeded",
                                  {"limit": MAX_UNIQUE_FIELDS, "api_name": "unique",
                                   "json_path": f"$.fields[{index}].unique"})
        except RecordError as exc:
            items.append(exc.body())
            continue
        unique_count += spec["unique"]
        taken.add(spec["api_name"].lower())
        (field_id,) = tx.next_ids(1)
        seq += 1
        tx.execute(
            "INSERT INTO fields (id, org_id, module_id, api_name, api_key, field_label, "
            "data_type, length, decimal_place, system_mandatory, read_only, custom_field, "
            "is_unique, external_type, external_show, extra, sequence_number, created_time) "
            "VALUES (?,?,?,?,?,?,?,?,?,0,0,1,?,?,?,?,?,?)",
            (field_id, org_id, module.id, spec["api_name"], spec["api_name"].lower(),
             spec["label"], spec["data_type"], spec["length"], spec["decimal_place"],
             int(spec["unique"]), spec["external_type"], int(spec["external_show"]),
             orjson.dumps(spec["extra"]).decode(), seq, now),
        )
        created += 1
        items.append({"code": "SUCCESS", "details": {"id": str(field_id)},
                      "message": "field created", "status": "success"})
    if created:
        tx.execute("UPDATE modules SET modified_time = ? WHERE id = ?", (now, module.id))
        bump_version(tx, org_id)
    return items
