"""PostgreSQL on the event loop: the store's asyncpg path under the greenlet bridge.

The server runs the engine through ``greenlet_spawn`` (api/context.py); these tests drive
the same path directly, and read back with the sync (psycopg) path where it helps.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import asyncpg
import psycopg
import pytest

from crmlite.auth.principal import authenticate, remembered
from crmlite.records.writer import write_records
from crmlite.store import postgres
from crmlite.store.base import ConflictError, GrantChanged, StoreBusy
from crmlite.store.bridge import await_only, greenlet_spawn
from crmlite.store.migrations import ID_BASE
from crmlite.store.postgres import (
    Catalog,
    PostgresStore,
    lock_id,
    lock_ids,
    polls_while_writing,
    set_based,
    write_concurrency,
    writes_apart,
)
from tests.conftest import admin_token
from tests.pgcluster import PostgresCluster

T = TypeVar("T")
KEY_INSERT = ("INSERT INTO unique_keys (org_id, module_id, field_id, scope, value, record_id) "
              "VALUES (?,?,?,?,?,?)")
KEY_DELETE = ("DELETE FROM unique_keys WHERE org_id = ? AND module_id = ? AND field_id = ? "
              "AND scope = ? AND value = ?")
MATCH_INSERT = ("INSERT INTO match_keys (org_id, module_id, field_id, value, record_id) "
                "VALUES (?,?,?,?,?)")


@pytest.fixture
def url(pg_cluster: PostgresCluster) -> Iterator[str]:
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url)


def on_loop(store: PostgresStore, fn: Callable[..., T], *args: Any) -> T:
    """``fn`` as the server runs it: in a greenlet on an event loop, closing the loop's pool."""
    async def main() -> T:
        try:
            return await greenlet_spawn(fn, *args)
        finally:
            await store.close_on_loop()

    return asyncio.run(main())


class Spy:
    """A connection that notes the first two words (``whole``: all) of each statement it
    executes (``execute``; ``fetch`` and the rest go through unnoted)."""

    def __init__(self, conn: Any, sent: list[str], whole: bool = False) -> None:
        self.conn = conn
        self.sent = sent
        self.whole = whole

    async def execute(self, sql: str, *args: Any) -> Any:
        self.sent.append(sql if self.whole else " ".join(sql.split(" ", 2)[:2]))
        return await self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


class SpyPool:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def release(self, spy: Spy) -> None:
        await self.pool.release(spy.conn)


def keys(url: str) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT value, record_id FROM unique_keys WHERE org_id = 1 "
                            "ORDER BY value").fetchall()


def test_the_engine_upserts_on_the_loop(url: str) -> None:
    store = PostgresStore(url)
    try:
        _, token = admin_token(store)

        def upsert(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
            principal = authenticate(store, token)
            assert principal is not None
            contacts = principal.dictionary.module("Contacts")
            return [(o.action, o.record.id) for o in
                    write_records(store, principal, contacts, records, "upsert")
                    if o.record is not None]

        def both() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
            first = upsert([{"Last_Name": f"L{n}", "Email": f"p{n}@example.com"}
                            for n in range(3)])
            again = upsert([{"Last_Name": "Changed", "Email": "p1@example.com"},
                            {"Last_Name": "New", "Email": "p9@example.com"}])
            return first, again

        first, again = on_loop(store, both)
        assert [a for a, _ in first] == ["insert"] * 3
        assert again[0] == ("update", first[1][1]) and again[1][0] == "insert"
        with store.read() as tx:  # psycopg sees what asyncpg committed
            rows = tx.execute("SELECT id, data FROM records ORDER BY id")
        assert len(rows) == 4 and '"Changed"' in dict(rows)[first[1][1]]
    finally:
        store.close()


def test_writes_to_one_table_keep_their_order_and_others_go_in_one_statement(url: str) -> None:
    store = PostgresStore(url)
    sent: list[str] = []
    try:
        with store.write() as tx:
            tx.executemany(KEY_INSERT, [(1, 1, 1, 0, "a", 10), (1, 1, 1, 0, "b", 11)])

        def move_key() -> None:
            with store.write() as tx:
                tx.lock_keys(["1:1:0:a"])
                tx.conn, tx.pool = Spy(tx.conn, sent), SpyPool(tx.pool)  # type: ignore
                # "a" moves from record 10 to record 12: the DELETE must come first
                tx.executemany(KEY_DELETE, [(1, 1, 1, 0, "a")])
                tx.executemany(KEY_INSERT, [(1, 1, 1, 0, "a", 12)])
                tx.executemany(MATCH_INSERT, [(1, 1, 2, "x@example.com", 12)])

        on_loop(store, move_key)
        assert keys(url) == [("a", 12), ("b", 11)]
        assert sent == ["DELETE FROM", "WITH w0", "COMMIT"]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT value, record_id FROM match_keys").fetchall() == [
                ("x@example.com", 12)]
    finally:
        store.close()


