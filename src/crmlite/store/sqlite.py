"""SQLite backend: the embedded default.

One connection per process, used from one thread (the server's event loop or the
CLI). Every write batch is one ``BEGIN IMMEDIATE`` transaction, so writers from
several processes are serialised by SQLite's write lock (deferred transactions
would fail with "database is locked" when a read lock cannot be upgraded). The
journal is WAL, so readers never wait for the writer.

Several server processes on one SQLite file are correct but no faster: the file takes
one writer at a time. Their writers queue on a file lock (``<db>-writer``) that the
kernel hands to the next waiter, rather than sleeping and polling in SQLite's busy
handler, whose unfair hand-over let p99 latency grow to seconds (perf-anchors.md §4); a
waiting process's event loop is blocked all the same. One process is the default.

The writer never copies the WAL back into the database file itself (that costs page
writes and an fsync inside the commit that triggers it, blocking the event loop): a
:class:`Checkpointer` thread with its own connection does it ten times a second, with
``PRAGMA wal_checkpoint(PASSIVE)``, which never blocks a writer or a reader. The
writer checkpoints only once the WAL has grown to 32 MiB, to let it start over, and by
then nearly every frame has been copied already.

The URL is ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``;
``?busy_timeout=MS`` sets how long a writer waits for the write lock (default 10 s)
before its batch is retried (and, after the engine's last attempt, refused with 429).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from crmlite.store import migrations
from crmlite.store.base import (
    GRANT_HOLDS,
    ConflictError,
    GrantChanged,
    NewRecords,
    Row,
    lock_then_match,
    placeholders,
)
from crmlite.store.migrations import ID_BASE

DEFAULT_BUSY_TIMEOUT_MS = 10_000
CHECKPOINT_INTERVAL = 0.1  # seconds between two passive checkpoints
# The writer's own checkpoint (then the WAL starts over): at 8192 frames, 32 MiB of pages.
WAL_RESTART_FRAMES = 8192

log = logging.getLogger("crmlite.store")


class SQLiteTx:
    single_writer = True  # BEGIN IMMEDIATE holds the database's one write lock

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def lock_keys(self, keys: Iterable[str]) -> None:
        # BEGIN IMMEDIATE already holds the database's single write lock.
        return None

    def lock_rows(self, select: str, of: str = "") -> str:
        return select  # the single writer reads what no one else can change

    def member_of(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list]:
        return f"{column} IN ({placeholders(len(values))})", list(values)

    def next_ids(self, count: int) -> list[int]:
        if count <= 0:
            return []
        (last,) = self.conn.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'id' RETURNING value", (count,)
        ).fetchone()
        return list(range(last - count + 1, last + 1))

    # one step at a time (no locks to take); the engine's upserts never call it here: the
    # single writer reads a batch's matches along with their records (Batch.key_rows)
    lock_and_match = lock_then_match

    def insert_new(self, batch: NewRecords) -> list[Row]:
        raise NotImplementedError("SQLite plans every batch (SQLiteStore.inserts_new)")

    def hold_grant(self, token_hash: str, meta_version: int) -> None:
        if not self.conn.execute(GRANT_HOLDS, (token_hash, meta_version)).fetchone():
            raise GrantChanged()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def parse_url(url: str) -> tuple[str, int]:
    """The file path and the busy timeout (ms) of a ``sqlite:`` URL."""
    rest, _, query = url.partition("?")
    # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
    path = rest.removeprefix("sqlite:///") if rest.startswith("sqlite:///") else ":memory:"
    options = parse_qs(query)
    try:
        busy = int(options.get("busy_timeout", [DEFAULT_BUSY_TIMEOUT_MS])[0])
    except ValueError:
        raise ValueError(f"busy_timeout in {url!r} is not a number of milliseconds") from None
    return path or ":memory:", max(busy, 0)


class Checkpointer(threading.Thread):
    """Copies committed WAL frames into the database file, off the writer's thread.

    SQLite releases the GIL while it checkpoints, so the copy and its fsync run beside the
    server's event loop instead of inside one of its commits. A passive checkpoint never
    waits for anyone; under steady writes it rarely catches the very last frames, and only
    a checkpoint that copied every frame lets the next writer start the WAL over. That one
    the writer makes itself, at the commit that takes the WAL past ``wal_autocheckpoint``
    frames, when this thread has already copied nearly all of them.
    """

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL) -> None:
        super().__init__(name="crmlite-sqlite-checkpointer", daemon=True)
        self.path = path
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self.stopping.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # e.g. busy: the next round tries again
                    log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join()


class SQLiteStore:
    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        self.path, busy_ms = parse_url(url)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_ms / 1000
        )
        self.checkpointer: Checkpointer | None = None
        self.writers: int | None = None
        try:
            if self.path != ":memory:":
                # Writers of several processes queue on a file lock (the kernel wakes the
                # next one) before BEGIN IMMEDIATE, instead of polling in SQLite's busy
                # handler, whose sleeps make waits long and unfair.
                self.writers = os.open(f"{self.path}-writer", os.O_RDWR | os.O_CREAT, 0o644)
            self.conn.execute(f"PRAGMA busy_timeout={busy_ms}")
            # Switching a new database to WAL can fail at once ("database is locked", no busy
            # handler) while another process switches it: processes starting together on an
            # empty database take turns, on the writers' lock.
            with self._writers_turn():
                self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._tx = SQLiteTx(self.conn)
            self._migrate()
        except BaseException:
            self.close()
            raise
        if self.path != ":memory:":
            self.conn.execute(f"PRAGMA wal_autocheckpoint={WAL_RESTART_FRAMES}")
            self.checkpointer = Checkpointer(self.path, CHECKPOINT_INTERVAL)
            self.checkpointer.start()

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
            steps = migrations.upgrade(version, self.dialect, f"the database {self.path}")
            if not steps:
                return
            for sql in steps:
                if isinstance(sql, str):
                    tx.execute(sql)
                else:
                    sql(tx)
            tx.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                       (str(migrations.latest()),))

    @contextmanager
    def _writers_turn(self) -> Iterator[None]:
        """This process's turn among the writers of every process (the file lock)."""
        queue = self.writers
        if queue is not None:
            fcntl.flock(queue, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if queue is not None:
                fcntl.flock(queue, fcntl.LOCK_UN)

    @contextmanager
    def write(self) -> Iterator[SQLiteTx]:
        conn = self.conn
        with self._writers_turn():
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield self._tx
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                # a lost UNIQUE race, or another process holding the write lock past
                # busy_timeout
                if isinstance(exc, sqlite3.IntegrityError) or (
                        isinstance(exc, sqlite3.OperationalError) and _is_busy(exc)):
                    raise ConflictError(str(exc)) from exc
                raise

    @contextmanager
    def read(self) -> Iterator[SQLiteTx]:
        yield self._tx

    def inserts_new(self) -> bool:
        return False  # in this process: the engine's planner costs no round trips

    def close(self) -> None:
        if self.writers is not None:
            os.close(self.writers)
            self.writers = None
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
        self.conn.close()  # the last connection to close checkpoints what is left
