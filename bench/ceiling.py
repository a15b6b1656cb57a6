"""The raw ceiling: the benchmark's records upserted straight into the database engine.

No HTTP, no validation, no crmlite: what the engine itself does with the same records,
keys and batch size, measured in the same run as the server so the ratio means
something on a noisy machine.

Schema (both engines): ``records(id, org_id, module_id, owner_id, created_time,
modified_time, data)`` and one key table ``keys(field, value, record_id)`` with
``PRIMARY KEY (field, value)`` holding both keys of a record (External_Id and Email),
so an insert writes one record row and two key rows, as crmlite does.

- SQLite (stdlib ``sqlite3``, WAL, ``synchronous=NORMAL``, one connection): per batch of
  100 one ``BEGIN IMMEDIATE``, one ``SELECT … WHERE value IN (…)``, then ``executemany``:
  ``UPDATE … SET data = json_patch(data, ?)`` for the found records, ``INSERT`` of the
  records and their two keys for the new ones (ids ``max(id)+1…`` under the write lock).
- PostgreSQL (asyncpg, 8 connections): one statement per batch over ``unnest`` of the
  sorted keys: ``INSERT INTO keys … ON CONFLICT DO UPDATE … RETURNING`` feeding
  ``INSERT INTO records … ON CONFLICT (id) DO UPDATE SET data = data || EXCLUDED.data``.

``python -m bench.ceiling --engine sqlite --path FILE`` or
``--engine postgresql --url URL``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time

from bench.records import CASES, KeyPlan, email, ext_id, record_bytes, split_case

EXT, EMAIL = 1, 2
ORG, MODULE_ID, OWNER = 1, 2, 3


def prepare(plan: KeyPlan, name: str, records: int) -> list[list[tuple[int, bool, str]]]:
    """The batches of one case: (record number, exists, JSON) per record."""
    case, plan.pattern = split_case(name)
    batches = []
    for version in range(records // 100):
        items = plan.batch(case)
        with_ext = case != "update_email"
        batches.append([(n, old, record_bytes(n, version + 1, with_ext=with_ext).decode())
                        for n, old in items])
    return batches


# -- SQLite ---------------------------------------------------------------------------------
SQLITE_DDL = [
    "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL, "
    "module_id INTEGER NOT NULL, owner_id INTEGER NOT NULL, created_time INTEGER NOT NULL, "
    "modified_time INTEGER NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS keys (field INTEGER NOT NULL, value TEXT NOT NULL, "
    "record_id INTEGER NOT NULL, PRIMARY KEY (field, value)) WITHOUT ROWID",
]


def sqlite_batch(conn: sqlite3.Connection, case: str, batch: list[tuple[int, bool, str]]) -> int:
    now = int(time.time())
    field = EMAIL if case == "update_email" else EXT
    key = email if field == EMAIL else ext_id
    values = [key(n) for n, _, _ in batch]
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = dict(conn.execute(
            f"SELECT value, record_id FROM keys WHERE field = ? AND value IN "
            f"({','.join('?' * len(values))})", (field, *values)).fetchall())
        updates, inserts = [], []
        for (n, _, data), value in zip(batch, values, strict=True):
            rid = found.get(value)
            if rid is not None:
                updates.append((data, now, rid))
            else:
                inserts.append((n, data))
        if updates:
            conn.executemany("UPDATE records SET data = json_patch(data, ?), modified_time = ? "
                             "WHERE id = ?", updates)
        if inserts:
            (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()
            ids = range(last + 1, last + 1 + len(inserts))
            conn.executemany(
                "INSERT INTO records (id, org_id, module_id, owner_id, created_time, "
                "modified_time, data) VALUES (?,?,?,?,?,?,?)",
                [(rid, ORG, MODULE_ID, OWNER, now, now, data)
                 for rid, (_, data) in zip(ids, inserts, strict=True)])
            conn.executemany(
                "INSERT INTO keys (field, value, record_id) VALUES (?,?,?)",
                [(f, k, rid) for rid, (n, _) in zip(ids, inserts, strict=True)
                 for f, k in ((EXT, ext_id(n)), (EMAIL, email(n)))])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(inserts)


def sqlite_ceiling(path: str, records: int, seed: int, cases: list[str]) -> dict:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for sql in SQLITE_DDL:
        conn.execute(sql)
    plan = KeyPlan(0, 0, seed)
    out = {}
    for name in cases:
        batches = prepare(plan, name, records)
        case = split_case(name)[0]
        wall0, cpu0, t0 = time.time(), time.process_time(), time.perf_counter()
        inserted = sum(sqlite_batch(conn, case, b) for b in batches)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        plan.existing = plan.next_new
        n = sum(len(b) for b in batches)
        out[name] = {"records": n, "inserted": inserted, "seconds": seconds, "cpu_s": cpu,
                     "t0": wall0, "t1": wall0 + seconds,
                     "rec_per_s": n / seconds}
    conn.close()
    return {"engine": "sqlite", "connections": 1, "cases": out}


# -- PostgreSQL -----------------------------------------------------------------------------
PG_DDL = [
    "CREATE TABLE IF NOT EXISTS records (id BIGINT PRIMARY KEY, org_id BIGINT NOT NULL, "
    "module_id BIGINT NOT NULL, owner_id BIGINT NOT NULL, created_time BIGINT NOT NULL, "
    "modified_time BIGINT NOT NULL, data JSONB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS keys (field INT NOT NULL, value TEXT NOT NULL, "
    "record_id BIGINT NOT NULL, PRIMARY KEY (field, value))",
    "CREATE SEQUENCE IF NOT EXISTS record_ids",
]

# Both keys: the first one decides (insert or update), the second is added for new records.
PG_TWO_KEYS = """
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS t(k1, k2, data)
), k AS (
    INSERT INTO keys (field, value, record_id)
    SELECT $4, k1, nextval('record_ids') FROM i ORDER BY k1
    ON CONFLICT (field, value) DO UPDATE SET record_id = keys.record_id
    RETURNING value, record_id, (xmax = 0) AS inserted
), e AS (
    INSERT INTO keys (field, value, record_id)
    SELECT $5, i.k2, k.record_id FROM i JOIN k ON k.value = i.k1 WHERE k.inserted ORDER BY i.k2
    ON CONFLICT (field, value) DO NOTHING
)
INSERT INTO records AS r (id, org_id, module_id, owner_id, created_time, modified_time, data)
SELECT k.record_id, 1, 2, 3, $6, $6, i.data FROM i JOIN k ON k.value = i.k1 ORDER BY k.record_id
ON CONFLICT (id) DO UPDATE SET data = r.data || EXCLUDED.data,
                               modified_time = EXCLUDED.modified_time
