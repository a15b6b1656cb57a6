"""API names derived from labels as Zoho does: "External Contact ID" -> External_Contact_ID."""

from __future__ import annotations

import re

API_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def api_name_from_label(label: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")
    name = re.sub(r"_+", "_", name)
    if name and not name[0].isalpha():
        name = f"Field_{name}" if name[0].isdigit() else name.lstrip("_")
    return name


def is_valid_api_name(name: str) -> bool:
    return bool(API_NAME_RE.match(name)) and "__" not in name and not name.endswith("_")
