"""crmlite's replies against the reply schemas of Zoho's published OpenAPI files for v8.

The files are read at test time from ../shared/reference/zoho-oas-v8 (never copied into
the project). OpenAPI 3.0 is turned into JSON Schema (2020-12) as OpenAPI defines it:
``nullable: true`` admits ``null``. Cross-file references point at Zoho's GitHub URLs and
resolve to the local copies; files that are not in the reference set (tags, profiles,
layouts, related lists, custom views) resolve to schemas that admit anything.

Three deliberate departures from the letter of the files, each where the files cannot be
right (all listed in ``PATCHES`` and ``nullable_refs``):

1. A property given by a bare ``$ref`` also admits ``null``: OpenAPI 3.0 ignores every
   sibling of ``$ref``, so the files cannot say ``nullable`` there, and Zoho's own replies
   carry ``null`` in such places (``"tooltip": null``, ``"crypt": null``, ``"external":
   null`` in the fields API; ``"created_by": null`` for a user nobody created).
2. Keys Zoho's documented replies show as ``null`` admit ``null``: an upsert insert's
   ``duplicate_field`` (zoho-crm-api.md §2.2, §4) and the ``info`` page tokens
   (``"previous_page_token": null`` in Zoho's get-records sample, §3.4).
3. Two defects of users.json generated from sample data: ``time_zone`` is declared an object
   where Zoho sends a string ("America/Los_Angeles"; the SDK types it ``TimeZone``, read
   from a string), and ``email`` carries the sample's pattern ``[a-z0-9]{9}[@][a-z0-9]{5}[.]com``
   (nine characters, an at sign, five characters, ".com"), which almost no address fits.

Replies whose schema is a ``oneOf`` of schemas without required keys (Zoho's records
replies: ``Response_Wrapper`` or ``API_Exception``) are checked against the alternative the
test names, which must be one the file declares; OpenAPI's records file declares only a
200 reply, whose ``API_Exception`` alternative is Zoho's error shape for every status.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import Client, Server

OAS_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "zoho-oas-v8"
REMOTE = "https://raw.githubusercontent.com/Zohocorp-Pvt-Ltd/crm-oas/refs/heads/main/v8.0/"
FILES = ("record.json", "common.json", "fields.json", "modules.json", "users.json", "org.json")

# (file, JSON pointer of a schema) -> a change; see the module's docstring, points 2 and 3.
PATCHES: dict[tuple[str, str], dict[str, Any]] = {
    ("record.json", "/components/schemas/Success_Response/properties/duplicate_field"):
        {"nullable": True},
    ("record.json", "/components/schemas/Info/properties/next_page_token"): {"nullable": True},
    ("record.json", "/components/schemas/Info/properties/previous_page_token"):
        {"nullable": True},
    ("record.json", "/components/schemas/Info/properties/page_token_expiry"):
        {"nullable": True},
    ("users.json", "/components/schemas/users/properties/time_zone"):
        {"type": "string", "nullable": True},
    ("users.json", "/components/schemas/users/properties/email"): {"pattern": None},
}


def _pointer(doc: Any, pointer: str) -> Any:
    for part in pointer.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    out.pop("nullable", None)
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    if "type" not in out and "enum" not in out:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def to_json_schema(node: Any, in_properties: bool = False) -> Any:
    """OpenAPI 3.0 schema objects (and whole documents) as JSON Schema 2020-12."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:  # OpenAPI 3.0: the siblings of $ref are ignored
        ref = {"$ref": node["$ref"]}
        return {"anyOf": [ref, {"type": "null"}]} if in_properties or node.get(
            "nullable") else ref
    out = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: to_json_schema(v, in_properties=True) for k, v in value.items()}
        else:
            out[key] = to_json_schema(value)
    return _nullable(out) if out.get("nullable") else out


def _document(name: str) -> dict[str, Any]:
    path = OAS_DIR / name
    assert path.exists(), f"Zoho's OpenAPI file {path} is missing (../shared/reference)"
    doc = json.loads(path.read_text())
    for (file, pointer), change in PATCHES.items():
        if file == name:
            target = _pointer(doc, pointer)
            for key, value in change.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
    return to_json_schema(doc)


