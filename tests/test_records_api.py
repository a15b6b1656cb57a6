"""Insert, update, get, list and delete: the rest of the records API on the same engine."""

from __future__ import annotations

import time

from tests.conftest import Client


def test_insert_replies_201_and_checks_unique_and_org_external_fields(api: Client) -> None:
    api.add_field("Accounts", field_label="ERP Id", data_type="text",
                  external={"type": "org", "show": True})
    api.add_field("Accounts", field_label="VAT", data_type="text", unique={})
    reply = api.post("/crm/v8/Accounts", {"data": [
        {"Account_Name": "Zylker", "ERP_Id": "E-1", "VAT": "GB1"}]})
    assert reply.status_code == 201
    [item] = reply.json()["data"]
    assert item["code"] == "SUCCESS" and item["message"] == "record added"
    assert "action" not in item and "duplicate_field" not in item
    holder = item["details"]["id"]

    reply = api.post("/crm/v8/Accounts", {"data": [
        {"Account_Name": "Zylker"},  # Account_Name is not unique: a second one is fine
        {"Account_Name": "Other", "ERP_Id": "E-1"},
        {"Account_Name": "Other", "VAT": "gb1"},
        {"Account_Name": "Twice", "VAT": "GB2"},
        {"Account_Name": "Twice again", "VAT": "GB2"},  # clashes with the record just before
    ]})
    assert reply.status_code == 207
    items = reply.json()["data"]
    assert [i["code"] for i in items] == ["SUCCESS", "DUPLICATE_DATA", "DUPLICATE_DATA",
                                          "SUCCESS", "DUPLICATE_DATA"]
    assert items[1]["details"]["duplicate_record"]["id"] == holder
    assert items[2]["details"]["api_name"] == "VAT"
    assert items[4]["details"]["duplicate_record"]["id"] == items[3]["details"]["id"]


def test_update_in_bulk_and_by_id(api: Client) -> None:
    made = api.post("/crm/v8/Leads", {"data": [{"Last_Name": "One", "Company": "A"},
                                               {"Last_Name": "Two", "Company": "B"}]})
    ids = [i["details"]["id"] for i in made.json()["data"]]
    reply = api.put("/crm/v8/Leads", {"data": [
        {"id": ids[0], "Company": "A2"},
        {"id": int(ids[1]), "Company": "B2"},  # the SDK sends ids as JSON numbers
        {"Company": "no id"},
        {"id": "5725767999999999999", "Company": "ghost"},
        {"id": "not-an-id", "Company": "bad"},
    ]})
    assert reply.status_code == 207
    items = reply.json()["data"]
    assert [i["code"] for i in items] == ["SUCCESS", "SUCCESS", "MANDATORY_NOT_FOUND",
                                          "INVALID_DATA", "INVALID_DATA"]
    assert items[0]["message"] == "record updated"
    assert items[2]["details"] == {"api_name": "id", "json_path": "$.data[2].id"}
    assert items[3] == {"code": "INVALID_DATA", "details": {"id": "5725767999999999999"},
                        "message": "the id given seems to be invalid", "status": "error"}
    assert api.record("Leads", ids[0])["Company"] == "A2"
    assert api.record("Leads", ids[1])["Company"] == "B2"

    by_id = api.put(f"/crm/v8/Leads/{ids[0]}", {"data": [{"Company": "A3", "Last_Name": "Uno"}]})
    assert by_id.status_code == 200
    assert by_id.json()["data"][0]["details"]["id"] == ids[0]
    record = api.record("Leads", ids[0])
    assert (record["Company"], record["Last_Name"]) == ("A3", "Uno")
    assert record["Modified_Time"] >= record["Created_Time"]

    cleared = api.put(f"/crm/v8/Leads/{ids[0]}", {"data": [{"Last_Name": ""}]})
    assert cleared.status_code == 400
    assert cleared.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    missing = api.put("/crm/v8/Leads/5725767999999999999", {"data": [{"Company": "x"}]})
    assert missing.status_code == 400


