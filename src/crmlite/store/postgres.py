"""PostgreSQL backend: many server processes, one database.

Two drivers, one store. On the server's event loop the engine runs through the greenlet
bridge (:mod:`crmlite.store.bridge`, ``api/context.py`` ``run()``) and talks to asyncpg:
no thread hop, asyncpg's binary protocol, statements prepared once per connection. Sync
callers outside any greenlet (the CLI, ``bootstrap``, the tests and benches that call the
engine directly, the statistics keeper) get psycopg, as before. :meth:`PostgresStore.write`
and :meth:`PostgresStore.read` pick the driver by where they are called from; both give
the engine the same :class:`~crmlite.store.base.Tx` behaviour.

Each transaction borrows a pooled connection for one read or one write transaction
(READ COMMITTED, so every statement sees what committed before it, in particular what a
writer that held a lock this transaction now holds committed).

Writers are serialised per key with transaction-scoped advisory locks: a batch locks its
external and unique keys (sorted, in one statement), then the system duplicate-check
values it looks up (records/writer.py ``Batch.prefetch``), then reads the records they
matched ``FOR UPDATE`` in id order, in one statement (with the keys themselves when a
single lookup finds them all; :meth:`LoopTx.lock_rows`: in READ COMMITTED a row read once
its lock is granted is its latest version, and one deleted meanwhile is not read). Every
batch locks in this order, so overlapping batches queue instead of deadlocking; the UNIQUE
constraint on ``unique_keys`` stays the last word. Deadlocks, serialisation failures, lost
UNIQUE races, a full lock table and lock waits longer than ``lock_timeout`` (10 s unless
the URL's ``options`` set one) surface as :class:`ConflictError` after the rollback, so
the engine can plan the batch again; a request that cannot get a connection within the
pool's timeout gets :class:`StoreBusy`. Both are Zoho's 429, never a 500.

The engine's ``executemany`` statements run as one set-based statement each (see
:func:`set_based`), and the hot tables are analysed as they grow (:class:`StatisticsKeeper`).
asyncpg prepares every statement; its sessions run with ``plan_cache_mode =
force_custom_plan``, so a statement is parsed once but planned with the statistics of the
moment (perf-anchors.md, pitfall 1). That planning is much of what PostgreSQL spends on a
batch beyond the work itself (measured: 0.57 ms to plan the External_Id lookup of 100
values, 0.25 ms the records read). So once every hot table has statistics of at least
:data:`GENERIC_PLANS_FROM` rows (:class:`StatisticsKeeper` looks), write transactions
switch to ``plan_cache_mode = auto`` (``SET LOCAL``, sent with their ``BEGIN``): their
statements are key and id lookups whose plan no longer depends on the values, so
PostgreSQL plans each once per connection (and again after every ``ANALYZE``). Before
that, a generic plan made on a small table scans it whole, and every lookup costs more as
the table grows until the next ``ANALYZE`` (measured on a fresh database: the key lookups
went from 10 to 80 µs per record over the first 10,000 inserts). A ``plan_cache_mode`` in
the URL's options wins over both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from zlib import adler32, crc32

import asyncpg
import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from crmlite.store import migrations
from crmlite.store.arrays import check_arrays_by_type
from crmlite.store.base import ConflictError, GrantChanged, NewRecords, Row, StoreBusy
from crmlite.store.bridge import await_only, bridged
from crmlite.store.migrations import ID_BASE

_RETRYABLE = (
    pg_errors.UniqueViolation,
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
    pg_errors.LockNotAvailable,
    # "out of shared memory": the server's lock table is full (every advisory lock of every
    # open batch takes an entry; max_locks_per_transaction sizes it). Once other batches
    # commit there is room again.
    pg_errors.OutOfMemory,
)
# The same failures as asyncpg raises them.
_RETRYABLE_ON_LOOP = (
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
    asyncpg.OutOfMemoryError,
    # a prepared statement outdated by a schema change (another process migrated): asyncpg
    # has dropped its statement cache, so the next attempt prepares afresh
    asyncpg.InvalidCachedStatementError,
)
# A connection that could not be opened (the server is down, restarting, or has no slot
# left): the request is answered "busy", as when the pool has no connection free.
_UNREACHABLE = (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)

# Per server process. One process is one core of Python: four connections keep it busy
# while PostgreSQL works on their statements; more only add backends contending for the
# same cores (bench/RESULTS.md: 2 workers × 4 connections wrote 20-40 % more records per
# second than 2 × 8 on two cores, one worker the same).
DEFAULT_POOL_SIZE = 4
DEFAULT_LOCK_TIMEOUT = "10s"
POOL_TIMEOUT = 30.0
POOL_CLOSE_TIMEOUT = 10.0
# pg_advisory_xact_lock(int, int) lives apart from the one-bigint locks on keys.
MIGRATION_LOCK = (0x63726D6C, 1)  # "crml", 1

# The planner's statistics on the tables every write reads (see StatisticsKeeper).
HOT_TABLES = ["records", "unique_keys", "match_keys"]
ANALYZE_CHECK_EVERY = 50  # write transactions of this process between two checks
ANALYZE_MIN_ROWS = 500
ANALYZE_GROWTH = 0.2  # while a hot table is small
ANALYZE_GROWTH_LARGE = 0.5  # once every hot table is large (GENERIC_PLANS_FROM)
ANALYZE_LOCK = (0x63726D6C, 2)
# Write transactions let PostgreSQL reuse their plans once every hot table's statistics
# count this many rows (see the module's docstring).
GENERIC_PLANS_FROM = 10_000

log = logging.getLogger("crmlite.store")
_SQL_CACHE: dict[str, str] = {}


def _pg(sql: str) -> str:
    """The engine's ``?`` placeholders in psycopg's spelling (a literal ``%`` doubled)."""
    translated = _SQL_CACHE.get(sql)
    if translated is None:
        translated = _SQL_CACHE[sql] = sql.replace("%", "%%").replace("?", "%s")
    return translated


_NUMBERED_CACHE: dict[str, str] = {}
_NUMBERED_CACHE_SIZE = 2048  # search statements vary with the query; keep the cache bounded


def _numbered(sql: str) -> str:
    """The engine's ``?`` placeholders in asyncpg's spelling, ``$1``, ``$2``, …"""
    translated = _NUMBERED_CACHE.get(sql)
    if translated is None:
        head, *rest = sql.split("?")
        translated = head + "".join(f"${n}{part}" for n, part in enumerate(rest, 1))
        if len(_NUMBERED_CACHE) >= _NUMBERED_CACHE_SIZE:
            _NUMBERED_CACHE.clear()
        _NUMBERED_CACHE[sql] = translated
    return translated


def lock_id(key: str) -> int:
    """The advisory lock (a signed 64-bit number) that stands for a key's name
    (``{org}:{field}:{scope}:{value}``, records/external.py): the CRC-32 of its UTF-8
    bytes, then their Adler-32 (two checksums of unlike kinds: two names share an id only
    when both agree).

    An id only has to spread the names: two names that share one make their batches wait
    for each other, no more (uniqueness is the UNIQUE constraint's, and a shared lock only
    serialises more). Every process of a deployment must compute the same ids: an older
    crmlite used BLAKE2b, and schema version 10 (migrations.py) keeps it out. Against a
    BLAKE2b digest the two checksums saved 4 % of the worker's instructions on the mix
    (``python -m bench.instructions``: 114.6k, then 109.9k per record); a million names of
    one shape (``1:2:0:ext-{n}``, ``1:5:user{n}@example.com``) got a million ids.
    """
    data = key.encode()
    return (crc32(data) << 32 | adler32(data)) - _SIGNED


_SIGNED = 1 << 63  # from the two checksums' unsigned 64 bits to PostgreSQL's bigint


def lock_ids(names: Iterable[str]) -> list[int]:
    """The sorted, distinct advisory locks of the key names: the order every writer locks
    in."""
    return sorted({lock_id(name) for name in names})


def lock_statement(ids: str) -> str:
    """One statement that takes the advisory locks ``ids`` (a bigint[] parameter or literal)
    in ascending order: two batches that share keys queue on the first shared one instead
    of deadlocking."""
    return f"SELECT pg_advisory_xact_lock(k) FROM unnest({ids}::bigint[]) AS k ORDER BY k"


# Tx.lock_and_match in one call (migrations.py v7); its new ids come as rows without a value.
LOCK_AND_MATCH = ("SELECT value, record_id FROM crmlite_lock_and_match("
                  "?::bigint[], ?::bigint, ?::bigint, ?::bigint, ?::text[], ?::int)")


def found_and_new(rows: Iterable[Sequence[Any]]) -> tuple[list[Row], list[int]]:
    """:data:`LOCK_AND_MATCH`'s rows as :meth:`Tx.lock_and_match` answers them."""
    found, new = [], []
    for value, rid in rows:
        if value is None:
            new.append(rid)
        else:
            found.append((value, rid))
    new.sort()
    return found, new


