"""Reads against SQLite's own ceiling: ``python -m bench.reads [--records N] [--duration S]``.

``crmlite serve`` on SQLite in its default configuration, ``--records`` Contacts stored
through the API (100 per upsert, bench/records.py), then 8 keep-alive clients (threads of
this process, loopback only) for each case:

- ``list``: ``GET /crm/v8/Contacts?fields=…&per_page=200&page=P`` (9 fields; the pages
  page numbers reach, the first 2,000 records);
- ``get``: ``GET /crm/v8/Contacts/{id}`` (every field);
- ``search_email``: ``GET /crm/v8/Contacts/search?fields=…&email=…``.

The ceiling reads the same records from the same file in this process, one thread, while
the server is idle: the page (or the record) by its primary key, or the Email through
``match_keys``' index, each row's JSON parsed and the reply's fields dumped with orjson.
Prints requests/s, records/s, p50 / p99, the server's CPU per request and the ratio
crmlite ÷ ceiling in records/s, and writes them to a JSON file (``--out``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.records import body, email, record_bytes
from bench.run import Server, log

CLIENTS = 8
LIST_FIELDS = ["First_Name", "Last_Name", "Email", "Phone", "Title", "Mailing_City",
               "External_Id", "Modified_Time", "Owner"]
PER_PAGE = 200


def store_records(server: Server, count: int) -> list[str]:
    """``count`` Contacts upserted through the API; their ids."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Authorization": f"Zoho-oauthtoken {server.token}"}
    ids: list[str] = []
    for first in range(0, count, 100):
        conn.request("POST", "/crm/v8/Contacts/upsert",
                     body([record_bytes(n, 0) for n in range(first, min(first + 100, count))]),
                     headers)
        reply = json.loads(conn.getresponse().read())
        ids += [item["details"]["id"] for item in reply["data"]]
    conn.close()
    return ids


def drive(server: Server, paths: list[str], duration: float, per_request: int) -> dict:
    """CLIENTS threads sending GETs of ``paths`` (at random) for ``duration`` seconds."""
    headers = {"Authorization": f"Zoho-oauthtoken {server.token}"}
    latencies: list[float] = []
    failures: list[str] = []
    stop = time.perf_counter() + duration

    def client(seed: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        rng = random.Random(seed)
        mine = []
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            conn.request("GET", rng.choice(paths), headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            mine.append(time.perf_counter() - t0)
            if reply.status != 200:
                failures.append(f"{reply.status} {data[:120]!r}")
                break
        latencies.extend(mine)
        conn.close()

    worker = psutil.Process(server.workers[0])
    cpu0 = worker.cpu_times()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration + 60)
    cpu1 = worker.cpu_times()
    if failures:
        raise RuntimeError(f"GET failed: {failures[0]}")
    latencies.sort()
    requests = len(latencies)
    cpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system
    return {"req_per_s": requests / duration, "rec_per_s": requests * per_request / duration,
            "p50_ms": latencies[requests // 2] * 1000,
            "p99_ms": latencies[min(requests - 1, requests * 99 // 100)] * 1000,
            "server_cpu_us_per_req": cpu / requests * 1e6}


def ceiling(run: Callable[[int], int], duration: float) -> float:
    """Records per second of ``run(n)`` (which answers how many records it read), alone."""
    n = records = 0
    stop = time.perf_counter() + duration
    t0 = time.perf_counter()
    while time.perf_counter() < stop:
        records += run(n)
        n += 1
    return records / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("bench-reads.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crmlite.db"
        server = Server(f"sqlite:///{path}", 1, Path(tmp), "reads")
        try:
            server.create_external_field()
            log(f"storing {args.records} Contacts")
            ids = store_records(server, args.records)
            # page numbers reach the first 2,000 records only (Zoho's rule; then page_token)
            pages = max(1, min(args.records, 2000) // PER_PAGE)
            fields = ",".join(LIST_FIELDS)
            cases: dict[str, tuple[list[str], int]] = {
                "list": ([f"/crm/v8/Contacts?fields={fields}&per_page={PER_PAGE}&page={p}"
                          for p in range(1, pages + 1)], PER_PAGE),
                "get": ([f"/crm/v8/Contacts/{rid}" for rid in ids], 1),
                "search_email": ([f"/crm/v8/Contacts/search?fields={fields}&email={email(n)}"
                                  for n in range(0, args.records, 7)], 1),
            }
            results: dict[str, Any] = {}
            for name, (paths, per_request) in cases.items():
                results[name] = drive(server, paths, args.duration, per_request)
                log(f"  {name:13s} {results[name]['rec_per_s']:9,.0f} rec/s")
            raw = raw_reads(path, ids, pages, args.duration)
        finally:
            server.stop()
    for name, figures in results.items():
        figures["ceiling_rec_per_s"] = raw[name]
        figures["ratio"] = figures["rec_per_s"] / raw[name]
    print("| case | req/s | rec/s | p50 ms | p99 ms | server CPU µs/req | ceiling rec/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, f in results.items():
        print(f"| {name} | {f['req_per_s']:,.0f} | {f['rec_per_s']:,.0f} | {f['p50_ms']:.1f} | "
              f"{f['p99_ms']:.1f} | {f['server_cpu_us_per_req']:,.0f} | "
              f"{f['ceiling_rec_per_s']:,.0f} | {f['ratio']:.2f} |")
    args.out.write_text(json.dumps({"records": args.records, "clients": CLIENTS,
                                    "duration_s": args.duration, "cases": results}, indent=2))
    print(f"figures in {args.out}")


def raw_reads(path: Path, ids: list[str], pages: int, duration: float) -> dict[str, float]:
    """The ceiling of each case: the same reads straight from the file (see the docstring)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    org, module = db.execute("SELECT org_id, module_id FROM records LIMIT 1").fetchone()
    (field,) = db.execute("SELECT DISTINCT field_id FROM match_keys WHERE org_id = ? "
                          "AND module_id = ?", (org, module)).fetchone()
    rng = random.Random(1)

    def reply(rows: list[tuple[int, str]]) -> int:
        """The rows' requested fields as a reply's JSON; how many records it holds."""
        out = []
        for rid, data in rows:
            values = orjson.loads(data)
            out.append({**{f: values.get(f) for f in LIST_FIELDS}, "id": str(rid)})
        orjson.dumps({"data": out})
        return len(rows)

    def page(n: int) -> int:
        rows = db.execute("SELECT id, data FROM records WHERE org_id = ? AND module_id = ? "
                          "ORDER BY id LIMIT ? OFFSET ?",
                          (org, module, PER_PAGE, rng.randrange(pages) * PER_PAGE)).fetchall()
        return reply(rows)

    def one(n: int) -> int:
        row = db.execute("SELECT id, data FROM records WHERE id = ?",
                         (int(rng.choice(ids)),)).fetchone()
        orjson.dumps({"data": [{**orjson.loads(row[1]), "id": str(row[0])}]})
        return 1

    def by_email(n: int) -> int:
        rows = db.execute(
            "SELECT r.id, r.data FROM match_keys k JOIN records r ON r.id = k.record_id "
            "WHERE k.org_id = ? AND k.module_id = ? AND k.field_id = ? AND k.value = ?",
            (org, module, field, email(rng.randrange(len(ids))))).fetchall()
        return reply(rows)

    try:
        return {"list": ceiling(page, duration), "get": ceiling(one, duration),
                "search_email": ceiling(by_email, duration)}
    finally:
        db.close()


if __name__ == "__main__":
    main()
