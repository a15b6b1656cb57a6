"""The three requests of Zoho's "Upsert Records Using External ID" page, bodies verbatim."""

from __future__ import annotations

import re

from tests.conftest import Client

ID_RE = re.compile(r"^\d{18,19}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


def test_zoho_upsert_by_external_id_samples(api: Client) -> None:
    api.add_field("Contacts", field_label="External Contact ID", data_type="text", length=255,
                  external={"type": "user", "show": True})

    # (1) The external value is new and nothing else matches: insert.
    first = api.post("/crm/v8/Contacts/upsert",
                     {"data": [{"Last_Name": "Boyle", "External_Contact_ID": "Boyle1"}]})
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/json")
    [item] = first.json()["data"]
    assert item["code"] == "SUCCESS"
    assert item["duplicate_field"] is None
    assert item["action"] == "insert"
    assert item["message"] == "record added"
    assert item["status"] == "success"
    details = item["details"]
    assert list(details) == ["Modified_Time", "Modified_By", "Created_Time", "id", "Created_By"]
    assert ID_RE.match(details["id"])
    assert TIME_RE.match(details["Created_Time"]) and TIME_RE.match(details["Modified_Time"])
    assert set(details["Created_By"]) == {"name", "id"}
    assert ID_RE.match(details["Created_By"]["id"])
    record_id = details["id"]

    # (2) The external value exists: that record is updated.
    second = api.post("/crm/v8/Contacts/upsert", {"data": [
        {"Last_Name": "Boyle P", "External_Contact_ID": "Boyle1", "Email": "p.boyle@abc.com"}]})
    assert second.status_code == 200
    [item] = second.json()["data"]
    assert (item["code"], item["action"], item["message"]) == (
        "SUCCESS", "update", "record updated")
    assert item["duplicate_field"] == "External_Contact_ID"
    assert item["details"]["id"] == record_id
    stored = api.record("Contacts", record_id)
    assert stored is not None
    assert stored["Last_Name"] == "Boyle P"
    assert stored["Email"] == "p.boyle@abc.com"

    # (3) A new external value, but Email (the system duplicate-check field) matches:
    #     that record is updated and receives the new external value.
    third = api.post(
        "/crm/v8/Contacts/upsert",
        {"data": [{"Last_Name": "Boyle P", "External_Contact_ID": "Boyle123",
                   "Email": "p.boyle@abc.com"}]},
        headers={"X-EXTERNAL": "Contacts.External_Contact_ID"},
    )
    assert third.status_code == 200
    [item] = third.json()["data"]
    assert item["action"] == "update"
    assert item["duplicate_field"] == "Email"
    assert item["details"]["id"] == record_id
    stored = api.record("Contacts", record_id)
    assert stored is not None
    assert stored["External_Contact_ID"] == "Boyle123"

    # Exactly one contact exists, and the old external value no longer matches it.
    listing = api.get("/crm/v8/Contacts?fields=Last_Name,External_Contact_ID")
    assert [r["id"] for r in listing.json()["data"]] == [record_id]
    again = api.upsert("Contacts", [{"Last_Name": "Other", "External_Contact_ID": "Boyle1"}])
    assert again.json()["data"][0]["action"] == "insert"
