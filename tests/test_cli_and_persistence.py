"""The CLI, the bootstrap of an empty database, and data surviving a restart."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import Client, Server, cli


def test_data_survives_a_restart(server: Server, api: Client) -> None:
    api.add_field("Contacts", field_label="Ext", data_type="text",
                  external={"type": "org", "show": True})
    rid = api.upsert("Contacts", [{"Last_Name": "Durable", "Ext": "D-1"}]).json()[
        "data"][0]["details"]["id"]
    server.restart()
    api = server.client()
    assert api.record("Contacts", rid)["Last_Name"] == "Durable"
    again = api.upsert("Contacts", [{"Last_Name": "Still", "Ext": "D-1"}])
    assert again.json()["data"][0]["details"]["id"] == rid
    assert again.json()["data"][0]["duplicate_field"] == "Ext"


def test_token_create_prints_only_a_token_and_user_add_prints_an_id(server: Server) -> None:
    token = cli(server.database_url, "token", "create", "--scope",
                "ZohoCRM.modules.leads.ALL", "--expires-in", "600")
    assert token.startswith("1000.") and len(token.split()) == 1
    user_id = cli(server.database_url, "user", "add", "--email", "new@example.com", "--name",
                  "New Person")
    assert user_id.isdigit() and len(user_id) >= 18
    theirs = server.client(cli(server.database_url, "token", "create", "--user",
                               "new@example.com"))
    reply = theirs.upsert("Leads", [{"Last_Name": "Theirs"}])
    assert reply.json()["data"][0]["details"]["Created_By"] == {"name": "New Person",
                                                                "id": user_id}
    done = subprocess.run([sys.executable, "-m", "crmlite", "user", "add", "--email",
                           "NEW@example.com", "--name", "Again", "--database",
                           server.database_url], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "already exists" in done.stderr


def test_commands_bootstrap_an_empty_database(database_url: str) -> None:
    token = cli(database_url, "token", "create")
    srv = Server(database_url)
    try:
        api = srv.client(token)
        reply = api.get("/crm/v8/settings/fields?module=Price_Books")
        assert reply.status_code == 200
        assert any(f["api_name"] == "Price_Book_Name" for f in reply.json()["fields"])
    finally:
        srv.stop()


def test_a_database_that_cannot_be_opened_is_a_one_line_error() -> None:
    for url in ("postgresql://someone:hunter2@127.0.0.1:1/nowhere", "mysql://db/x"):
        done = subprocess.run([sys.executable, "-m", "crmlite", "token", "create",
                               "--database", url], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert done.stdout == ""
        assert "cannot open the database" in done.stderr
        assert "Traceback" not in done.stderr
        assert "hunter2" not in done.stderr
