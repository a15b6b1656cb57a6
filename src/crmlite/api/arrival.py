"""Requests handled on the event loop in the order their clients sent them.

On SQLite the engine runs inline on the loop (api/context.py ``run()``): a request holds
the loop from its first statement to its reply. The loop reads new requests, then runs
the ones it read one after another, then reads again, and so on in rounds. It ran them
in an order that stayed the same from round to round (measured with ``strace``), and the
client whose reply goes out last in a round sends its next request just after the loop
has read again: that request waits out the whole next round, its reply goes out last
again, and so on. With 16 clients, two connections got half the replies of the others,
and p99 was 2.2-2.8 × the median (bench/RESULTS.md).

:class:`ArrivalOrder` runs each round's requests in the order their clients sent them.
A client sends its next request as soon as it has its reply, so a connection whose last
reply went out earlier has waited longer: the requests read in one round wait for one
turn of the loop, then run in the order of their connections' last replies (a new
connection's first request counts from when it came). The client that missed a round
goes first in the next. The requests still run one after another within a round, as
before (running each in a round of its own did the same for fairness and cost a fifth of
the throughput, measured). :class:`InOrder` applies it to every HTTP request, once its
body is in: a request waiting holds its body as bytes, and a client slow to send never
holds up the others.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# connections remembered at most (a server that keeps seeing new ones forgets the
# older half of them when there are more)
REMEMBERED_CONNECTIONS = 4096


class ArrivalOrder:
    """The requests read in one round of the loop, released in their clients' order."""

    __slots__ = ("replied", "scheduled", "waiting")

    def __init__(self) -> None:
        self.waiting: list[tuple[float, asyncio.Future[None]]] = []
        self.replied: dict[Any, float] = {}  # connection -> when its last reply started
        self.scheduled = False

    async def wait(self, connection: Any) -> None:
        """Wait until the requests read in this round are released, in order."""
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        # (no reply remembered, a connection without an address included: from now)
        self.waiting.append((self.replied.get(connection, loop.time()), turn))
        if not self.scheduled:  # runs after every request read in this round has come
            self.scheduled = True
            loop.call_soon(self._release)
        await turn

    def _release(self) -> None:
        waiting, self.waiting, self.scheduled = self.waiting, [], False
        waiting.sort(key=lambda entry: entry[0])  # stable: ties keep the loop's order
        for _, turn in waiting:
            if not turn.done():  # not cancelled while it waited
                turn.set_result(None)  # resumed in this order, one after another

    def reply_started(self, connection: Any) -> None:
        if connection is None:
            return
        replied = self.replied
        replied.pop(connection, None)  # latest last: the oldest are the first to forget
        replied[connection] = asyncio.get_running_loop().time()
        if len(replied) > REMEMBERED_CONNECTIONS:
            for stale in list(replied)[:REMEMBERED_CONNECTIONS // 2]:
                del replied[stale]


class InOrder:
    """ASGI middleware: each HTTP request, once its whole body has arrived, waits for its
    place in :class:`ArrivalOrder`."""

    def __init__(self, app: ASGIApp, order: ArrivalOrder) -> None:
        self.app = app
        self.order = order

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived: list[Message] = []
        while True:
            message = await receive()
            arrived.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        replay = iter(arrived)
        order, connection = self.order, scope.get("client")

        async def received() -> Message:
            message = next(replay, None)
            return message if message is not None else await receive()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                order.reply_started(connection)
            await send(message)

        await order.wait(connection)
        await self.app(scope, received, sending)
