"""Batches of new records inserted in one call (records/new.py, PostgreSQL's
crmlite_insert_new): the same replies and the same stored records as the planner, the
planner whenever a key is stored or the batch may not go that way, and no duplicate under
concurrent writers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import psycopg
import pytest

from crmlite.auth.principal import authenticate, remembered
from crmlite.records import new
from crmlite.records.writer import items_json, write_records
from crmlite.schema.fields import create_fields
from crmlite.store import postgres
from crmlite.store.base import GrantChanged
from crmlite.store.postgres import LoopTx, PostgresStore, PostgresTx
from tests.conftest import Server, admin_token
from tests.pgcluster import PostgresCluster
from tests.test_postgres_loop import on_loop

# Each step: (module, records, whether every record is new and the batch may go in one call)
STEPS: list[tuple[str, list[dict[str, Any]], bool]] = [
    ("Contacts", [{"Last_Name": f"L{n}", "First_Name": "Ann", "Email": f"c{n}@example.com",
                   "Ref_Id": f"R-{n}", "Phone": "+1 555 0100"} for n in range(5)], True),
    # mandatory Last_Name missing, an invalid Email, a record with no key at all
    ("Contacts", [{"First_Name": "No Last", "Email": "c10@example.com", "Ref_Id": "R-10"},
                  {"Last_Name": "Bad", "Email": "not an email"},
                  {"Last_Name": "Keyless", "Title": "CTO"},
                  {"Last_Name": "L11", "Email": "C11@Example.com", "Ref_Id": " R-11 "}], True),
    # an Email now stored (a differently cased one): the planner updates that record
    ("Contacts", [{"Last_Name": "L12", "Email": "c12@example.com"},
                  {"Last_Name": "Again", "Email": "C1@EXAMPLE.COM"}], False),
    # a stored external value
    ("Contacts", [{"Last_Name": "L13", "Ref_Id": "R-13"},
                  {"Last_Name": "Ref", "Ref_Id": "R-2", "Email": "c2-new@example.com"}], False),
    # a value repeated in the batch, a value cleared, an owner given: the planner's
    ("Contacts", [{"Last_Name": "L14", "Email": "c14@example.com"},
                  {"Last_Name": "L15", "Email": "c14@example.com"}], False),
    ("Contacts", [{"Last_Name": "L16", "Email": "c16@example.com", "Title": None}], False),
    ("Contacts", [{"Last_Name": "L17", "Email": "c17@example.com", "Owner": {"id": "OWNER"}}],
     False),
    # Leads: no external field given; Accounts: Account_Name is the duplicate check
    ("Leads", [{"Last_Name": f"Lead {n}", "Company": "Acme", "Email": f"l{n}@example.com"}
               for n in range(3)], True),
    # another email field given: its match_keys row (a search by email reads it) is the
    # planner's to write
    ("Leads", [{"Last_Name": "Lead 9", "Company": "Acme", "Email": "l9@example.com",
                "Secondary_Email": "L9.Other@Example.com"}], False),
    ("Accounts", [{"Account_Name": "Acme"}, {"Account_Name": "Globex"}], True),
    ("Accounts", [{"Account_Name": "ACME"}, {"Account_Name": "Initech"}], False),
    ("Contacts", [{"Last_Name": f"L{n}", "Email": f"c{n}@example.com", "Ref_Id": f"R-{n}"}
                  for n in range(20, 23)], True),
]


@pytest.fixture
def two_urls(pg_cluster: PostgresCluster) -> Iterator[tuple[str, str]]:
    urls = pg_cluster.create_database(), pg_cluster.create_database()
    yield urls
    for url in urls:
        pg_cluster.drop_database(url)


class Calls:
    """Counts Tx.insert_new's calls, and those that inserted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made = self.inserted = 0
        call = PostgresTx.insert_new

        def counted(tx: PostgresTx, batch: Any) -> Any:
            rows = call(tx, batch)
            self.made += 1
            self.inserted += bool(rows)
            return rows

        monkeypatch.setattr(PostgresTx, "insert_new", counted)


def token_with_ref_id(store: PostgresStore) -> str:
    """The admin's token, once Contacts have an org-based external field, Ref_Id."""
    _, token = admin_token(store)
    principal = authenticate(store, token)
    assert principal is not None
    with store.write() as tx:
        contacts = principal.dictionary.module("Contacts")
        assert contacts is not None
        create_fields(tx, principal.org_id, contacts, principal.dictionary, [{
            "field_label": "Ref Id", "data_type": "text", "length": 50,
            "external": {"type": "org", "show": True}}])
    return token