# Tx.insert_new in one call (migrations.py v8).
INSERT_NEW = ("SELECT n, rid FROM crmlite_insert_new(?::text, ?::bigint, ?::bigint, ?::bigint, "
              "?::bigint, ?::bigint, ?::bigint, ?::bigint[], ?::text[], ?::bigint, ?::bigint[], "
              "?::text[], ?::boolean[], ?::text[])")


def insert_new_args(batch: NewRecords) -> tuple[Any, ...]:
    """:data:`INSERT_NEW`'s parameters for ``batch``: its lock names as advisory locks."""
    token_hash, meta_version = batch.grant or (None, None)
    return (token_hash, meta_version, batch.org_id, batch.module_id, batch.user_id, batch.now,
            batch.ext_field, lock_ids(batch.ext_locks), batch.exts,
            batch.match_field, lock_ids(batch.match_locks), batch.matches, batch.complete,
            batch.docs)


def grant_statement(token_hash: str, meta_version: int) -> str:
    """The check of :meth:`Tx.hold_grant` as a statement of its own, its values inlined so
    that it can travel in a simple query with ``BEGIN`` (a SHA-256 hex digest and an
    integer: nothing to quote)."""
    if len(token_hash) != 64 or not all(c in "0123456789abcdef" for c in token_hash):
        raise ValueError("not a token hash")
    return f"SELECT crmlite_grant_holds('{token_hash}', {int(meta_version)})"


def for_update(select: str, of: str = "") -> str:
    """``select`` locking the rows it reads (of the table aliased ``of`` in a join), in the
    order of its ``ORDER BY``: :meth:`Tx.lock_rows` for both drivers."""
    return f"{select} FOR UPDATE OF {of}" if of else f"{select} FOR UPDATE"


Columns = dict[str, dict[str, str]]  # table -> column -> SQL type

_INSERT = re.compile(r"\s*INSERT\s+INTO\s+(\w+)\s*\(([^)]*)\)\s*VALUES\s*\(([?,\s]*)\)\s*",
                     re.I | re.S)
