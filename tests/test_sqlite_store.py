"""The SQLite store's WAL is copied back into the database file by its own thread."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from crmlite.store.sqlite import SQLiteStore


def test_committed_pages_reach_the_database_file_while_the_store_is_open(
        tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    store = SQLiteStore(f"sqlite:///{path}")
    try:
        # the writer itself never checkpoints
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        before = path.stat().st_size
        for n in range(20):
            with store.write() as tx:
                tx.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                               [(f"k{n}-{i}", "x" * 200) for i in range(100)])
        deadline = time.monotonic() + 10
        while path.stat().st_size <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > before
        # another connection sees every row
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT count(*) FROM meta WHERE key LIKE 'k%'").fetchone() == (
                2000,)
    finally:
        store.close()
    assert store.checkpointer is None
    with sqlite3.connect(path) as reopened:
        assert reopened.execute("SELECT count(*) FROM meta WHERE key LIKE 'k%'").fetchone() == (
            2000,)