def run_steps(store: PostgresStore, calls: Calls | None) -> list[Any]:
    """The steps' replies, each with whether it went in one call."""
    token = token_with_ref_id(store)
    replies = []
    for module_name, records, _ in STEPS:
        principal = authenticate(store, token)
        assert principal is not None
        module = principal.dictionary.module(module_name)
        assert module is not None
        owner = str(principal.user.id)
        records = [{**r, "Owner": {"id": owner}} if "Owner" in r else r for r in records]
        made = calls.inserted if calls else 0
        outcomes = write_records(store, principal, module, records, "upsert")
        replies.append((orjson.loads(items_json(outcomes, principal, "upsert")),
                        calls.inserted - made if calls else None))
    return replies


def stored(url: str) -> dict[str, Any]:
    """Every record and key row, record ids replaced by their rank of creation."""
    with psycopg.connect(url) as conn:
        records = conn.execute("SELECT id, module_id, owner_id, created_by, modified_by, "
                               "data::jsonb FROM records ORDER BY id").fetchall()
        rank = {r[0]: n for n, r in enumerate(records)}
        return {
            "records": [(rank[r[0]], *r[1:]) for r in records],
            "unique_keys": sorted((f, s, v, rank[r]) for f, s, v, r in conn.execute(
                "SELECT field_id, scope, value, record_id FROM unique_keys")),
            "match_keys": sorted((f, v, rank[r]) for f, v, r in conn.execute(
                "SELECT field_id, value, record_id FROM match_keys")),
        }


def normalised(replies: list[Any], url: str) -> list[Any]:
    """Replies with record ids as ranks of creation and without times."""
    with psycopg.connect(url) as conn:
        rank = {str(r[0]): n for n, r in enumerate(conn.execute(
            "SELECT id FROM records ORDER BY id"))}
    out = []
    for reply, _ in replies:
        step = []
        for item in reply:
            item = dict(item)
            if "details" in item and item.get("status") == "success":
                details = {k: v for k, v in item["details"].items() if not k.endswith("_Time")}
                details["id"] = rank[details["id"]]
                item["details"] = details
            step.append(item)
        out.append(step)
    return out