_UPDATE = re.compile(r"\s*UPDATE\s+(\w+)\s+SET\s+(.+?)\s+WHERE\s+(.+?)\s*", re.I | re.S)
_DELETE = re.compile(r"\s*DELETE\s+FROM\s+(\w+)\s+WHERE\s+(.+?)\s*", re.I | re.S)
_ASSIGN = re.compile(r"\s*(\w+)\s*=\s*\?\s*")
_AND = re.compile(r"\s+AND\s+", re.I)


def _assignments(text: str, separator: re.Pattern[str] | str) -> list[str] | None:
    parts = separator.split(text) if isinstance(separator, re.Pattern) else text.split(separator)
    names = []
    for part in parts:
        found = _ASSIGN.fullmatch(part)
        if found is None:
            return None
        names.append(found[1])
    return names


def set_based(sql: str, columns: Columns, numbered: bool = False, first: int = 1,
              scalars: Sequence[bool] = ()) -> str | None:
    """One statement over ``unnest`` arrays that does what ``executemany(sql)`` does, or
    None when ``sql`` is not one of the shapes it knows.

    ``INSERT INTO t (a, b) VALUES (?, ?)``, ``UPDATE t SET a = ? WHERE b = ? AND c = ?`` and
    ``DELETE FROM t WHERE a = ? AND b = ?`` become ``INSERT … SELECT * FROM unnest(…)``,
    ``UPDATE … FROM unnest(…)`` and ``DELETE … USING unnest(…)``: one round trip and one
    plan for the whole batch instead of one statement per row (perf-anchors.md §2). Each
    array is passed in binary (pitfall 2) and cast to its column's type. The rows of an
    UPDATE must not name one target row twice (the engine's never do). ``numbered``: the
    arrays as ``$first``, ``$first+1``, … (asyncpg) instead of psycopg's ``%b``.
    ``scalars``: per column, whether it is passed as one value for every row (a column
    the same in every row, such as org_id: one value to encode instead of a hundred).
    """
    set_names: list[str] | None
    where_names: list[str] | None
    if found := _INSERT.fullmatch(sql):
        table, names = found[1], [c.strip() for c in found[2].split(",")]
        if found[3].count("?") != len(names):
            return None
        set_names, where_names = names, []
    elif found := _UPDATE.fullmatch(sql):
        table = found[1]
        set_names = _assignments(found[2], ",")
        where_names = _assignments(found[3], _AND)
    elif found := _DELETE.fullmatch(sql):
        table, set_names = found[1], []
        where_names = _assignments(found[2], _AND)
    else:
        return None
    types = columns.get(table.lower())
    if set_names is None or where_names is None or types is None:
        return None
    every = [*set_names, *where_names]
    if any(n.lower() not in types for n in every):
        return None
    if len(scalars) != len(every) or all(scalars):
        scalars = [False] * len(every)  # at least one array: it makes the rows
    values, arrays, aliases = [], [], []
    for i, n in enumerate(every):
        number = f"${first + i}" if numbered else "%b"
        if scalars[i]:
            values.append(f"{number}::{types[n.lower()]}")
        else:
            values.append(f"v.c{i}")
            arrays.append(f"{number}::{types[n.lower()]}[]")
            aliases.append(f"c{i}")
    rows = f"unnest({', '.join(arrays)}) AS v({', '.join(aliases)})"
    if sql.lstrip()[:6].upper() == "INSERT":
        select = f"* FROM unnest({', '.join(arrays)})" if not any(scalars) else (
            f"{', '.join(values)} FROM {rows}")
        return f"INSERT INTO {table} ({', '.join(every)}) SELECT {select}"
    where = " AND ".join(f"t.{n} = {values[len(set_names) + i]}"
                         for i, n in enumerate(where_names))
    if set_names:
        assign = ", ".join(f"{n} = {values[i]}" for i, n in enumerate(set_names))
        return f"UPDATE {table} AS t SET {assign} FROM {rows} WHERE {where}"
    return f"DELETE FROM {table} AS t USING {rows} WHERE {where}"


# The one pair of writes to one table that may share a statement: a batch inserts new
# records under ids handed out for them (Tx.next_ids) and updates stored ones by id
# (records/writer.py ``Batch.write``), never the same row.
_RECORDS_APART = ("INSERT INTO records ", "UPDATE records ")


def writes_apart(first: str, then: str) -> bool:
    """Whether the writes ``first`` and ``then`` (``executemany`` statements on one table)
    touch different rows whatever their values, so that one statement may do both."""
    return (first.startswith(_RECORDS_APART) and then.startswith(_RECORDS_APART)
            and first.startswith(_RECORDS_APART[0]) != then.startswith(_RECORDS_APART[0]))


