"""SQLite backend: the embedded default.

One connection per process, used from one thread (the server's event loop or the
CLI). Every write batch is one ``BEGIN IMMEDIATE`` transaction, so writers from
several processes are serialised by SQLite's write lock (deferred transactions
would fail with "database is locked" when a read lock cannot be upgraded).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crmlite.store.base import ConflictError, Row, SchemaVersionError
from crmlite.store.migrations import ID_BASE, SCHEMA_VERSION, statements


class SQLiteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def lock_keys(self, keys: Iterable[str]) -> None:
        # BEGIN IMMEDIATE already holds the database's single write lock.
        return None

    def next_ids(self, count: int) -> list[int]:
        if count <= 0:
            return []
        (last,) = self.conn.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'id' RETURNING value", (count,)
        ).fetchone()
        return list(range(last - count + 1, last + 1))


class SQLiteStore:
    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
        self.path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ":memory:"
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        self._tx = SQLiteTx(self.conn)
        self._migrate()

    def _migrate(self) -> None:
        with self.write() as tx:
            tables = {r[0] for r in tx.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = 0
            if "meta" in tables:
                version = int(
                    tx.execute("SELECT value FROM meta WHERE key = 'schema_version'")[0][0]
                )
            else:
                tx.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                tx.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
                tx.execute("INSERT INTO counters VALUES ('id', ?)", (ID_BASE,))
                tx.execute("INSERT INTO meta VALUES ('schema_version', '0')")
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self.path} has schema version {version}; this crmlite knows up to "
                    f"{SCHEMA_VERSION}. Upgrade crmlite to open it."
                )
            for sql in statements(version, self.dialect):
                tx.execute(sql)
            tx.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )

    @contextmanager
    def write(self) -> Iterator[SQLiteTx]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._tx
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            raise ConflictError(str(exc)) from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[SQLiteTx]:
        yield self._tx

    def close(self) -> None:
        self.conn.close()
