"""The storage interface the engine writes against.

The engine speaks one SQL dialect (``?`` placeholders, ``INSERT … ON CONFLICT``,
``RETURNING``) that both SQLite and PostgreSQL understand; a backend translates
placeholders and supplies what differs: how a write transaction starts, how keys
are locked, how ids are handed out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from crmlite.errors import RequestError

DEFAULT_DATABASE_URL = "sqlite:///crmlite.db"

Row = tuple[Any, ...]


class Tx(Protocol):
    """An open transaction (or, for reads, a connection in autocommit)."""

    # A write transaction excludes every other writer (SQLite): nothing it reads can change
    # before it commits, so it needs no record locks and may read records with their keys.
    single_writer: bool

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def lock_keys(self, keys: Iterable[str]) -> None:
        """Serialise writers on these keys until the transaction ends."""

    def lock_rows(self, select: str, of: str = "") -> str:
        """``select`` (with an ``ORDER BY`` of the locked table's primary key) made to lock
        the rows it reads of one table (``of``: its alias in a join), in that order, until
        the transaction ends, and to read each as it is once its lock is granted
        (PostgreSQL: ``FOR UPDATE``)."""

    def member_of(self, column: str, values: Sequence[Any], sql_type: str) -> tuple[str, list]:
        """``column`` is one of ``values``, as SQL and its parameters: ``IN (?, …)`` on
        SQLite, one array parameter (``= ANY(…)``) on PostgreSQL, where adapting a hundred
        separate parameters costs more than the lookup itself. ``sql_type``: bigint, text."""

    def next_ids(self, count: int) -> list[int]:
        """Hand out ``count`` new 19-digit record ids."""

    def lock_and_match(self, keys: Iterable[str], org_id: int, module_id: int, field_id: int,
                       values: Sequence[str], new_ids: int) -> tuple[list[Row], list[int]]:
        """:meth:`lock_keys` ``keys``, then the ``(value, record_id)`` of the field's
        ``match_keys`` rows holding one of ``values`` (read once the locks are held), and
        up to ``new_ids`` less the rows found new record ids, sorted (PostgreSQL: one round
        trip; SQLite hands out none: the caller asks :meth:`next_ids` for what it lacks)."""

    def insert_new(self, batch: NewRecords) -> list[Row]:
        """Insert a batch of new records in one call, where :meth:`Store.inserts_new` says
        so: one ``(n, record id)`` row per record (the id None: a mandatory value missing),
        or no row at all, and nothing written, when one of the batch's keys is stored."""

    def hold_grant(self, token_hash: str, meta_version: int) -> None:
        """Go on only while this access token exists and its org's metadata is still at
        ``meta_version``; otherwise raise :class:`GrantChanged` (once the transaction has
        rolled back). PostgreSQL on the loop checks with the transaction's first round
        trip instead of one of its own."""


@dataclass(slots=True)
class NewRecords:
    """A batch of records to insert if none of their keys is stored, as the store does it
    in one call (records/new.py; on PostgreSQL crmlite_insert_new, migrations.py v8). Per
    record, in request order: its external key (``exts``), its system duplicate-check key
    (``matches``), whether it holds every mandatory value (``complete``), and its values
    as JSON, Full_Name included (``docs``). ``ext_locks`` and ``match_locks``: the lock
    names of those keys; ``grant``: the token hash and metadata version to hold
    (Tx.hold_grant), if any."""

    grant: tuple[str, int] | None
    org_id: int
    module_id: int
    user_id: int
    now: int
    ext_field: int | None
    ext_locks: list[str]
    exts: list[str | None]
    match_field: int | None
    match_locks: list[str]
    matches: list[str | None]
    complete: list[bool]
    docs: list[str]


# The match keys (as ``k``) of one field holding some values: what the engine looks up
# (records/writer.py) and Tx.lock_and_match (PostgreSQL's crmlite_lock_and_match,
# migrations.py v7, the same); ``{among}``: the values, as Tx.member_of spells them.
MATCHES_OF = "k.org_id = ? AND k.module_id = ? AND k.field_id = ? AND {among}"


def lock_then_match(tx: Tx, keys: Iterable[str], org_id: int, module_id: int, field_id: int,
                    values: Sequence[str], new_ids: int = 0) -> tuple[list[Row], list[int]]:
    """:meth:`Tx.lock_and_match` one step at a time, handing out no ids."""
    tx.lock_keys(keys)
    rows: list[Row] = []
    for part in chunks(values):
        among, args = tx.member_of("k.value", part, "text")
        rows += tx.execute("SELECT k.value, k.record_id FROM match_keys k WHERE "
                           + MATCHES_OF.format(among=among), (org_id, module_id, field_id, *args))
    return rows, []


class Store(Protocol):
    url: str
    dialect: str

    def write(self) -> AbstractContextManager[Tx]:
        """A write transaction: all or nothing, serialised against other writers."""

    def read(self) -> AbstractContextManager[Tx]:
        """A read-only view."""

    def inserts_new(self) -> bool:
        """Whether write transactions insert batches of new records in one call
        (:meth:`Tx.insert_new`)."""

    def close(self) -> None: ...


class StoreBusy(RequestError):
    """The database could not serve the request in time (every connection busy, a lock
    held too long). It is Zoho's ``TOO_MANY_REQUESTS`` (HTTP 429): a caller that does not
    handle it still answers the client with a Zoho error, never a 500."""

    def __init__(self, reason: str) -> None:
        super().__init__("TOO_MANY_REQUESTS",
                         "the database is busy with concurrent writes; try again", {})
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class ConflictError(StoreBusy):
    """A write lost a race (a UNIQUE constraint, a deadlock, a serialisation failure, a
    lock wait that timed out).

    The whole transaction has been rolled back; the caller may plan again (the engine
    does, a bounded number of times). Unhandled, it answers 429 ``TOO_MANY_REQUESTS``.
    """


class GrantChanged(Exception):
    """The access token a write relied on was revoked, or its org's fields or users changed,
    since this process checked it (:meth:`Tx.hold_grant`). Nothing was written: check the
    token again, and validate against the org's current dictionary."""


# What Tx.hold_grant asks (PostgreSQL's crmlite_grant_holds, migrations.py v5, the same).
GRANT_HOLDS = ("SELECT 1 FROM oauth_tokens t JOIN orgs o ON o.id = t.org_id "
               "WHERE t.token_hash = ? AND t.kind = 'access' AND o.meta_version = ?")


class SchemaVersionError(RuntimeError):
    """The database was made by a newer crmlite than this one."""


def database_url(url: str | None = None) -> str:
    return url or os.environ.get("CRMLITE_DATABASE_URL") or DEFAULT_DATABASE_URL


def redacted(url: str) -> str:
    """The URL with its password masked, fit for a log or a terminal."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_store(url: str | None = None, processes: int = 1) -> Store:
    """Open (and migrate) the store that ``url`` names; ``processes``: how many server
    processes of this machine share it (PostgreSQL sizes its write concurrency by it)."""
    url = database_url(url)
    if url.startswith("sqlite:"):
        from crmlite.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql:", "postgres:")):
        from crmlite.store.postgres import PostgresStore

        return PostgresStore(url, processes=processes)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://…")


def placeholders(count: int) -> str:
    return ",".join("?" * count)


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