class Catalog:
    """The column types of the database's tables, and the set-based statements made so far."""

    def __init__(self, columns: Columns) -> None:
        self.columns = columns
        self.statements: dict[str, str | None] = {}
        self.numbered_statements: dict[tuple[str, tuple[bool, ...]],
                                       tuple[str, str] | None] = {}
        self.combinations: dict[tuple[tuple[str, tuple[bool, ...]], ...], str] = {}

    @classmethod
    def read(cls, conn: psycopg.Connection) -> Catalog:
        columns: Columns = {}
        for table, column, sql_type in conn.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' "
            "AND a.attnum > 0 AND NOT a.attisdropped"
        ):
            columns.setdefault(table, {})[column] = sql_type
        return cls(columns)

    def set_based(self, sql: str) -> str | None:
        try:
            return self.statements[sql]
        except KeyError:
            statement = self.statements[sql] = set_based(sql, self.columns)
            return statement

    def set_based_numbered(self, sql: str,
                           scalars: tuple[bool, ...] = ()) -> tuple[str, str] | None:
        """The table ``executemany(sql)`` writes and its set-based form, numbered, with
        the ``scalars`` columns as one value each."""
        key = (sql, scalars)
        try:
            return self.numbered_statements[key]
        except KeyError:
            statement = set_based(sql, self.columns, True, 1, scalars)
            found = statement and (_INSERT.fullmatch(sql) or _UPDATE.fullmatch(sql)
                                   or _DELETE.fullmatch(sql))
            planned = self.numbered_statements[key] = (
                (found[1].lower(), statement) if found and statement else None)
            return planned

    def combined(self, writes: tuple[tuple[str, tuple[bool, ...]], ...]) -> str:
        """One statement doing the set-based forms of ``writes`` (each ``(sql, scalars)``
        on its own table, or records' insert and update, :func:`writes_apart`): all but
        the last as data-modifying CTEs, their parameters numbered one after another.

        The parts run on one snapshot in no fixed order, which is the same as running them
        one after another as long as none reads another's table (each writes one table the
        others do not touch, and the schema has no foreign keys or triggers between them)
        or the rows another writes (the records a batch updates are not the ones it
        inserts).
        """
        try:
            return self.combinations[writes]
        except KeyError:
            parts, first = [], 1
            for sql, scalars in writes:
                part = set_based(sql, self.columns, True, first, scalars)
                assert part is not None
                parts.append(part)
                first += part.count("$")
            head = ", ".join(f"w{n} AS ({part})" for n, part in enumerate(parts[:-1]))
            statement = self.combinations[writes] = f"WITH {head} {parts[-1]}"
            return statement


class PostgresTx:
    single_writer = False

    def __init__(self, conn: psycopg.Connection, catalog: Catalog | None = None) -> None:
        self.conn = conn
        self.catalog = catalog

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        # Never prepared: a generic plan made while a table was small (or freshly ANALYZEd
        # while empty) would scan it sequentially forever (perf-anchors.md, pitfall 1).
        cur = self.conn.execute(_pg(sql), params, prepare=False)
        return cur.fetchall() if cur.description else []

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        if len(rows) > 1 and self.catalog is not None:
            statement = self.catalog.set_based(sql)
            if statement is not None:
                self.conn.execute(statement, [list(c) for c in zip(*rows, strict=True)],
                                  prepare=False)
                return
        with self.conn.cursor() as cur:
            cur.executemany(_pg(sql), rows)  # pipelined: one round trip for the batch

    def lock_keys(self, keys: Iterable[str]) -> None:
        ids = lock_ids(keys)
        if ids:
            self.conn.execute(lock_statement("%b"), (ids,), prepare=False)

    def lock_rows(self, select: str, of: str = "") -> str:
        return for_update(select, of)

    def member_of(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list]:
        return f"{column} = ANY(?::{sql_type}[])", [list(values)]

    def next_ids(self, count: int) -> list[int]:
        if count <= 0:
            return []
        rows = self.conn.execute(
            "SELECT nextval('record_ids') FROM generate_series(1, %s)", (count,)
        ).fetchall()
        return sorted(r[0] for r in rows)

    def lock_and_match(self, keys: Iterable[str], org_id: int, module_id: int, field_id: int,
                       values: Sequence[str], new_ids: int) -> tuple[list[Row], list[int]]:
        return found_and_new(self.conn.execute(
            _pg(LOCK_AND_MATCH),
            (lock_ids(keys), org_id, module_id, field_id, list(values), new_ids),
            prepare=False))

    def insert_new(self, batch: NewRecords) -> list[Row]:
        return self.conn.execute(_pg(INSERT_NEW), insert_new_args(batch),
                                 prepare=False).fetchall()

    def hold_grant(self, token_hash: str, meta_version: int) -> None:
        self.conn.execute(grant_statement(token_hash, meta_version), prepare=False)


_LOCK = lock_statement("$1")