@cache
def registry() -> Registry:
    docs = {REMOTE + name: _document(name) for name in FILES}
    # files outside the reference set: every schema they are asked for admits anything
    missing: dict[str, dict[str, Any]] = {}
    for doc in docs.values():
        for ref in re.findall(r'"\$ref": "([^"#]+)#/components/schemas/([^"]+)"',
                              json.dumps(doc)):
            if ref[0] not in docs:
                missing.setdefault(ref[0], {"components": {"schemas": {}}})
                missing[ref[0]]["components"]["schemas"][ref[1]] = {}
    resources = [(uri, Resource(contents=doc, specification=DRAFT202012))
                 for uri, doc in {**docs, **missing}.items()]
    return Registry().with_resources(resources)


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # formats constrain strings only
    if "T" not in value:
        return False
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def _date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


FORMATS = FormatChecker(formats=())
FORMATS.checks("date-time")(_date_time)
FORMATS.checks("date")(_date)


def reply_schema(file: str, path: str, method: str, status: int,
                 branch: str | None = None) -> dict[str, Any]:
    """The schema ``file`` declares for the reply to ``method path`` with ``status`` (or its
    200 reply when that status is not declared), narrowed to the ``oneOf`` alternative
    ``branch`` (a component name, or ``"inline"``) when one is named."""
    doc = registry().contents(REMOTE + file)
    operation = doc["paths"][path][method.lower()]
    responses = operation["responses"]
    key = str(status) if str(status) in responses else "200"
    assert key in responses, (file, path, method, status, sorted(responses))
    response = responses[key]
    pointer = f"/paths/{_escape(path)}/{method.lower()}/responses/{key}"
    if "$ref" in response:
        pointer = response["$ref"].split("#", 1)[1]
        response = _pointer(doc, pointer)
    assert "content" in response, f"{file} declares no body for {method} {path} {key}"
    pointer += "/content/application~1json/schema"
    schema = _pointer(doc, pointer)
    if branch is not None:
        options = schema.get("oneOf", [schema])
        for n, option in enumerate(options):
            ref = option.get("$ref", "")
            if ref.endswith(f"/{branch}") or (branch == "inline" and not ref):
                pointer += f"/oneOf/{n}" if "oneOf" in schema else ""
                break
        else:
            raise AssertionError(f"{file}: {method} {path} declares no {branch} reply")
    return {"$ref": f"{REMOTE}{file}#{pointer}"}


def _leaves(error: ValidationError) -> list[ValidationError]:
    """The innermost reasons of an error (a oneOf/anyOf failure says why each option failed)."""
    if not error.context:
        return [error]
    return [leaf for sub in error.context for leaf in _leaves(sub)]


def errors(body: Any, schema: dict[str, Any]) -> list[str]:
    validator = Draft202012Validator(schema, registry=registry(), format_checker=FORMATS)
    found = [leaf for e in validator.iter_errors(body) for leaf in _leaves(e)]
    found.sort(key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
            for e in found]


def assert_conforms(body: Any, file: str, path: str, method: str, status: int,
                    branch: str | None = None) -> None:
    problems = errors(body, reply_schema(file, path, method, status, branch))
    assert not problems, "\n".join([f"{method} {path} -> {status} vs {file}:", *problems[:40]])


# --- the replies ---------------------------------------------------------------------------

FIELDS = "/crm/v8/settings/fields"
MODULES = "/crm/v8/settings/modules"
RECORDS = "/crm/v8/{module_api_name}"
RECORD = "/crm/v8/{module_api_name}/{id}"


def check(reply: Any, file: str, path: str, branch: str | None = None) -> dict[str, Any]:
    """The reply is JSON and conforms to what ``file`` declares for it; its body."""
    assert reply.headers["content-type"].startswith("application/json"), reply.headers
    body = reply.json()
    assert_conforms(body, file, path, reply.request.method, reply.status_code, branch)
    return body


@pytest.fixture(scope="module")
def world(shared_server: Server) -> dict[str, Any]:
    api = shared_server.client()
    api.add_field("Contacts", field_label="Conf Ref", data_type="text",
                  external={"type": "org", "show": True})
    api.add_field("Contacts", field_label="Badge No", data_type="text", unique={})
    api.add_field("Contacts", field_label="Score", data_type="integer")
    api.add_field("Contacts", field_label="Tier", data_type="picklist",
                  pick_list_values=[{"display_value": "Gold"}, {"display_value": "Silver"}])
    made = api.post(MODULES, {"modules": [{"singular_label": "Gadget",
                                            "plural_label": "Gadgets"}]})
    assert made.status_code == 201, made.text
    account = api.upsert("Accounts", [{"Account_Name": "Conformance Inc"}]).json()
    return {"account": account["data"][0]["details"]["id"]}


