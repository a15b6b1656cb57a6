"""The SQLite store: its WAL is copied back into the database file by its own thread; its
write transactions."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

import crmlite.store.sqlite as sqlite_store
from crmlite.store.sqlite import SQLiteStore


def test_committed_pages_reach_the_database_file_while_the_store_is_open(
        tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    store = SQLiteStore(f"sqlite:///{path}")
    try:
        # the writer itself checkpoints only once the WAL is large
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (
            sqlite_store.WAL_RESTART_FRAMES,)
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


def test_the_wal_is_started_over_under_steady_writes(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes that never pause leave the WAL a bounded size, not one that grows with
    everything ever written (a passive checkpoint beside them never catches up)."""
    monkeypatch.setattr(sqlite_store, "WAL_RESTART_FRAMES", 256)  # 1 MiB of 4 KiB pages
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 0.02)
    path = tmp_path / "crm.db"
    wal = tmp_path / "crm.db-wal"
    store = SQLiteStore(f"sqlite:///{path}")
    try:
        largest = 0
        for n in range(400):  # about 40 MB through the WAL
            with store.write() as tx:
                tx.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                               [(f"k{n}-{i}", "x" * 1000) for i in range(100)])
            largest = max(largest, wal.stat().st_size)
        assert largest < 12_000_000, largest
        assert store.conn.execute("SELECT count(*) FROM meta WHERE key LIKE 'k%'").fetchone() == (
            40_000,)
    finally:
        store.close()


def test_lock_and_match_reads_the_matches_and_hands_out_no_ids(tmp_path: Path) -> None:
    # SQLite's single writer holds no key locks, and its ids are handed out as asked
    store = SQLiteStore(f"sqlite:///{tmp_path / 'crm.db'}")
    try:
        with store.write() as tx:
            tx.executemany("INSERT INTO match_keys (org_id, module_id, field_id, value, "
                           "record_id) VALUES (?,?,?,?,?)",
                           [(1, 1, 2, "a@example.com", 10), (1, 1, 2, "a@example.com", 12),
                            (1, 1, 3, "b@example.com", 11), (1, 2, 2, "b@example.com", 13)])
            found, new_ids = tx.lock_and_match(
                ["1:2:a@example.com", "1:2:b@example.com"], 1, 1, 2,
                ["a@example.com", "b@example.com", "c@example.com"], 3)
        assert (sorted(found), new_ids) == ([("a@example.com", 10), ("a@example.com", 12)], [])
    finally:
        store.close()