def test_update_by_id_refuses_another_modules_record(api: Client) -> None:
    contact = api.upsert("Contacts", [{"Last_Name": "Kept", "Email": "kept@example.com"}]
                         ).json()["data"][0]["details"]["id"]
    reply = api.put("/crm/v8/Leads", {"data": [{"id": contact, "Last_Name": "Stolen"}]})
    assert reply.status_code == 400
    assert reply.json()["data"][0] == {"code": "INVALID_DATA", "details": {"id": contact},
                                       "message": "the id given seems to be invalid",
                                       "status": "error"}
    assert api.put(f"/crm/v8/Leads/{contact}",
                   {"data": [{"Last_Name": "Stolen"}]}).status_code == 400
    assert api.record("Contacts", contact)["Last_Name"] == "Kept"


def test_update_cannot_take_another_records_unique_value(api: Client) -> None:
    api.add_field("Leads", field_label="Badge", data_type="text", unique={})
    a, b = (i["details"]["id"] for i in api.post("/crm/v8/Leads", {"data": [
        {"Last_Name": "A", "Badge": "1"}, {"Last_Name": "B", "Badge": "2"}]}).json()["data"])
    clash = api.put("/crm/v8/Leads", {"data": [{"id": b, "Badge": "1"}]})
    assert clash.json()["data"][0]["code"] == "DUPLICATE_DATA"
    swap = api.put("/crm/v8/Leads", {"data": [{"id": a, "Badge": "3"}, {"id": b, "Badge": "1"}]})
    assert swap.status_code == 200, swap.text
    assert api.record("Leads", b)["Badge"] == "1"


def test_get_one_record(api: Client) -> None:
    rid = api.upsert("Contacts", [{"Last_Name": "Get", "Email": "g@example.com"}]).json()[
        "data"][0]["details"]["id"]
    reply = api.get(f"/crm/v8/Contacts/{rid}")
    assert reply.status_code == 200
    [record] = reply.json()["data"]
    assert record["id"] == rid
    assert record["Last_Name"] == "Get"
    assert record["First_Name"] is None  # empty fields are null
    assert set(record["Created_By"]) == {"name", "id", "email"}
    assert api.get("/crm/v8/Contacts/5725767999999999999").status_code == 204
    assert api.get("/crm/v8/Contacts/not-an-id").status_code == 204
    assert api.get(f"/crm/v8/Leads/{rid}").status_code == 204  # another module's record


def test_list_pages_sorts_and_selects_fields(api: Client) -> None:
    assert api.get("/crm/v8/Leads?fields=Last_Name").status_code == 204
    made = api.upsert("Leads", [{"Last_Name": f"L{n:02}", "Company": "C"} for n in range(25)])
    ids = [i["details"]["id"] for i in made.json()["data"]]
    page1 = api.get("/crm/v8/Leads?fields=Last_Name&per_page=10&sort_order=asc&sort_by=id")
    assert page1.status_code == 200
    body = page1.json()
    assert [r["id"] for r in body["data"]] == ids[:10]
    assert set(body["data"][0]) == {"Last_Name", "id"}
    assert body["info"]["more_records"] is True
    assert (body["info"]["count"], body["info"]["page"], body["info"]["per_page"]) == (10, 1, 10)
    page3 = api.get("/crm/v8/Leads?fields=Last_Name&per_page=10&page=3&sort_order=asc").json()
    assert [r["id"] for r in page3["data"]] == ids[20:]
    assert page3["info"]["more_records"] is False
    desc = api.get("/crm/v8/Leads?fields=Last_Name,Company&per_page=5").json()
    assert [r["id"] for r in desc["data"]] == ids[::-1][:5]
    chosen = api.get(f"/crm/v8/Leads?fields=Last_Name&ids={ids[3]},{ids[7]}").json()
    assert sorted(r["id"] for r in chosen["data"]) == sorted([ids[3], ids[7]])
    assert api.get("/crm/v8/Leads?fields=Last_Name&page=4&per_page=10").status_code == 204


