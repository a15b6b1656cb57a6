"""Load generator: N keep-alive HTTP/1.1 clients upserting 100-record bodies.

Runs in its own process (``python -m bench.load ...``) so it never shares an
interpreter with the server or the orchestrator. A minimal HTTP/1.1 client on
asyncio (uvloop) keeps the generator's own CPU use small: bodies come from byte
templates, and the reply is parsed only to count what happened to each record.

Prints one JSON object on stdout: requests and records per second completed in the
measured window (after the warm-up), their latency percentiles, and the actions the
server reported for their records.
Every loop is bounded by the deadline and by ``--max-requests``; the target must be a
loopback address.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import time
from urllib.parse import urlsplit

import orjson

from bench.records import CASES, MODULE, PATTERNS, KeyPlan


class Reply(asyncio.Protocol):
    """One connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed by the server"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).split(b"\r\n")
        status = int(head[0].split(b" ", 2)[1])
        length = None
        for line in head[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            self._done(ConnectionError("reply without Content-Length"))
            return
        if len(self.buf) < end + 4 + length:
            return
        payload = bytes(self.buf[end + 4: end + 4 + length])
        del self.buf[: end + 4 + length]
        self._done((status, payload))

    def _done(self, result: tuple[int, bytes] | Exception) -> None:
        if self.waiter is None or self.waiter.done():
            return
        if isinstance(result, Exception):
            self.waiter.set_exception(result)
        else:
            self.waiter.set_result(result)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        if self.closed:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


# crmlite's replies are compact JSON (orjson) with these members in every item
_INSERTED, _UPDATED = b'"action":"insert"', b'"action":"update"'
_FAILED = b'"status":"error"'


def count_actions(reply: bytes) -> tuple[int, int, int]:
    """The records a reply says were inserted, updated and refused, counted in its bytes:
    parsing the whole reply took the generator about six times the CPU (220 µs against
    35 for 100 items), CPU the server it measures shares the machine with. A reply of
    another shape counts nothing, and the run reports the records it expected but did
    not see."""
    return reply.count(_INSERTED), reply.count(_UPDATED), reply.count(_FAILED)


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def run(args: argparse.Namespace) -> dict:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to send load to {host}: loopback addresses only")
    path = f"/crm/v8/{MODULE}/upsert"
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Zoho-oauthtoken {args.token}\r\n"
            "Content-Type: application/json\r\nContent-Length: ").encode()
    plan = KeyPlan(args.existing, args.next_new, args.seed, args.pattern)
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(args.clients):
        _, proto = await asyncio.wait_for(loop.create_connection(Reply, host, port), 10)
        conns.append(proto)

    t_start = time.perf_counter()
    t_measure = t_start + args.warmup
    t_end = t_measure + args.duration
    latencies: list[float] = []
    stats = {"requests": 0, "ok_requests": 0, "failed_requests": 0, "inserted": 0, "updated": 0,
             "record_errors": 0, "expected_inserts": 0, "expected_updates": 0,
             "warmup_requests": 0, "http_statuses": {}}
    first_errors: list[str] = []
    issued = 0
    version = args.seed * 1_000_000

    async def client(conn: Reply) -> None:
        nonlocal issued, version
        while issued < args.max_requests:
            now = time.perf_counter()
            if now >= t_end:
                return
            issued += 1
            version += 1
            payload, inserts, updates = plan.request(args.case, version)
            request = head + str(len(payload)).encode() + b"\r\n\r\n" + payload
            t0 = time.perf_counter()
            try:
                status, reply = await asyncio.wait_for(conn.send(request), args.timeout)
            except (TimeoutError, ConnectionError) as exc:
                stats["failed_requests"] += 1
                if len(first_errors) < 5:
                    first_errors.append(f"{type(exc).__name__}: {exc}")
                return  # this connection is unusable now
            t1 = time.perf_counter()
            statuses = stats["http_statuses"]
            statuses[status] = statuses.get(status, 0) + 1
            if t1 < t_measure:
                stats["warmup_requests"] += 1
                continue
            if t1 > t_end:
                continue  # completed after the window: not counted
            # counted: every request that completed inside the window
            stats["requests"] += 1
            latencies.append(t1 - t0)
            stats["expected_inserts"] += inserts
            stats["expected_updates"] += updates
            ok = status in (200, 207)
            if ok:
                inserted, updated, failed = count_actions(reply)
                stats["inserted"] += inserted
                stats["updated"] += updated
                stats["record_errors"] += failed
                if failed and len(first_errors) < 5:
                    first_errors.extend(orjson.dumps(it).decode()[:300]
                                        for it in orjson.loads(reply).get("data", [])
                                        if it.get("status") != "success")
                    del first_errors[5:]
            if status == 200:
                stats["ok_requests"] += 1
            else:
                stats["failed_requests"] += 1
                if len(first_errors) < 5:
                    first_errors.append(f"HTTP {status}: {reply[:300]!r}")

    cpu: list[float] = []

    async def cpu_probe() -> None:
        await asyncio.sleep(max(0.0, t_measure - time.perf_counter()))
        cpu.append(time.process_time())
        await asyncio.sleep(max(0.0, t_end - time.perf_counter()))
        cpu.append(time.process_time())

    wall = time.time() - time.perf_counter()  # perf_counter -> wall clock
    await asyncio.gather(cpu_probe(), *(client(c) for c in conns))
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    latencies.sort()
    window = args.duration
    records = stats["inserted"] + stats["updated"]
    return {
        "case": args.case,
        "clients": args.clients,
        "window_s": window,
        "req_per_s": stats["ok_requests"] / window,
        "rec_per_s": records / window,
        "p50_ms": (percentile(latencies, 0.50) or 0) * 1000,
        "p90_ms": (percentile(latencies, 0.90) or 0) * 1000,
        "p99_ms": (percentile(latencies, 0.99) or 0) * 1000,
        "max_ms": (latencies[-1] if latencies else 0) * 1000,
        **stats,
        "http_statuses": {str(k): v for k, v in stats["http_statuses"].items()},
        "next_new": plan.next_new,
        "pattern": args.pattern,
        "t_measure": wall + t_measure,
        "t_end": wall + t_end,
        "loadgen_cores": (cpu[1] - cpu[0]) / window if len(cpu) == 2 else None,
        "errors": first_errors,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--token", required=True)
    p.add_argument("--case", choices=CASES, required=True)
    p.add_argument("--pattern", choices=PATTERNS, default="clustered",
                   help="where the existing records of a request are (see bench/records.py)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--existing", type=int, default=0, help="records 0..N-1 exist")
    p.add_argument("--next-new", type=int, default=0, help="first record number not yet used")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    p.add_argument("--max-requests", type=int, default=200_000)
    args = p.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
