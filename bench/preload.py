"""Preload N benchmark records straight into a crmlite database (the growth case's fast path).

Upserting a million records through the API would take minutes; this writes the very rows
crmlite's writer (src/crmlite/records/writer.py) would write for them, in crmlite's own
schema (src/crmlite/store/migrations.py):

- ``records``: one row per record, ``data`` the record's JSON as the server stores it (the
  request's values plus the derived ``Full_Name``), owner/creator the org's admin;
- ``unique_keys``: the External_Id value (org-based: scope 0, matched exactly);
- ``match_keys``: the Email, case-folded (Contacts' system duplicate-check field);
- ids reserved from crmlite's id counter (SQLite ``counters``, PostgreSQL ``record_ids``),
  so records the server inserts afterwards never collide.

SQLite: ``executemany`` in transactions of 50,000 records, then a WAL checkpoint.
PostgreSQL: ``COPY`` of pre-formatted rows, then ``ANALYZE`` of the three tables (what
autovacuum would do on its own a little later).

The database must already exist (bootstrapped by ``crmlite serve``) and Contacts must have
the org-based external field ``External_Id``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench.records import EXTERNAL_FIELD, MODULE, email, ext_id, record_bytes

CHUNK = 50_000


def stored_data(n: int) -> str:
    """The record's JSON as crmlite stores it: the values sent, then Full_Name."""
    return (record_bytes(n, 0)[:-1] + b',"Full_Name":"Patricia Boyle %d"}' % n).decode()


def ids_of(execute) -> tuple[int, int, int, int, int]:
    """org id, Contacts' module id, External_Id's and Email's field ids, the admin's id."""
    (org_id,) = execute("SELECT id FROM orgs ORDER BY id LIMIT 1")[0]
    (module_id,) = execute("SELECT id FROM modules WHERE org_id = ? AND api_key = ?",
                           (org_id, MODULE.lower()))[0]
    fields = dict(execute("SELECT api_name, id FROM fields WHERE module_id = ? AND "
                          "api_name IN (?, ?)", (module_id, EXTERNAL_FIELD, "Email")))
    if EXTERNAL_FIELD not in fields:
        raise SystemExit(f"{MODULE} has no field {EXTERNAL_FIELD}: create it first")
    (admin,) = execute("SELECT id FROM users WHERE org_id = ? ORDER BY id LIMIT 1", (org_id,))[0]
    return org_id, module_id, fields[EXTERNAL_FIELD], fields["Email"], admin


def preload_sqlite(path: str, count: int, first: int) -> None:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    org, module, ext_field, email_field, admin = ids_of(
        lambda sql, p=(): conn.execute(sql, p).fetchall())
    now = int(time.time())
    for start in range(first, first + count, CHUNK):
        numbers = range(start, min(start + CHUNK, first + count))
        conn.execute("BEGIN IMMEDIATE")
        (last,) = conn.execute("UPDATE counters SET value = value + ? WHERE name = 'id' "
                               "RETURNING value", (len(numbers),)).fetchone()
        ids = range(last - len(numbers) + 1, last + 1)
        conn.executemany(
            "INSERT INTO records (id, org_id, module_id, owner_id, created_by, created_time, "
            "modified_by, modified_time, data) VALUES (?,?,?,?,?,?,?,?,?)",
            ((rid, org, module, admin, admin, now, admin, now, stored_data(n))
             for rid, n in zip(ids, numbers, strict=True)))
        conn.executemany(
            "INSERT INTO unique_keys (org_id, module_id, field_id, scope, value, record_id) "
            "VALUES (?,?,?,?,?,?)",
            ((org, module, ext_field, 0, ext_id(n), rid)
             for rid, n in zip(ids, numbers, strict=True)))
        conn.executemany(
            "INSERT INTO match_keys (org_id, module_id, field_id, value, record_id) "
            "VALUES (?,?,?,?,?)",
            ((org, module, email_field, email(n).casefold(), rid)
             for rid, n in zip(ids, numbers, strict=True)))
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def preload_postgres(url: str, count: int, first: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        org, module, ext_field, email_field, admin = ids_of(
            lambda sql, p=(): conn.execute(sql.replace("?", "%s"), p).fetchall())
        now = int(time.time())
        for start in range(first, first + count, CHUNK):
            numbers = range(start, min(start + CHUNK, first + count))
            with conn.transaction():
                (last,) = conn.execute(
                    "SELECT setval('record_ids', nextval('record_ids') + %s - 1)",
                    (len(numbers),)).fetchone()
                ids = range(last - len(numbers) + 1, last + 1)
                pairs = list(zip(ids, numbers, strict=True))
                # Our values hold no tab, newline or backslash: no COPY escaping needed.
                with conn.cursor().copy(
                    "COPY records (id, org_id, module_id, owner_id, created_by, created_time, "
                    "modified_by, modified_time, data) FROM STDIN"
                ) as copy:
                    copy.write("".join(
                        f"{rid}\t{org}\t{module}\t{admin}\t{admin}\t{now}\t{admin}\t{now}\t"
                        f"{stored_data(n)}\n" for rid, n in pairs))
                with conn.cursor().copy(
                    "COPY unique_keys (org_id, module_id, field_id, scope, value, record_id) "
                    "FROM STDIN"
                ) as copy:
                    copy.write("".join(f"{org}\t{module}\t{ext_field}\t0\t{ext_id(n)}\t{rid}\n"
                                       for rid, n in pairs))
                with conn.cursor().copy(
                    "COPY match_keys (org_id, module_id, field_id, value, record_id) FROM STDIN"
                ) as copy:
                    copy.write("".join(
                        f"{org}\t{module}\t{email_field}\t{email(n).casefold()}\t{rid}\n"
                        for rid, n in pairs))
        conn.execute("ANALYZE records")
        conn.execute("ANALYZE unique_keys")
        conn.execute("ANALYZE match_keys")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", required=True, help="sqlite:///FILE or postgresql://…")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--first", type=int, default=0, help="first record number")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    if args.database.startswith("sqlite:///"):
        preload_sqlite(args.database.removeprefix("sqlite:///"), args.count, args.first)
    else:
        preload_postgres(args.database, args.count, args.first)
    seconds = time.perf_counter() - t0
    json.dump({"records": args.count, "seconds": seconds,
               "rec_per_s": args.count / seconds}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