def test_list_sorted_by_modified_time_pages_the_latest_changes(api: Client) -> None:
    made = api.upsert("Leads", [{"Last_Name": f"M{n}", "Company": "C"} for n in range(5)])
    ids = [i["details"]["id"] for i in made.json()["data"]]
    time.sleep(1.1)  # Modified_Time has seconds precision
    changed = api.put("/crm/v8/Leads", {"data": [{"id": ids[3], "Company": "D"},
                                                 {"id": ids[1], "Company": "D"}]})
    assert changed.status_code == 200, changed.text
    query = "/crm/v8/Leads?fields=Last_Name,Modified_Time&sort_by=Modified_Time&per_page=2"
    first = api.get(query).json()  # newest first; ties in id order, descending too
    assert [r["id"] for r in first["data"]] == [ids[3], ids[1]]
    assert first["info"]["sort_by"] == "Modified_Time"
    assert first["info"]["more_records"] is True
    second = api.get(query + "&page=2").json()
    assert [r["id"] for r in second["data"]] == [ids[4], ids[2]]
    last = api.get(query + "&page=3").json()
    assert [r["id"] for r in last["data"]] == [ids[0]]
    assert last["info"]["more_records"] is False
    ascending = api.get(query + "&sort_order=asc&per_page=5").json()["data"]
    assert [r["id"] for r in ascending] == [ids[0], ids[2], ids[4], ids[1], ids[3]]
    times = [r["Modified_Time"] for r in ascending]
    assert times == sorted(times) and times[0] < times[-1]


def test_list_parameter_errors(api: Client) -> None:
    reply = api.get("/crm/v8/Leads")
    assert reply.status_code == 400
    assert reply.json() == {"code": "REQUIRED_PARAM_MISSING", "details": {"param_name": "fields"},
                            "message": "One of the expected parameter is missing",
                            "status": "error"}
    api.upsert("Leads", [{"Last_Name": "Any"}])
    v2 = api.get("/crm/v2/Leads")  # v2 lists all fields without `fields`
    assert v2.status_code == 200 and "Last_Name" in v2.json()["data"][0]
    for query, code in [("per_page=201", "LIMIT_EXCEEDED"), ("per_page=0", "INVALID_DATA"),
                        ("page=x", "INVALID_DATA"), ("sort_by=Last_Name", "INVALID_DATA"),
                        ("sort_order=up", "INVALID_DATA"), ("ids=1,x", "INVALID_DATA"),
                        ("page=11", "DISCRETE_PAGINATION_LIMIT_EXCEEDED"),
                        ("fields=" + ",".join(f"F{n}" for n in range(51)), "LIMIT_EXCEEDED")]:
        reply = api.get(f"/crm/v8/Leads?fields=Last_Name&{query}")
        assert reply.status_code == 400, query
        assert reply.json()["code"] == code, query


def test_delete_by_ids_and_by_id_frees_keys(api: Client) -> None:
    api.add_field("Contacts", field_label="Ext", data_type="text",
                  external={"type": "org", "show": False})
    ids = [i["details"]["id"] for i in api.upsert("Contacts", [
        {"Last_Name": "A", "Ext": "A"}, {"Last_Name": "B", "Ext": "B"},
        {"Last_Name": "C", "Ext": "C", "Email": "c@example.com"}]).json()["data"]]
    reply = api.delete(f"/crm/v8/Contacts?ids={ids[0]},5725767999999999999,{ids[1]}")
    assert reply.status_code == 207
    items = reply.json()["data"]
    assert items[0] == {"code": "SUCCESS", "details": {"id": ids[0]}, "message": "record deleted",
                        "status": "success"}
    assert items[1]["code"] == "INVALID_DATA"
    assert items[2]["code"] == "SUCCESS"
    assert api.record("Contacts", ids[0]) is None
    one = api.delete(f"/crm/v8/Contacts/{ids[2]}")
    assert one.status_code == 200
    assert api.delete(f"/crm/v8/Contacts/{ids[2]}").status_code == 400
    assert api.get("/crm/v8/Contacts?fields=Last_Name").status_code == 204
    # The external values and the Email are free again.
    again = api.upsert("Contacts", [{"Last_Name": "A2", "Ext": "A"},
                                    {"Last_Name": "C2", "Email": "c@example.com"}])
    assert [i["action"] for i in again.json()["data"]] == ["insert", "insert"]