class LoopTx:
    """A transaction on an asyncpg connection, for sync code under :func:`greenlet_spawn`.

    Round trips are what a batch costs here, so the transaction saves them where the
    engine cannot tell the difference:

    - a write transaction's ``BEGIN`` waits for its first statement: when that is
      :meth:`lock_keys` (the engine's always is), ``BEGIN`` and the locks go to the server
      as one simple query, and so does :meth:`hold_grant`'s check;
    - ``executemany`` returns nothing, so its set-based statement waits until the next
      statement, ``COMMIT`` or a write to the same table (but records' update after their
      insert, :func:`writes_apart`); the writes waiting then go as one statement
      (:meth:`Catalog.combined`).

    The connection is borrowed from the pool at the first statement, so a read that the
    caller's caches answer costs nothing. Rows come back as tuples, as psycopg's do.
    """

    __slots__ = ("begin", "catalog", "checks", "conn", "pool", "store", "writes")
    single_writer = False

    def __init__(self, store: PostgresStore, begin: bool) -> None:
        self.store = store
        self.catalog = store.catalog
        self.pool: asyncpg.Pool | None = None
        self.conn: asyncpg.Connection | None = None  # borrowed at the first statement
        self.begin = begin  # a write transaction whose BEGIN is not sent yet
        self.checks = ""  # statements that go with BEGIN ("; …")
        # (sql, table, which columns go as one value, parameters)
        self.writes: list[tuple[str, str, tuple[bool, ...], list[Any]]] = []

    def _borrowed(self) -> asyncpg.Connection:
        """The transaction's connection, borrowed from the pool at its first statement."""
        if self.conn is None:
            self.pool, self.conn = self.store._acquire()
        return self.conn

    def release(self) -> None:
        pool, conn, self.pool, self.conn = self.pool, self.conn, None, None
        if pool is not None and conn is not None:
            await_only(pool.release(conn))

    def _ready(self) -> asyncpg.Connection:
        """Borrow a connection and send what waits (BEGIN, writes) before a statement."""
        conn = self._borrowed()
        if self.begin:
            self.begin = False
            await_only(conn.execute(self.opening()))
        if self.writes:
            self.flush()
        return conn

    def opening(self) -> str:
        """``BEGIN`` and what goes with it (the settings, :meth:`hold_grant`'s check)."""
        return self.store.begin() + self.checks

    def flush(self) -> None:
        conn = self._borrowed()
        writes, self.writes = self.writes, []
        if len(writes) == 1:
            sql, _, scalars, params = writes[0]
            planned = self.catalog.set_based_numbered(sql, scalars)
            assert planned is not None
            await_only(conn.execute(planned[1], *params))
            return
        statement = self.catalog.combined(tuple((w[0], w[2]) for w in writes))
        await_only(conn.execute(statement, *[p for w in writes for p in w[3]]))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        conn = self.conn
        if conn is None or self.begin or self.writes:
            conn = self._ready()
        return [tuple(r) for r in await_only(conn.fetch(_numbered(sql), *params))]

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        planned = self.catalog.set_based_numbered(sql)
        if planned is None:
            conn = self._ready()
            if len(rows) > 1:
                await_only(conn.executemany(_numbered(sql), rows))  # pipelined
            else:
                await_only(conn.execute(_numbered(sql), *rows[0]))
            return
        table = planned[0]
        if any(w[1] == table and not writes_apart(w[0], sql) for w in self.writes):
            self.flush()  # keep the order of writes to one table
        columns = [list(c) for c in zip(*rows, strict=True)]
        scalars = tuple(c.count(c[0]) == len(c) for c in columns)
        if all(scalars):
            scalars = (*scalars[:-1], False)  # one array makes the rows
        self.writes.append((sql, table, scalars,
                            [c[0] if one else c for c, one in zip(columns, scalars, strict=True)]))

    def lock_keys(self, keys: Iterable[str]) -> None:
        ids = lock_ids(keys)
        if not ids:
            return
        if self.begin and not self.writes:
            # Integers only, so inlining them is safe; a simple query may hold two statements.
            conn = self._borrowed()
            self.begin = False
            await_only(conn.execute(
                self.opening() + "; " + lock_statement(f"'{{{','.join(map(str, ids))}}}'")))
            return
        await_only(self._ready().execute(_LOCK, ids))

    def lock_rows(self, select: str, of: str = "") -> str:
        return for_update(select, of)

    def hold_grant(self, token_hash: str, meta_version: int) -> None:
        statement = grant_statement(token_hash, meta_version)
        if self.begin:  # checked with BEGIN, in the transaction's first round trip
            self.checks += "; " + statement
            return
        await_only(self._ready().execute(statement))

    def member_of(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list]:
        return f"{column} = ANY(?::{sql_type}[])", [list(values)]

    def next_ids(self, count: int) -> list[int]:
        if count <= 0:
            return []
        rows = await_only(self._ready().fetch(
            "SELECT nextval('record_ids') FROM generate_series(1, $1::int)", count))
        return sorted(r[0] for r in rows)

    def lock_and_match(self, keys: Iterable[str], org_id: int, module_id: int, field_id: int,
                       values: Sequence[str], new_ids: int) -> tuple[list[Row], list[int]]:
        return found_and_new(await_only(self._ready().fetch(
            _numbered(LOCK_AND_MATCH), lock_ids(keys), org_id, module_id, field_id, list(values),
            new_ids)))

    def insert_new(self, batch: NewRecords) -> list[Row]:
        if self.begin and not self.checks and not self.writes:
            # the transaction's only statement: it runs alone, atomic by itself, without
            # BEGIN nor COMMIT (begin stays set: commit() then sends nothing)
            conn = self._borrowed()
        else:
            conn = self._ready()
        return [tuple(r) for r in await_only(
            conn.fetch(_numbered(INSERT_NEW), *insert_new_args(batch)))]

    def commit(self) -> None:
        """Send what waits, then COMMIT. A transaction that sent nothing yet needs no
        BEGIN nor COMMIT: its writes, if any, go as one statement, atomic by itself."""
        if self.begin and not self.checks:
            if self.writes:
                self.begin = False
                self.flush()
            return
        await_only(self._ready().execute("COMMIT"))


