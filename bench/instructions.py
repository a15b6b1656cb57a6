"""The engine's cost per record on PostgreSQL counted, not timed: for judging a change on a
noisy VM, where full runs move by more than most changes do.

``python -m bench.instructions [--case mix] [--batches 40] [--stored 300] [--statements]``

It starts a throwaway PostgreSQL cluster (as the tests do, with pg_stat_statements),
bootstraps crmlite, adds the bench's External_Id field, stores ``--stored`` batches of
new Contacts and analyses them (so the store takes the paths it takes once its tables are
large), then runs ``--batches`` batches of the case through the engine as the server runs
it (in a greenlet on uvloop, awaiting asyncpg, with the server's garbage-collector
settings, without polling) in a child process under valgrind's callgrind, counting only
the measured batches (not the closing and exiting after them). It prints the worker's
instructions per record and PostgreSQL's execution time per record
(``pg_stat_statements``, top-level statements: a function call counts once, with what it
runs), with ``--statements`` each statement's share.
Needs ``valgrind`` (Debian: ``apt-get install -y valgrind``). Compare two builds by
running it with each on ``PYTHONPATH`` (``pip install --no-deps --target DIR .``); the
instruction counts repeat within a fraction of a percent, PostgreSQL's times within
several.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psycopg

from bench.engine import prepare, run_case
from bench.records import CASES, KeyPlan

READY = "CRMLITE_BENCH_READY"  # the file the child writes its pid to, counting from then


def child(case: str, batches: int, stored: int, statements: bool = False) -> None:
    """Under valgrind (instrumentation off until the parent turns it on)."""
    import uvloop

    from crmlite.auth.principal import authenticate
    from crmlite.records.writer import items_json, write_records
    from crmlite.server import collect_garbage_less_often
    from crmlite.store.base import open_store
    from crmlite.store.bridge import greenlet_spawn
    from tests.pgcluster import PostgresCluster

    os.environ["CRMLITE_PG_POLL"] = "0"
    cluster = PostgresCluster()
    try:
        url = cluster.create_database()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        cluster.restart()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        store = open_store(url)
        token = prepare(store)

        def counted(plan: KeyPlan) -> None:
            """``batches`` of the case, instrumented, and PostgreSQL's time for them."""
            bodies = [orjson.loads(plan.request(case, v)[0])["data"] for v in range(batches)]
            principal = authenticate(store, token)
            assert principal is not None
            module = principal.dictionary.module("Contacts")
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")
            Path(os.environ[READY]).write_text(str(os.getpid()))
            time.sleep(1.0)  # the parent turns instrumentation on
            for data in bodies:
                outcomes = write_records(store, principal, module, data, "upsert")
                items_json(outcomes, principal, "upsert")
            # the measured loop alone: not what follows (closing, stopping, exiting)
            subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())],
                           capture_output=True, check=False)
            per_record = 1000 / (batches * 100)  # ms in all -> µs per record
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute("SELECT sum(total_exec_time) FROM pg_stat_statements"
                                   ).fetchone()
                if statements:
                    for query, calls, spent in conn.execute(
                            "SELECT query, calls, total_exec_time FROM pg_stat_statements "
                            "WHERE toplevel AND calls >= %s ORDER BY total_exec_time DESC "
                            "LIMIT 8", (batches,)):
                        print(f"statement {spent * per_record:6.2f} µs per record, "
                              f"{calls} calls: {' '.join(query.split())[:110]}", flush=True)
            spent = float(row[0] or 0) if row else 0.0
            print(f"postgresql_exec_us_per_record {spent * per_record:.2f}", flush=True)

        def work() -> None:
            plan = KeyPlan(existing=0, next_new=0, seed=1)
            run_case(store, token, plan, "insert", stored, False)
            plan.existing = plan.next_new
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE")
            store.statistics.large = True
            run_case(store, token, plan, case, 10, False)  # warm-up
            plan.existing = plan.next_new
            counted(plan)

        async def on_loop() -> None:
            collect_garbage_less_often()
            await greenlet_spawn(work)

        uvloop.run(on_loop())
        store.close()
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=CASES, default="mix")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--stored", type=int, default=300, help="batches stored first")
    parser.add_argument("--statements", action="store_true",
                        help="also PostgreSQL's time per statement (the top eight)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.case, args.batches, args.stored, args.statements)
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("needs valgrind (apt-get install -y valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        ready, out = Path(tmp) / "ready", Path(tmp) / "callgrind.out"
        env = {**os.environ, READY: str(ready), "PYTHONHASHSEED": "0"}
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out}", sys.executable, "-m", "bench.instructions",
             "--child", "--case", args.case, "--batches", str(args.batches),
             "--stored", str(args.stored), *(["--statements"] if args.statements else [])],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while proc.poll() is None and not (ready.exists() and ready.read_text()):
            time.sleep(0.2)
        if proc.poll() is None:
            subprocess.run(["callgrind_control", "-i", "on", ready.read_text()],
                           check=True, capture_output=True)
        stdout, _ = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"the measured process failed ({proc.returncode})")
        totals = subprocess.run(["callgrind_annotate", str(out)], check=True,
                                capture_output=True, text=True).stdout
        line = next(t for t in totals.splitlines() if "PROGRAM TOTALS" in t)
        instructions = int(line.split()[0].replace(",", ""))
        print(f"{args.case}: {instructions / (args.batches * 100) / 1000:.1f}k instructions "
              "per record (the worker)")
        for t in stdout.splitlines():
            if t.startswith("postgresql_exec_us_per_record"):
                print(f"{args.case}: {t.split()[1]} µs of PostgreSQL execution per record")
            elif t.startswith("statement "):
                print(f"  {t.removeprefix('statement ')}")


if __name__ == "__main__":
    main()