def test_delete_frees_unique_and_user_based_values(api: Client) -> None:
    api.add_field("Contacts", field_label="Badge", data_type="text", unique={})
    api.add_field("Contacts", field_label="Mine", data_type="text",
                  external={"type": "user", "show": True})
    made = api.upsert("Contacts", [{"Last_Name": "A", "Badge": "b-1", "Mine": "m-1"},
                                   {"Last_Name": "B", "Badge": "B-2", "Mine": "m-2"}])
    ids = [i["details"]["id"] for i in made.json()["data"]]
    assert api.delete(f"/crm/v8/Contacts/{ids[0]}").status_code == 200
    # The deleted record's values are free; the other record's are still taken.
    again = api.upsert("Contacts", [{"Last_Name": "A2", "Badge": "B-1", "Mine": "m-1"},
                                    {"Last_Name": "B2", "Mine": "m-2"}])
    items = again.json()["data"]
    assert [i["action"] for i in items] == ["insert", "update"]
    assert items[1]["details"]["id"] == ids[1]
    clash = api.post("/crm/v8/Contacts", {"data": [{"Last_Name": "C", "Badge": "b-2"}]})
    assert clash.json()["data"][0]["code"] == "DUPLICATE_DATA"


def test_delete_errors(api: Client) -> None:
    reply = api.delete("/crm/v8/Contacts")
    assert reply.status_code == 400
    assert reply.json()["details"] == {"param_name": "ids"}
    many = ",".join(str(5725767000000000000 + n) for n in range(101))
    assert api.delete(f"/crm/v8/Contacts?ids={many}").json()["code"] == "LIMIT_EXCEEDED"
    assert api.delete("/crm/v8/Nope?ids=1").json()["code"] == "INVALID_MODULE"


def test_if_unmodified_since_protects_newer_changes(api: Client) -> None:
    made = api.upsert("Leads", [{"Last_Name": "Guarded", "Email": "g@example.com"}])
    rid = made.json()["data"][0]["details"]["id"]
    modified = api.record("Leads", rid)["Modified_Time"]
    old = "2001-01-01T00:00:00+00:00"
    stale = api.put(f"/crm/v8/Leads/{rid}", {"data": [{"Company": "late"}]},
                    headers={"If-Unmodified-Since": old})
    assert stale.status_code == 412
    [item] = stale.json()["data"]
    assert item["code"] == "ALREADY_MODIFIED"
    assert item["details"]["id"] == rid
    assert item["details"]["Modified_Time"] == modified
    stale = api.post("/crm/v8/Leads/upsert",
                     {"data": [{"Last_Name": "x", "Email": "g@example.com"}]},
                     headers={"If-Unmodified-Since": old})
    assert stale.status_code == 412
    assert api.record("Leads", rid)["Last_Name"] == "Guarded"
    fresh = api.put(f"/crm/v8/Leads/{rid}", {"data": [{"Company": "on time"}]},
                    headers={"If-Unmodified-Since": modified})
    assert fresh.status_code == 200
    inserted = api.post("/crm/v8/Leads/upsert",
                        {"data": [{"Last_Name": "New", "Email": "n@example.com"}]},
                        headers={"If-Unmodified-Since": old})
    assert inserted.status_code == 200
    bad = api.put(f"/crm/v8/Leads/{rid}", {"data": [{"Company": "x"}]},
                  headers={"If-Unmodified-Since": "yesterday"})
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_DATA")
