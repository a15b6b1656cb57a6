"""SQLite's requests run in the order their clients sent them (api/arrival.py)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from http.client import HTTPConnection
from pathlib import Path

import orjson

from crmlite.api import arrival
from crmlite.api.arrival import ArrivalOrder
from tests.conftest import Server


async def request(order: ArrivalOrder, connection: object, log: list[object]) -> None:
    """What InOrder does for one request: wait for its place, run, start the reply."""
    await order.wait(connection)
    log.append(connection)
    order.reply_started(connection)


def test_a_round_runs_in_the_order_of_the_connections_last_replies() -> None:
    async def main() -> list[object]:
        order, log = ArrivalOrder(), []
        # last round's replies went to "c", then "a", then "b"
        for connection in ("c", "a", "b"):
            order.reply_started(connection)
            await asyncio.sleep(0.001)
        # this round the loop read them in its own order, and a new connection last
        await asyncio.gather(*(request(order, c, log) for c in ("a", "b", "new", "c")))
        return log

    # "c" has waited longest; the new connection counts from when its request came
    assert asyncio.run(main()) == ["c", "a", "b", "new"]


def test_a_client_that_missed_a_round_goes_first_in_the_next() -> None:
    async def main() -> list[object]:
        order, log = ArrivalOrder(), []
        await asyncio.gather(*(request(order, c, log) for c in ("a", "b", "c")))
        # "c" was answered last and missed the loop's next read: "a" and "b" run alone
        await asyncio.gather(*(request(order, c, log) for c in ("a", "b")))
        await asyncio.gather(*(request(order, c, log) for c in ("a", "b", "c")))
        return log

    assert asyncio.run(main()) == ["a", "b", "c", "a", "b", "c", "a", "b"]


def test_a_lone_request_waits_one_turn_of_the_loop() -> None:
    async def main() -> list[str]:
        order, log = ArrivalOrder(), []
        waiting = asyncio.create_task(order.wait(("127.0.0.1", 1)))
        asyncio.get_running_loop().call_soon(log.append, "loop")
        await waiting
        log.append("request")
        return log

    assert asyncio.run(main()) == ["loop", "request"]


def test_a_cancelled_request_does_not_hold_up_the_others() -> None:
    async def main() -> tuple[list[object], bool]:
        order, log = ArrivalOrder(), []
        gone = asyncio.create_task(request(order, "gone", log))
        rest = [asyncio.create_task(request(order, c, log)) for c in ("a", "b")]
        await asyncio.sleep(0)  # all three wait
        gone.cancel()
        await asyncio.wait_for(asyncio.gather(*rest), 5)
        return log, gone.cancelled()

    assert asyncio.run(main()) == (["a", "b"], True)


def test_connections_are_forgotten_beyond_a_bound() -> None:
    async def main() -> dict[object, float]:
        order = ArrivalOrder()
        for n in range(arrival.REMEMBERED_CONNECTIONS + 1):
            order.reply_started(("127.0.0.1", n))
        return order.replied

    replied = asyncio.run(main())
    assert len(replied) <= arrival.REMEMBERED_CONNECTIONS
    assert ("127.0.0.1", arrival.REMEMBERED_CONNECTIONS) in replied  # the newest kept
    assert ("127.0.0.1", 0) not in replied


def test_every_client_is_served_alike_on_sqlite(tmp_path: Path) -> None:
    """Eight keep-alive clients upserting in a closed loop through the real server: each
    gets about an eighth of the replies. (Before, the clients answered last in a round of
    the loop missed the next one, again and again: some got half as many.) The clients
    send prepared 100-record bodies over plain connections, so that the server, not the
    clients' own threads, decides who is served."""
    server = Server(f"sqlite:///{tmp_path / 'crmlite.db'}")
    clients, total = 8, 640
    served: Counter[int] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)
    headers = {"Authorization": f"Zoho-oauthtoken {server.token}",
               "Content-Type": "application/json"}
    port = int(server.base.rsplit(":", 1)[1])

    def client(n: int) -> None:
        bodies = [orjson.dumps({"data": [
            {"Last_Name": f"Client {n}", "Email": f"c{n}-{step}-{i}@fair.example"}
            for i in range(100)]}) for step in range(total)]
        http = HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait(timeout=60)
        try:
            for body in bodies:  # bounded; the shared total ends it sooner
                with lock:
                    if sum(served.values()) >= total:
                        return
                http.request("POST", "/crm/v8/Contacts/upsert", body=body, headers=headers)
                reply = http.getresponse()
                text = reply.read()
                if reply.status != 200 or b'"status":"error"' in text:
                    errors.append(text[:200].decode())
                    return
                with lock:
                    served[n] += 1
        finally:
            http.close()

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        server.stop()
    assert not errors, errors
    counts = [served[n] for n in range(clients)]
    assert sum(counts) >= total
    assert min(counts) >= 0.75 * max(counts), counts
