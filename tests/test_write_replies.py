"""The bytes of insert, update and upsert replies: Zoho's members in Zoho's order, compact
JSON, values escaped (the server renders these items from pieces, not from dicts)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from tests.conftest import Client

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


def details(item: dict[str, Any], **more: Any) -> dict[str, Any]:
    """``item``'s details as Zoho orders them, checked, with ``more`` members after."""
    d = item["details"]
    assert TIME.fullmatch(d["Modified_Time"]) and TIME.fullmatch(d["Created_Time"]), d
    assert set(d["Modified_By"]) == set(d["Created_By"]) == {"name", "id"}, d
    return {"Modified_Time": d["Modified_Time"], "Modified_By": d["Modified_By"],
            "Created_Time": d["Created_Time"], "id": d["id"], "Created_By": d["Created_By"],
            **more}


def test_an_upsert_reply_byte_for_byte(api: Client) -> None:
    made = api.post("/crm/v8/Contacts", {"data": [
        {"Last_Name": "Old", "Email": "twin@example.com"},
        {"Last_Name": "New", "Email": "twin@example.com"},
    ]})
    oldest = made.json()["data"][0]["details"]["id"]
    reply = api.upsert("Contacts", [
        {"Last_Name": "Fresh", "Email": "fresh@example.com"},
        {"Last_Name": "Merged", "Email": "twin@example.com"},
        {"Email": "nameless@example.com"},
        {"Last_Name": "Again", "Email": "FRESH@example.com"},
    ])
    assert reply.status_code == 207
    items = reply.json()["data"]
    fresh = items[0]["details"]["id"]
    assert items[1]["details"]["id"] == oldest and items[3]["details"]["id"] == fresh
    expected = {"data": [
        {"code": "SUCCESS", "duplicate_field": None, "action": "insert",
         "details": details(items[0]), "message": "record added", "status": "success"},
        {"code": "SUCCESS", "duplicate_field": "Email", "action": "update",
         "details": details(items[1], more_records=True), "message": "record updated",
         "status": "success"},
        {"code": "MANDATORY_NOT_FOUND",
         "details": {"api_name": "Last_Name", "json_path": "$.data[2].Last_Name"},
         "message": "required field not found", "status": "error"},
        {"code": "SUCCESS", "duplicate_field": "Email", "action": "update",
         "details": details(items[3]), "message": "record updated", "status": "success"},
    ]}
    assert reply.content == orjson.dumps(expected)
    assert reply.headers["content-type"] == "application/json;charset=UTF-8"


def test_insert_and_update_replies_byte_for_byte(api: Client) -> None:
    api.add_field("Contacts", field_label="External Contact ID", data_type="text",
                  external={"type": "org", "show": True})
    odd = 'ext "1" \\ ü ☃'  # an external value the reply echoes: escaped as JSON
    made = api.post("/crm/v8/Contacts", {"data": [
        {"Last_Name": "One", "External_Contact_ID": odd}]})
    assert made.status_code == 201
    [item] = made.json()["data"]
    assert made.content == orjson.dumps({"data": [
        {"code": "SUCCESS", "details": details(item), "message": "record added",
         "status": "success"}]})
    header = {"X-EXTERNAL": "Contacts.External_Contact_ID"}
    updated = api.put("/crm/v8/Contacts", {"data": [
        {"External_Contact_ID": odd, "Title": "CEO"},
        {"External_Contact_ID": "ghost", "Title": "?"},
    ]}, headers=header)
    assert updated.status_code == 207
    first, second = updated.json()["data"]
    assert first["details"]["id"] == item["details"]["id"]
    assert updated.content == orjson.dumps({"data": [
        {"code": "SUCCESS", "details": details(first, External_Contact_ID=odd),
         "message": "record updated", "status": "success"},
        second,
    ]})
    assert second["code"] == "INVALID_DATA"
    refused = api.put("/crm/v8/Contacts", {"data": [{"External_Contact_ID": "ghost"}]},
                      headers=header)
    assert refused.status_code == 400
