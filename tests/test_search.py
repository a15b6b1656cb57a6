"""GET /crm/{v}/{module}/search: criteria grammar, email/phone/word, paging, errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import Client, Server, cli

CONTACTS = [
    {"Last_Name": "Burns, B", "First_Name": "Mia", "Email": "mia@zylker.com",
     "Phone": "+1 (555) 010-0001", "Date_of_Birth": "1980-05-01", "Email_Opt_Out": True,
     "Title": "CEO (acting)"},
    {"Last_Name": "Burnside", "First_Name": "Max", "Email": "max@zylker.com",
     "Mobile": "555 010 0002", "Date_of_Birth": "1990-01-15", "Email_Opt_Out": False},
    {"Last_Name": "Kepler\\", "First_Name": "Ada", "Email": "ada@other.org",
     "Date_of_Birth": "2000-12-31", "Title": "100% sure_thing"},
    {"Last_Name": "O'Hara", "Email": "ohara@other.org", "Secondary_Email": "SCARLETT@tara.org"},
]


@pytest.fixture(scope="module")
def seeded(shared_server: Server) -> dict[str, Any]:
    admin = shared_server.client()
    account = admin.upsert("Accounts", [{"Account_Name": "Search Account"}]).json()
    account_id = account["data"][0]["details"]["id"]
    contacts = [dict(c) for c in CONTACTS]
    contacts[0]["Account_Name"] = {"id": account_id}
    reply = admin.post("/crm/v8/Contacts", {"data": contacts})
    assert reply.status_code == 201, reply.text
    ids = {c["Last_Name"]: i["details"]["id"]
           for c, i in zip(CONTACTS, reply.json()["data"], strict=True)}
    deals = admin.post("/crm/v8/Deals", {"data": [
        {"Deal_Name": "Alpha", "Stage": "Qualification", "Amount": 1000.5, "Probability": 10,
         "Closing_Date": "2024-01-10"},
        {"Deal_Name": "Beta", "Stage": "Closed Won", "Amount": 25000, "Probability": 100,
         "Closing_Date": "2024-03-01"},
        {"Deal_Name": "Gamma", "Stage": "Negotiation/Review", "Probability": 75,
         "Closing_Date": "2024-06-30"},
    ]})
    assert deals.status_code == 201, deals.text
    products = admin.post("/crm/v8/Products", {"data": [
        {"Product_Name": "Widget", "Tax": ["Sales Tax", "VAT"], "Unit_Price": 9.99},
        {"Product_Name": "Gadget", "Tax": ["Service Tax"], "Unit_Price": 120},
        {"Product_Name": "Gizmo"},
    ]})
    assert products.status_code == 201, products.text
    return {"ids": ids, "account": account_id}


def search(client: Client, module: str, query: str, version: str = "v8") -> list[str] | None:
    """The names of the matches (None for a 204), checking the reply's shape on the way."""
    reply = client.get(f"/crm/{version}/{module}/search?{query}")
    if reply.status_code == 204:
        assert reply.content == b""
        return None
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["info"]["count"] == len(body["data"])
    name = {"Contacts": "Last_Name", "Leads": "Last_Name", "Vendors": "Vendor_Name",
            "Deals": "Deal_Name", "Products": "Product_Name"}[module]
    return sorted(r[name] for r in body["data"])


def criteria(client: Client, module: str, text: str) -> list[str] | None:
    return search(client, module, "criteria=" + quote(text, safe=""))


def refused(client: Client, module: str, query: str) -> dict[str, Any]:
    reply = client.get(f"/crm/v8/{module}/search?{query}")
    assert reply.status_code in (400, 401), (query, reply.status_code, reply.text)
    body = reply.json()
    assert body["status"] == "error" and set(body) == {"code", "details", "message", "status"}
    return body