"""

# One key (updates addressed by Email): the same shape without the second key.
PG_ONE_KEY = """
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::jsonb[]) AS t(k1, data)
), k AS (
    INSERT INTO keys (field, value, record_id)
    SELECT $3, k1, nextval('record_ids') FROM i ORDER BY k1
    ON CONFLICT (field, value) DO UPDATE SET record_id = keys.record_id
    RETURNING value, record_id
)
INSERT INTO records AS r (id, org_id, module_id, owner_id, created_time, modified_time, data)
SELECT k.record_id, 1, 2, 3, $4, $4, i.data FROM i JOIN k ON k.value = i.k1 ORDER BY k.record_id
ON CONFLICT (id) DO UPDATE SET data = r.data || EXCLUDED.data,
                               modified_time = EXCLUDED.modified_time
"""


async def pg_ceiling(url: str, records: int, seed: int, connections: int,
                     cases: list[str]) -> dict:
    import asyncpg

    setup = await asyncpg.connect(url)
    for sql in PG_DDL:
        await setup.execute(sql)
    await setup.close()
    conns = [await asyncpg.connect(url) for _ in range(connections)]
    for c in conns:
        await c.execute("SET synchronous_commit = off")
    plan = KeyPlan(0, 0, seed)
    out = {}
    for name in cases:
        batches = prepare(plan, name, records)
        case = split_case(name)[0]
        args = []
        now = int(time.time())
        for b in batches:
            if case == "update_email":
                rows = sorted((email(n), data) for n, _, data in b)
                args.append((PG_ONE_KEY, [r[0] for r in rows], [r[1] for r in rows], EMAIL, now))
            else:
                rows = sorted((ext_id(n), email(n), data) for n, _, data in b)
                args.append((PG_TWO_KEYS, [r[0] for r in rows], [r[1] for r in rows],
                             [r[2] for r in rows], EXT, EMAIL, now))
        queue = iter(args)
        retries = 0

        async def worker(conn, queue=queue) -> None:
            nonlocal retries
            for sql, *params in queue:
                for _attempt in range(5):
                    try:
                        await conn.execute(sql, *params)
                        break
                    except asyncpg.DeadlockDetectedError:
                        retries += 1

        wall0, cpu0, t0 = time.time(), time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        plan.existing = plan.next_new
        n = sum(len(b) for b in batches)
        out[name] = {"records": n, "seconds": seconds, "rec_per_s": n / seconds,
                     "cpu_s": cpu, "t0": wall0, "t1": wall0 + seconds,
                     "deadlock_retries": retries}
    for c in conns:
        await c.close()
    return {"engine": "postgresql", "connections": connections, "cases": out}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", choices=("sqlite", "postgresql"), required=True)
    p.add_argument("--path", help="SQLite file")
    p.add_argument("--url", help="PostgreSQL URL (an empty database)")
    p.add_argument("--records", type=int, default=100_000, help="per case")
    p.add_argument("--connections", type=int, default=8, help="PostgreSQL connections")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--cases", default=",".join(CASES),
                   help="comma-separated, in order; the first must be insert")
    args = p.parse_args(argv)
    cases = args.cases.split(",")
    if args.engine == "sqlite":
        result = sqlite_ceiling(args.path, args.records, args.seed, cases)
    else:
        result = asyncio.run(pg_ceiling(args.url, args.records, args.seed, args.connections,
                                        cases))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
