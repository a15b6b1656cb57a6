"""Custom fields through Zoho's fields API."""

from __future__ import annotations

from tests.conftest import Client


def test_create_and_list_custom_fields(api: Client) -> None:
    reply = api.post("/crm/v8/settings/fields?module=Contacts", {"fields": [
        {"field_label": "External Contact ID", "data_type": "text", "length": 100,
         "external": {"type": "user", "show": True}},
        {"field_label": "Loyalty No.", "data_type": "bigint", "unique": {"case_sensitive": False}},
        {"field_label": "Score", "data_type": "integer"},
    ]})
    assert reply.status_code == 201
    items = reply.json()["fields"]
    assert [i["code"] for i in items] == ["SUCCESS"] * 3
    assert all(i["details"]["id"].isdigit() for i in items)

    listing = api.get("/crm/v8/settings/fields?module=Contacts")
    assert listing.status_code == 200
    by_name = {f["api_name"]: f for f in listing.json()["fields"]}
    ext = by_name["External_Contact_ID"]
    assert ext["id"] == items[0]["details"]["id"]
    assert (ext["data_type"], ext["json_type"], ext["length"]) == ("text", "string", 100)
    assert ext["custom_field"] is True
    assert ext["external"] == {"show": True, "type": "user", "allow_multiple_config": False}
    assert ext["unique"] == {}
    loyalty = by_name["Loyalty_No"]
    assert loyalty["unique"] == {"case_sensitive": False}
    assert (loyalty["data_type"], loyalty["json_type"]) == ("bigint", "string")
    assert by_name["Score"]["json_type"] == "integer"
    last = by_name["Last_Name"]
    assert last["system_mandatory"] is True and last["custom_field"] is False
    assert last["external"] is None
    assert by_name["id"]["read_only"] is True
    assert by_name["Account_Name"]["lookup"]["module"]["api_name"] == "Accounts"
    for f in listing.json()["fields"]:
        assert {"api_name", "id", "data_type", "json_type", "length", "system_mandatory",
                "read_only", "custom_field", "unique", "external"} <= set(f)
    one = api.get(f"/crm/v8/settings/fields/{ext['id']}?module=Contacts")
    assert one.json()["fields"][0]["api_name"] == "External_Contact_ID"


def test_field_definition_errors(api: Client) -> None:
    api.add_field("Leads", field_label="Badge One", data_type="text", unique={})
    api.add_field("Leads", field_label="Badge Two", data_type="text", unique={})
    reply = api.post("/crm/v8/settings/fields?module=Leads", {"fields": [
        {"data_type": "text"},
        {"field_label": "No Type"},
        {"field_label": "Odd", "data_type": "hologram"},
        {"field_label": "Badge One", "data_type": "text"},
        {"field_label": "Ext Mail", "data_type": "email", "external": {"type": "org"}},
        {"field_label": "Ext Bad", "data_type": "text", "external": {"type": "team"}},
        {"field_label": "Third Unique", "data_type": "text", "unique": {}},
        {"field_label": "Long", "data_type": "text", "length": 256},
        {"field_label": "Unique Box", "data_type": "textarea", "unique": {}},
        {"field_label": "Where", "data_type": "lookup", "lookup": {"module": {"api_name": "X"}}},
        {"field_label": "Fine", "data_type": "text"},
    ]})
    assert reply.status_code == 207
    codes = [(i["code"], i.get("details", {}).get("api_name")) for i in reply.json()["fields"]]
    assert codes == [
        ("MANDATORY_NOT_FOUND", "field_label"), ("MANDATORY_NOT_FOUND", "data_type"),
        ("INVALID_DATA", "data_type"), ("DUPLICATE_DATA", "api_name"),
        ("INVALID_DATA", "external"), ("INVALID_DATA", "external"),
        ("LIMIT_EXCEEDED", "unique"), ("INVALID_DATA", "length"), ("INVALID_DATA", "unique"),
        ("INVALID_DATA", "lookup"), ("SUCCESS", None)]
    names = [f["api_name"] for f in api.get("/crm/v8/settings/fields?module=Leads").json()[
        "fields"]]
    assert "Fine" in names and "Odd" not in names and "Long" not in names


def test_fields_route_errors(api: Client) -> None:
    reply = api.get("/crm/v8/settings/fields")
    assert reply.status_code == 400
    assert reply.json()["code"] == "REQUIRED_PARAM_MISSING"
    assert api.get("/crm/v8/settings/fields?module=Nope").json()["code"] == "INVALID_MODULE"
    reply = api.post("/crm/v8/settings/fields?module=Leads", {"fields": "x"})
    assert (reply.status_code, reply.json()["code"]) == (400, "INVALID_DATA")
    reply = api.post("/crm/v8/settings/fields?module=Leads", {})
    assert (reply.status_code, reply.json()["code"]) == (400, "REQUIRED_PARAM_MISSING")


def test_a_lookup_field_to_a_custom_module(api: Client) -> None:
    api.post("/crm/v8/settings/modules",
             {"modules": [{"singular_label": "Project", "plural_label": "Projects"}]})
    api.add_field("Deals", field_label="Project", data_type="lookup",
                  lookup={"module": {"api_name": "Projects"}})
    project = api.upsert("Projects", [{"Name": "Apollo"}]).json()["data"][0]["details"]["id"]
    deal = api.upsert("Deals", [{"Deal_Name": "D", "Stage": "Qualification",
                                 "Project": {"id": project}}])
    record = api.record("Deals", deal.json()["data"][0]["details"]["id"])
    assert record["Project"] == {"name": "Apollo", "id": project}