class StatisticsKeeper:
    """ANALYZE the hot tables as soon as they have changed a lot, without waiting for
    autovacuum (which looks once a minute).

    Until a table has statistics, the planner takes ``org_id = ? AND module_id = ? AND
    field_id = ?`` for a handful of rows, so it reads the batch's ``value IN (…)`` as a
    filter over every key of the field instead of as index lookups: each batch then costs
    time in proportion to the table, and a bulk load into a fresh database slows down
    minute after minute. Once analysed (every row of the org shares its org_id, and so
    on), the estimates stay right as the table grows. So every ``ANALYZE_CHECK_EVERY``
    writes one background thread looks at ``pg_stat_user_tables`` and analyses the tables
    changed by more than ``ANALYZE_MIN_ROWS`` + ``ANALYZE_GROWTH`` of their rows since
    their last ANALYZE (one process at a time). Statements are never prepared, so a
    plan is always made with the statistics of the moment (perf-anchors.md, pitfall 1).

    Once every hot table is large (write transactions reuse their plans, see the module's
    docstring), the estimates no longer decide between an index and a scan, and a table is
    analysed again only once its changes since are half its rows (``ANALYZE_GROWTH_LARGE``:
    inserts alone, once it doubled; autovacuum still looks every minute, at a tenth of the
    rows it had when last analysed). Each ANALYZE samples up to 30,000 rows of each table
    and makes every connection plan its statements again: at 20 % a bulk load into a fresh
    database spent about a sixth of PostgreSQL's time analysing (bench/RESULTS.md).
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.writes = 0
        self.busy = threading.Lock()
        # every hot table has statistics of GENERIC_PLANS_FROM rows or more (as last seen)
        self.large = False
        self.stopped = False

    def wrote(self) -> None:
        self.writes += 1
        if self.writes % ANALYZE_CHECK_EVERY == 0 and not self.stopped and (
                self.busy.acquire(blocking=False)):
            threading.Thread(target=self.run, name="crmlite-analyze", daemon=True).start()

    def stop(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a refresh under way, and start none after: the pool
        closes next (a refresh cut short by it would only log a warning)."""
        if not self.stopped:
            self.stopped = True
            self.busy.acquire(timeout=timeout)

    def run(self) -> None:
        try:
            self.refresh()
        except Exception:  # statistics are an optimisation: never fail a request for them
            log.warning("could not refresh table statistics", exc_info=True)
        finally:
            self.busy.release()

    def refresh(self) -> None:
        """Analyse the stale hot tables, then note whether they are all large."""
        with self.pool.connection() as conn:
            self.analyze_stale(conn, ANALYZE_GROWTH_LARGE if self.large else ANALYZE_GROWTH)
            self.large = self.all_large(conn)

    @staticmethod
    def all_large(conn: psycopg.Connection) -> bool:
        """Whether every hot table's statistics count :data:`GENERIC_PLANS_FROM` rows."""
        row = conn.execute(
            "SELECT count(*) = %s AND min(reltuples) >= %s FROM pg_class "
            "WHERE relnamespace = current_schema()::regnamespace AND relname = ANY(%s)",
            (len(HOT_TABLES), GENERIC_PLANS_FROM, HOT_TABLES)).fetchone()
        return row is not None and bool(row[0])

    @staticmethod
    def analyze_stale(conn: psycopg.Connection, growth: float = ANALYZE_GROWTH) -> list[str]:
        """ANALYZE the hot tables changed by more than ``ANALYZE_MIN_ROWS`` + ``growth`` of
        their rows since their last ANALYZE; the tables analysed."""
        stale = [r[0] for r in conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
            "AND relname = ANY(%s) AND n_mod_since_analyze > %s + %s * n_live_tup "
            "ORDER BY relname", (HOT_TABLES, ANALYZE_MIN_ROWS, growth))]
        if not stale:
            return []
        locked = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", ANALYZE_LOCK).fetchone()
        if locked is None or not locked[0]:
            return []
        try:
            for table in stale:
                conn.execute(f"ANALYZE {table}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", ANALYZE_LOCK)
        return stale


def _session_settings(url: str) -> list[str]:
    """``SET`` statements for every pooled session; what the URL's options set wins."""
    return [f"SET {name} = '{value}'" for name, value in _session_defaults(url).items()]


def _session_defaults(url: str) -> dict[str, str]:
    options = str(conninfo_to_dict(url).get("options") or "")
    settings = {}
    if "synchronous_commit" not in options:  # much as SQLite's WAL + synchronous=NORMAL
        settings["synchronous_commit"] = "off"
    if "lock_timeout" not in options:
        settings["lock_timeout"] = DEFAULT_LOCK_TIMEOUT
    return settings


# libpq connection parameters that asyncpg would otherwise send as server settings
_LIBPQ_ONLY = ("connect_timeout", "application_name", "fallback_application_name")


