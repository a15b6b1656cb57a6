"""Upsert behaviour beyond the precedence table: batches, several matches, statuses, errors."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Client, Server, cli

VERSIONS = ["v2", "v2.1", "v3", "v4", "v5", "v6", "v7", "v8"]


def count(api: Client, module: str = "Contacts") -> int:
    reply = api.get(f"/crm/v8/{module}?fields=Last_Name")
    return 0 if reply.status_code == 204 else reply.json()["info"]["count"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_upserts(api: Client, version: str) -> None:
    reply = api.upsert("Leads", [{"Last_Name": "V", "Email": f"{version}@example.com"}],
                       version=version)
    assert reply.status_code == 200
    assert reply.json()["data"][0]["action"] == "insert"
    again = api.upsert("Leads", [{"Last_Name": "W", "Email": f"{version}@example.com"}],
                       version=version)
    assert again.json()["data"][0]["duplicate_field"] == "Email"


@pytest.mark.parametrize("version", ["v1", "v9", "latest", "v2.2"])
def test_unknown_version_is_an_invalid_url(api: Client, version: str) -> None:
    reply = api.upsert("Leads", [{"Last_Name": "V"}], version=version)
    assert reply.status_code == 404
    assert reply.json() == {"code": "INVALID_URL_PATTERN", "details": {},
                            "message": "Please check if the URL trying to access is a correct one",
                            "status": "error"}


def test_records_of_a_batch_apply_in_order(api: Client) -> None:
    reply = api.upsert("Contacts", [
        {"Last_Name": "First", "Email": "same@example.com"},
        {"Last_Name": "Second", "Email": "same@example.com"},
        {"Last_Name": "Third", "Email": "SAME@example.com", "Phone": "+1 555 0100"},
    ])
    assert reply.status_code == 200
    items = reply.json()["data"]
    assert [i["action"] for i in items] == ["insert", "update", "update"]
    assert [i["duplicate_field"] for i in items] == [None, "Email", "Email"]
    assert len({i["details"]["id"] for i in items}) == 1
    stored = api.record("Contacts", items[0]["details"]["id"])
    assert (stored["Last_Name"], stored["Email"], stored["Phone"]) == (
        "Third", "SAME@example.com", "+1 555 0100")
    assert count(api) == 1


def test_a_later_record_sees_an_external_value_written_earlier(api: Client) -> None:
    api.add_field("Contacts", field_label="Ext", data_type="text",
                  external={"type": "org", "show": False})
    reply = api.upsert("Contacts", [
        {"Last_Name": "One", "Ext": "E1", "Email": "one@example.com"},
        {"Last_Name": "Two", "Email": "one@example.com", "Ext": "E2"},  # moves the record to E2
        {"Last_Name": "Three", "Ext": "E1"},  # E1 is free again: a new record
        {"Last_Name": "Four", "Ext": "E2"},
    ])
    items = reply.json()["data"]
    assert [i["action"] for i in items] == ["insert", "update", "insert", "update"]
    assert [i["duplicate_field"] for i in items] == [None, "Email", None, "Ext"]
    first, third = items[0]["details"]["id"], items[2]["details"]["id"]
    assert items[3]["details"]["id"] == first
    assert api.record("Contacts", first)["Ext"] == "E2"
    assert api.record("Contacts", third)["Ext"] == "E1"


def test_an_external_value_taken_away_earlier_in_the_batch_falls_back_to_email(
        api: Client) -> None:
    """Record 1 reaches A by Email and moves A's external value X1 to X7; record 2 then
    carries X1, which no longer names A, so Email decides: it updates C."""
    api.add_field("Contacts", field_label="Ext", data_type="text",
                  external={"type": "org", "show": False})
    made = api.upsert("Contacts", [{"Last_Name": "A", "Ext": "X1", "Email": "a@example.com"},
                                   {"Last_Name": "C", "Email": "c@example.com"}])
    a, c = (i["details"]["id"] for i in made.json()["data"])
    reply = api.upsert("Contacts", [
        {"Last_Name": "A2", "Ext": "X7", "Email": "a@example.com"},
        {"Last_Name": "C2", "Ext": "X1", "Email": "c@example.com"},
    ])
    assert reply.status_code == 200, reply.text
    items = reply.json()["data"]
    assert [(i["action"], i["duplicate_field"], i["details"]["id"]) for i in items] == [
        ("update", "Email", a), ("update", "Email", c)]
    assert (api.record("Contacts", a)["Ext"], api.record("Contacts", c)["Ext"]) == ("X7", "X1")
    listing = api.get("/crm/v8/Contacts?fields=Last_Name").json()["data"]
    assert sorted(r["Last_Name"] for r in listing) == ["A2", "C2"]


def test_several_matches_update_the_oldest_and_say_so(api: Client) -> None:
    made = api.post("/crm/v8/Contacts", {"data": [
        {"Last_Name": "Old", "Email": "twin@example.com"},
        {"Last_Name": "New", "Email": "twin@example.com"},
    ]})
    assert made.status_code == 201
    oldest, newest = (i["details"]["id"] for i in made.json()["data"])
    reply = api.upsert("Contacts", [{"Last_Name": "Merged", "Email": "twin@example.com"}])
    [item] = reply.json()["data"]
    assert item["action"] == "update"
    assert item["details"]["id"] == oldest
    assert item["details"]["more_records"] is True
    assert api.record("Contacts", oldest)["Last_Name"] == "Merged"
    assert api.record("Contacts", newest)["Last_Name"] == "New"


def test_single_match_does_not_claim_more_records(api: Client) -> None:
    api.upsert("Contacts", [{"Last_Name": "A", "Email": "solo@example.com"}])
    reply = api.upsert("Contacts", [{"Last_Name": "B", "Email": "solo@example.com"}])
    [item] = reply.json()["data"]
    assert "more_records" not in item["details"]


def test_mandatory_fields_are_checked_on_the_insert_path_only(api: Client) -> None:
    missing = api.upsert("Contacts", [{"Email": "nobody@example.com"}])
    assert missing.status_code == 400
    assert missing.json()["data"][0] == {
        "code": "MANDATORY_NOT_FOUND",
        "details": {"api_name": "Last_Name", "json_path": "$.data[0].Last_Name"},
        "message": "required field not found", "status": "error"}
    assert count(api) == 0
    api.upsert("Contacts", [{"Last_Name": "Here", "Email": "here@example.com"}])
    update = api.upsert("Contacts", [{"Email": "here@example.com", "Title": "CTO"}])
    assert update.status_code == 200
    assert update.json()["data"][0]["action"] == "update"
    cleared = api.upsert("Contacts", [{"Email": "here@example.com", "Last_Name": None}])
    assert cleared.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"


def test_statuses_200_207_400(api: Client) -> None:
    ok = api.upsert("Contacts", [{"Last_Name": "A"}, {"Last_Name": "B"}])
    assert ok.status_code == 200
    mixed = api.upsert("Contacts", [{"Last_Name": "C"}, {"Email": "x@example.com"}])
    assert mixed.status_code == 207
    assert [i["status"] for i in mixed.json()["data"]] == ["success", "error"]
    failed = api.upsert("Contacts", [{"Email": "x@example.com"}, {"Last_Name": ["list"]}])
    assert failed.status_code == 400
    assert [i["code"] for i in failed.json()["data"]] == ["MANDATORY_NOT_FOUND", "INVALID_DATA"]
    assert count(api) == 3


def test_a_refused_record_writes_nothing(api: Client) -> None:
    api.add_field("Contacts", field_label="Badge", data_type="text", unique={})
    made = api.upsert("Contacts", [{"Last_Name": "Holder", "Badge": "B-1"},
                                   {"Last_Name": "Other", "Email": "other@example.com"}])
    holder, other = (i["details"]["id"] for i in made.json()["data"])
    before = api.record("Contacts", other)
    reply = api.upsert("Contacts", [{"Last_Name": "Changed", "Email": "other@example.com",
                                     "Badge": "b-1", "Title": "Thief"}])
    assert reply.status_code == 400
    [item] = reply.json()["data"]
    assert item["code"] == "DUPLICATE_DATA"
    assert item["details"]["api_name"] == "Badge"
    assert item["details"]["duplicate_record"]["id"] == holder
    after = api.record("Contacts", other)
    assert after == before


def test_request_errors(api: Client) -> None:
    def post(content: bytes) -> tuple[int, dict]:
        reply = api.request("POST", "/crm/v8/Contacts/upsert", content=content)
        return reply.status_code, reply.json()

    status, body = post(b'{"data": [')
    assert status == 400 and body["code"] == "INVALID_DATA" and body["status"] == "error"
    status, body = post(b"")
    assert (status, body["code"], body["details"]) == (
        400, "REQUIRED_PARAM_MISSING", {"param_name": "data"})
    status, body = post(b'{"data": []}')
    assert (status, body["code"]) == (400, "REQUIRED_PARAM_MISSING")
    status, body = post(b'{"trigger": ["workflow"]}')
    assert (status, body["code"]) == (400, "REQUIRED_PARAM_MISSING")
    status, body = post(b'{"data": {"Last_Name": "x"}}')
    assert (status, body["code"], body["details"]["expected_data_type"]) == (
        400, "INVALID_DATA", "jsonarray")
    status, body = post(b'[{"Last_Name": "x"}]')
    assert (status, body["code"]) == (400, "INVALID_DATA")
    status, body = post(b'{"data": [{"Last_Name": "x"}], "duplicate_check_fields": "Email"}')
    assert (status, body["code"]) == (400, "INVALID_DATA")
    status, body = post(b'{"data": ["not an object", 3]}')
    assert status == 400
    assert [i["details"]["json_path"] for i in body["data"]] == ["$.data[0]", "$.data[1]"]
    too_many = [{"Last_Name": f"N{i}"} for i in range(101)]
    reply = api.upsert("Contacts", too_many)
    assert reply.status_code == 400
    assert reply.json()["code"] == "LIMIT_EXCEEDED"
    assert reply.json()["details"]["limit"] == 100
    assert count(api) == 0
    hundred = api.upsert("Contacts", too_many[:100])
    assert hundred.status_code == 200
    assert count(api) == 100


def test_unknown_module_and_method(api: Client) -> None:
    reply = api.upsert("Nope", [{"Name": "x"}])
    assert reply.status_code == 400
    assert reply.json() == {"code": "INVALID_MODULE", "details": {"resource_path_index": 0},
                            "message": "the module name given seems to be invalid",
                            "status": "error"}
    reply = api.get("/crm/v8/Contacts/upsert")
    assert reply.status_code == 400
    assert reply.json()["code"] == "INVALID_REQUEST_METHOD"
    reply = api.get("/crm/v8/Contacts/1/2/3")
    assert reply.status_code == 404
    assert reply.json()["code"] == "INVALID_URL_PATTERN"


def test_module_names_are_case_insensitive_and_body_needs_no_content_type(api: Client) -> None:
    reply = api.http.post("/crm/v8/contacts/upsert",
                          content=b'{"data":[{"Last_Name":"NoHeader"}]}')
    assert "content-type" not in reply.request.headers
    assert reply.status_code == 200
    assert reply.json()["data"][0]["action"] == "insert"


def test_times_render_in_the_users_offset(server: Server) -> None:
    cli(server.database_url, "user", "add", "--email", "ist@example.com", "--name",
        "Indian Standard", "--time-zone", "Asia/Kolkata")
    ist = server.client(cli(server.database_url, "token", "create", "--user", "ist@example.com"))
    reply = ist.upsert("Leads", [{"Last_Name": "Tz"}])
    details = reply.json()["data"][0]["details"]
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+05:30$", details["Created_Time"])
    assert details["Created_By"]["name"] == "Indian Standard"


@pytest.mark.parametrize("module,record", [
    ("Leads", {"Last_Name": "L", "Email": "l@example.com"}),
    ("Accounts", {"Account_Name": "Zylker"}),
    ("Deals", {"Deal_Name": "Big", "Stage": "Qualification"}),
    ("Campaigns", {"Campaign_Name": "Spring"}),
    ("Cases", {"Subject": "Broken", "Status": "New", "Case_Origin": "Email"}),
    ("Solutions", {"Solution_Title": "Fix"}),
    ("Products", {"Product_Name": "Widget"}),
    ("Vendors", {"Vendor_Name": "Acme"}),
    ("Price_Books", {"Price_Book_Name": "Retail"}),
    ("Quotes", {"Subject": "Q1", "Quoted_Items": [{"Quantity": 1}]}),
    ("Sales_Orders", {"Subject": "SO1", "Ordered_Items": [{"Quantity": 1}]}),
    ("Invoices", {"Subject": "I1", "Invoiced_Items": [{"Quantity": 1}]}),
    ("Appointments__s", {"Appointment_Name": "Visit",
                         "Appointment_Start_Time": "2026-12-01T10:00:00+01:00"}),
    ("Services__s", {"Service_Name": "Repair"}),
])
def test_every_standard_module_matches_on_its_system_field(api: Client, module: str,
                                                           record: dict) -> None:
    first = api.upsert(module, [record])
    assert first.status_code == 200, first.text
    again = api.upsert(module, [record])
    [item] = again.json()["data"]
    assert item["action"] == "update", item
    assert item["details"]["id"] == first.json()["data"][0]["details"]["id"]
    missing = api.upsert(module, [{"Description": "nothing mandatory"}])
    assert missing.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"


def test_purchase_orders_need_an_existing_vendor(api: Client) -> None:
    vendor = api.upsert("Vendors", [{"Vendor_Name": "Acme"}]).json()["data"][0]["details"]["id"]
    record = {"Subject": "PO1", "Purchased_Items": [{"Quantity": 2}]}
    missing = api.upsert("Purchase_Orders", [record])
    assert missing.json()["data"][0]["details"]["api_name"] == "Vendor_Name"
    wrong = api.upsert("Purchase_Orders", [{**record, "Vendor_Name": {"id": "123456789012345678"}}])
    assert wrong.json()["data"][0]["code"] == "INVALID_DATA"
    ok = api.upsert("Purchase_Orders", [{**record, "Vendor_Name": {"id": vendor}}])
    assert ok.status_code == 200
    stored = api.record("Purchase_Orders", ok.json()["data"][0]["details"]["id"])
    assert stored["Vendor_Name"] == {"name": "Acme", "id": vendor}


def test_custom_module_matches_on_name(api: Client) -> None:
    made = api.post("/crm/v8/settings/modules",
                    {"modules": [{"singular_label": "Project", "plural_label": "Projects"}]})
    assert made.status_code == 201, made.text
    first = api.upsert("Projects", [{"Name": "Apollo"}])
    assert first.status_code == 200, first.text
    again = api.upsert("Projects", [{"Name": "APOLLO", "Email": "a@example.com"}])
    [item] = again.json()["data"]
    assert (item["action"], item["duplicate_field"]) == ("update", "Name")
