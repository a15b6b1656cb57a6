"""PostgreSQL backend: many server processes, one database.

Writers are serialised per key with transaction-scoped advisory locks taken in
sorted order (so overlapping batches never deadlock on them); the UNIQUE constraint
on ``unique_keys`` stays the last word. Deadlocks, serialisation failures and lost
UNIQUE races surface as :class:`ConflictError` after the rollback, so the engine can
plan the batch again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from crmlite.store.base import ConflictError, Row, SchemaVersionError
from crmlite.store.migrations import ID_BASE, SCHEMA_VERSION, statements

_RETRYABLE = (
    pg_errors.UniqueViolation,
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
    pg_errors.LockNotAvailable,
)

_SQL_CACHE: dict[str, str] = {}


def _pg(sql: str) -> str:
    translated = _SQL_CACHE.get(sql)
    if translated is None:
        translated = _SQL_CACHE[sql] = sql.replace("?", "%s")
    return translated


def key_lock_id(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


class PostgresTx:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self.conn.execute(_pg(sql), params, prepare=False)
        return cur.fetchall() if cur.description else []

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(_pg(sql), rows)

    def lock_keys(self, keys: Iterable[str]) -> None:
        ids = sorted({key_lock_id(k) for k in keys})
        if ids:
            self.conn.execute(
                "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k", (ids,)
            )

    def next_ids(self, count: int) -> list[int]:
        if count <= 0:
            return []
        rows = self.conn.execute(
            "SELECT nextval('record_ids') FROM generate_series(1, %s)", (count,)
        ).fetchall()
        return sorted(r[0] for r in rows)


class PostgresStore:
    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.url = url
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            open=True,
        )
        self._migrate()

    @staticmethod
    def _configure(conn: psycopg.Connection) -> None:
        conn.execute("SET synchronous_commit = off")

    def _migrate(self) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(7261537)")  # one migrator at a time
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema_version', '0')")
                conn.execute(f"CREATE SEQUENCE IF NOT EXISTS record_ids START {ID_BASE + 1}")
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the database has schema version {version}; this crmlite knows up to "
                    f"{SCHEMA_VERSION}. Upgrade crmlite to open it."
                )
            for sql in statements(version, self.dialect):
                conn.execute(sql)
            conn.execute(
                "UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )

    @contextmanager
    def write(self) -> Iterator[PostgresTx]:
        with self.pool.connection() as conn:
            try:
                with conn.transaction():
                    yield PostgresTx(conn)
            except _RETRYABLE as exc:
                raise ConflictError(str(exc)) from exc

    @contextmanager
    def read(self) -> Iterator[PostgresTx]:
        with self.pool.connection() as conn:
            yield PostgresTx(conn)

    def close(self) -> None:
        self.pool.close()