def test_text_operators(shared_server: Server, seeded: dict) -> None:
    api = shared_server.client()
    # Zoho: equals on text behaves as "contains"; case does not matter
    assert criteria(api, "Contacts", "(Last_Name:equals:burns)") == ["Burns, B", "Burnside"]
    assert criteria(api, "Contacts", "(Last_Name:equals:Burns\\, B)") == ["Burns, B"]
    assert criteria(api, "Contacts", "(Last_Name:starts_with:BURNS)") == ["Burns, B",
                                                                            "Burnside"]
    assert criteria(api, "Contacts", "(Last_Name:starts_with:urns)") is None
    assert criteria(api, "Contacts", "(Last_Name:in:Burnside,O'Hara,Nobody)") == ["Burnside",
                                                                                   "O'Hara"]
    assert criteria(api, "Contacts", "(Last_Name:in:Burns\\, B,Burnside)") == ["Burns, B",
                                                                               "Burnside"]
    # not_equal: exact, and records without a value are included
    names = criteria(api, "Contacts", "(First_Name:not_equal:mia)")
    assert names is not None and "Burns, B" not in names and "O'Hara" in names
    assert criteria(api, "Contacts", "(Email:equals:ada@other.org)") == ["Kepler\\"]
    # a lone condition needs no parentheses (Zoho's own samples)
    assert criteria(api, "Contacts", "Email:equals:mia@zylker.com") == ["Burns, B"]
    # escaped parentheses and a trailing backslash in a value
    assert criteria(api, "Contacts", "(Title:equals:CEO \\(acting\\))") == ["Burns, B"]
    assert criteria(api, "Contacts", "(Last_Name:equals:Kepler\\\\)") == ["Kepler\\"]


def test_like_wildcards_and_quotes_are_plain_characters(shared_server: Server,
                                                        seeded: dict) -> None:
    api = shared_server.client()
    assert criteria(api, "Contacts", "(Title:equals:100%)") == ["Kepler\\"]
    assert criteria(api, "Contacts", "(Title:equals:%)") == ["Kepler\\"]
    assert criteria(api, "Contacts", "(Title:equals:e_t)") == ["Kepler\\"]  # "sure_thing"
    assert criteria(api, "Contacts", "(Title:equals:o_a)") is None  # _ is not a wildcard
    assert criteria(api, "Contacts", "(Last_Name:equals:O'Hara)") == ["O'Hara"]
    assert criteria(api, "Contacts", "(Last_Name:equals:x' OR '1'='1)") is None
    assert criteria(api, "Contacts", "(Last_Name:equals:x\"\\) OR 1=1 --)") is None
    body = refused(api, "Contacts", "criteria=" + quote("(Last_Name:equals:x\") OR 1=1 --)"))
    assert body["code"] == "INVALID_QUERY"
    body = refused(api, "Contacts", "criteria=" + quote("(Last_Name) OR 1=1 --:equals:x)"))
    assert body["code"] == "INVALID_QUERY"
    body = refused(api, "Contacts", "criteria=" + quote("(Last_Name:equals' OR 1=1:x)"))
    assert body["code"] == "INVALID_QUERY"
    # the records are all still there
    assert len(criteria(api, "Contacts", "(Created_Time:greater_than:2000-01-01T00:00:00Z)")
               or []) >= len(CONTACTS)


