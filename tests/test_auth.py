"""Authentication and scopes on the /crm routes."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from tests.conftest import Client, Server, cli


def token(server: Server, *args: str) -> Client:
    return server.client(cli(server.database_url, "token", "create", *args))


def test_no_token_bad_token_expired_token(shared_server: Server) -> None:
    anonymous = shared_server.client(token="")
    for method, path in [("POST", "/crm/v8/Contacts/upsert"), ("GET", "/crm/v8/Contacts/1"),
                         ("GET", "/crm/v8/settings/fields?module=Leads"),
                         ("DELETE", "/crm/v8/Leads?ids=1"), ("GET", "/crm/v2/users")]:
        reply = anonymous.request(method, path, content=b'{"data":[{"Last_Name":"x"}]}')
        assert reply.status_code == 401
        assert reply.json() == {"code": "AUTHENTICATION_FAILURE", "details": {},
                                "message": "Authentication failed", "status": "error"}
    wrong = shared_server.client(token="1000.nope.nope")
    reply = wrong.upsert("Contacts", [{"Last_Name": "x"}])
    assert reply.status_code == 401
    assert reply.json() == {"code": "INVALID_TOKEN", "details": {},
                            "message": "invalid oauth token", "status": "error"}
    asked = time.monotonic()
    short = token(shared_server, "--expires-in", "6")
    minted = time.monotonic()  # the token was made between `asked` and now
    in_time = short.upsert("Contacts", [{"Last_Name": "in time"}])
    if time.monotonic() - asked < 5:  # a loaded machine may take longer to get here
        assert in_time.status_code == 200
    time.sleep(max(0.0, minted + 6.5 - time.monotonic()))
    assert short.upsert("Contacts", [{"Last_Name": "late"}]).json()["code"] == "INVALID_TOKEN"
    assert short.get("/crm/v8/settings/fields?module=Leads").status_code == 401


def test_bearer_scheme_is_accepted_too(shared_server: Server) -> None:
    reply = shared_server.client().http.post(
        "/crm/v8/Leads/upsert", content=b'{"data":[{"Last_Name":"b"}]}',
        headers={"Authorization": f"Bearer {shared_server.token}"})
    assert reply.status_code == 200


SCOPE_CASES = [
    # scope, (upsert Contacts, insert Contacts, update Contacts, read Contacts, delete Contacts,
    #         upsert Leads)
    ("ZohoCRM.modules.ALL", (True, True, True, True, True, True)),
    ("ZohoCRM.modules.contacts.ALL", (True, True, True, True, True, False)),
    ("zohocrm.MODULES.Contacts.all", (True, True, True, True, True, False)),
    ("ZohoCRM.modules.contacts.WRITE", (True, True, True, False, True, False)),
    ("ZohoCRM.modules.contacts.CREATE", (True, True, False, False, False, False)),
    ("ZohoCRM.modules.contacts.UPDATE", (False, False, True, False, False, False)),
    ("ZohoCRM.modules.contacts.READ", (False, False, False, True, False, False)),
    ("ZohoCRM.modules.contacts.DELETE", (False, False, False, False, True, False)),
    ("ZohoCRM.modules.CREATE", (True, True, False, False, False, True)),
    ("ZohoCRM.modules.READ", (False, False, False, True, False, False)),
    ("ZohoCRM.modules.leads.ALL", (False, False, False, False, False, True)),
    ("ZohoCRM.settings.ALL", (False, False, False, False, False, False)),
]


@pytest.mark.parametrize(("scope", "allowed"), SCOPE_CASES)
def test_scopes_cover_exactly_their_operations(shared_server: Server, scope: str,
                                               allowed: tuple[bool, ...]) -> None:
    admin = shared_server.client()
    rid = admin.upsert("Contacts", [{"Last_Name": "Scoped"}]).json()["data"][0]["details"]["id"]
    scoped = token(shared_server, "--scope", scope)
    attempts = [
        scoped.upsert("Contacts", [{"Last_Name": "S"}]),
        scoped.post("/crm/v8/Contacts", {"data": [{"Last_Name": "S"}]}),
        scoped.put("/crm/v8/Contacts", {"data": [{"id": rid, "Title": "T"}]}),
        scoped.get(f"/crm/v8/Contacts/{rid}"),
        scoped.delete(f"/crm/v8/Contacts?ids={rid}"),
        scoped.upsert("Leads", [{"Last_Name": "S"}]),
    ]
    for reply, ok in zip(attempts, allowed, strict=True):
        if ok:
            assert reply.status_code < 300, (scope, reply.request.url, reply.text)
        else:
            assert reply.status_code == 401, (scope, reply.request.url, reply.text)
            assert reply.json() == {"code": "OAUTH_SCOPE_MISMATCH", "details": {},
                                    "message": "invalid oauth scope to access this URL",
                                    "status": "error"}


def test_custom_modules_use_the_custom_scope(shared_server: Server) -> None:
    admin = shared_server.client()
    made = admin.post("/crm/v8/settings/modules",
                      {"modules": [{"singular_label": "Asset", "plural_label": "Assets"}]})
    assert made.status_code == 201
    custom = token(shared_server, "--scope", "ZohoCRM.modules.custom.ALL")
    assert custom.upsert("Assets", [{"Name": "Laptop"}]).status_code == 200
    assert custom.upsert("Leads", [{"Last_Name": "x"}]).status_code == 401


def test_settings_routes_need_settings_scopes(shared_server: Server) -> None:
    records_only = token(shared_server, "--scope", "ZohoCRM.modules.ALL")
    assert records_only.get("/crm/v8/settings/fields?module=Leads").status_code == 401
    reader = token(shared_server, "--scope", "ZohoCRM.settings.fields.READ")
    assert reader.get("/crm/v8/settings/fields?module=Leads").status_code == 200
    reply = reader.post("/crm/v8/settings/fields?module=Leads",
                        {"fields": [{"field_label": "X", "data_type": "text"}]})
    assert reply.status_code == 401
    writer = token(shared_server, "--scope", "ZohoCRM.settings.fields.ALL")
    reply = writer.post("/crm/v8/settings/fields?module=Leads",
                        {"fields": [{"field_label": "Scoped Field", "data_type": "text"}]})
    assert reply.status_code == 201


def stored_token_rows(database_url: str) -> list[tuple]:
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url[len("sqlite:///"):]) as conn:
            return conn.execute("SELECT * FROM oauth_tokens").fetchall()
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT * FROM oauth_tokens").fetchall()


def test_tokens_are_stored_hashed(server: Server) -> None:
    minted = cli(server.database_url, "token", "create")
    cells = [str(cell) for row in stored_token_rows(server.database_url) for cell in row]
    assert hashlib.sha256(minted.encode()).hexdigest() in cells
    for secret in (minted, server.token):
        assert not any(secret in cell for cell in cells)
    if server.database_url.startswith("sqlite"):
        folder = Path(server.database_url[len("sqlite:///"):]).parent
        raw = b"".join(p.read_bytes() for p in folder.glob("crmlite.db*"))
        assert minted.encode() not in raw


def test_cli_refuses_unknown_user_and_bad_scope(server: Server) -> None:
    import subprocess
    import sys

    for args in (["--user", "ghost@example.com"], ["--scope", "nonsense"]):
        done = subprocess.run([sys.executable, "-m", "crmlite", "token", "create", *args,
                               "--database", server.database_url], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode != 0
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