RECORD_INSERT = ("INSERT INTO records (id, org_id, module_id, owner_id, created_by, "
                 "created_time, modified_by, modified_time, data) VALUES (?,?,?,?,?,?,?,?,?)")
RECORD_UPDATE = ("UPDATE records SET owner_id = ?, modified_by = ?, modified_time = ?, "
                 "data = ? WHERE id = ?")


def test_records_inserted_and_updated_by_one_batch_go_in_one_statement(url: str) -> None:
    """A batch inserts new records and updates stored ones (records/writer.py): never the
    same row, so both writes go with the batch's other writes in one statement; writes to
    one table that may meet (a key moved) still keep their order."""
    assert writes_apart(RECORD_INSERT, RECORD_UPDATE)
    assert writes_apart(RECORD_UPDATE, RECORD_INSERT)
    assert not writes_apart(RECORD_INSERT, RECORD_INSERT)
    assert not writes_apart(KEY_DELETE, KEY_INSERT)
    assert not writes_apart("DELETE FROM records WHERE id = ?", RECORD_INSERT)
    store = PostgresStore(url)
    sent: list[str] = []
    try:
        with store.write() as tx:
            tx.executemany(RECORD_INSERT, [(10, 1, 1, 1, 1, 5, 1, 5, '{"Last_Name": "Old"}')])

        def write() -> None:
            with store.write() as tx:
                tx.lock_keys(["1:1:0:a"])
                tx.conn, tx.pool = Spy(tx.conn, sent), SpyPool(tx.pool)  # type: ignore
                tx.executemany(RECORD_INSERT, [(11, 1, 1, 1, 1, 6, 1, 6, '{"Last_Name": "New"}')])
                tx.executemany(RECORD_UPDATE, [(2, 2, 6, '{"Last_Name": "Changed"}', 10)])
                tx.executemany(MATCH_INSERT, [(1, 1, 2, "new@example.com", 11)])

        on_loop(store, write)
        assert sent == ["WITH w0", "COMMIT"]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT id, owner_id, modified_time, data FROM records "
                                "ORDER BY id").fetchall() == [
                (10, 2, 6, '{"Last_Name": "Changed"}'), (11, 1, 6, '{"Last_Name": "New"}')]
            assert conn.execute("SELECT value, record_id FROM match_keys").fetchall() == [
                ("new@example.com", 11)]
    finally:
        store.close()