def test_numbers_dates_booleans_and_lookups(shared_server: Server, seeded: dict) -> None:
    api = shared_server.client()
    assert criteria(api, "Deals", "(Amount:greater_than:1000)") == ["Alpha", "Beta"]
    assert criteria(api, "Deals", "(Amount:less_equal:1000.5)") == ["Alpha"]
    assert criteria(api, "Deals", "(Amount:between:1000,30000)") == ["Alpha", "Beta"]
    assert criteria(api, "Deals", "(Probability:in:10,75)") == ["Alpha", "Gamma"]
    assert criteria(api, "Deals", "(Probability:equals:100)") == ["Beta"]
    assert criteria(api, "Deals", "(Probability:not_equal:100)") == ["Alpha", "Gamma"]
    assert criteria(api, "Deals", "(Closing_Date:between:2024-02-01,2024-12-31)") == ["Beta",
                                                                                     "Gamma"]
    assert criteria(api, "Deals", "(Closing_Date:less_than:2024-03-01)") == ["Alpha"]
    assert criteria(api, "Deals", "(Stage:equals:closed won)") == ["Beta"]
    assert criteria(api, "Deals", "(Stage:equals:Closed)") is None  # picklists match exactly
    assert criteria(api, "Deals", "(Stage:in:Qualification,Negotiation/Review)") == ["Alpha",
                                                                                     "Gamma"]
    assert criteria(api, "Contacts", "(Email_Opt_Out:equals:true)") == ["Burns, B"]
    assert criteria(api, "Contacts", "(Date_of_Birth:greater_equal:1990-01-15)") == [
        "Burnside", "Kepler\\"]
    account = seeded["account"]
    assert criteria(api, "Contacts", f"(Account_Name:equals:{account})") == ["Burns, B"]
    me = api.get("/crm/v8/users?type=CurrentUser").json()["users"][0]["id"]
    assert "Burnside" in (criteria(api, "Contacts", f"(Owner:equals:{me})") or [])
    assert criteria(api, "Contacts", f"(Owner:not_equal:{me})") is None
    rid = seeded["ids"]["O'Hara"]
    assert criteria(api, "Contacts", f"(id:equals:{rid})") == ["O'Hara"]


def test_times_with_offsets(shared_server: Server, seeded: dict) -> None:
    api = shared_server.client()
    record = api.record("Contacts", seeded["ids"]["Burnside"])
    assert record is not None
    created = record["Created_Time"]
    assert "Burnside" in (criteria(api, "Contacts", f"(Created_Time:greater_equal:{created})")
                          or [])
    assert criteria(api, "Contacts", "(Created_Time:less_than:2001-01-01T00:00:00+05:30)") is None
    # an unencoded "+" arrives as a space; it is read as the offset's sign
    found = search(api, "Contacts", f"criteria=(Created_Time:equals:{created})")
    assert found is not None and "Burnside" in found
    assert criteria(api, "Contacts",
                    "(Modified_Time:between:2000-01-01T00:00:00Z,2999-01-01T00:00:00Z)")


def test_and_or_and_grouping(shared_server: Server, seeded: dict) -> None:
    api = shared_server.client()
    assert criteria(api, "Contacts",
                    "((Last_Name:starts_with:Burn)and(First_Name:equals:Max))") == ["Burnside"]
    assert criteria(api, "Contacts",
                    "((Last_Name:equals:Kepler)or(Email:equals:mia@zylker.com))") == [
        "Burns, B", "Kepler\\"]
    # and binds tighter than or
    assert criteria(api, "Contacts", "(First_Name:equals:Ada)or(Last_Name:starts_with:Burn)"
                                     "and(First_Name:equals:Max)") == ["Burnside", "Kepler\\"]
    assert criteria(api, "Contacts", "(((Last_Name:starts_with:Burn) and (Email_Opt_Out:equals:"
                                     "false)) or (Last_Name:equals:hara))") == ["Burnside",
                                                                               "O'Hara"]


def test_multiselect_picklists(shared_server: Server, seeded: dict) -> None:
    api = shared_server.client()
    assert criteria(api, "Products", "(Tax:equals:vat)") == ["Widget"]
    assert criteria(api, "Products", "(Tax:in:VAT,Service Tax)") == ["Gadget", "Widget"]
    assert criteria(api, "Products", "(Tax:starts_with:S)") == ["Gadget", "Widget"]
    assert criteria(api, "Products", "(Tax:not_equal:VAT)") == ["Gadget", "Gizmo"]
    assert criteria(api, "Products", "(Unit_Price:greater_than:10)") == ["Gadget"]


