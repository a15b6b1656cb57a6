"""Zoho's official Python SDKs, unmodified, against ``crmlite serve``.

zohocrmsdk8-0 7.0.0 and zohocrmsdk7-0 6.0.0, each initialised three ways (a grant code
made by ``crmlite grant create``, a refresh token, an access token), then: upsert (insert,
update through Email, update through an external field), create (with a DUPLICATE_DATA
and a MANDATORY_NOT_FOUND), update, get one, get many, search, delete; users, org,
modules and fields. The driver (tests/sdk/driver.py) reports what the SDK made of every
reply; this test compares it with what was sent and with what the server holds.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, Server, cli
from tests.sdk.harness import readme_server, run_driver, sdk_python

SDKS = {"zohocrmsdk8-0": "v8", "zohocrmsdk7-0": "v7"}
FLAVOURS = ("grant", "refresh", "access")
SCOPES = ("ZohoCRM.modules.ALL,ZohoCRM.users.ALL,ZohoCRM.org.ALL,ZohoCRM.settings.ALL,"
          "ZohoSearch.securesearch.READ")
EXTERNAL = "Sync_Ref"


@pytest.fixture(scope="module", params=BACKENDS)
def sdk_server(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per backend for the module, started with the README's ``crmlite serve``."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'crmlite.db'}"
    else:
        url = request.getfixturevalue("pg_cluster").create_database()
    srv = readme_server(url)
    admin = srv.client()
    admin.add_field("Contacts", field_label="Sync Ref", data_type="text",
                    external={"type": "org", "show": True})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def world(sdk_server: Server) -> dict[str, Any]:
    admin = sdk_server.client()
    account = admin.upsert("Accounts", [{"Account_Name": "Zylker"}]).json()["data"][0]
    made = json.loads(cli(sdk_server.database_url, "client", "create", "--name", "SDK"))
    org = admin.get("/crm/v8/org").json()["org"][0]
    return {"account_id": account["details"]["id"], "zgid": org["zgid"], **made}


def credentials(server: Server, world: dict[str, Any], flavour: str) -> dict[str, str]:
    code = cli(server.database_url, "grant", "create", "--client-id", world["client_id"],
               "--scope", SCOPES)
    keys = {"client_id": world["client_id"], "client_secret": world["client_secret"]}
    if flavour == "grant":
        return {**keys, "grant_token": code}
    issued = httpx.post(server.base + "/oauth/v2/token", timeout=30, data={
        "grant_type": "authorization_code", "code": code, **keys}).json()
    if flavour == "refresh":
        return {**keys, "refresh_token": issued["refresh_token"]}
    return {"access_token": issued["access_token"]}


def items(step: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(i["class"], i["status"], i["code"], i["message"]) for i in step["items"]]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("sdk", list(SDKS))
def test_the_official_sdk_end_to_end(sdk_server: Server, world: dict[str, Any], sdk: str,
                                     flavour: str, tmp_path: Path) -> None:
    prefix = f"s{SDKS[sdk][1:]}{flavour}"
    config = {"base": sdk_server.base, "flavour": flavour, "account_id": world["account_id"],
              "external_field": EXTERNAL, "prefix": prefix,
              **credentials(sdk_server, world, flavour)}
    out = run_driver(sdk_python(sdk), config, tmp_path / "sdk")
    assert "error" not in out, out.get("traceback")
    assert out["api_versions"] == [SDKS[sdk]]
    ok = ("SuccessResponse", "success", "SUCCESS")

    insert = out["upsert_insert"]
    assert insert["class"] == "ActionWrapper"
    assert items(insert) == [(*ok, "record added")]
    rid = insert["items"][0]["details"]["id"]
    assert rid.isdigit()
    assert (insert["items"][0]["action"], insert["items"][0]["duplicate_field"]) == ("insert",
                                                                                     None)
    assert insert["items"][0]["details"]["Created_By"]["name"] == "crmlite Admin"
    for step, field in (("upsert_by_email", "Email"), ("upsert_by_external", EXTERNAL)):
        item = out[step]["items"][0]
        assert items(out[step]) == [(*ok, "record updated")], step
        assert (item["action"], item["duplicate_field"], item["details"]["id"]) == (
            "update", field, rid), step

    create = out["create"]
    assert create["status_code"] == 207
    assert items(create) == [(*ok, "record added"),
                             ("APIException", "error", "DUPLICATE_DATA", "duplicate data"),
                             ("APIException", "error", "MANDATORY_NOT_FOUND",
                              "required field not found")]
    created_id = create["items"][0]["details"]["id"]
    duplicate, missing = create["items"][1], create["items"][2]
    assert duplicate["details"]["api_name"] == EXTERNAL
    assert duplicate["duplicate_record_id"] == int(rid)
    assert missing["details"] == {"api_name": "Last_Name", "json_path": "$.data[2].Last_Name"}

    assert items(out["update"]) == [(*ok, "record updated")]
    assert out["update"]["items"][0]["details"]["id"] == rid

    # what the SDK read back is what was written, typed by the field metadata
    got = out["get_record"]
    assert got["class"] == "ResponseWrapper"
    (record,) = got["records"]
    assert record["id"] == int(rid)
    expected = {"Last_Name": f"{prefix} Probe", "First_Name": "Pat",
                "Email": f"{prefix}.two@example.com", "Title": "Updated by the SDK",
                "Phone": "+1 555 0100", "Lead_Source": "Partner", "Date_of_Birth": "1990-01-02",
                "Email_Opt_Out": True, EXTERNAL: f"{prefix}-EXT-1"}
    assert {k: record[k] for k in expected} == expected
    assert record["types"]["Lead_Source"] == "Choice"
    assert record["types"]["Date_of_Birth"] == "date"
    assert record["types"]["Created_Time"] == "datetime"
    assert record["Account_Name"] == {"class": "Record", "id": int(world["account_id"]),
                                      "name": "Zylker"}
    assert record["Owner"]["class"] == "MinifiedUser"
    assert record["Owner"]["email"] == "admin@crmlite.local"

    listed = out["get_records"]
    assert listed["class"] == "ResponseWrapper"
    by_id = {r["id"]: r for r in listed["records"]}
    assert by_id[int(rid)][EXTERNAL] == f"{prefix}-EXT-1"
    assert by_id[int(created_id)]["Last_Name"] == f"{prefix} Created"
    assert listed["info"]["count"] == len(listed["records"])
    assert listed["info"]["page"] == 1 and listed["info"]["more_records"] is False

    for step in ("search_criteria", "search_email"):
        assert out[step]["class"] == "ResponseWrapper", step
        assert [r["id"] for r in out[step]["records"]] == [int(rid)], step
    assert (out["search_none"]["status_code"], out["search_none"]["class"]) == (204, None)

    assert items(out["delete"]) == [(*ok, "record deleted")] * 2
    assert [i["details"]["id"] for i in out["delete"]["items"]] == [rid, created_id]
    assert out["get_deleted"]["status_code"] == 204

    assert out["users"] == {"class": "ResponseWrapper", "emails": ["admin@crmlite.local"]}
    assert out["org"] == {"class": "ResponseWrapper", "zgid": [world["zgid"]]}
    assert out["modules"]["class"] == "ResponseWrapper"
    assert {"Contacts", "Accounts", "Leads"} <= set(out["modules"]["api_names"])
    types = out["fields"]["types"]
    assert (types["Lead_Source"], types["Account_Name"], types[EXTERNAL]) == (
        "picklist", "lookup", "text")

    # the server agrees: nothing of this run is left, nothing refused was written
    admin = sdk_server.client()
    assert admin.get(f"/crm/v8/Contacts/{rid}").status_code == 204
    reply = admin.get(f"/crm/v8/Contacts/search?criteria=(Last_Name:starts_with:{prefix})")
    assert reply.status_code == 204, reply.text

    # the SDK kept the tokens it got from the token server, and they work
    rows = list(csv.DictReader((tmp_path / "sdk" / "sdk_tokens.csv").open()))
    assert len(rows) == 1
    row = rows[0]
    assert row["user_name"] == f"admin@crmlite.local:{world['zgid']}"
    if flavour == "access":
        assert row["access_token"] == config["access_token"] and not row["refresh_token"]
    else:
        assert row["access_token"] and row["refresh_token"]
        if flavour == "refresh":
            assert row["refresh_token"] == config["refresh_token"]
    me = sdk_server.client(row["access_token"]).get("/crm/v8/users?type=CurrentUser")
    assert me.json()["users"][0]["email"] == "admin@crmlite.local"
