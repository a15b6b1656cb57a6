"""Data types: what is accepted, how it is stored and rendered, and Zoho's INVALID_DATA."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client, Server, new_user

CUSTOM = [
    ("Count", "integer", {}),
    ("Big", "bigint", {}),
    ("Ratio", "double", {}),
    ("Price", "currency", {}),
    ("Share", "percent", {}),
    ("Flag", "boolean", {}),
    ("Day", "date", {}),
    ("Moment", "datetime", {}),
    ("Site", "website", {}),
    ("Short", "text", {"length": 5}),
    ("Notes", "textarea", {}),
    ("Colour", "picklist", {"pick_list_values": [{"display_value": "Red",
                                                  "actual_value": "Red"}]}),
    ("Tags", "multiselectpicklist", {}),
    ("Mail", "email", {}),
    ("Tel", "phone", {}),
]


@pytest.fixture(scope="module")
def typed(shared_server: Server) -> Client:
    api = shared_server.client()
    for label, data_type, extra in CUSTOM:
        api.add_field("Leads", field_label=label, data_type=data_type, **extra)
    return api


def insert(api: Client, **values: Any) -> dict[str, Any]:
    reply = api.post("/crm/v8/Leads", {"data": [{"Last_Name": "Typed", **values}]})
    return reply.json()["data"][0]


ACCEPTED = [
    ("Count", 42, 42), ("Count", "42", 42), ("Count", -7, -7),
    ("Big", "0012345600012", "0012345600012"), ("Big", 123456789012345678, "123456789012345678"),
    ("Ratio", 3.25, 3.25), ("Ratio", 2, 2), ("Price", 19.999, 20.0), ("Price", "10.5", 10.5),
    ("Share", 12.5, 12.5),
    ("Flag", True, True), ("Flag", False, False), ("Flag", "true", True),
    ("Day", "2024-02-29", "2024-02-29"),
    ("Moment", "2024-01-15T10:30:00+05:30", "2024-01-15T05:00:00+00:00"),
    ("Moment", "2024-01-15T10:30:00Z", "2024-01-15T10:30:00+00:00"),
    ("Site", "https://www.zoho.com/crm", "https://www.zoho.com/crm"),
    ("Site", "zoho.com", "zoho.com"),
    ("Short", "abcde", "abcde"), ("Short", 12345, "12345"),
    ("Notes", "line 1\nline 2", "line 1\nline 2"),
    ("Colour", "Blue", "Blue"),
    ("Tags", ["a", "b"], ["a", "b"]),
    ("Mail", "p.boyle@abc.com", "p.boyle@abc.com"),
    ("Tel", "+1 (555) 010-0100", "+1 (555) 010-0100"),
    ("Short", "", None), ("Count", None, None),
    # pattern types are stored stripped, text as sent
    ("Mail", "  p.boyle@abc.com ", "p.boyle@abc.com"), ("Tel", " 555 0100", "555 0100"),
    ("Notes", "  spaced  ", "  spaced  "), ("Mail", "", None),
]


@pytest.mark.parametrize(("field", "sent", "stored"), ACCEPTED)
def test_accepted_values_are_stored_normalised(typed: Client, field: str, sent: Any,
                                               stored: Any) -> None:
    item = insert(typed, **{field: sent})
    assert item["code"] == "SUCCESS", item
    record = typed.record("Leads", item["details"]["id"])
    assert record[field] == stored


REFUSED = [
    ("Count", "abc", {"expected_data_type": "integer"}),
    ("Count", 1.5, {"expected_data_type": "integer"}),
    ("Count", True, {"expected_data_type": "integer"}),
    ("Count", 1234567890, {"maximum_length": 9}),
    ("Big", "12a", {"expected_data_type": "bigint"}),
    ("Big", "1" * 19, {"maximum_length": 18}),
    ("Ratio", "x", {"expected_data_type": "double"}),
    ("Ratio", [1], {"expected_data_type": "double"}),
    ("Price", {"v": 1}, {"expected_data_type": "currency"}),
    ("Flag", "yes", {"expected_data_type": "boolean"}),
    ("Flag", 1, {"expected_data_type": "boolean"}),
    ("Day", "2024-02-30", {"expected_data_type": "date"}),
    ("Day", "15/01/2024", {"expected_data_type": "date"}),
    ("Moment", "2024-01-15 10:30", {"expected_data_type": "datetime"}),
    ("Moment", "2024-01-15T10:30:00", {"expected_data_type": "datetime"}),
    ("Site", "not a url", {"expected_data_type": "website"}),
    ("Short", "abcdef", {"maximum_length": 5}),
    ("Short", {"a": 1}, {"expected_data_type": "text"}),
    ("Tags", "a", {"expected_data_type": "jsonarray"}),
    ("Mail", "not-an-email", {"expected_data_type": "email"}),
    ("Mail", "a" * 95 + "@x.com", {"maximum_length": 100}),
    ("Tel", "call me", {"expected_data_type": "phone"}),
    ("Mail", "   ", {"expected_data_type": "email"}),
    ("Short", "a\x00b", {"expected_data_type": "text"}),
    ("Mail", 12, {"expected_data_type": "email"}),
    ("Last_Name", "x" * 81, {"maximum_length": 80}),
]


@pytest.mark.parametrize(("field", "sent", "detail"), REFUSED)
def test_refused_values_get_invalid_data(typed: Client, field: str, sent: Any,
                                         detail: dict[str, Any]) -> None:
    reply = typed.post("/crm/v8/Leads", {"data": [{"Last_Name": "Typed", field: sent}]})
    assert reply.status_code == 400
    [item] = reply.json()["data"]
    assert item["code"] == "INVALID_DATA"
    assert item["status"] == "error"
    assert item["details"] == {**detail, "api_name": field, "json_path": f"$.data[0].{field}"}


@pytest.mark.parametrize("field", ["id", "Created_Time", "Created_By", "Modified_Time",
                                   "Modified_By", "Full_Name"])
def test_system_fields_are_not_writable(typed: Client, field: str) -> None:
    reply = typed.upsert("Leads", [{"Last_Name": "Sys", field: "2024-01-01T00:00:00+00:00"}])
    [item] = reply.json()["data"]
    assert item["code"] == "INVALID_DATA"
    assert item["details"]["api_name"] == field


def test_unknown_and_dollar_keys_are_ignored(typed: Client) -> None:
    item = insert(typed, Not_A_Field="x", **{"$approved": True})
    assert item["code"] == "SUCCESS"
    record = typed.record("Leads", item["details"]["id"])
    assert "Not_A_Field" not in record


def test_lookups_must_exist_and_render_with_their_name(typed: Client) -> None:
    account = typed.upsert("Accounts", [{"Account_Name": "Zylker"}]).json()["data"][0]
    account_id = account["details"]["id"]
    contact = typed.post("/crm/v8/Contacts", {"data": [
        {"Last_Name": "Linked", "First_Name": "Ann", "Account_Name": {"id": account_id}},
        {"Last_Name": "Numeric id", "Account_Name": {"id": int(account_id)}},
        {"Last_Name": "Dangling", "Account_Name": {"id": "5725767999999999999"}},
        {"Last_Name": "No id", "Account_Name": {"name": "Zylker"}},
        {"Last_Name": "Bad id", "Account_Name": {"id": "abc"}},
    ]})
    assert contact.status_code == 207
    items = contact.json()["data"]
    assert [i["code"] for i in items] == ["SUCCESS", "SUCCESS", "INVALID_DATA",
                                          "MANDATORY_NOT_FOUND", "INVALID_DATA"]
    assert items[3]["details"] == {"api_name": "id", "json_path": "$.data[3].Account_Name.id"}
    stored = typed.record("Contacts", items[0]["details"]["id"])
    assert stored["Account_Name"] == {"name": "Zylker", "id": account_id}
    assert stored["Full_Name"] == "Ann Linked"
    # A record in another module with the same id is not a valid target.
    wrong_module = typed.post("/crm/v8/Contacts", {"data": [
        {"Last_Name": "Wrong", "Account_Name": {"id": items[0]["details"]["id"]}}]})
    assert wrong_module.json()["data"][0]["code"] == "INVALID_DATA"


def test_owner_defaults_to_the_caller_and_may_be_another_user(shared_server: Server) -> None:
    api = shared_server.client()
    other = new_user(shared_server, "owner@example.com", "Olive Owner")
    me = api.get("/crm/v8/users?type=CurrentUser").json()["users"][0]
    them = other.get("/crm/v8/users?type=CurrentUser").json()["users"][0]
    mine = insert(api)
    assert api.record("Leads", mine["details"]["id"])["Owner"] == {
        "name": me["full_name"], "id": me["id"], "email": me["email"]}
    given = insert(api, Owner={"id": them["id"]})
    record = api.record("Leads", given["details"]["id"])
    assert record["Owner"]["id"] == them["id"]
    assert record["Created_By"]["id"] == me["id"]
    bad = insert(api, Owner={"id": "123"})
    assert bad["code"] == "INVALID_DATA"
    assert bad["details"]["api_name"] == "Owner"