def test_email_phone_and_word(shared_server: Server, seeded: dict) -> None:
    api = shared_server.client()
    assert search(api, "Contacts", "email=MIA@zylker.com") == ["Burns, B"]
    assert search(api, "Contacts", "email=scarlett@tara.org") == ["O'Hara"]  # every email field
    assert search(api, "Contacts", "email=zylker.com") is None  # a whole address
    assert search(api, "Contacts", "phone=" + quote("15550100001")) == ["Burns, B"]
    assert search(api, "Contacts", "phone=" + quote("555-010-0002")) == ["Burnside"]  # Mobile
    assert search(api, "Contacts", "word=zylker") == ["Burns, B", "Burnside"]
    assert search(api, "Contacts", "word=acting") == ["Burns, B"]
    assert search(api, "Deals", "word=gamma") == ["Gamma"]
    # precedence: criteria, then email, phone, word
    assert search(api, "Contacts", "word=zylker&email=ada@other.org") == ["Kepler\\"]
    assert search(api, "Contacts", "email=ada@other.org&criteria=(Last_Name:equals:Hara)") == [
        "O'Hara"]
    for word in ("a", "a%b", "x;drop"):
        body = refused(api, "Contacts", "word=" + quote(word))
        assert body["code"] == "INVALID_DATA"


def test_email_search_follows_every_write(shared_server: Server) -> None:
    # email= reads the key tables (records/search.py email_condition), not the records: what
    # it finds must follow inserts, updates that change or clear a value, and deletes.
    api = shared_server.client()
    batch = [{"Last_Name": f"Idx {n}", "Email": f"idx{n}@follow.example"} for n in range(3)]
    batch[2]["Secondary_Email"] = "Shared@Follow.Example"
    reply = api.upsert("Leads", batch)  # a batch of new records (one call where it may)
    assert [i["action"] for i in reply.json()["data"]] == ["insert"] * 3, reply.text
    ids = [i["details"]["id"] for i in reply.json()["data"]]
    assert search(api, "Leads", "email=IDX1@follow.example") == ["Idx 1"]
    assert search(api, "Leads", "email=shared@follow.example") == ["Idx 2"]
    # an update moves the value; an upsert matched by Email adds one
    reply = api.put("/crm/v8/Leads", {"data": [
        {"id": ids[2], "Secondary_Email": "moved@follow.example"},
        {"id": ids[0], "Secondary_Email": "SHARED@follow.example"}]})
    assert reply.status_code == 200, reply.text
    reply = api.upsert("Leads", [{"Last_Name": "Idx 1", "Email": "idx1@follow.example",
                                  "Secondary_Email": "shared@follow.example"}])
    assert reply.json()["data"][0]["action"] == "update", reply.text
    assert search(api, "Leads", "email=shared@follow.example") == ["Idx 0", "Idx 1"]
    assert search(api, "Leads", "email=moved@follow.example") == ["Idx 2"]
    # cleared, deleted
    reply = api.put("/crm/v8/Leads", {"data": [{"id": ids[0], "Secondary_Email": None}]})
    assert reply.status_code == 200, reply.text
    assert search(api, "Leads", "email=shared@follow.example") == ["Idx 1"]
    assert api.delete(f"/crm/v8/Leads?ids={ids[1]}").status_code == 200
    assert search(api, "Leads", "email=shared@follow.example") is None
    assert search(api, "Leads", "email=idx1@follow.example") is None
    assert search(api, "Leads", "email=idx0@follow.example") == ["Idx 0"]


