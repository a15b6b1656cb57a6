"""The engine alone, without HTTP: records per second of ``write_records`` plus the reply items.

``python -m bench.engine [--engine sqlite|postgresql [--loop]] [--batches N] [--profile CASE]
[--statements]``

It bootstraps a fresh database (SQLite in a temporary directory, or a database on a
throwaway PostgreSQL cluster started as the tests do), adds the bench's External_Id
field to Contacts, then runs the bench's cases (bench/records.py) through the engine
in this process, one 100-record batch at a time, and prints records/s, µs per record and
this process's CPU µs per record (which other processes on the machine move less) for
each. ``--profile CASE`` runs cProfile over that case and prints the top functions;
``--statements`` adds, per case, the wall time of each kind of statement in µs per record
(on PostgreSQL that includes the round trip; SQLite's ``COMMIT`` is not a statement of the
engine's transaction and is left in the rest).
On PostgreSQL the engine runs synchronously (psycopg, as the CLI does) unless ``--loop``
runs it as the server does: in a greenlet on an event loop, awaiting asyncpg.
A quick way to see what a change to the engine does before running the whole bench;
the figures are the engine's best case (no HTTP, no concurrency), not a target.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson

from bench.records import CASES, KeyPlan
from crmlite.auth.principal import authenticate
from crmlite.auth.tokens import create_access_token
from crmlite.orgs import admin_user, bootstrap
from crmlite.records.writer import items_json, write_records
from crmlite.schema.fields import create_fields
from crmlite.store.base import Store, open_store


def prepare(store: Store) -> str:
    org = bootstrap(store)
    with store.read() as tx:
        admin = admin_user(tx, org.id)
    token = create_access_token(store, org.id, admin.id, "ZohoCRM.modules.ALL")
    principal = authenticate(store, token)
    assert principal is not None
    with store.write() as tx:
        create_fields(tx, org.id, principal.dictionary.module("Contacts"), principal.dictionary,
                      [{"field_label": "External Id", "data_type": "text", "length": 100,
                        "external": {"type": "org", "show": True}}])
    return token


TABLES = re.compile(r"(?:FROM|INTO|UPDATE|JOIN)\s+(\w+)", re.I)


@contextmanager
def timed_statements() -> Iterator[Counter[str]]:
    """Add up the wall time of every statement the stores' transactions run, by its first
    words, while the block runs."""
    from crmlite.store import postgres, sqlite

    spent: Counter[str] = Counter()
    patched: list[tuple[type, str, Callable[..., Any]]] = []

    def timed(method: Callable[..., Any], name: str) -> Callable[..., Any]:
        def run(tx: Any, *args: Any, **kwargs: Any) -> Any:
            label = name
            if args and isinstance(args[0], str):  # its first word and its tables
                tables = TABLES.findall(args[0])
                label = f"{name} {args[0].split()[0]} {' '.join(dict.fromkeys(tables))}"
            start = time.perf_counter()
            try:
                return method(tx, *args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start
        return run

    for cls in (sqlite.SQLiteTx, postgres.PostgresTx, postgres.LoopTx):
        for name in ("execute", "executemany", "lock_keys", "next_ids", "commit"):
            method = cls.__dict__.get(name)
            if method is not None:
                patched.append((cls, name, method))
                setattr(cls, name, timed(method, name))
    try:
        yield spent
    finally:
        for cls, name, method in patched:
            setattr(cls, name, method)


def run_case(store: Store, token: str, plan: KeyPlan, case: str, batches: int,
             profile: bool) -> tuple[float, float]:
    """Records per second (wall) and CPU µs of this process per record."""
    bodies = [orjson.loads(plan.request(case, version)[0])["data"] for version in range(batches)]
    profiler = cProfile.Profile() if profile else None
    start, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for data in bodies:
        principal = authenticate(store, token)
        assert principal is not None
        module = principal.dictionary.module("Contacts")
        outcomes = write_records(store, principal, module, data, "upsert")
        items_json(outcomes, principal, "upsert")
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    records = batches * 100
    return records / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / records


def run_cases(store: Store, token: str, engine: str, batches: int,
              profile: str | None, statements: bool = False) -> None:
    plan = KeyPlan(existing=0, next_new=0, seed=1)
    for case in CASES:
        if case == "insert":
            # enough stored records for the update cases to pick from
            run_case(store, token, plan, case, batches, False)
            plan.existing = plan.next_new
        with timed_statements() if statements else nullcontext(Counter()) as spent:
            rate, cpu = run_case(store, token, plan, case, batches, profile == case)
        plan.existing = plan.next_new
        print(f"{engine:10} {case:14} {rate:9,.0f} rec/s  {1e6 / rate:6.1f} µs/record"
              f"  {cpu:6.1f} µs CPU/record (this process)", flush=True)
        for label, seconds in spent.most_common():
            print(f"{'':26}{seconds * 1e6 / (batches * 100):6.2f} µs/record  {label}")


async def on_loop(store: Store, token: str, engine: str, batches: int,
                  profile: str | None, statements: bool) -> None:
    """The cases as the server runs the engine on PostgreSQL: in a greenlet on an event
    loop, awaiting asyncpg (store/bridge.py), one batch at a time."""
    from crmlite.store.bridge import greenlet_spawn

    try:
        await greenlet_spawn(run_cases, store, token, engine, batches, profile, statements)
    finally:
        await store.close_on_loop()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--profile", choices=CASES, default=None)
    parser.add_argument("--statements", action="store_true",
                        help="time each kind of statement (µs per record, per case)")
    parser.add_argument("--loop", action="store_true",
                        help="PostgreSQL: the server's path (asyncpg on an event loop) "
                             "instead of the synchronous one (psycopg)")
    args = parser.parse_args()
    if args.loop and args.engine != "postgresql":
        parser.error("--loop goes with --engine postgresql")
    cluster = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.engine == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'engine.db'}"
        else:
            from tests.pgcluster import PostgresCluster

            cluster = PostgresCluster()
            url = cluster.create_database()
        try:
            store = open_store(url)
            token = prepare(store)
            name = f"{args.engine}{'-loop' if args.loop else ''}"
            if args.loop:
                asyncio.run(on_loop(store, token, name, args.batches, args.profile,
                                    args.statements))
            else:
                run_cases(store, token, name, args.batches, args.profile, args.statements)
            store.close()
        finally:
            if cluster is not None:
                cluster.stop()


if __name__ == "__main__":
    main()
