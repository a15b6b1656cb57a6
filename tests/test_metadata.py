"""Metadata as Zoho serves it: modules (and custom modules), fields, users, org."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from tests.conftest import Server, cli

MODULES = "/crm/v8/settings/modules"
FIELDS = "/crm/v8/settings/fields"

# Zoho's data types of standard fields (zoho-crm-api.md §5.1, Zoho's field metadata).
STANDARD_TYPES = {
    "Leads": {"Owner": "ownerlookup", "Company": "text", "Last_Name": "text",
              "Full_Name": "text", "Email": "email", "Phone": "phone", "Website": "website",
              "Lead_Source": "picklist", "Lead_Status": "picklist", "Industry": "picklist",
              "No_of_Employees": "integer", "Annual_Revenue": "currency",
              "Email_Opt_Out": "boolean", "Description": "textarea", "Zip_Code": "text",
              "Created_Time": "datetime", "Created_By": "ownerlookup", "id": "bigint"},
    "Contacts": {"Account_Name": "lookup", "Vendor_Name": "lookup", "Reporting_To": "lookup",
                 "Date_of_Birth": "date", "Mailing_Zip": "text", "Other_Zip": "text",
                 "Mobile": "phone", "Secondary_Email": "email", "Salutation": "picklist"},
    "Accounts": {"Account_Name": "text", "Parent_Account": "lookup", "Account_Type": "picklist",
                 "Employees": "integer", "Billing_Code": "text", "Ownership": "picklist"},
    "Deals": {"Amount": "currency", "Closing_Date": "date", "Stage": "picklist",
              "Probability": "integer", "Campaign_Source": "lookup", "Contact_Name": "lookup"},
    "Cases": {"Case_Number": "autonumber", "Status": "picklist", "Case_Origin": "picklist",
              "Related_To": "lookup", "Product_Name": "lookup"},
    "Products": {"Tax": "multiselectpicklist", "Unit_Price": "currency",
                 "Qty_in_Stock": "double", "Product_Active": "boolean",
                 "Vendor_Name": "lookup"},
    "Quotes": {"Quoted_Items": "subform", "Carrier": "picklist", "Grand_Total": "currency",
               "Valid_Till": "date", "Deal_Name": "lookup"},
    "Sales_Orders": {"Ordered_Items": "subform", "Quote_Name": "lookup", "Carrier": "picklist"},
    "Purchase_Orders": {"Purchased_Items": "subform", "Vendor_Name": "lookup"},
    "Invoices": {"Invoiced_Items": "subform", "Sales_Order": "lookup"},
}
LOOKUP_TARGETS = {("Contacts", "Account_Name"): "Accounts", ("Contacts", "Vendor_Name"): "Vendors",
                  ("Deals", "Campaign_Source"): "Campaigns", ("Cases", "Related_To"): "Contacts",
                  ("Invoices", "Sales_Order"): "Sales_Orders",
                  ("Accounts", "Parent_Account"): "Accounts"}
JSON_TYPES = {"text": "string", "email": "string", "phone": "string", "website": "string",
              "picklist": "string", "textarea": "string", "autonumber": "string",
              "date": "string", "datetime": "string", "bigint": "string", "integer": "integer",
              "currency": "double", "double": "double", "boolean": "boolean",
              "lookup": "jsonobject", "ownerlookup": "jsonobject", "userlookup": "jsonobject",
              "subform": "jsonarray",
              "multiselectpicklist": "jsonarray"}


def fields_of(api: Any, module: str) -> dict[str, dict[str, Any]]:
    reply = api.get(f"{FIELDS}?module={module}")
    assert reply.status_code == 200, reply.text
    return {f["api_name"]: f for f in reply.json()["fields"]}


def test_standard_fields_carry_zohos_data_types(shared_server: Server) -> None:
    api = shared_server.client()
    modules = {m["api_name"]: m for m in api.get(MODULES).json()["modules"]}
    for module, expected in STANDARD_TYPES.items():
        fields = fields_of(api, module)
        assert {k: fields[k]["data_type"] for k in expected} == expected, module
        for f in fields.values():
            assert f["json_type"] == JSON_TYPES[f["data_type"]], (module, f["api_name"])
            assert f["id"].isdigit() and isinstance(f["length"], int)
            if f["data_type"] == "picklist":
                values = f["pick_list_values"]
                assert values and all(v["display_value"] and v["actual_value"]
                                      for v in values), (module, f["api_name"])
            if f["data_type"] == "lookup":
                target = f["lookup"]["module"]
                assert target["id"] == modules[target["api_name"]]["id"], (module, f)
    for (module, field), target in LOOKUP_TARGETS.items():
        assert fields_of(api, module)[field]["lookup"]["module"]["api_name"] == target
    stages = [v["display_value"] for v in fields_of(api, "Deals")["Stage"]["pick_list_values"]]
    assert {"Qualification", "Closed Won", "Closed Lost"} <= set(stages)
    leads = fields_of(api, "Leads")
    assert leads["Last_Name"]["system_mandatory"] is True
    assert leads["Full_Name"]["read_only"] is True
    assert leads["Email"]["system_mandatory"] is False
    assert leads["Full_Name"]["display_field"] is True
    assert "Mailing_Code" not in fields_of(api, "Contacts")


def test_one_field_by_id(shared_server: Server) -> None:
    api = shared_server.client()
    email = fields_of(api, "Contacts")["Email"]
    reply = api.get(f"{FIELDS}/{email['id']}?module=Contacts")
    assert reply.json()["fields"] == [email]
    reply = api.get(f"{FIELDS}/1?module=Contacts")
    assert (reply.status_code, reply.json()["code"]) == (400, "INVALID_DATA")
    reply = api.get(f"{FIELDS}/{email['id']}?module=Nope")
    assert reply.json() == {"code": "INVALID_MODULE", "details": {"api_name": "module"},
                            "message": "the module name given seems to be invalid",
                            "status": "error"}


def test_modules_list_and_one_module(shared_server: Server) -> None:
    api = shared_server.client()
    listing = api.get(MODULES).json()["modules"]
    by_name = {m["api_name"]: m for m in listing}
    contacts = by_name["Contacts"]
    assert (contacts["module_name"], contacts["singular_label"], contacts["plural_label"]) == (
        "Contacts", "Contact", "Contacts")
    assert contacts["generated_type"] == "default" and contacts["api_supported"] is True
    for key in ("creatable", "editable", "deletable", "viewable"):
        assert contacts[key] is True
    assert by_name["Leads"]["convertable"] is True and contacts["convertable"] is False
    assert contacts["fields"] == []  # the list leaves fields to the fields API, as Zoho does
    one = api.get(f"{MODULES}/Contacts").json()["modules"][0]
    assert one["id"] == contacts["id"]
    assert [f["api_name"] for f in one["fields"]] == list(fields_of(api, "Contacts"))
    assert api.get(f"{MODULES}/{contacts['id']}").json()["modules"][0]["api_name"] == "Contacts"
    reply = api.get(f"{MODULES}/Nope")
    assert (reply.status_code, reply.json()["code"]) == (400, "INVALID_MODULE")
    assert datetime.fromisoformat(one["modified_time"]).tzinfo is not None


def test_if_modified_since(server: Server) -> None:
    api = server.client()
    time.sleep(1.1)
    since = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)
    assert api.get(MODULES, headers={"If-Modified-Since": since.isoformat()}).status_code == 304
    api.add_field("Contacts", field_label="Late Field", data_type="text")
    reply = api.get(MODULES, headers={"If-Modified-Since": since.isoformat()})
    assert reply.status_code == 200
    assert [m["api_name"] for m in reply.json()["modules"]] == ["Contacts"]
    # an HTTP date works too; a time after the change gives 304, for one module as well
    later = datetime.now(UTC) + timedelta(seconds=5)
    for header in (later.isoformat(), format_datetime(later, usegmt=True)):
        assert api.get(MODULES, headers={"If-Modified-Since": header}).status_code == 304
        reply = api.get(f"{MODULES}/Contacts", headers={"If-Modified-Since": header})
        assert (reply.status_code, reply.content) == (304, b"")
    assert api.get(f"{MODULES}/Contacts",
                   headers={"If-Modified-Since": since.isoformat()}).status_code == 200
    reply = api.get(MODULES, headers={"If-Modified-Since": "last tuesday"})
    assert (reply.status_code, reply.json()["code"]) == (400, "INVALID_DATA")


def test_custom_module_with_its_name_field(shared_server: Server) -> None:
    api = shared_server.client()
    reply = api.post(MODULES, {"modules": [{"singular_label": "Project",
                                            "plural_label": "Projects"}]})
    assert reply.status_code == 201, reply.text
    (item,) = reply.json()["modules"]
    assert (item["code"], item["message"], item["status"]) == ("SUCCESS", "module created",
                                                               "success")
    module = api.get(f"{MODULES}/Projects").json()["modules"][0]
    assert module["id"] == item["details"]["id"]
    assert (module["generated_type"], module["singular_label"]) == ("custom", "Project")
    assert module["duplicate_check_field"] == "Name"
    fields = {f["api_name"]: f for f in module["fields"]}
    assert fields["Name"]["system_mandatory"] is True and fields["Name"]["data_type"] == "text"
    assert fields["Owner"]["data_type"] == "ownerlookup"
    # Name is the system duplicate-check field of a custom module
    first = api.upsert("Projects", [{"Name": "Apollo", "Email": "a@example.com"}]).json()
    again = api.upsert("Projects", [{"Name": "Apollo", "Email": "b@example.com"}]).json()
    assert first["data"][0]["action"] == "insert"
    assert (again["data"][0]["action"], again["data"][0]["duplicate_field"]) == ("update",
                                                                                 "Name")
    missing = api.upsert("Projects", [{"Email": "c@example.com"}]).json()["data"][0]
    assert (missing["code"], missing["details"]["api_name"]) == ("MANDATORY_NOT_FOUND", "Name")
    # refusals
    reply = api.post(MODULES, {"modules": [{"singular_label": "Project",
                                            "plural_label": "Projects"},
                                           {"plural_label": "Things"}]})
    assert reply.status_code == 400
    assert [i["code"] for i in reply.json()["modules"]] == ["DUPLICATE_DATA",
                                                           "MANDATORY_NOT_FOUND"]
    assert api.post(MODULES, {}).json()["code"] == "REQUIRED_PARAM_MISSING"
    reply = api.request("POST", MODULES, content=b"{nope")
    assert (reply.status_code, reply.json()["code"]) == (400, "INVALID_DATA")


def test_users(shared_server: Server) -> None:
    api = shared_server.client()
    cli(shared_server.database_url, "user", "add", "--email", "meta.user@example.com",
        "--name", "Meta User", "--time-zone", "Asia/Kolkata")
    everyone = api.get("/crm/v8/users?type=AllUsers").json()
    emails = [u["email"] for u in everyone["users"]]
    assert "admin@crmlite.local" in emails and "meta.user@example.com" in emails
    assert everyone["info"] == {"per_page": 200, "count": len(emails), "page": 1,
                                "more_records": False}
    me = api.get("/crm/v8/users?type=CurrentUser").json()["users"]
    assert [u["email"] for u in me] == ["admin@crmlite.local"]
    admin = me[0]
    assert admin["profile"]["name"] == "Administrator" and admin["role"]["id"].isdigit()
    assert admin["status"] == "active" and admin["full_name"] == "crmlite Admin"
    admins = api.get("/crm/v8/users?type=AdminUsers").json()["users"]
    assert [u["email"] for u in admins] == ["admin@crmlite.local"]
    other = next(u for u in everyone["users"] if u["email"] == "meta.user@example.com")
    assert (other["time_zone"], other["offset"]) == ("Asia/Kolkata", 19800000)
    assert (other["first_name"], other["last_name"]) == ("Meta", "User")
    assert other["profile"]["name"] == "Standard"
    assert other["created_by"] is None or other["created_by"]["id"].isdigit()
    assert api.get(f"/crm/v8/users/{other['id']}").json()["users"][0]["id"] == other["id"]
    assert api.get("/crm/v8/users/1").status_code == 204
    reply = api.get("/crm/v8/users/abc")
    assert (reply.status_code, reply.json()["code"]) == (400, "INVALID_DATA")
    # paging and ids
    page = api.get("/crm/v8/users?type=AllUsers&per_page=1&page=2").json()
    assert page["info"]["count"] == 1 and page["info"]["page"] == 2
    assert page["users"][0]["email"] == emails[1]
    chosen = api.get(f"/crm/v8/users?ids={other['id']}").json()["users"]
    assert [u["id"] for u in chosen] == [other["id"]]
    assert api.get("/crm/v8/users?type=DeletedUsers").status_code == 204
    for bad in ("type=Everyone", "page=0", "per_page=201", "ids=x"):
        reply = api.get(f"/crm/v8/users?{bad}")
        assert reply.status_code == 400, bad
    # the users API answers every version's path
    assert api.get("/crm/v2.1/users?type=CurrentUser").json()["users"][0]["id"] == admin["id"]


def test_org(shared_server: Server) -> None:
    api = shared_server.client()
    (org,) = api.get("/crm/v8/org").json()["org"]
    assert org["id"].isdigit() and org["zgid"].isdigit()
    assert org["company_name"] == "crmlite" and org["primary_email"] == "admin@crmlite.local"
    assert org["currency"] == "US Dollar - USD" and org["iso_code"] == "USD"
    assert org["time_zone"]
    admin = api.get("/crm/v8/users?type=CurrentUser").json()["users"][0]
    assert org["primary_zuid"] == admin["zuid"]
    assert api.post("/crm/v8/org", {}).json()["code"] == "INVALID_REQUEST_METHOD"


def test_metadata_scopes(shared_server: Server) -> None:
    def client(scope: str) -> Any:
        return shared_server.client(cli(shared_server.database_url, "token", "create",
                                        "--scope", scope))

    users_only = client("ZohoCRM.users.READ")
    assert users_only.get("/crm/v8/users").status_code == 200
    assert users_only.get("/crm/v8/org").json()["code"] == "OAUTH_SCOPE_MISMATCH"
    assert users_only.get(MODULES).json()["code"] == "OAUTH_SCOPE_MISMATCH"
    org_only = client("ZohoCRM.org.READ")
    assert org_only.get("/crm/v8/org").status_code == 200
    assert org_only.get("/crm/v8/users").json()["code"] == "OAUTH_SCOPE_MISMATCH"
    modules_read = client("ZohoCRM.settings.modules.READ")
    assert modules_read.get(MODULES).status_code == 200
    reply = modules_read.post(MODULES, {"modules": [{"singular_label": "X",
                                                     "plural_label": "Xs"}]})
    assert reply.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    assert modules_read.get(f"{FIELDS}?module=Leads").json()["code"] == "OAUTH_SCOPE_MISMATCH"
