"""Org-based and user-based external fields across users."""

from __future__ import annotations

from tests.conftest import Client, Server, new_user


def test_org_based_external_value_belongs_to_the_org(server: Server, api: Client) -> None:
    api.add_field("Campaigns", field_label="External Campaign ID", data_type="text",
                  external={"type": "org", "show": True})
    mine = api.upsert("Campaigns", [{"Campaign_Name": "Spring", "External_Campaign_ID": "C-1"}])
    assert mine.status_code == 200
    first_id = mine.json()["data"][0]["details"]["id"]

    other = new_user(server, "second@example.com", "Second User")
    clash = other.post("/crm/v8/Campaigns",
                       {"data": [{"Campaign_Name": "Autumn", "External_Campaign_ID": "C-1"}]})
    assert clash.status_code == 400
    [item] = clash.json()["data"]
    assert item["code"] == "DUPLICATE_DATA"
    assert item["status"] == "error"
    assert item["message"] == "duplicate data"
    details = item["details"]
    assert details["api_name"] == "External_Campaign_ID"
    assert details["json_path"] == "$.data[0].External_Campaign_ID"
    dup = details["duplicate_record"]
    assert dup["id"] == first_id
    assert dup["module"]["api_name"] == "Campaigns"
    assert dup["module"]["id"].isdigit()
    assert dup["Owner"]["name"] == "crmlite Admin"
    assert dup["Owner"]["id"].isdigit()

    # Upserting with the org's value updates the org's one record, whoever calls.
    update = other.upsert("Campaigns", [{"Campaign_Name": "Renamed",
                                         "External_Campaign_ID": "C-1"}])
    [item] = update.json()["data"]
    assert (item["action"], item["duplicate_field"], item["details"]["id"]) == (
        "update", "External_Campaign_ID", first_id)
    assert api.record("Campaigns", first_id)["Campaign_Name"] == "Renamed"
    listing = api.get("/crm/v8/Campaigns?fields=Campaign_Name")
    assert len(listing.json()["data"]) == 1


def test_user_based_external_value_is_scoped_to_its_user(server: Server, api: Client) -> None:
    api.add_field("Contacts", field_label="External Contact ID", data_type="text",
                  external={"type": "user", "show": True})
    mine = api.upsert("Contacts", [{"Last_Name": "Mine", "External_Contact_ID": "X-1"}])
    my_id = mine.json()["data"][0]["details"]["id"]

    other = new_user(server, "second@example.com", "Second User")
    theirs = other.upsert("Contacts", [{"Last_Name": "Theirs", "External_Contact_ID": "X-1"}])
    assert theirs.status_code == 200
    [item] = theirs.json()["data"]
    assert item["action"] == "insert"
    assert item["duplicate_field"] is None
    their_id = item["details"]["id"]
    assert their_id != my_id

    # The first user's record is untouched, and each user matches only their own record.
    mine_now = api.record("Contacts", my_id)
    assert mine_now["Last_Name"] == "Mine"
    assert mine_now["External_Contact_ID"] == "X-1"
    again = other.upsert("Contacts", [{"Last_Name": "Theirs 2", "External_Contact_ID": "X-1"}])
    assert again.json()["data"][0]["details"]["id"] == their_id
    again = api.upsert("Contacts", [{"Last_Name": "Mine 2", "External_Contact_ID": "X-1"}])
    assert again.json()["data"][0]["details"]["id"] == my_id
    assert api.record("Contacts", their_id)["Last_Name"] == "Theirs 2"
    assert api.record("Contacts", my_id)["Last_Name"] == "Mine 2"

    # A plain insert with one's own existing value is a duplicate; with another's, it is not.
    clash = other.post("/crm/v8/Contacts",
                       {"data": [{"Last_Name": "Dup", "External_Contact_ID": "X-1"}]})
    assert clash.json()["data"][0]["code"] == "DUPLICATE_DATA"
    assert clash.json()["data"][0]["details"]["duplicate_record"]["id"] == their_id