def test_email_search_in_every_kind_of_email_field(shared_server: Server) -> None:
    # Vendors' Email is not its duplicate-check field (Vendor_Name); a unique email field
    # keeps its values in unique_keys.
    api = shared_server.client()
    api.add_field("Vendors", field_label="Billing Email", data_type="email", unique={})
    reply = api.upsert("Vendors", [
        {"Vendor_Name": "Acme Idx", "Email": "sales@acme-idx.example",
         "Billing_Email": "Billing@Acme-Idx.example"},
        {"Vendor_Name": "Zeta Idx", "Email": "billing@acme-idx.example"}])
    assert reply.status_code == 200, reply.text
    assert search(api, "Vendors", "email=SALES@acme-idx.example") == ["Acme Idx"]
    assert search(api, "Vendors", "email=billing@acme-idx.example") == ["Acme Idx", "Zeta Idx"]
    assert search(api, "Vendors", "email=" + quote(" billing@ACME-idx.example ")) == [
        "Acme Idx", "Zeta Idx"]
    assert search(api, "Vendors", "email=nobody@acme-idx.example") is None
    assert search(api, "Products", "email=sales@acme-idx.example") is None  # no email field


def test_paging_fields_and_info(shared_server: Server, seeded: dict) -> None:
    api = shared_server.client()
    query = "criteria=" + quote("(Last_Name:equals:r)") + "&fields=Last_Name,Email&per_page=2"
    first = api.get(f"/crm/v8/Contacts/search?{query}").json()
    assert first["info"] == {"per_page": 2, "count": 2, "page": 1, "sort_by": "id",
                             "sort_order": "desc", "more_records": True}
    assert all(set(r) == {"Last_Name", "Email", "id"} for r in first["data"])
    second = api.get(f"/crm/v8/Contacts/search?{query}&page=2").json()
    assert second["info"]["more_records"] is False and second["info"]["count"] >= 1
    seen = [r["id"] for r in first["data"] + second["data"]]
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen, key=int, reverse=True)  # newest first
    assert api.get(f"/crm/v8/Contacts/search?{query}&page=9").status_code == 204
    # v2 answers without sort_by/sort_order; all fields when none are asked for
    old = api.get("/crm/v2/Contacts/search?email=mia@zylker.com").json()
    assert set(old["info"]) == {"per_page", "count", "page", "more_records"}
    record = old["data"][0]
    assert record["Email"] == "mia@zylker.com" and record["Account_Name"] == {
        "name": "Search Account", "id": seeded["account"]}
    assert record["Owner"]["email"] == "admin@crmlite.local"
    body = refused(api, "Contacts", "email=a@b.com&page=11&per_page=200")
    assert body["code"] == "LIMIT_REACHED"


@pytest.mark.parametrize(("text", "reason"), [
    ("(Last_Name:equals:x", "the criteria is not well formed"),
    ("((Last_Name:equals:x)", "the criteria is not well formed"),
    ("(Last_Name:equals:x))", "the criteria is not well formed"),
    ("(Last_Name:equals:x)and", "the criteria is not well formed"),
    ("(Last_Name:equals:x)xor(Email:equals:y)", "the criteria is not well formed"),
    ("(Last_Name:equals:a(b)", "an unescaped parenthesis in a value"),
    ("(Last_Name:equals)", "the criteria is not well formed"),
    ("(Last_Name:equals:)", "a value is missing"),
    ("(Last_Name:equals:K\\)", "the criteria is not well formed"),
    ("(Nope:equals:x)", "the field is not available for search"),
    ("(Last_Name:contains:x)", "invalid operator found"),
    ("(Last_Name:greater_than:x)", "the operator is not supported for the field's data type"),
    ("(Email_Opt_Out:in:true)", "the operator is not supported for the field's data type"),
    ("(Description:in:x)", "the operator is not supported for the field's data type"),
    ("(Date_of_Birth:equals:1990-02-30)", "the value does not match the data type of the field"),
    ("(Date_of_Birth:between:1990-01-01)", "between takes two values"),
    ("(Created_Time:equals:2024-01-01)", "the value does not match the data type of the field"),
    ("(Created_Time:equals:2024-01-01T10:00:00)",
     "the value does not match the data type of the field"),
    ("(Email_Opt_Out:equals:yes)", "the value does not match the data type of the field"),
    ("(Account_Name:equals:Zylker)", "the value does not match the data type of the field"),
])
def test_malformed_criteria_are_invalid_query(shared_server: Server, text: str,
                                              reason: str) -> None:
    body = refused(shared_server.client(), "Contacts", "criteria=" + quote(text, safe=""))
    assert body["code"] == "INVALID_QUERY" and body["message"] == "invalid query formed"
    assert body["details"]["reason"] == reason