def test_new_records_in_one_call_are_what_the_planner_makes(
        two_urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The same upserts on two databases, one call for batches of new records (the
    statistics keeper found the tables large) and the planner for every batch (it did
    not): the same replies, the same records and key rows; and the batches that may go in
    one call did, those with a stored key or that may not did not."""
    monkeypatch.setattr(new, "PLANNED_AFTER_A_MATCH", 0)
    calls = Calls(monkeypatch)
    one_call, planned = PostgresStore(two_urls[0]), PostgresStore(two_urls[1])
    try:
        one_call.statistics.large = True
        assert one_call.inserts_new() and not planned.inserts_new()
        replies = run_steps(one_call, calls)
        assert [n for _, n in replies] == [int(may) for _, _, may in STEPS]
        expected = run_steps(planned, None)
        assert normalised(replies, two_urls[0]) == normalised(expected, two_urls[1])
        assert stored(two_urls[0]) == stored(two_urls[1])
    finally:
        one_call.close()
        planned.close()
    first = replies[0][0][0]
    assert first["action"] == "insert" and first["duplicate_field"] is None
    assert [i["code"] for i in replies[1][0]] == ["MANDATORY_NOT_FOUND", "INVALID_DATA",
                                                  "SUCCESS", "SUCCESS"]


@pytest.fixture
def upsert_emails(pg_cluster: PostgresCluster) -> Iterator[Callable[..., list[str]]]:
    """Upserts of Contacts by the admin of a fresh database whose store offers batches of
    new records to the one-call path (its tables counted as large), one record per Email
    given: their actions."""
    url = pg_cluster.create_database()
    store = PostgresStore(url)
    try:
        store.statistics.large = True
        _, token = admin_token(store)

        def upsert(*emails: str) -> list[str]:
            principal = authenticate(store, token)
            assert principal is not None
            return [o.action for o in write_records(
                store, principal, principal.dictionary.module("Contacts"),
                [{"Last_Name": "L", "Email": e} for e in emails], "upsert")]

        yield upsert
    finally:
        store.close()
        pg_cluster.drop_database(url)


def test_after_a_batch_that_matched_the_planner_takes_the_next_ones(
        upsert_emails: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that found a stored key cost a call for nothing: the module's next
    PLANNED_AFTER_A_MATCH batches go to the planner straight away, then one call again."""
    monkeypatch.setattr(new, "PLANNED_AFTER_A_MATCH", 2)
    calls = Calls(monkeypatch)
    upsert = upsert_emails
    assert upsert("a@x.com") == ["insert"] and (calls.made, calls.inserted) == (1, 1)
    assert upsert("a@x.com", "b@x.com") == ["update", "insert"]
    assert (calls.made, calls.inserted) == (2, 1)
    assert upsert("c@x.com") == ["insert"] and upsert("d@x.com") == ["insert"]
    assert calls.made == 2  # the two after the match: planned
    assert upsert("e@x.com") == ["insert"] and (calls.made, calls.inserted) == (3, 2)


def test_each_further_call_that_matched_doubles_the_batches_planned_up_to_a_cap(
        upsert_emails: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A load of updates pays a call for nothing ever more rarely: after each call that
    found a stored key the planner takes twice as many batches as after the one before (up
    to PLANNED_AT_MOST); a call that inserts starts over."""
    monkeypatch.setattr(new, "PLANNED_AFTER_A_MATCH", 1)
    monkeypatch.setattr(new, "PLANNED_AT_MOST", 4)
    calls = Calls(monkeypatch)
    # (the batch's Email, or None for a new one; the calls made so far once it is written)
    steps = [("a@x.com", 1), ("a@x.com", 2),      # inserted in a call; a call matched:
             (None, 2),                          # 1 batch planned
             ("a@x.com", 3), (None, 3), (None, 3),  # matched again: 2 planned
             ("a@x.com", 4), *[(None, 4)] * 4,      # 4
             ("a@x.com", 5), *[(None, 5)] * 4,      # 4 again: the cap
             (None, 6),                          # a call that inserts starts over:
             ("a@x.com", 7), (None, 7), (None, 8)]  # 1 planned, then a call again
    made, actions, fresh = [], [], 0
    for email, _ in steps:
        if email is None:
            email, fresh = f"n{fresh}@x.com", fresh + 1
        actions += upsert_emails(email)
        made.append(calls.made)
    assert made == [calls_made for _, calls_made in steps]
    assert actions == ["insert"] + ["update" if email else "insert" for email, _ in steps[1:]]
    assert calls.inserted == 3


def test_while_a_call_tries_again_the_modules_other_batches_are_planned(
        upsert_emails: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """After a call that found a stored key, the next call is a probe: concurrent batches
    of the module go to the planner meanwhile instead of each making the same call."""
    monkeypatch.setattr(new, "PLANNED_AFTER_A_MATCH", 1)
    calls = Calls(monkeypatch)
    entered, release = threading.Event(), threading.Event()
    counted = PostgresTx.insert_new

    def held(tx: PostgresTx, batch: Any) -> Any:
        if calls.made == 2:  # the third call: the probe
            entered.set()
            assert release.wait(timeout=30)
        return counted(tx, batch)

    monkeypatch.setattr(PostgresTx, "insert_new", held)
    upsert = upsert_emails
    assert upsert("a@x.com") + upsert("a@x.com") + upsert("n0@x.com") == [
        "insert", "update", "insert"]
    assert (calls.made, calls.inserted) == (2, 1)  # n0: planned after the match
    probe = threading.Thread(target=upsert, args=("a@x.com",))
    probe.start()
    try:
        assert entered.wait(timeout=30)
        assert upsert("n1@x.com") == ["insert"] and calls.made == 2  # planned meanwhile
    finally:
        release.set()
        probe.join(timeout=30)
    assert calls.made == 3  # the probe matched: the next 2 batches are planned
    assert upsert("n2@x.com") + upsert("n3@x.com") == ["insert", "insert"]
    assert calls.made == 3
    assert upsert("n4@x.com") == ["insert"] and (calls.made, calls.inserted) == (4, 2)


def test_concurrent_batches_of_the_same_new_records_insert_each_once(
        pg_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four writers send the same batches of new Contacts at once (two by external value and
    Email, two by Email alone): whichever takes the locks first inserts them in one call,
    the others wait on the locks, find the keys stored and update. Every record once."""
    monkeypatch.setattr(new, "PLANNED_AFTER_A_MATCH", 0)
    calls = Calls(monkeypatch)
    url = pg_cluster.create_database()
    store = PostgresStore(url, pool_size=4)
    try:
        store.statistics.large = True
        token = token_with_ref_id(store)
        failures: list[str] = []
        barrier = threading.Barrier(4)

        def writer(by_email: bool) -> None:
            for batch in range(15):
                records = [{"Last_Name": f"L{n}", "Email": f"c{n}@example.com"}
                           if by_email else
                           {"Last_Name": f"L{n}", "Email": f"c{n}@example.com",
                            "Ref_Id": f"R-{n}"} for n in range(batch * 40, batch * 40 + 40)]
                barrier.wait(timeout=30)
                me = authenticate(store, token)
                assert me is not None
                try:
                    outcomes = write_records(store, me, me.dictionary.module("Contacts"),
                                             records, "upsert")
                except Exception as exc:  # reported below
                    failures.append(repr(exc))
                    return
                failures.extend(o.error.code for o in outcomes if o.error is not None)

        threads = [threading.Thread(target=writer, args=(n % 2 == 0,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not failures, failures[:3]
        assert calls.inserted >= 15 // 2  # the new batches went in one call, mostly
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*), count(DISTINCT data::jsonb->>'Email') "
                                "FROM records WHERE data::jsonb ? 'Email'").fetchone() == (
                600, 600)
            assert conn.execute("SELECT count(*), count(DISTINCT value) FROM match_keys"
                                ).fetchone() == (600, 600)
            # every record got its Ref_Id (a writer by external value saw to it)
            assert conn.execute("SELECT count(*) FROM unique_keys").fetchone() == (600,)
    finally:
        store.close()
        pg_cluster.drop_database(url)


def test_a_server_inserts_new_records_in_one_call_once_its_tables_are_large(
        pg_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the server: once the statistics keeper found the hot tables large (another
    org's rows here), an upsert of new Contacts is one call of crmlite_insert_new, and the
    records read back as inserted (Full_Name made, Email matched afterwards)."""
    url = pg_cluster.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER DATABASE " + conn.info.dbname + " SET track_functions = 'pl'")
    PostgresStore(url).close()  # the schema
    size = postgres.GENERIC_PLANS_FROM
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO records SELECT n, 2, 1, 1, 1, 0, 1, 0, '{}' "
                     "FROM generate_series(1, %s) AS n", (size,))
        for table in ("unique_keys", "match_keys"):
            scope = "0, " if table == "unique_keys" else ""
            conn.execute(f"INSERT INTO {table} SELECT 2, 1, 1, {scope}'v' || n, n "
                         "FROM generate_series(1, %s) AS n", (size,))
        conn.execute("ANALYZE")
    server = Server(url)
    try:
        api = server.client()

        def calls() -> int:
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute("SELECT calls FROM pg_stat_user_functions "
                                   "WHERE funcname = 'crmlite_insert_new'").fetchone()
                return int(row[0]) if row else 0

        deadline = time.monotonic() + 60
        n = 0
        while calls() == 0:  # the keeper looks every 50 writes
            assert time.monotonic() < deadline
            reply = api.upsert("Contacts", [{"Last_Name": f"Warm {n}",
                                             "Email": f"warm{n}@example.com"}])
            assert reply.status_code in (200, 201), reply.text
            n += 1
            time.sleep(0.02 if n % 50 else 1.0)
        time.sleep(1.5)  # backends report their function calls within a second
        before = calls()
        reply = api.upsert("Contacts", [{"Last_Name": "Boyle", "First_Name": "Pat",
                                         "Email": "pat@example.com"},
                                        {"First_Name": "Nameless", "Email": "nl@example.com"}])
        assert reply.status_code == 207, reply.text
        first, second = reply.json()["data"]
        assert first["code"] == "SUCCESS" and first["action"] == "insert"
        assert second["code"] == "MANDATORY_NOT_FOUND"
        while calls() == before:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert calls() == before + 1
        record = api.get(f"/crm/v8/Contacts/{first['details']['id']}").json()["data"][0]
        assert record["Full_Name"] == "Pat Boyle" and record["Email"] == "pat@example.com"
        again = api.upsert("Contacts", [{"Last_Name": "Boyle", "Email": "PAT@example.com"}])
        item = again.json()["data"][0]
        assert item["action"] == "update" and item["duplicate_field"] == "Email"
        assert item["details"]["id"] == first["details"]["id"]
    finally:
        server.stop()
        pg_cluster.drop_database(url)


def test_a_revoked_remembered_grant_inserts_nothing_in_one_call(
        pg_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the event loop, as the server runs it: a batch of new records from a principal
    the process remembers goes as one statement that holds the grant first; once the token
    is gone, GrantChanged, and nothing is inserted."""
    calls = Calls(monkeypatch)
    loop_calls: list[int] = []
    call = LoopTx.insert_new

    def counted(tx: LoopTx, batch: Any) -> Any:
        rows = call(tx, batch)
        loop_calls.append(len(rows))
        return rows

    monkeypatch.setattr(LoopTx, "insert_new", counted)
    url = pg_cluster.create_database()
    store = PostgresStore(url)
    try:
        store.statistics.large = True
        _, token = admin_token(store)
        assert authenticate(store, token) is not None  # now remembered

        def write(last_name: str) -> str:
            principal = remembered(store, token)
            assert principal is not None and principal.unchecked is not None
            try:
                [out] = write_records(store, principal, principal.dictionary.module("Contacts"),
                                      [{"Last_Name": last_name, "Email": f"{last_name}@x.com"}],
                                      "upsert")
            except GrantChanged:
                return "grant changed"
            return out.action

        assert on_loop(store, write, "kept") == "insert" and loop_calls == [1]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM oauth_tokens")
        assert on_loop(store, write, "lost") == "grant changed"
        assert calls.made == 0  # the psycopg path was not taken
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT data::json->>'Last_Name' FROM records").fetchall() == [
                ("kept",)]
    finally:
        store.close()
        pg_cluster.drop_database(url)
