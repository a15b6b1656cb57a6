"""No input a client can send gives a 500: a bounded, seeded barrage of odd requests."""

from __future__ import annotations

import json
import os
import random
from typing import Any
from urllib.parse import quote

from tests.conftest import Server

FIELDS = ["Last_Name", "Email", "Owner", "Account_Name", "Date_of_Birth", "Phone", "id",
          "Created_Time", "Ext", "Badge", "Email_Opt_Out", "Mailing_Zip", "Reporting_To",
          "Full_Name", "$approved", ""]


def odd_value(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Any] = [
        None, True, False, 0, -1, 2**63, 2**70, 1.5, float("1e308"), "", " ", "x" * 40000,
        "é中文🙂", "1; DROP TABLE records", "%s?%%", "\x00", "2024-02-30", "5725767000000000001",
        {"id": None}, {"id": "abc"}, {"id": 5725767000000000001}, [], [1, "a"], {}]
    if depth < 2:
        choices += [[odd_value(rng, depth + 1)], {"k": odd_value(rng, depth + 1)}]
    return rng.choice(choices)


def odd_criteria(rng: random.Random) -> str:
    """A search criteria string, well-formed or not."""
    field = rng.choice(FIELDS)
    op = rng.choice(["equals", "not_equal", "starts_with", "in", "between", "greater_than",
                     "less_equal", "contains", "bogus", ""])
    value = str(odd_value(rng))[:60]
    return rng.choice([
        f"({field}:{op}:{value})", f"(({field}:{op}:{value})and(Email:equals:a@b.c))",
        f"(({field}:{op}:{value})or({field}:{op}:{value})", f"{field}:{op}:{value}",
        f"({field}:{op}:{value},{value})", "()", "(((", value])


def odd_record(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return odd_value(rng)
    return {rng.choice(FIELDS): odd_value(rng) for _ in range(rng.randint(0, 5))}


def test_odd_requests_never_give_a_500(shared_server: Server) -> None:
    api = shared_server.client()
    api.add_field("Contacts", field_label="Ext", data_type="text",
                  external={"type": "org", "show": False})
    api.add_field("Contacts", field_label="Badge", data_type="text", unique={})
    rng = random.Random(int(os.environ.get("CRMLITE_FUZZ_SEED", "20261128")))
    statuses: dict[int, int] = {}
    for n in range(400):
        kind = n % 8
        if kind == 0:
            body = {"data": [odd_record(rng) for _ in range(rng.randint(0, 4))]}
            if rng.random() < 0.5:
                body["duplicate_check_fields"] = odd_value(rng)
            reply = api.request("POST", "/crm/v8/Contacts/upsert",
                                content=json.dumps(body).encode())
        elif kind == 1:
            payload = rng.choice([b"{", b"null", b"[]", b'"s"', b"\xff\xfe", b'{"data":null}',
                                  json.dumps({"data": odd_value(rng)}).encode()])
            reply = api.request(rng.choice(["POST", "PUT"]), "/crm/v8/Contacts", content=payload)
        elif kind == 2:
            body = {"data": [odd_record(rng) for _ in range(rng.randint(1, 3))]}
            reply = api.request("PUT", "/crm/v8/Contacts", content=json.dumps(body).encode())
        elif kind == 3:
            params = "&".join(f"{k}={quote(str(odd_value(rng))[:50])}" for k in rng.sample(
                ["fields", "page", "per_page", "sort_by", "sort_order", "ids"], 3))
            reply = api.get(f"/crm/v8/Contacts?{params}")
        elif kind == 4:
            body = {"fields": [{"field_label": odd_value(rng), "data_type": odd_value(rng),
                                "external": odd_value(rng), "unique": odd_value(rng),
                                "length": odd_value(rng)}]}
            reply = api.request("POST", "/crm/v8/settings/fields?module=Leads",
                                content=json.dumps(body).encode())
        elif kind == 6:
            params = {"criteria": odd_criteria(rng), "email": str(odd_value(rng))[:60],
                      "phone": str(odd_value(rng))[:60], "word": str(odd_value(rng))[:60],
                      "fields": rng.choice(["Last_Name,Email", str(odd_value(rng))[:60]]),
                      "page": str(odd_value(rng))[:20], "per_page": str(odd_value(rng))[:20]}
            query = "&".join(f"{k}={quote(v)}" for k, v in rng.sample(
                sorted(params.items()), rng.randint(1, 3)))
            reply = api.get(f"/crm/v8/Contacts/search?{query}")
        elif kind == 7:
            ids = ",".join(quote(str(odd_value(rng))[:30]) for _ in range(rng.randint(0, 3)))
            reply = api.request("DELETE", f"/crm/v8/Contacts?ids={ids}")
        else:
            target = quote(str(odd_value(rng))[:40], safe="")
            reply = api.request(rng.choice(["GET", "PUT", "DELETE", "PATCH"]),
                                f"/crm/{rng.choice(['v8', 'v2', 'v9'])}/Contacts/{target}",
                                content=b'{"data":[{"Last_Name":"x"}]}')
        statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
        assert reply.status_code < 500, (n, reply.request.method, reply.request.url,
                                         reply.request.content[:300], reply.text)
        if reply.status_code != 204:
            body = reply.json()
            assert "code" in body or "data" in body or "fields" in body, body
    assert any(s >= 400 for s in statuses) and any(s < 300 for s in statuses), statuses


def test_nul_characters_are_refused_not_stored(shared_server: Server) -> None:
    api = shared_server.client()
    api.add_field("Leads", field_label="Legacy Id", data_type="text",
                  external={"type": "org", "show": False})
    for record in ({"Last_Name": "N", "Email": "a\x00@example.com"},
                   {"Last_Name": "N", "Legacy_Id": "L\x00"},
                   {"Last_Name": "N\x00"}):
        reply = api.upsert("Leads", [record])
        assert reply.status_code == 400, reply.text
        assert reply.json()["data"][0]["code"] == "INVALID_DATA"
    header = {"X-EXTERNAL": "Leads.Legacy_Id"}
    assert api.get("/crm/v8/Leads/L%00", headers=header).status_code == 204
    assert api.delete("/crm/v8/Leads?ids=L%00", headers=header).status_code == 400
    reply = api.put("/crm/v8/Leads", {"data": [{"Legacy_Id": "L\x00", "Company": "x"}]},
                    headers=header)
    assert reply.status_code == 400
