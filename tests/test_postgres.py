"""PostgreSQL specifics: the URL from the environment, the connection pool."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from tests.conftest import CRMLITE, Server, admin_token
from tests.pgcluster import PostgresCluster, free_port


def test_database_url_from_the_environment(pg_cluster: PostgresCluster) -> None:
    url = pg_cluster.create_database()
    env = {**os.environ, "CRMLITE_DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    port = free_port()
    proc = subprocess.Popen([*CRMLITE, "serve", "--port", str(port)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"crmlite serving {url} at http://127.0.0.1:{port}"), first
        token = re.search(r": (1000\.\S+)", proc.stdout.readline())
        assert token is not None
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = httpx.post(f"{base}/crm/v8/Contacts/upsert",
                                   content=b'{"data":[{"Last_Name":"Env"}]}',
                                   headers={"Authorization": f"Zoho-oauthtoken {token[1]}"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        assert reply.status_code == 200, reply.text
    finally:
        proc.terminate()
        proc.wait(15)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT data FROM records").fetchall()
    assert len(rows) == 1 and '"Env"' in rows[0][0]


def test_more_concurrent_requests_than_pooled_connections(
        pg_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMLITE_PG_POOL_SIZE", "1")
    server = Server(pg_cluster.create_database())
    statuses: list[int] = []

    def client(n: int) -> None:
        api = server.client()
        for round_ in range(10):
            records = [{"Last_Name": f"C{n}", "Email": f"c{n}.{k}@example.com",
                        "Description": f"round {round_}"} for k in range(10)]
            statuses.append(api.upsert("Contacts", records).status_code)
            statuses.append(api.get("/crm/v8/Contacts?fields=Last_Name&per_page=5").status_code)

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert statuses == [200] * 160
        listing = server.client().get("/crm/v8/Contacts?fields=Description&per_page=200")
        assert len(listing.json()["data"]) == 80
        assert {r["Description"] for r in listing.json()["data"]} == {"round 9"}
    finally:
        server.stop()


def test_hot_tables_get_statistics_without_waiting_for_autovacuum(
        pg_cluster: PostgresCluster) -> None:
    """Until the key tables are analysed, PostgreSQL's planner reads a batch's key lookups
    as a scan of every key of the field; crmlite analyses them as soon as they have grown."""
    url = pg_cluster.create_database()
    server = Server(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE records SET (autovacuum_enabled = off)")
            conn.execute("ALTER TABLE match_keys SET (autovacuum_enabled = off)")
        api, n = server.client(), 0
        deadline = time.monotonic() + 60
        analysed: set[str] = set()
        while analysed != {"records", "match_keys"}:
            assert time.monotonic() < deadline, f"only {analysed} analysed after {n} records"
            reply = api.upsert("Contacts", [{"Last_Name": "S", "Email": f"s{n + k}@example.com"}
                                            for k in range(20)])
            assert reply.status_code == 200, reply.text
            n += 20
            with psycopg.connect(url, autocommit=True) as conn:
                analysed = {r[0] for r in conn.execute(
                    "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL")}
        assert n > 500  # not while the tables were (nearly) empty
    finally:
        server.stop()


def test_updates_keep_records_on_their_pages(pg_cluster: PostgresCluster) -> None:
    """records' pages keep half their room (fillfactor 50, schema v11): a batch that
    updates every record of its pages at once, as a sync job sending its records in order
    does, writes every new version on its record's own page, with no new entry in records'
    indexes (HOT), round after round."""
    url = pg_cluster.create_database()
    server = Server(url)
    filler = "x" * 250  # documents of about 400 bytes, as the benchmark's
    try:
        api = server.client()
        for version in range(3):
            reply = api.upsert("Contacts", [{"Last_Name": f"L{n} v{version}",
                                             "Email": f"hot{n}@example.com",
                                             "Description": f"{filler} {version}"}
                                            for n in range(100)])
            assert reply.status_code == 200, reply.text
            assert {i["action"] for i in reply.json()["data"]} == (
                {"insert"} if version == 0 else {"update"})
        deadline, counts = time.monotonic() + 15, (0, 0)
        while time.monotonic() < deadline:  # the server's backends report every second
            with psycopg.connect(url, autocommit=True) as conn:
                counts = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                                      "WHERE relname = 'records'").fetchone()
            if counts[0] >= 200:
                break
            time.sleep(0.5)
        updated, hot = counts
        assert updated >= 200, counts
        # with fillfactor 70 about half moved to other pages; with 100, nearly all
        assert hot >= updated * 0.95, counts
    finally:
        server.stop()


@contextmanager
def contacts_on(pg_cluster: PostgresCluster) -> Iterator[tuple[Any, Any, Any]]:
    """The store of a fresh database, its admin and the Contacts module (the engine called
    directly, through psycopg)."""
    from crmlite.auth.principal import authenticate
    from crmlite.store.postgres import PostgresStore

    url = pg_cluster.create_database()
    store = PostgresStore(url)
    try:
        _, token = admin_token(store)
        principal = authenticate(store, token)
        assert principal is not None
        contacts = principal.dictionary.module("Contacts")
        assert contacts is not None
        yield store, principal, contacts
    finally:
        store.close()
        pg_cluster.drop_database(url)


def while_locked(store: Any, rid: int, batch: Callable[[], list[Any]],
                 holder: Callable[[Any, list[tuple[Any, ...]]], None]) -> list[Any]:
    """Run ``batch`` in a thread while this one holds record ``rid``'s row lock: a second
    after taking it (the batch has read its keys and waits for the lock), ``holder(tx,
    rows)`` changes the record, then commits. The batch's outcomes."""
    locked, outcomes, errors = threading.Event(), [], []

    def write() -> None:
        locked.wait(10)
        try:
            outcomes.extend(batch())
        except Exception as exc:  # the assertion below shows it
            errors.append(exc)

    waiting = threading.Thread(target=write)
    waiting.start()
    with store.write() as tx:
        rows = tx.execute(tx.lock_rows("SELECT id, data FROM records WHERE id = ? "
                                       "ORDER BY id"), (rid,))
        locked.set()
        time.sleep(1.0)
        holder(tx, rows)
    waiting.join(30)
    assert not errors, errors
    return outcomes