def test_fields_replies(shared_server: Server, world: dict[str, Any]) -> None:
    api = shared_server.client()
    names = [m["api_name"] for m in api.get(MODULES).json()["modules"]]
    assert {"Leads", "Contacts", "Quotes", "Gadgets"} <= set(names)
    for name in names:
        body = check(api.get(f"{FIELDS}?module={name}"), "fields.json", FIELDS)
        assert body["fields"], name
    contacts = {f["api_name"]: f for f in api.get(f"{FIELDS}?module=Contacts").json()["fields"]}
    for key in ("Conf_Ref", "Badge_No", "Tier", "Account_Name", "Lead_Source", "Owner"):
        one = api.get(f"{FIELDS}/{contacts[key]['id']}?module=Contacts")
        assert check(one, "fields.json", FIELDS + "/{field}")["fields"][0]["api_name"] == key
    # errors
    body = check(api.get(FIELDS), "fields.json", FIELDS)
    assert body["code"] == "REQUIRED_PARAM_MISSING"
    body = check(api.get(f"{FIELDS}?module=Nope"), "fields.json", FIELDS)
    assert body["code"] == "INVALID_MODULE"
    created = api.post(f"{FIELDS}?module=Leads", {"fields": [
        {"field_label": "Conformance Note", "data_type": "text"}]})
    assert created.status_code == 201
    check(created, "fields.json", FIELDS)
    refused = api.post(f"{FIELDS}?module=Leads", {"fields": [{"data_type": "text"}]})
    assert refused.status_code == 400
    assert check(refused, "fields.json", FIELDS)["fields"][0]["code"] == "MANDATORY_NOT_FOUND"


def test_modules_replies(shared_server: Server, world: dict[str, Any]) -> None:
    api = shared_server.client()
    listing = check(api.get(MODULES), "modules.json", MODULES)
    assert len(listing["modules"]) >= 17
    for name in ("Contacts", "Leads", "Gadgets", "Quotes"):
        body = check(api.get(f"{MODULES}/{name}"), "modules.json", MODULES + "/{api_name}")
        assert body["modules"][0]["api_name"] == name and body["modules"][0]["fields"]
    body = check(api.get(f"{MODULES}/Nope"), "modules.json", MODULES + "/{api_name}")
    assert body["code"] == "INVALID_MODULE"
    made = api.post(MODULES, {"modules": [{"singular_label": "Widget",
                                           "plural_label": "Widgets"}]})
    assert made.status_code == 201
    assert check(made, "modules.json", MODULES)["modules"][0]["message"] == "module created"
    refused = api.post(MODULES, {"modules": [{"singular_label": "Nameless"}]})
    assert refused.status_code == 400
    body = check(refused, "modules.json", MODULES)
    assert body["modules"][0]["code"] == "MANDATORY_NOT_FOUND"


def test_users_and_org_replies(shared_server: Server, world: dict[str, Any]) -> None:
    api = shared_server.client()
    for kind in ("AllUsers", "CurrentUser", "ActiveUsers", "AdminUsers",
                 "ActiveConfirmedUsers"):
        body = check(api.get(f"/crm/v8/users?type={kind}"), "users.json", "/crm/v8/users")
        assert body["users"] and body["info"]["count"] == len(body["users"])
    me = api.get("/crm/v8/users?type=CurrentUser").json()["users"][0]
    body = check(api.get(f"/crm/v8/users/{me['id']}"), "users.json", "/crm/v8/users/{user}")
    assert body["users"][0]["email"] == me["email"]
    body = check(api.get("/crm/v8/users?type=Everyone"), "users.json", "/crm/v8/users")
    assert body["code"] == "INVALID_DATA"
    body = check(api.get("/crm/v8/org"), "org.json", "/crm/v8/org", "Response_Wrapper")
    assert body["org"][0]["id"].isdigit()


