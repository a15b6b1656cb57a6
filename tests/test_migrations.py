"""The versioned schema: an older database upgrades in place, a newer one is refused.

The "previous crmlite" is this crmlite with its migrations cut back to schema version 1
(migrations are append-only, so that is exactly the DDL version 1 shipped): it makes
the database, and its own server writes the data, through the API.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from typing import Any

import psycopg
import pytest

import tests.conftest as harness
from crmlite.store import migrations
from tests.conftest import CRMLITE, Server, cli, new_user

PREVIOUS = 1
# (writes from a remembered principal check their grant with v5's function: the previous
# crmlite checked every token against the store; upserts lock and look up their Emails with
# v7's: it did that one step at a time; and it inserted new records as any others, without
# v8's function)
V1_CRMLITE = [sys.executable, "-c",
              "import crmlite.store.migrations as m; del m.MIGRATIONS[1:]; "
              "import crmlite.auth.principal as p; p.remembered = lambda store, token: None; "
              "import crmlite.store.base as b, crmlite.store.postgres as pg; "
              "pg.LoopTx.lock_and_match = pg.PostgresTx.lock_and_match = b.lock_then_match; "
              "pg.PostgresStore.inserts_new = lambda self: False; "
              "from crmlite.cli import main; main(prog_name='crmlite')"]


def sql(database_url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the database itself, behind crmlite's back."""
    if database_url.startswith("sqlite:"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return conn.execute(statement, params).fetchall()
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(statement.replace("?", "%s"), params)
        return cur.fetchall() if cur.description else []


def schema_version(database_url: str) -> int:
    return int(sql(database_url, "SELECT value FROM meta WHERE key = 'schema_version'")[0][0])


def indexes(database_url: str) -> set[str]:
    if database_url.startswith("sqlite:"):
        rows = sql(database_url, "SELECT name FROM sqlite_master WHERE type = 'index'")
    else:
        rows = sql(database_url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    return {r[0] for r in rows}


def test_latest_version_is_11() -> None:
    # The upgrade test starts from version 1 and crosses every later step.
    assert migrations.latest() == 11


def test_previous_schema_upgrades_in_place_and_keeps_its_data(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # 1. The previous crmlite makes the database and writes data through its own server.
    monkeypatch.setattr(harness, "CRMLITE", V1_CRMLITE)
    old = Server(database_url)
    try:
        api = old.client()
        api.add_field("Leads", field_label="Sync ID", data_type="text",
                      external={"type": "org", "show": True})
        api.add_field("Contacts", field_label="Contact Ref", data_type="text",
                      external={"type": "user", "show": True})
        ana = new_user(old, "ana@example.com", "Ana Diaz")
        ana_token = ana.http.headers["Authorization"].split()[-1]
        leads = api.upsert("Leads", [{"Last_Name": f"Lead {n}", "Sync_ID": f"S-{n}",
                                      "Email": f"lead{n}@example.com",
                                      "Secondary_Email": f"Second{n}@Example.com"}
                                     for n in range(5)])
        assert leads.status_code == 200, leads.text
        contacts = ana.upsert("Contacts", [{"Last_Name": "Boyle", "Contact_Ref": "Boyle1",
                                            "Email": "p.boyle@abc.com"}])
        assert contacts.status_code == 200, contacts.text
        before = {"Leads": api.get("/crm/v8/Leads?fields=Last_Name,Sync_ID,Email").json(),
                  "Contacts": api.get("/crm/v8/Contacts?fields=Last_Name,Contact_Ref,Email")
                  .json()}
    finally:
        old.stop()
    monkeypatch.setattr(harness, "CRMLITE", CRMLITE)
    assert schema_version(database_url) == PREVIOUS
    # Before v9 only the system duplicate-check field had match_keys rows (the previous
    # crmlite runs this engine, so its rows for the other email fields go here).
    sql(database_url, "DELETE FROM match_keys WHERE field_id IN "
        "(SELECT id FROM fields WHERE api_name = 'Secondary_Email')")
    assert "records_by_modified" not in indexes(database_url)
    lead_ids = [i["details"]["id"] for i in leads.json()["data"]]
    boyle_id = contacts.json()["data"][0]["details"]["id"]

    # 2. This crmlite opens it: upgraded in place on start, nothing lost.
    new = Server(database_url)
    try:
        assert schema_version(database_url) == migrations.latest()
        # v2 added the sort indexes; v3 dropped records_by_created (id order) and the
        # by-record key indexes but for user-based keys; v4 dropped records_by_modified
        # (an index entry that moved with every update).
        names = indexes(database_url)
        assert {"records_by_module", "unique_keys_user_scoped"} <= names
        assert not {"records_by_created", "records_by_modified", "unique_keys_by_record",
                    "match_keys_by_record"} & names
        if not database_url.startswith("sqlite:"):  # v5: the grant check of writes
            assert sql(database_url, "SELECT count(*) FROM pg_proc "
                       "WHERE proname = 'crmlite_grant_holds'") == [(1,)]
            # v6, v11: records' pages keep room for HOT updates
            assert sql(database_url, "SELECT reloptions FROM pg_class "
                       "WHERE relname = 'records'") == [(["fillfactor=50"],)]
            # v7: upserts lock and look up their Emails in one call
            assert sql(database_url, "SELECT count(*) FROM pg_proc "
                       "WHERE proname = 'crmlite_lock_and_match'") == [(1,)]
            # v8: batches of new records inserted in one call
            assert sql(database_url, "SELECT count(*) FROM pg_proc "
                       "WHERE proname = 'crmlite_insert_new'") == [(1,)]
        api = new.client()
        after = {"Leads": api.get("/crm/v8/Leads?fields=Last_Name,Sync_ID,Email").json(),
                 "Contacts": api.get("/crm/v8/Contacts?fields=Last_Name,Contact_Ref,Email")
                 .json()}
        assert after == before
        # A token the previous crmlite issued still works; the key tables still match.
        ana = new.client(ana_token)
        again = ana.upsert("Contacts", [{"Last_Name": "Boyle P", "Contact_Ref": "Boyle1"}])
        assert again.status_code == 200, again.text
        [item] = again.json()["data"]
        assert (item["action"], item["duplicate_field"], item["details"]["id"]) == (
            "update", "Contact_Ref", boyle_id)
        by_email = api.upsert("Leads", [{"Last_Name": "Lead 3 bis",
                                         "Email": "LEAD3@example.com"}])
        [item] = by_email.json()["data"]
        assert (item["action"], item["duplicate_field"], item["details"]["id"]) == (
            "update", "Email", lead_ids[3])
        # v9: the other email fields' values indexed for a search by email
        found = api.get("/crm/v8/Leads/search?email=second2@example.com&fields=Last_Name")
        assert found.status_code == 200, found.text
        assert [r["id"] for r in found.json()["data"]] == [lead_ids[2]]
        clash = api.post("/crm/v8/Leads", {"data": [{"Last_Name": "x", "Sync_ID": "S-1"}]})
        assert clash.json()["data"][0]["code"] == "DUPLICATE_DATA"
        # sort_by=Modified_Time works on the upgraded database (ties in id order).
        listing = api.get("/crm/v8/Leads?fields=Last_Name,Modified_Time&sort_by=Modified_Time"
                          "&sort_order=asc").json()["data"]
        assert sorted(r["id"] for r in listing) == sorted(lead_ids)
        order = [(r["Modified_Time"], int(r["id"])) for r in listing]
        assert order == sorted(order)
    finally:
        new.stop()


def test_newer_schema_is_refused_with_a_clear_message(database_url: str) -> None:
    cli(database_url, "token", "create")  # a database of this crmlite's version
    newer = migrations.latest() + 1
    sql(database_url, "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(newer),))
    for args in (["token", "create"], ["serve", "--port", "0"], ["user", "add", "--email",
                                                                  "a@b.c", "--name", "A"]):
        done = subprocess.run([*CRMLITE, *args, "--database", database_url],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stdout == ""
        assert f"has schema version {newer}" in done.stderr
        assert f"this crmlite knows schema versions up to {migrations.latest()}" in done.stderr
        assert "Upgrade crmlite" in done.stderr
    assert schema_version(database_url) == newer  # left as it was


def test_processes_starting_together_on_an_empty_database_share_one_org(
        database_url: str) -> None:
    """Several crmlite processes meet an empty database at once (a fleet starting):
    the schema is made once and every token they print belongs to the same org."""
    tokens: list[str] = []
    errors: list[str] = []

    def create() -> None:
        done = subprocess.run([*CRMLITE, "token", "create", "--database", database_url],
                              capture_output=True, text=True, timeout=120)
        (tokens if done.returncode == 0 else errors).append(done.stdout.strip() or
                                                            done.stderr)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert not errors, errors
    assert len(tokens) == 4
    assert schema_version(database_url) == migrations.latest()
    server = Server(database_url)
    try:
        admins = set()
        for token in [*tokens, server.token]:
            me = server.client(token).get("/crm/v8/users?type=CurrentUser")
            assert me.status_code == 200, me.text
            admins.add(me.json()["users"][0]["id"])
        assert len(admins) == 1
        assert sql(database_url, "SELECT COUNT(*) FROM orgs")[0][0] == 1
    finally:
        server.stop()
