"""PostgreSQL backend: many server processes, one database.

Each process holds a connection pool; the engine's calls run in worker threads, each
borrowing a connection for one read or one write transaction (READ COMMITTED, so every
statement sees what committed before it, in particular what a writer that held a lock
this transaction now holds committed).

Writers are serialised per key with transaction-scoped advisory locks, taken in sorted
order in one statement, so overlapping batches never deadlock on them; the UNIQUE
constraint on ``unique_keys`` stays the last word. Deadlocks, serialisation failures,
lost UNIQUE races and lock waits longer than ``lock_timeout`` (10 s unless the URL's
``options`` set one) surface as :class:`ConflictError` after the rollback, so the
engine can plan the batch again; a request that cannot get a connection within the
pool's timeout gets :class:`StoreBusy`. Both are Zoho's 429, never a 500.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from crmlite.store import migrations
from crmlite.store.base import ConflictError, Row, StoreBusy
from crmlite.store.migrations import ID_BASE

_RETRYABLE = (
    pg_errors.UniqueViolation,
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
    pg_errors.LockNotAvailable,
)

DEFAULT_POOL_SIZE = 8
DEFAULT_LOCK_TIMEOUT = "10s"
POOL_TIMEOUT = 30.0
# pg_advisory_xact_lock(int, int) lives apart from the one-bigint locks on keys.
MIGRATION_LOCK = (0x63726D6C, 1)  # "crml", 1

_SQL_CACHE: dict[str, str] = {}


def _pg(sql: str) -> str:
    """The engine's ``?`` placeholders in psycopg's spelling (a literal ``%`` doubled)."""
    translated = _SQL_CACHE.get(sql)
    if translated is None:
        translated = _SQL_CACHE[sql] = sql.replace("%", "%%").replace("?", "%s")
    return translated


def key_lock_id(key: str) -> int:
    """The advisory lock (a signed 64-bit number) that stands for a key's name."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


class PostgresTx:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        # Never prepared: a generic plan made while a table was small (or freshly ANALYZEd
        # while empty) would scan it sequentially forever (perf-anchors.md, pitfall 1).
        cur = self.conn.execute(_pg(sql), params, prepare=False)
        return cur.fetchall() if cur.description else []

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(_pg(sql), rows)  # pipelined: one round trip for the batch

    def lock_keys(self, keys: Iterable[str]) -> None:
        ids = sorted({key_lock_id(k) for k in keys})
        if ids:
            # One statement, locks taken in ascending order: two batches that share keys
            # queue on the first shared one instead of deadlocking.
            self.conn.execute(
                "SELECT pg_advisory_xact_lock(k) FROM unnest(%b::bigint[]) AS k ORDER BY k",
                (ids,), prepare=False,
            )

    def next_ids(self, count: int) -> list[int]:
        if count <= 0:
            return []
        rows = self.conn.execute(
            "SELECT nextval('record_ids') FROM generate_series(1, %s)", (count,)
        ).fetchall()
        return sorted(r[0] for r in rows)


def _session_settings(url: str) -> list[str]:
    """``SET`` statements for every pooled session; what the URL's options set wins."""
    options = conninfo_to_dict(url).get("options") or ""
    settings = ["SET synchronous_commit = off"]  # as SQLite's WAL + synchronous=NORMAL
    if "lock_timeout" not in str(options):
        settings.append(f"SET lock_timeout = '{DEFAULT_LOCK_TIMEOUT}'")
    return settings


class PostgresStore:
    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int | None = None) -> None:
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
                conn.execute(sql)
            conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'",
                         (str(migrations.latest()),))

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreBusy(f"no database connection free within {POOL_TIMEOUT:g} s") from exc

    @contextmanager
    def write(self) -> Iterator[PostgresTx]:
        with self._connection() as conn:
            try:
                with conn.transaction():
                    yield PostgresTx(conn)
            except _RETRYABLE as exc:
                raise ConflictError(str(exc)) from exc
            except psycopg.OperationalError as exc:
                if conn.broken:  # the server closed the connection: retry on a fresh one
                    raise ConflictError(str(exc)) from exc
                raise

    @contextmanager
    def read(self) -> Iterator[PostgresTx]:
        with self._connection() as conn:
            try:
                yield PostgresTx(conn)
            except _RETRYABLE as exc:  # a lock wait beyond lock_timeout (a DDL, a LOCK)
                raise StoreBusy(str(exc)) from exc

    def close(self) -> None:
        self.pool.close()