def test_record_replies(shared_server: Server, world: dict[str, Any]) -> None:
    api = shared_server.client()
    upsert = RECORDS + "/upsert"
    record = {"Last_Name": "Conform", "Email": "conform@example.com", "Conf_Ref": "C-1",
              "Badge_No": "B-1", "Score": 7, "Tier": "Gold", "Date_of_Birth": "1980-02-03",
              "Account_Name": {"id": world["account"]}, "Email_Opt_Out": False}
    inserted = check(api.upsert("Contacts", [record]), "record.json", upsert, "inline")
    rid = inserted["data"][0]["details"]["id"]
    updated = check(api.upsert("Contacts", [{**record, "Title": "Again"}]), "record.json",
                    upsert, "inline")
    assert updated["data"][0]["duplicate_field"] == "Conf_Ref"

    mixed = api.post("/crm/v8/Contacts", {"data": [
        {"Last_Name": "Second", "Email": "second@example.com"},
        {"Last_Name": "Copy", "Conf_Ref": "C-1"},
        {"First_Name": "No last name"},
        {"Last_Name": "Typed", "Score": "many"},
    ]})
    assert mixed.status_code == 207
    body = check(mixed, "record.json", RECORDS, "inline")
    assert [i["code"] for i in body["data"]] == ["SUCCESS", "DUPLICATE_DATA",
                                                 "MANDATORY_NOT_FOUND", "INVALID_DATA"]
    second = body["data"][0]["details"]["id"]

    check(api.put("/crm/v8/Contacts", {"data": [{"id": rid, "Title": "Put"}]}), "record.json",
          RECORDS, "inline")
    check(api.put(f"/crm/v8/Contacts/{rid}", {"data": [{"Title": "Put by id"}]}),
          "record.json", RECORD, "inline")

    one = check(api.get(f"/crm/v8/Contacts/{rid}"), "record.json", RECORD, "Response_Wrapper")
    assert one["data"][0]["id"] == rid and one["data"][0]["Title"] == "Put by id"
    listing = api.get("/crm/v8/Contacts?fields=Last_Name,Email,Owner,Created_Time&per_page=1")
    body = check(listing, "record.json", RECORDS, "Response_Wrapper")
    assert body["data"] and body["info"]["more_records"] is True
    search = RECORDS + "/search"
    body = check(api.get("/crm/v8/Contacts/search?criteria=(Conf_Ref:equals:C-1)"),
                 "record.json", search, "Response_Wrapper")
    assert [r["id"] for r in body["data"]] == [rid]
    body = check(api.get("/crm/v8/Contacts/search?word=conform"), "record.json", search,
                 "Response_Wrapper")
    assert body["info"]["count"] >= 1

    # request-level errors are Zoho's API_Exception
    body = check(api.get("/crm/v8/Contacts/search?criteria=(Nope:equals:x)"), "record.json",
                 search, "API_Exception")
    assert body["code"] == "INVALID_QUERY"
    body = check(api.get("/crm/v8/Contacts"), "record.json", RECORDS, "API_Exception")
    assert body["code"] == "REQUIRED_PARAM_MISSING"
    body = check(Client(shared_server.base, "1000.bad.token").get("/crm/v8/Contacts/1"),
                 "record.json", RECORD, "API_Exception")
    assert body["code"] == "INVALID_TOKEN"

    check(api.delete(f"/crm/v8/Contacts?ids={second},1"), "record.json", RECORDS, "inline")
    body = check(api.delete(f"/crm/v8/Contacts/{rid}"), "record.json", RECORD, "inline")
    assert body["data"][0]["message"] == "record deleted"


def test_the_checker_refuses_what_zoho_would_not_send(shared_server: Server) -> None:
    """The schemas have teeth: replies bent out of shape are refused."""
    api = shared_server.client()
    fields = api.get(f"{FIELDS}?module=Leads").json()
    bent = json.loads(json.dumps(fields))
    del bent["fields"][0]["operation_type"]
    bent["fields"][1]["system_mandatory"] = "no"
    bent["fields"][2]["pick_list_values"] = [{"display_value": "x"}]
    problems = errors(bent, reply_schema("fields.json", FIELDS, "GET", 200))
    assert any("operation_type" in p for p in problems)
    assert any("system_mandatory" in p or "'no'" in p for p in problems)
    users = api.get("/crm/v8/users?type=AllUsers").json()
    users["users"][0]["created_time"] = "yesterday"
    del users["info"]
    assert len(errors(users, reply_schema("users.json", "/crm/v8/users", "GET", 200))) >= 2
    modules = api.get(MODULES).json()
    del modules["modules"][0]["api_supported"]
    modules["modules"][1]["generated_type"] = "handmade"
    assert len(errors(modules, reply_schema("modules.json", MODULES, "GET", 200))) == 2
    upserted = api.upsert("Leads", [{"Last_Name": "Teeth"}]).json()
    upserted["data"][0]["action"] = "merge"
    upserted["data"][0]["details"]["Created_Time"] = "28/11/2026"
    problems = errors(upserted, reply_schema("record.json", RECORDS + "/upsert", "POST", 200,
                                             "inline"))
    assert problems
