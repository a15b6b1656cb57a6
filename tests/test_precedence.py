"""Zoho's duplicate-check precedence (zoho-crm-api.md §4.2), row by row.

The org: Contacts with the system duplicate-check field Email and two user-defined unique
fields, unique1 and unique2. Record A holds Email e1, B holds unique1 u1, C holds unique2 u2.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client


@pytest.fixture
def org(api: Client) -> dict[str, str]:
    api.add_field("Contacts", field_label="unique1", data_type="text", unique={
        "case_sensitive": False})
    api.add_field("Contacts", field_label="unique2", data_type="text", unique={
        "case_sensitive": False})
    reply = api.post("/crm/v8/Contacts", {"data": [
        {"Last_Name": "A", "Email": "e1@example.com"},
        {"Last_Name": "B", "unique1": "u1"},
        {"Last_Name": "C", "unique2": "u2"},
    ]})
    assert reply.status_code == 201, reply.text
    ids = [i["details"]["id"] for i in reply.json()["data"]]
    return dict(zip("ABC", ids, strict=True))


def upsert_one(api: Client, record: dict[str, Any], listed: list[str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"data": [{"Last_Name": "Upserted", **record}]}
    if listed is not None:
        body["duplicate_check_fields"] = listed
    reply = api.post("/crm/v8/Contacts/upsert", body)
    assert reply.status_code in (200, 400), reply.text
    return reply.json()["data"][0]


# (listed fields, record sent, expected record updated or None for insert, duplicate_field)
ROWS = [
    # ["unique1"] -> unique1, unique2: the system field is not checked
    (["unique1"], {"unique1": "u1", "Email": "e1@example.com"}, "B", "unique1"),
    (["unique1"], {"unique2": "u2", "Email": "e1@example.com"}, "C", "unique2"),
    (["unique1"], {"Email": "e1@example.com"}, None, None),
    # ["unique2"] -> unique2, unique1
    (["unique2"], {"unique2": "u2", "unique1": "fresh"}, "C", "unique2"),
    (["unique2"], {"unique1": "u1", "Email": "e1@example.com"}, "B", "unique1"),
    # ["unique1", "unique2"] -> unique1, unique2
    (["unique1", "unique2"], {"unique1": "u1"}, "B", "unique1"),
    (["unique1", "unique2"], {"unique2": "u2"}, "C", "unique2"),
    # ["Email"] -> Email, unique1, unique2
    (["Email"], {"Email": "e1@example.com", "unique1": "fresh"}, "A", "Email"),
    (["Email"], {"Email": "new@example.com", "unique1": "u1"}, "B", "unique1"),
    (["Email"], {"Email": "new@example.com", "unique2": "u2"}, "C", "unique2"),
    # absent -> Email, unique1, unique2
    (None, {"Email": "e1@example.com", "unique2": "fresh"}, "A", "Email"),
    (None, {"Email": "new@example.com", "unique1": "u1"}, "B", "unique1"),
    (None, {"unique2": "u2"}, "C", "unique2"),
    (None, {"Email": "new@example.com"}, None, None),
    # case-insensitive matching (unique: {"case_sensitive": false}); Email too
    (None, {"Email": "E1@Example.COM"}, "A", "Email"),
    (["unique1"], {"unique1": "U1"}, "B", "unique1"),
]


@pytest.mark.parametrize(("listed", "record", "expected", "field"), ROWS)
def test_precedence_row(api: Client, org: dict[str, str], listed: list[str] | None,
                        record: dict[str, Any], expected: str | None,
                        field: str | None) -> None:
    item = upsert_one(api, record, listed)
    assert item["code"] == "SUCCESS", item
    assert item["duplicate_field"] == field
    if expected is None:
        assert item["action"] == "insert"
        assert item["details"]["id"] not in org.values()
    else:
        assert item["action"] == "update"
        assert item["details"]["id"] == org[expected]
        stored = api.record("Contacts", org[expected])
        assert stored["Last_Name"] == "Upserted"
        for name, value in record.items():
            assert stored[name] == value


@pytest.mark.parametrize(("listed", "winner", "clash"), [
    (["unique1"], "B", "unique2"),
    (["unique2"], "C", "unique1"),
    (None, "B", "unique2"),
])
def test_first_field_in_order_decides_and_other_unique_values_clash(
        api: Client, org: dict[str, str], listed: list[str] | None, winner: str,
        clash: str) -> None:
    """unique1 matches B and unique2 matches C: the order decides which one is the target,
    and the other record's unique value is a DUPLICATE_DATA; nothing is written."""
    item = upsert_one(api, {"unique1": "u1", "unique2": "u2"}, listed)
    assert item["code"] == "DUPLICATE_DATA"
    assert item["details"]["api_name"] == clash
    assert item["details"]["json_path"] == f"$.data[0].{clash}"
    other = "C" if winner == "B" else "B"
    assert item["details"]["duplicate_record"]["id"] == org[other]
    assert api.record("Contacts", org[winner])["Last_Name"] == winner


@pytest.mark.parametrize("listed", [["Last_Name"], ["Nope"], ["unique1", "Phone"], [7]])
def test_listed_field_must_be_a_duplicate_check_or_unique_field(
        api: Client, org: dict[str, str], listed: list[Any]) -> None:
    reply = api.post("/crm/v8/Contacts/upsert",
                     {"data": [{"Last_Name": "X"}], "duplicate_check_fields": listed})
    assert reply.status_code == 400
    body = reply.json()
    assert body["code"] == "INVALID_DATA"
    assert body["status"] == "error"
    assert body["details"]["json_path"].startswith("$.duplicate_check_fields[")
    assert api.get("/crm/v8/Contacts?fields=Last_Name").json()["info"]["count"] == 3