def _loop_connect_args(url: str) -> dict[str, Any]:
    """asyncpg's connection arguments for the URL, with the store's session settings."""
    info = conninfo_to_dict(url)
    settings = _session_defaults(url)
    if "plan_cache_mode" not in str(info.get("options") or ""):  # perf-anchors.md, pitfall 1
        settings["plan_cache_mode"] = "force_custom_plan"
    for name in ("application_name", "fallback_application_name"):
        if info.get(name):
            settings["application_name"] = str(info[name])
    if info.get("options"):
        settings["options"] = str(info["options"])
    args: dict[str, Any] = {"server_settings": settings,
                            "timeout": float(info.get("connect_timeout") or 10)}
    for name in ("host", "port", "user", "password", "dbname", "sslmode", "passfile"):
        if info.get(name):
            args["database" if name == "dbname" else name] = (
                int(str(info[name])) if name == "port" and "," not in str(info[name])
                else str(info[name]))
    return args


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A pooled connection goes back as it is: every lock the store takes ends with its
    transaction, and sessions change no settings (asyncpg's default reset would cost a
    round trip per request)."""


def write_concurrency(url: str, processes: int = 1) -> int | None:
    """How many write transactions one server process runs at a time (None: as many as its
    pool has connections): ``CRMLITE_PG_WRITERS`` if set; for a PostgreSQL on this machine
    (a loopback address or a Unix socket), this machine's cores shared among the server's
    ``processes`` (one more for a process alone); for one elsewhere no limit, as round
    trips over a network take long enough for concurrent transactions to pay. A PostgreSQL
    on this machine shares its cores with the server processes, and write transactions
    beyond one per core only contend there (bench/RESULTS.md: 2 workers on 2 cores wrote
    16-23 % more records per second one transaction at a time each than four). A process
    alone is one core of Python beside PostgreSQL's: one transaction more than cores keeps
    both busy while the others wait on round trips (one process on 2 cores: three at a
    time wrote 11-12 % more inserts and updates per second than two, the mix as many)."""
    configured = os.environ.get("CRMLITE_PG_WRITERS")
    if configured:
        return max(1, int(configured))
    if not _on_this_machine(url):
        return None
    cores = _cores()
    if processes <= 1:
        return cores + 1
    return max(1, cores // processes)


def polls_while_writing(url: str, processes: int = 1) -> bool:
    """Whether a server process keeps its event loop polling instead of sleeping while its
    write transactions wait on PostgreSQL: ``CRMLITE_PG_POLL`` (``1`` or ``0``) if set;
    otherwise for a PostgreSQL on this machine when the machine has more cores than the
    server has processes. A write transaction is a few round trips, and a process that
    sleeps between them is woken late when PostgreSQL answers: on the project machine
    `perf sched` counted a lone worker runnable but waiting 0.33 ms per wake-up, a fifth of
    its time, with a core partly idle. Polling spends that spare core to answer sooner
    (one worker on two cores, back to back: updates 16-18 % more records per second, the
    mix 14 %, inserts 5 %; bench/RESULTS.md); with no core to spare it takes
    PostgreSQL's (two workers on two cores: a third fewer records for the mix), so it
    stays off there."""
    configured = os.environ.get("CRMLITE_PG_POLL")
    if configured:
        return configured != "0"
    return _on_this_machine(url) and processes < _cores()


def _on_this_machine(url: str) -> bool:
    """Whether the PostgreSQL of ``url`` runs on this machine (a loopback address or a
    Unix socket)."""
    host = str(conninfo_to_dict(url).get("host") or "")
    return not host or host.startswith("/") or host in ("localhost", "::1") or (
        host.startswith("127."))


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


class LoopPool:
    """An asyncpg pool bound to one event loop, opened by the first request on it; the gate
    that lets :func:`write_concurrency` write transactions of that loop in at a time; and,
    where :func:`polls_while_writing`, the task that keeps the loop polling while any is
    in flight."""

    def __init__(self, url: str, size: int, writers: int | None = None,
                 polling: bool = False) -> None:
        self.args = _loop_connect_args(url)
        self.size = size
        self.writers = writers
        self.polling = polling
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pool: asyncpg.Pool | None = None
        self.opening: asyncio.Task[asyncpg.Pool] | None = None
        self.gate: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        # per loop: its write transactions in flight, and the task polling while there are
        self.writing: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = (
            weakref.WeakKeyDictionary())
        self.pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
            weakref.WeakKeyDictionary())

    def write_began(self) -> asyncio.AbstractEventLoop | None:
        """A write transaction of the running loop is under way: the loop to hand to
        :meth:`write_ended` when it is over (None when the store does not poll)."""
        if not self.polling:
            return None
        loop = asyncio.get_running_loop()
        count = self.writing[loop] = self.writing.get(loop, 0) + 1
        poller = self.pollers.get(loop)
        if count == 1 and (poller is None or poller.done()):
            self.pollers[loop] = loop.create_task(self._poll(loop))
        return loop

    def write_ended(self, loop: asyncio.AbstractEventLoop | None) -> None:
        if loop is not None:
            self.writing[loop] -= 1

    async def _poll(self, loop: asyncio.AbstractEventLoop) -> None:
        """Keep ``loop`` from sleeping while its writes are in flight: a task that is always
        ready makes each turn of the loop look for I/O without waiting for it, so the loop
        sees PostgreSQL's answers as they arrive instead of once the kernel wakes it."""
        while self.writing.get(loop, 0) > 0:
            await asyncio.sleep(0)

    def write_gate(self) -> asyncio.Semaphore | None:
        if self.writers is None or self.writers >= self.size:
            return None
        loop = asyncio.get_running_loop()
        if self.gate is None or self.gate[0] is not loop:  # a loop gone: its gate too
            self.gate = (loop, asyncio.Semaphore(self.writers))
        return self.gate[1]

    def get(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        if self.pool is not None and self.loop is loop:
            return self.pool
        opening = self.opening
        if opening is None or opening.get_loop() is not loop or (
                opening.done() and (opening.cancelled() or opening.exception() is not None)):
            if self.pool is not None:  # left behind by a loop that is gone
                self.abandon()
            opening = self.opening = loop.create_task(self._open())
        pool = await_only(opening)
        self.pool, self.loop = pool, loop
        return pool

    async def _open(self) -> asyncpg.Pool:
        check_arrays_by_type()  # the engine's arrays are lists (store/arrays.py)
        return await asyncpg.create_pool(min_size=1, max_size=self.size, reset=_keep_session,
                                         max_inactive_connection_lifetime=0, **self.args)

    def abandon(self) -> None:
        pool, self.pool, self.loop, self.opening = self.pool, None, None, None
        if pool is not None:
            try:
                pool.terminate()
            except Exception:  # its loop is closed: the sockets close with the process
                log.debug("could not terminate an asyncpg pool", exc_info=True)

    async def close(self) -> None:
        """Close the pool from its own loop (the server does, before its loop ends)."""
        pool, self.pool, self.loop, self.opening = self.pool, None, None, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT)
            except TimeoutError:  # a connection still busy: cut it
                pool.terminate()


