"""Get, update and delete by external value with the X-EXTERNAL header (reference §4.6)."""

from __future__ import annotations

from tests.conftest import Client, Server, new_user

HEADER = {"X-EXTERNAL": "Contacts.External_Contact_ID"}


def setup(api: Client) -> dict[str, str]:
    api.add_field("Contacts", field_label="External Contact ID", data_type="text",
                  external={"type": "user", "show": True})
    made = api.upsert("Contacts", [
        {"Last_Name": "One", "External_Contact_ID": "ext1"},
        {"Last_Name": "Two", "External_Contact_ID": "ext2"},
        {"Last_Name": "Three", "External_Contact_ID": "ext3"},
    ])
    return {f"ext{n}": i["details"]["id"] for n, i in enumerate(made.json()["data"], start=1)}


def test_get_by_external_value(api: Client) -> None:
    ids = setup(api)
    reply = api.get("/crm/v8/Contacts/ext2", headers=HEADER)
    assert reply.status_code == 200
    assert reply.json()["data"][0]["id"] == ids["ext2"]
    assert api.get("/crm/v8/Contacts/nope", headers=HEADER).status_code == 204
    listing = api.get("/crm/v8/Contacts?fields=Last_Name&ids=ext1,ext3,nope", headers=HEADER)
    assert sorted(r["id"] for r in listing.json()["data"]) == sorted([ids["ext1"], ids["ext3"]])
    bad = api.get("/crm/v8/Contacts/ext2", headers={"X-EXTERNAL": "Contacts.Last_Name"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "INVALID_DATA"
    assert bad.json()["details"] == {"param_name": "X-EXTERNAL"}


def test_update_by_external_value(api: Client) -> None:
    ids = setup(api)
    reply = api.put("/crm/v8/Contacts/ext1", {"data": [{"Title": "CEO"}]}, headers=HEADER)
    assert reply.status_code == 200
    [item] = reply.json()["data"]
    assert item["details"]["id"] == ids["ext1"]
    assert item["details"]["External_Contact_ID"] == "ext1"
    assert api.record("Contacts", ids["ext1"])["Title"] == "CEO"
    bulk = api.put("/crm/v8/Contacts", {"data": [
        {"External_Contact_ID": "ext2", "Title": "CTO"},
        {"External_Contact_ID": "ghost", "Title": "?"},
        {"Title": "no external value"},
    ]}, headers=HEADER)
    assert bulk.status_code == 207
    items = bulk.json()["data"]
    assert [i["code"] for i in items] == ["SUCCESS", "INVALID_DATA", "MANDATORY_NOT_FOUND"]
    assert items[1]["message"] == "The value of the external field is invalid."
    assert api.record("Contacts", ids["ext2"])["Title"] == "CTO"
    moved = api.put("/crm/v8/Contacts/ext3", {"data": [{"External_Contact_ID": "ext9"}]},
                    headers=HEADER)
    assert moved.json()["data"][0]["code"] == "NOT_ALLOWED"
    assert api.record("Contacts", ids["ext3"])["External_Contact_ID"] == "ext3"


def test_delete_by_external_value(api: Client) -> None:
    ids = setup(api)
    reply = api.delete("/crm/v8/Contacts?ids=ext1,nope", headers=HEADER)
    assert reply.status_code == 207
    items = reply.json()["data"]
    assert items[0] == {"code": "SUCCESS",
                        "details": {"External_Contact_ID": "ext1", "id": ids["ext1"]},
                        "message": "record deleted", "status": "success"}
    assert items[1]["code"] == "INVALID_DATA"
    assert api.delete("/crm/v8/Contacts/ext2", headers=HEADER).status_code == 200
    assert api.record("Contacts", ids["ext1"]) is None
    assert api.record("Contacts", ids["ext2"]) is None


def test_user_based_values_address_only_the_callers_records(server: Server, api: Client) -> None:
    setup(api)
    other = new_user(server, "other@example.com", "Other User")
    assert other.get("/crm/v8/Contacts/ext1", headers=HEADER).status_code == 204
    reply = other.put("/crm/v8/Contacts/ext1", {"data": [{"Title": "x"}]}, headers=HEADER)
    assert reply.json()["data"][0]["code"] == "INVALID_DATA"
    assert other.delete("/crm/v8/Contacts/ext1", headers=HEADER).status_code == 400