def test_a_remembered_grant_is_held_with_begin_and_a_revoked_one_writes_nothing(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write from a principal the process remembers checks the token in the first round
    trip of its transaction, with BEGIN and the key locks; once the token is gone (another
    process revoked it) the write fails with GrantChanged and leaves nothing behind."""
    store = PostgresStore(url)
    sent: list[str] = []
    try:
        _, token = admin_token(store)
        assert authenticate(store, token) is not None  # now remembered
        acquire = store._acquire

        def spied() -> tuple[Any, Any]:
            pool, conn = acquire()
            return SpyPool(pool), Spy(conn, sent, whole=True)

        monkeypatch.setattr(store, "_acquire", spied)

        def write(last_name: str) -> str:
            principal = remembered(store, token)
            assert principal is not None and principal.unchecked is not None
            contacts = principal.dictionary.module("Contacts")
            try:
                [out] = write_records(store, principal, contacts,
                                      [{"Last_Name": last_name, "Email": f"{last_name}@x.com"}],
                                      "upsert")
            except GrantChanged:
                return "grant changed"
            return out.action

        assert on_loop(store, write, "kept") == "insert"
        first = sent[0].split("; ")
        assert first[0] == "BEGIN" and first[-2].startswith("SELECT crmlite_grant_holds(")
        assert "pg_advisory_xact_lock" in first[-1]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM oauth_tokens")
        assert on_loop(store, write, "lost") == "grant changed"
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT data::json->>'Last_Name' FROM records").fetchall() == [
                ("kept",)]
    finally:
        store.close()


def test_a_lost_unique_race_on_the_loop_is_a_conflict_and_rolls_back(url: str) -> None:
    store = PostgresStore(url, pool_size=1)
    try:
        with store.write() as tx:
            tx.executemany(KEY_INSERT, [(1, 1, 1, 0, "taken", 10)])

        def race() -> str:
            with pytest.raises(ConflictError), store.write() as tx:
                tx.lock_keys(["1:1:0:taken", "1:1:0:free"])
                tx.executemany(KEY_INSERT, [(1, 1, 1, 0, "free", 11), (1, 1, 1, 0, "taken", 11)])
            with store.write() as tx:  # the one pooled connection is fine again
                tx.executemany(KEY_INSERT, [(1, 1, 1, 0, "later", 12)])
            with store.read() as tx:
                return str(tx.execute("SELECT count(*) FROM unique_keys")[0][0])

        assert on_loop(store, race) == "2"
        assert keys(url) == [("later", 12), ("taken", 10)]
    finally:
        store.close()


def test_an_error_in_the_engine_writes_nothing(url: str) -> None:
    store = PostgresStore(url, pool_size=1)
    try:
        def fails() -> None:
            with store.write() as tx:
                tx.lock_keys(["1:1:0:k"])
                tx.executemany(KEY_INSERT, [(1, 1, 1, 0, "k", 10)])
                tx.execute("SELECT 1")  # the insert has gone to the server
                raise ValueError("planning failed")

        with pytest.raises(ValueError, match="planning failed"):
            on_loop(store, fails)
        assert keys(url) == []
    finally:
        store.close()


def test_a_lock_held_beyond_lock_timeout_is_a_conflict(pg_cluster: PostgresCluster) -> None:
    url = pg_cluster.create_database()
    store = PostgresStore(url + "?options=-c%20lock_timeout%3D200ms")
    try:
        with psycopg.connect(url) as holder, holder.transaction():
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id("1:1:0:held"),))

            def blocked() -> None:
                with store.write() as tx:
                    tx.lock_keys(["1:1:0:held"])

            with pytest.raises(ConflictError):
                on_loop(store, blocked)
    finally:
        store.close()
        pg_cluster.drop_database(url)


def test_no_free_connection_in_time_is_store_busy(url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "POOL_TIMEOUT", 0.2)
    store = PostgresStore(url, pool_size=1)
    outcome: list[str] = []
    try:
        def holds() -> None:
            with store.write() as tx:
                tx.execute("SELECT 1")
                await_only(asyncio.sleep(0.5))

        def waits() -> None:
            try:
                with store.read() as tx:
                    tx.execute("SELECT 1")
            except StoreBusy:
                outcome.append("busy")

        async def main() -> None:
            try:
                await asyncio.gather(greenlet_spawn(holds), greenlet_spawn(waits))
            finally:
                await store.close_on_loop()

        asyncio.run(main())
        assert outcome == ["busy"]
    finally:
        store.close()


def test_a_read_that_sends_nothing_borrows_no_connection(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "POOL_TIMEOUT", 0.2)
    store = PostgresStore(url, pool_size=1)
    try:
        def cached_read_while_writing() -> int:
            with store.write() as tx:
                tx.execute("SELECT 1")  # holds the only connection
                with store.read():
                    pass  # what a cache hit in authenticate() does
                return 1

        assert on_loop(store, cached_read_while_writing) == 1
    finally:
        store.close()


def test_closing_waits_for_a_statistics_refresh_under_way(url: str) -> None:
    """The keeper's refresh runs on a thread of its own; closing the store waits for it
    instead of closing the pool under it (which logged "could not refresh table
    statistics … the connection is closed"), and starts none after."""
    import threading
    import time

    store = PostgresStore(url)
    refreshed: list[str] = []
    started = threading.Event()
    refresh = store.statistics.refresh

    def slow_refresh() -> None:
        started.set()
        time.sleep(0.5)
        refresh()  # fails if the pool was closed meanwhile
        refreshed.append("done")

    store.statistics.refresh = slow_refresh  # type: ignore[method-assign]
    store.statistics.writes = postgres.ANALYZE_CHECK_EVERY - 1
    store.statistics.wrote()  # the write that starts a refresh
    assert started.wait(5)
    store.close()
    assert refreshed == ["done"]
    store.statistics.writes = postgres.ANALYZE_CHECK_EVERY - 1
    store.statistics.wrote()  # after close: none
    time.sleep(0.2)
    assert refreshed == ["done"]


def test_large_tables_are_analysed_again_once_they_doubled(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a hot table is small it is analysed every 20 % of growth; once all are large
    (write plans reused), every 50 % of its rows changed: an ANALYZE samples up to 30,000
    rows and makes every connection plan again, and a bulk load paid for it."""
    monkeypatch.setattr(postgres, "ANALYZE_MIN_ROWS", 0)
    monkeypatch.setattr(postgres, "GENERIC_PLANS_FROM", 1000)
    store = PostgresStore(url)

    def add_match_keys(first: int, count: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO match_keys SELECT 1, 1, 2, 'v' || n, n "
                         "FROM generate_series(%s::int, %s::int) AS n", (first, first + count - 1))

    def analysed_after(changed: int) -> int:
        """match_keys' ANALYZE count after a refresh, once its backends reported the rows."""
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 10
            while conn.execute("SELECT n_mod_since_analyze FROM pg_stat_user_tables "
                               "WHERE relname = 'match_keys'").fetchone()[0] < changed:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            store.statistics.refresh()
            return int(conn.execute("SELECT analyze_count FROM pg_stat_user_tables "
                                    "WHERE relname = 'match_keys'").fetchone()[0])

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO records SELECT n, 1, 1, 1, 1, 0, 1, 0, '{}' "
                         "FROM generate_series(1, 2000) AS n")
            conn.execute("INSERT INTO unique_keys SELECT 1, 1, 1, 0, 'v' || n, n "
                         "FROM generate_series(1, 2000) AS n")
        add_match_keys(1, 2000)
        assert analysed_after(2000) == 1 and store.statistics.large
        add_match_keys(2001, 1000)  # +50 %: beyond 20 %, not half of 3,000
        assert analysed_after(1000) == 1
        add_match_keys(3001, 1500)  # 2,500 since: more than half of 4,500
        assert analysed_after(2500) == 2
    finally:
        store.close()


def test_write_transactions_reuse_plans_once_the_hot_tables_are_large(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small tables: every statement planned afresh. Once the statistics keeper has seen
    every hot table at GENERIC_PLANS_FROM rows, write transactions let PostgreSQL reuse
    plans (after its five custom ones), and upserts still find what they should."""
    store = PostgresStore(url)
    try:
        _, token = admin_token(store)

        def mode() -> str:
            with store.write() as tx:
                tx.lock_keys(["1:1:0:k"])
                return str(tx.execute("SHOW plan_cache_mode")[0][0])

        def upserts() -> list[list[str]]:
            actions = []
            for n in range(8):  # beyond the five custom plans, then on a generic one
                principal = authenticate(store, token)
                assert principal is not None
                actions.append([o.action for o in write_records(
                    store, principal, principal.dictionary.module("Contacts"),
                    [{"Last_Name": "L", "Email": f"p{n + k}@example.com"} for k in (0, 1)],
                    "upsert")])
            return actions

        store.statistics.refresh()  # the tables are empty
        assert not store.statistics.large
        assert on_loop(store, mode) == "force_custom_plan"
        monkeypatch.setattr(postgres, "GENERIC_PLANS_FROM", 0)
        with psycopg.connect(url, autocommit=True) as conn:
            for table in postgres.HOT_TABLES:
                conn.execute(f"ANALYZE {table}")
        store.statistics.refresh()
        assert store.statistics.large
        assert on_loop(store, mode) == "auto"
        # each record's Email was the second one of the batch before
        assert on_loop(store, upserts) == [["insert", "insert"]] + [["update", "insert"]] * 7
        with store.read() as tx:
            assert tx.execute("SELECT count(*) FROM records")[0][0] == 9
    finally:
        store.close()


def test_a_plan_cache_mode_in_the_url_is_left_alone(pg_cluster: PostgresCluster,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "GENERIC_PLANS_FROM", 0)
    url = pg_cluster.create_database()
    store = PostgresStore(url + "?options=-c%20plan_cache_mode%3Dforce_generic_plan")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")  # never analysed tables (reltuples -1) are not large
        store.statistics.refresh()
        assert store.statistics.large

        def mode() -> str:
            with store.write() as tx:
                tx.lock_keys(["1:1:0:k"])
                return str(tx.execute("SHOW plan_cache_mode")[0][0])

        assert on_loop(store, mode) == "force_generic_plan"
    finally:
        store.close()
        pg_cluster.drop_database(url)


def test_write_concurrency_follows_where_the_database_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRMLITE_PG_WRITERS", raising=False)
    monkeypatch.setattr(postgres.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    # on this machine: its cores shared among the server's processes, one more for a
    # process alone
    assert write_concurrency("postgresql://u@127.0.0.1:5432/crm") == 5
    assert write_concurrency("postgresql://u@localhost/crm", processes=2) == 2
    assert write_concurrency("postgresql:///crm?host=/var/run/postgresql", processes=8) == 1
    assert write_concurrency("postgresql:///crm", processes=3) == 1
    # elsewhere: as many as the pool has connections
    assert write_concurrency("postgresql://u@db.example.com/crm") is None
    monkeypatch.setenv("CRMLITE_PG_WRITERS", "3")
    assert write_concurrency("postgresql://u@db.example.com/crm") == 3


def test_polling_while_writing_needs_a_core_to_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRMLITE_PG_POLL", raising=False)
    monkeypatch.setattr(postgres.os, "sched_getaffinity", lambda pid: {0, 1})
    # a PostgreSQL on this machine, more cores than server processes
    assert polls_while_writing("postgresql://u@127.0.0.1:5432/crm")
    assert polls_while_writing("postgresql:///crm?host=/var/run/postgresql", processes=1)
    # no core to spare, or the database elsewhere
    assert not polls_while_writing("postgresql://u@localhost/crm", processes=2)
    assert not polls_while_writing("postgresql://u@db.example.com/crm")
    monkeypatch.setenv("CRMLITE_PG_POLL", "1")
    assert polls_while_writing("postgresql://u@db.example.com/crm", processes=8)
    monkeypatch.setenv("CRMLITE_PG_POLL", "0")
    assert not polls_while_writing("postgresql://u@127.0.0.1/crm")


@pytest.mark.parametrize("polling", [True, False])
def test_the_loop_polls_while_a_write_is_in_flight_and_stops_after(
        url: str, monkeypatch: pytest.MonkeyPatch, polling: bool) -> None:
    """Where the store polls, a task keeps the loop turning while a write transaction waits
    on PostgreSQL (one task for two writes at once); once the writes end it ends too, so an
    idle server does not spin. Where it does not, there is no such task."""
    monkeypatch.setenv("CRMLITE_PG_POLL", "1" if polling else "0")
    store = PostgresStore(url, pool_size=4)
    seen: list[int] = []

    def pollers() -> int:
        return sum(t.get_coro().__qualname__ == "LoopPool._poll"  # type: ignore[union-attr]
                   for t in asyncio.all_tasks())

    def write(pause: float) -> None:
        with store.write() as tx:
            tx.execute("SELECT pg_sleep(?)", (pause,))
            seen.append(pollers())

    async def main() -> int:
        try:
            await asyncio.gather(greenlet_spawn(write, 0.2), greenlet_spawn(write, 0.1))
            await asyncio.sleep(0.05)
            return pollers()
        finally:
            await store.close_on_loop()

    try:
        left = asyncio.run(main())
    finally:
        store.close()
    assert seen == ([1, 1] if polling else [0, 0])
    assert left == 0


def test_write_transactions_beyond_the_limit_wait_their_turn(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMLITE_PG_WRITERS", "1")
    store = PostgresStore(url, pool_size=4)
    events: list[str] = []
    try:
        def write(name: str) -> None:
            with store.write() as tx:
                events.append(f"{name} begins")
                tx.execute("SELECT pg_sleep(0.1)")
                events.append(f"{name} ends")

        async def main() -> None:
            try:
                await asyncio.gather(greenlet_spawn(write, "first"),
                                     greenlet_spawn(write, "second"))
            finally:
                await store.close_on_loop()

        asyncio.run(main())
        assert events == ["first begins", "first ends", "second begins", "second ends"]
    finally:
        store.close()


@pytest.mark.parametrize("driver", ["loop", "psycopg"])
def test_lock_and_match_reads_what_the_lock_holder_committed(url: str, driver: str) -> None:
    """An upsert's Email locks, lookup and new ids go in one call (v7's function): the
    lookup runs once the locks are held, so it sees the row a writer that held one of them
    committed meanwhile (with the calling statement's snapshot it would not, and an upsert
    would insert that Email a second time)."""
    store = PostgresStore(url)
    try:
        with store.write() as tx:
            tx.executemany(MATCH_INSERT, [(1, 1, 2, "old@example.com", 10)])
        holding = threading.Event()

        def holder() -> None:
            with psycopg.connect(url) as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id("1:2:new@example.com"),))
                conn.execute("INSERT INTO match_keys VALUES (1, 1, 2, 'new@example.com', 11)")
                holding.set()
                time.sleep(0.3)  # then commits, while the store waits for the lock

        def look_up() -> tuple[list[Any], list[int]]:
            with store.write() as tx:
                return tx.lock_and_match(
                    ["1:2:new@example.com", "1:2:old@example.com", "1:2:none@example.com"],
                    1, 1, 2, ["new@example.com", "none@example.com", "old@example.com"], 3)

        thread = threading.Thread(target=holder)
        thread.start()
        assert holding.wait(10)
        started = time.monotonic()
        found, new_ids = on_loop(store, look_up) if driver == "loop" else look_up()
        thread.join()
        assert time.monotonic() - started >= 0.2  # it waited for the lock
        assert sorted(found) == [("new@example.com", 11), ("old@example.com", 10)]
        # ids for the records that may be new: 3 asked, less the 2 rows found
        assert len(new_ids) == 1 and new_ids[0] > ID_BASE
        with store.write() as tx:
            assert tx.lock_and_match([], 1, 1, 2, ["none@example.com"], 0) == ([], [])
            assert tx.next_ids(1)[0] > new_ids[0]
    finally:
        store.close()


def test_lock_ids() -> None:
    key = lock_id("7:123:0:ext-1")
    assert key == lock_id("7:123:0:ext-1") and -(2**63) <= key < 2**63
    assert lock_id("7:123:0:ext-2") != key
    assert lock_ids(["7:123:0:b", "7:123:0:a", "7:123:0:b"]) == sorted(
        {lock_id("7:123:0:a"), lock_id("7:123:0:b")})
    # names of one shape, as a sync job's keys are, each get an id of their own
    names = [f"{org}:{field}:0:{value}{n}" for org, field, value in
             [(1, 2, "ext-"), (1, 5, "user@example.com"), (3, 123456789012345678, "")]
             for n in range(20_000)]
    assert len(set(lock_ids(names))) == len(names)
    assert lock_id("ä:1") != lock_id("a:1")
    # Every process of a deployment computes the same ids (schema v10 keeps older ones
    # out): a new way of computing them needs a new schema version too.
    assert lock_id("") == -(2**63) + 1 and lock_id("7:123:0:ext-1") == 6765652821139653467


def test_set_based_statements_numbered_for_asyncpg() -> None:
    columns = {"unique_keys": {"org_id": "bigint", "module_id": "bigint", "field_id": "bigint",
                               "scope": "bigint", "value": "text", "record_id": "bigint"},
               "match_keys": {"org_id": "bigint", "module_id": "bigint", "field_id": "bigint",
                              "value": "text", "record_id": "bigint"}}
    assert set_based(KEY_DELETE, columns, numbered=True, first=3) == (
        "DELETE FROM unique_keys AS t USING unnest($3::bigint[], $4::bigint[], $5::bigint[], "
        "$6::bigint[], $7::text[]) AS v(c0, c1, c2, c3, c4) WHERE t.org_id = v.c0 AND "
        "t.module_id = v.c1 AND t.field_id = v.c2 AND t.scope = v.c3 AND t.value = v.c4")
    combined = Catalog(columns).combined(((KEY_INSERT, ()), (MATCH_INSERT, ())))
    assert combined.startswith("WITH w0 AS (INSERT INTO unique_keys ")
    assert "$6::bigint[])) INSERT INTO match_keys" in combined
    assert combined.endswith("unnest($7::bigint[], $8::bigint[], $9::bigint[], $10::text[], "
                             "$11::bigint[])")
    # columns the same in every row go as one value each
    one = (True, True, True, True, False, False)
    assert set_based(KEY_INSERT, columns, numbered=True, scalars=one) == (
        "INSERT INTO unique_keys (org_id, module_id, field_id, scope, value, record_id) "
        "SELECT $1::bigint, $2::bigint, $3::bigint, $4::bigint, v.c4, v.c5 "
        "FROM unnest($5::text[], $6::bigint[]) AS v(c4, c5)")
    assert set_based(KEY_DELETE, columns, numbered=True, scalars=(True,) * 4 + (False,)) == (
        "DELETE FROM unique_keys AS t USING unnest($5::text[]) AS v(c4) WHERE "
        "t.org_id = $1::bigint AND t.module_id = $2::bigint AND t.field_id = $3::bigint AND "
        "t.scope = $4::bigint AND t.value = v.c4")


def test_rows_alike_but_for_one_column_are_all_written(url: str) -> None:
    store = PostgresStore(url)
    try:
        def write() -> None:
            with store.write() as tx:  # every column but value the same: one array
                tx.executemany(MATCH_INSERT, [(1, 1, 2, f"m{n}@example.com", 7)
                                              for n in range(5)])
                tx.executemany(KEY_INSERT, [(1, 1, 1, 0, "same", 8)])  # one row: all alike
            with store.write() as tx:
                tx.executemany("UPDATE match_keys SET record_id = ? WHERE org_id = ? AND "
                               "module_id = ? AND field_id = ? AND value = ? AND record_id = ?",
                               [(9, 1, 1, 2, f"m{n}@example.com", 7) for n in range(3)])

        on_loop(store, write)
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT value, record_id FROM match_keys ORDER BY value")
            assert rows.fetchall() == [(f"m{n}@example.com", 9 if n < 3 else 7)
                                       for n in range(5)]
        assert keys(url) == [("same", 8)]
    finally:
        store.close()


def test_array_parameters_told_by_their_type(url: str) -> None:
    """store/arrays.py: once the loop's pool is open, asyncpg tells an array parameter by
    its type: lists of every element type the engine sends still go as arrays, a list
    inside one as a dimension; other iterables are refused, a string is never an array."""
    from asyncpg.protocol import protocol

    store = PostgresStore(url)
    try:
        def send() -> list[tuple[Any, ...]]:
            with store.read() as tx:
                return tx.execute(
                    "SELECT ?::text[], ?::bigint[], ?::boolean[], ?::bigint[][], "
                    "cardinality(?::text[])",
                    (["a@example.com", None, 'q"uo\\te', ""], [ID_BASE, -1], [True, False],
                     [[1, 2], [3, 4]], ["one string"]))

        assert on_loop(store, send) == [(["a@example.com", None, 'q"uo\\te', ""],
                                         [ID_BASE, -1], [True, False], [[1, 2], [3, 4]], 1)]
        assert protocol.IterableABC is list

        def refused(value: object) -> None:
            with store.read() as tx:
                tx.execute("SELECT ?::bigint[]", (value,))

        for value in ({1, 2}, (1, 2), range(3), "12"):
            with pytest.raises(asyncpg.DataError, match="sized iterable container expected"):
                on_loop(store, refused, value)
    finally:
        store.close()
