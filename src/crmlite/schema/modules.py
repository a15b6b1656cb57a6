"""Module metadata: describe modules as Zoho's modules API does, and create custom modules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crmlite.errors import RecordError, required_param
from crmlite.orgs import create_module
from crmlite.schema.catalogue import ModuleSpec, custom_module_fields
from crmlite.schema.dictionary import DataDictionary, Module
from crmlite.schema.fields import describe as describe_field
from crmlite.schema.naming import api_name_from_label, is_valid_api_name
from crmlite.store.base import Tx

CUSTOM_SCOPE = "custom"


INVENTORY_MODULES = frozenset({"Quotes", "Sales_Orders", "Purchase_Orders", "Invoices"})


def describe(m: Module, dictionary: DataDictionary, with_fields: bool = False) -> dict[str, Any]:
    """One module as ``GET /settings/modules`` renders it: every key of Zoho's ``modules``
    schema (../shared/reference/zoho-oas-v8/modules.json). The list leaves ``fields``,
    ``layouts`` and ``related_lists`` empty, as Zoho's list does; ``with_fields`` (the
    single-module GET) fills ``fields``."""
    modified = datetime.fromtimestamp(m.modified_time, UTC).isoformat()
    display = m.field(m.display_field)
    org = dictionary.org_id
    custom = m.generated_type == "custom"
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
        "description": None,
        "web_link": None,
        "modified_time": modified,
        "modified_by": None,
        "profiles": [{"name": "Administrator", "id": str(org + 3)},
                     {"name": "Standard", "id": str(org + 4)}],
        "profile_count": 2,
        "has_more_profiles": False,
        "parent_module": {},
        "access_type": "org_based",
        "recycle_bin_on_delete": True,
        "show_as_tab": True,
        "business_card_field_limit": 5,
        "business_card_fields": [],
        "common.search_supported": True,
        "inventory_template_supported": m.api_name in INVENTORY_MODULES,
        "presence_sub_menu": False,
        "sub_menu_available": False,
        "triggers_supported": True,
        "chart_view": False,
        "chart_view_supported": True,
        "isBlueprintSupported": False,
        "emailTemplate_support": any(f.data_type == "email" for f in m.fields),
        "email_parser_supported": False,
        "filter_supported": True,
        "feeds_required": False,
        "scoring_supported": not custom,
        "webform_supported": True,
        "track_current_data": False,
        "arguments": [],
        "activity_badge": None,
        "$field_states": [],
        "per_page": None,
        "$properties": [],
        "$on_demand_properties": [],
        "search_layout_fields": [],
        "kanban_view_supported": False,
        "kanban_view": False,
        "filter_status": True,
        "zia_view": False,
        "lookup_field_properties": {"fields": []},
        "related_list_properties": {"sort_by": None, "fields": [], "sort_order": None},
        "display_field": ({"api_name": display.api_name, "id": str(display.id)}
                          if display is not None else None),
        "layouts": [],
        "related_lists": [],
        "custom_view": None,
        "default_mapping_fields": [],
        "layout_associations": [],
        "fields": [describe_field(f, dictionary) for f in m.fields] if with_fields else [],
        "duplicate_check_field": m.duplicate_check_field,
    }


def create_modules(tx: Tx, org_id: int, dictionary: DataDictionary,
                   bodies: Any) -> list[dict[str, Any]]:
    if not isinstance(bodies, list) or not bodies:
        raise required_param("modules")
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
