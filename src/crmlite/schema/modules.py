"""Module metadata: describe modules as Zoho's modules API does, and create custom modules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crmlite.errors import RecordError, RequestError
from crmlite.orgs import create_module
from crmlite.schema.catalogue import ModuleSpec, custom_module_fields
from crmlite.schema.dictionary import DataDictionary, Module
from crmlite.schema.naming import api_name_from_label, is_valid_api_name
from crmlite.store.base import Tx

CUSTOM_SCOPE = "custom"


def describe(m: Module) -> dict[str, Any]:
    modified = datetime.fromtimestamp(m.modified_time, UTC).isoformat()
    return {
        "api_name": m.api_name,
        "id": str(m.id),
        "module_name": m.module_name,
        "singular_label": m.singular_label,
        "plural_label": m.plural_label,
        "actual_singular_label": m.singular_label,
        "actual_plural_label": m.plural_label,
        "generated_type": m.generated_type,
        "api_supported": True,
        "creatable": True,
        "editable": True,
        "deletable": True,
        "viewable": True,
        "convertable": m.api_name == "Leads",
        "quick_create": True,
        "visibility": 1,
        "status": "visible",
        "visible": True,
        "sequence_number": m.sequence_number,
        "profiles": [],
        "modified_time": modified,
        "modified_by": None,
        "parent_module": {},
        "access_type": "org_based",
        "recycle_bin_on_delete": True,
        "show_as_tab": True,
        "business_card_field_limit": 5,
        "duplicate_check_field": m.duplicate_check_field,
    }


def create_modules(tx: Tx, org_id: int, dictionary: DataDictionary,
                   bodies: Any) -> list[dict[str, Any]]:
    if not isinstance(bodies, list) or not bodies:
        raise RequestError("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                           {"param_name": "modules"})
    items: list[dict[str, Any]] = []
    taken = set(dictionary.by_key)
    for index, body in enumerate(bodies):
        try:
            spec = _spec(index, body, taken)
        except RecordError as exc:
            items.append(exc.body())
            continue
        taken.add(spec.api_name.lower())
        module_id = create_module(tx, org_id, spec)
        items.append({"code": "SUCCESS", "details": {"id": str(module_id)},
                      "message": "module created", "status": "success"})
    return items


def _spec(index: int, body: Any, taken: set[str]) -> ModuleSpec:
    def error(code: str, message: str, key: str) -> RecordError:
        return RecordError(code, message, {"api_name": key,
                                           "json_path": f"$.modules[{index}].{key}"})

    if not isinstance(body, dict):
        raise RecordError("INVALID_DATA", "invalid data",
                          {"expected_data_type": "jsonobject", "json_path": f"$.modules[{index}]"})
    plural = body.get("plural_label")
    singular = body.get("singular_label")
    if not isinstance(plural, str) or not plural.strip():
        raise error("MANDATORY_NOT_FOUND", "required field not found", "plural_label")
    if not isinstance(singular, str) or not singular.strip():
        raise error("MANDATORY_NOT_FOUND", "required field not found", "singular_label")
    api_name = body.get("api_name") or api_name_from_label(plural)
    if not isinstance(api_name, str) or not is_valid_api_name(api_name):
        raise error("INVALID_DATA", "invalid data", "api_name")
    if api_name.lower() in taken:
        raise error("DUPLICATE_DATA", "duplicate data", "api_name")
    return ModuleSpec(api_name, CUSTOM_SCOPE, singular.strip(), plural.strip(), "Name", "Name",
                      custom_module_fields(), generated_type="custom")
