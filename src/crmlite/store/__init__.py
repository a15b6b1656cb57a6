"""Storage: one small interface, two backends (SQLite by default, PostgreSQL)."""

from crmlite.store.base import Store, Tx, open_store

__all__ = ["Store", "Tx", "open_store"]