def test_request_level_errors(shared_server: Server, seeded: dict) -> None:
    api = shared_server.client()
    body = refused(api, "Contacts", "")
    assert body["code"] == "EXPECTED_PARAM_MISSING" and body["message"] == "mandatory param missing"
    eleven = "or".join(f"(Last_Name:equals:n{i})" for i in range(11))
    assert refused(api, "Contacts", "criteria=" + quote(eleven))["code"] == "LIMIT_EXCEEDED"
    assert criteria(api, "Contacts", "or".join(f"(Last_Name:equals:n{i})" for i in range(10))) \
        is None
    many = ",".join(f"v{i}" for i in range(101))
    body = refused(api, "Contacts", "criteria=" + quote(f"(Last_Name:in:{many})"))
    assert body["code"] == "LIMIT_EXCEEDED"
    assert refused(api, "Nope", "word=abc")["code"] == "INVALID_MODULE"
    reply = api.post("/crm/v8/Contacts/search?word=abc", {})
    assert reply.json()["code"] == "INVALID_REQUEST_METHOD"


def test_search_needs_the_search_scope_and_module_read(shared_server: Server,
                                                       seeded: dict) -> None:
    def token(scope: str) -> Client:
        return shared_server.client(cli(shared_server.database_url, "token", "create",
                                        "--scope", scope))

    query = "email=mia@zylker.com"
    for scope in ("ZohoCRM.modules.ALL", "ZohoSearch.securesearch.READ",
                  "ZohoCRM.modules.leads.READ,ZohoSearch.securesearch.READ"):
        body = refused(token(scope), "Contacts", query)
        assert body["code"] == "OAUTH_SCOPE_MISMATCH", scope
    allowed = token("ZohoCRM.modules.contacts.READ,ZohoSearch.securesearch.READ")
    assert search(allowed, "Contacts", query) == ["Burns, B"]


@pytest.mark.parametrize("query", [
    "criteria=" + quote("(id:equals:9999999999999999999)"),
    "criteria=" + quote("(No_of_Employees:greater_than:99999999999999999999)"),
    "criteria=" + quote("(Annual_Revenue:greater_than:1e400)"),
    "criteria=" + quote("(Annual_Revenue:greater_than:1e99999999)"),
    "criteria=" + quote("(Annual_Revenue:less_than:-Infinity)"),
    "criteria=" + quote("(Created_Time:equals:9999-12-31T23:59:59+14:00)"),
    "criteria=" + quote("(Created_Time:equals:0001-01-01T00:00:00-14:00)"),
    "criteria=" + quote("(Last_Name:equals:a\x00b)"),
    "email=" + quote("a\x00@b.com"),
    "phone=" + quote("\x00"),
    "criteria=" + "(" * 3000,
    "criteria=" + quote("(" * 30 + "Last_Name:equals:x" + ")" * 30),
    "criteria=%ff%fe",
    "criteria=" + quote("(Last_Name:equals:\u00e9\u00e8\U0001f600)"),
    "word=" + quote("\u00e9cole"),
    "email=a@b.c&page=99999999999999999999999",
])
def test_odd_input_is_a_4xx_or_nothing_never_a_500(shared_server: Server, query: str) -> None:
    reply = shared_server.client().get(f"/crm/v8/Leads/search?{query}")
    assert reply.status_code in (200, 204, 400), (query, reply.text)
    if reply.status_code == 400:
        assert reply.json()["status"] == "error"