class PostgresStore:
    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int | None = None, processes: int = 1) -> None:
        self.url = url
        size = pool_size or int(os.environ.get("CRMLITE_PG_POOL_SIZE") or DEFAULT_POOL_SIZE)
        settings = _session_settings(url)

        def configure(conn: psycopg.Connection) -> None:
            for statement in settings:
                conn.execute(statement)

        # Migrate on a connection of its own first: a wrong URL fails at once, with
        # PostgreSQL's own message, instead of after the pool's timeout.
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            configure(conn)
            self._migrate(conn)
            self.catalog = Catalog.read(conn)
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(size, 1),
            kwargs={"autocommit": True},
            configure=configure,
            timeout=POOL_TIMEOUT,
            name="crmlite",
            open=True,
        )
        self.loop_pool = LoopPool(url, max(size, 1), write_concurrency(url, processes),
                                  polls_while_writing(url, processes))
        self.statistics = StatisticsKeeper(self.pool)
        # a plan_cache_mode in the URL's options is the operator's choice: left alone
        self.plans_chosen = "plan_cache_mode" in str(conninfo_to_dict(url).get("options") or "")

    def inserts_new(self) -> bool:
        """crmlite_insert_new's statements reuse their plans (migrations.py v8): only once
        the hot tables are large, when write transactions do too, and not when the URL's
        options chose how plans are made."""
        return self.statistics.large and not self.plans_chosen

    def begin(self) -> str:
        """What starts a write transaction on the loop: with generic plans allowed once the
        hot tables are large (see the module's docstring)."""
        if self.statistics.large and not self.plans_chosen:
            return "BEGIN; SET LOCAL plan_cache_mode = auto"
        return "BEGIN"

    def _migrate(self, conn: psycopg.Connection) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            steps = migrations.upgrade(version, self.dialect,
                                       f"the database {conn.info.dbname}")
            if not steps:
                return
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema_version', '0')")
                conn.execute(f"CREATE SEQUENCE IF NOT EXISTS record_ids START {ID_BASE + 1}")
            for sql in steps:
                if isinstance(sql, str):
                    conn.execute(sql)
                else:
                    sql(PostgresTx(conn))
            conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'",
                         (str(migrations.latest()),))

    # -- sync callers: psycopg ----------------------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreBusy(f"no database connection free within {POOL_TIMEOUT:g} s") from exc

    @contextmanager
    def write(self) -> Iterator[PostgresTx | LoopTx]:
        if bridged():
            with self._write_on_loop() as loop_tx:
                yield loop_tx
            return
        with self._connection() as conn:
            try:
                with conn.transaction():
                    yield PostgresTx(conn, self.catalog)
            except _RETRYABLE as exc:
                raise ConflictError(str(exc)) from exc
            except pg_errors.InvalidAuthorizationSpecification as exc:  # hold_grant
                raise GrantChanged() from exc
            except psycopg.OperationalError as exc:
                if conn.broken:  # the server closed the connection: retry on a fresh one
                    raise ConflictError(str(exc)) from exc
                raise
        self.statistics.wrote()

    @contextmanager
    def read(self) -> Iterator[PostgresTx | LoopTx]:
        if bridged():
            with self._read_on_loop() as loop_tx:
                yield loop_tx
            return
        with self._connection() as conn:
            try:
                yield PostgresTx(conn, self.catalog)
            except _RETRYABLE as exc:  # a lock wait beyond lock_timeout (a DDL, a LOCK)
                raise StoreBusy(str(exc)) from exc

    # -- on the event loop, under greenlet_spawn: asyncpg -------------------------------------
    def _acquire(self) -> tuple[asyncpg.Pool, asyncpg.Connection]:
        try:
            pool = self.loop_pool.get()
            return pool, await_only(pool.acquire(timeout=POOL_TIMEOUT))
        except TimeoutError as exc:
            raise StoreBusy(f"no database connection free within {POOL_TIMEOUT:g} s") from exc
        except _UNREACHABLE as exc:
            raise StoreBusy(f"cannot connect to the database: {exc}") from exc

    @contextmanager
    def _write_on_loop(self) -> Iterator[LoopTx]:
        gate = self.loop_pool.write_gate()
        if gate is not None:
            await_only(gate.acquire())
        polled = self.loop_pool.write_began()
        try:
            with self._transaction_on_loop() as tx:
                yield tx
        finally:
            self.loop_pool.write_ended(polled)
            if gate is not None:
                gate.release()

    @contextmanager
    def _transaction_on_loop(self) -> Iterator[LoopTx]:
        tx = LoopTx(self, begin=True)
        try:
            try:
                yield tx
                tx.commit()
            except BaseException:
                if not tx.begin and tx.conn is not None:
                    self._roll_back(tx.conn)
                raise
        except _RETRYABLE_ON_LOOP as exc:
            raise ConflictError(str(exc)) from exc
        except asyncpg.InvalidAuthorizationSpecificationError as exc:  # hold_grant
            raise GrantChanged() from exc
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
            if tx.conn is not None and tx.conn.is_closed():  # retry on a fresh connection
                raise ConflictError(str(exc)) from exc
            raise
        finally:
            tx.release()
        self.statistics.wrote()

    @staticmethod
    def _roll_back(conn: asyncpg.Connection) -> None:
        if conn.is_closed():
            return
        try:
            await_only(conn.execute("ROLLBACK"))
        except BaseException:  # a broken connection (or a greenlet being torn down)
            conn.terminate()

    @contextmanager
    def _read_on_loop(self) -> Iterator[LoopTx]:
        tx = LoopTx(self, begin=False)
        try:
            yield tx
            if tx.writes:  # autocommit: whatever was written goes now
                tx.flush()
        except _RETRYABLE_ON_LOOP as exc:  # a lock wait beyond lock_timeout (a DDL, a LOCK)
            raise StoreBusy(str(exc)) from exc
        finally:
            tx.release()

    async def close_on_loop(self) -> None:
        """Close the event loop's connections; the server calls it before its loop ends."""
        await self.loop_pool.close()

    def close(self) -> None:
        self.loop_pool.abandon()
        self.statistics.stop(POOL_CLOSE_TIMEOUT)
        self.pool.close()