def test_an_upsert_waiting_on_a_record_being_deleted_inserts_afresh(
        pg_cluster: PostgresCluster) -> None:
    """The upsert reads that p@example.com names record R, then waits for R's row lock,
    held by a delete; once the delete commits, R is gone and the upsert inserts a new
    record."""
    from crmlite.records.deletion import delete_keys
    from crmlite.records.writer import write_records

    with contacts_on(pg_cluster) as (store, principal, contacts):
        record = {"Last_Name": "Boyle", "Email": "p@example.com"}
        [made] = write_records(store, principal, contacts, [record], "upsert")
        assert made.record is not None
        gone = made.record.id
        [out] = while_locked(
            store, gone, lambda: write_records(store, principal, contacts, [record], "upsert"),
            lambda tx, rows: delete_keys(tx, principal.org_id, contacts, rows))
        assert out.error is None
        assert out.action == "insert" and out.record is not None and out.record.id != gone
        with store.read() as tx:
            assert tx.execute("SELECT count(*) FROM records") == [(1,)]


@pytest.mark.parametrize("how", ["upsert by Email", "update by id"])
def test_a_write_waiting_on_a_record_being_changed_keeps_that_change(
        pg_cluster: PostgresCluster, how: str) -> None:
    """Another writer holds record R's row lock and changes its Description; a batch that
    reaches R meanwhile (by its Email, whose lookup reads R along, or by its id) waits, then
    changes First_Name on top of that Description instead of writing back what it read
    before."""
    from crmlite.records.writer import write_records

    with contacts_on(pg_cluster) as (store, principal, contacts):
        [made] = write_records(store, principal, contacts,
                               [{"Last_Name": "Boyle", "Email": "p@example.com"}], "upsert")
        assert made.record is not None
        rid = made.record.id
        change = ({"Email": "p@example.com", "First_Name": "Pat"} if how == "upsert by Email"
                  else {"id": str(rid), "First_Name": "Pat"})

        def hold(tx: Any, rows: list[tuple[Any, ...]]) -> None:
            [(_, data)] = rows
            tx.execute("UPDATE records SET data = ? WHERE id = ?",
                       (orjson.dumps({**orjson.loads(data), "Description": "held"}).decode(),
                        rid))

        outcomes = while_locked(store, rid, lambda: write_records(
            store, principal, contacts, [change], "upsert" if "upsert" in how else "update"),
            hold)
        assert [(o.action, o.record.id if o.record else None) for o in outcomes] == [
            ("update", rid)]
        with store.read() as tx:
            [(data,)] = tx.execute("SELECT data FROM records WHERE id = ?", (rid,))
        stored = orjson.loads(data)
        assert (stored["First_Name"], stored.get("Description")) == ("Pat", "held")
