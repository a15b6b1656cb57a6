"""Running the ASGI app: one process, or N workers that the parent hands connections to.

``uvicorn --workers`` shares one listening socket, and a burst of keep-alive connections
often lands on a single worker (perf-anchors.md, pitfall 3). A ``SO_REUSEPORT`` socket per
worker spreads them by a hash of their addresses: unevenly for a handful of long-lived
connections (16 clients split 5 / 11 between two workers, measured; bench/RESULTS.md), and
the clients of the busier worker wait longer. So the parent listens, accepts, and passes
each connection to the next worker in turn over a Unix socket (``SCM_RIGHTS``); a worker
serves it as if it had accepted it. Accepting costs the parent microseconds per
connection, nothing per request.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import multiprocessing
import select
import signal
import socket
import sys
import threading
from multiprocessing.connection import wait
from typing import Any

import uvicorn

from crmlite.api.app import create_app
from crmlite.store.base import open_store

log = logging.getLogger("crmlite.server")


def _socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _listen(host: str, port: int) -> socket.socket:
    try:
        return _socket(host, port)
    except OSError as exc:
        sys.exit(f"crmlite: cannot listen on {host}:{port}: {exc.strerror or exc}")


# How long a connection waits for a worker when every worker has fallen behind.
HAND_OUT_WAIT = 5.0


def hand_out(listener: socket.socket, workers: list[socket.socket],
             stopping: threading.Event) -> None:
    """Accept connections and pass each to the next worker, until ``stopping``.

    A worker's socket holds only so many handed connections it has not taken yet (the
    kernel's socket buffer: a few hundred): a worker that far behind (its event loop stuck)
    is skipped rather than waited for, so it does not hold up the connections of every
    other worker."""
    for worker in workers:
        worker.setblocking(False)
    turn = 0
    while not stopping.is_set():
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            if not stopping.is_set():  # out of file descriptors, say: try again shortly
                log.warning("crmlite: cannot accept a connection: %s", exc)
                stopping.wait(0.1)
            continue
        with conn:
            taken = pass_on(conn, workers, turn)
            if taken is None:  # every worker is behind (or gone): wait for one
                select.select([], workers, [], HAND_OUT_WAIT)
                taken = pass_on(conn, workers, turn)
            if taken is None:
                log.warning("crmlite: no worker took a connection within %g s; closed it",
                            HAND_OUT_WAIT)
            else:
                turn = (taken + 1) % len(workers)


def pass_on(conn: socket.socket, workers: list[socket.socket], turn: int) -> int | None:
    """Pass ``conn`` to the first worker from ``turn`` on that takes it at once (one that
    is behind or has exited does not); which one took it."""
    for i in range(len(workers)):
        n = (turn + i) % len(workers)
        try:
            socket.send_fds(workers[n], [b"c"], [conn.fileno()])
            return n
        except OSError:
            continue
    return None


async def take_connections(server: uvicorn.Server, handed: socket.socket) -> None:
    """Serve the connections the parent hands this worker (see the module's docstring)."""
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    config = server.config
    # what uvicorn builds for the connections it accepts itself (Server.startup)
    protocol = functools.partial(config.http_protocol_class,  # type: ignore[call-arg]
                                 config=config,
                                 server_state=server.server_state,
                                 app_state=server.lifespan.state)
    handed.setblocking(False)
    ready = asyncio.Event()
    loop.add_reader(handed.fileno(), ready.set)
    try:
        while not server.should_exit:
            await ready.wait()
            ready.clear()
            while True:
                try:
                    data, fds, _, _ = socket.recv_fds(handed, 16, 16)
                except BlockingIOError:
                    break
                if not data:  # the parent is gone
                    return
                for fd in fds:
                    conn = socket.socket(fileno=fd)
                    conn.setblocking(False)
                    try:
                        await loop.connect_accepted_socket(protocol, conn)
                    except OSError as exc:  # the client is gone already: the next one
                        log.info("crmlite: a handed connection failed: %s", exc)
                        conn.close()
    finally:
        loop.remove_reader(handed.fileno())


def _config(app: Any) -> uvicorn.Config:
    loop = "uvloop" if sys.platform != "win32" else "asyncio"
    return uvicorn.Config(app, loop=loop, http="httptools", log_level="warning",
                          access_log=False, lifespan="off", timeout_keep_alive=30)


def collect_garbage_less_often() -> None:
    """A 100-record request allocates thousands of short-lived objects, nearly all freed by
    reference counting; with the default threshold (700 allocations) the cyclic collector
    runs many times per request for next to nothing. What startup built is frozen (never
    scanned again) and the youngest generation is collected every 20,000 allocations."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)


def run_worker(host: str, port: int, database_url: str,
               handed: socket.socket | None = None, workers: int = 1) -> None:
    """Serve on ``host:port``, or the connections the parent hands over ``handed``; one of
    ``workers`` processes."""
    logging.basicConfig(level=logging.WARNING)
    sockets = [_listen(host, port)] if handed is None else []
    store = open_store(database_url, processes=workers)
    config = _config(create_app(store))
    server = uvicorn.Server(config)
    collect_garbage_less_often()

    async def serve_then_close() -> None:
        taking = None
        if handed is not None:
            taking = asyncio.get_running_loop().create_task(take_connections(server, handed))
        try:
            await server.serve(sockets=sockets)
        finally:
            if taking is not None:
                taking.cancel()
            close_on_loop = getattr(store, "close_on_loop", None)
            if close_on_loop is not None:  # connections bound to this loop (PostgreSQL)
                await close_on_loop()

    try:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(serve_then_close())
    finally:
        store.close()


def serve(host: str, port: int, database_url: str, workers: int = 1) -> None:
    """Serve in this process, or in ``workers`` processes sharing the port.

    With workers, the parent listens and hands each connection to the next worker (see the
    module's docstring), and supervises: SIGTERM or SIGINT stops every worker; should one
    worker exit (it crashed, it could not open the database), the others are stopped too
    and the parent exits with an error, rather than serve on with part of its capacity.
    """
    if workers <= 1:
        run_worker(host, port, database_url)
        return
    listener = _listen(host, port)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(workers)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=run_worker, args=(host, port, database_url, theirs, workers),
                         name=f"crmlite-worker-{n}", daemon=False)
             for n, (_, theirs) in enumerate(pairs, 1)]
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive():
                p.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.start()
    for _, theirs in pairs:
        theirs.close()
    accepting = threading.Event()
    threading.Thread(target=hand_out, args=(listener, [ours for ours, _ in pairs], accepting),
                     name="crmlite-accept", daemon=True).start()
    wait([p.sentinel for p in procs])  # until a worker exits
    accepting.set()
    listener.shutdown(socket.SHUT_RDWR)  # ends hand_out's accept()
    listener.close()
    crashed = not stopping
    stop(signal.SIGTERM, None)
    for p in procs:
        p.join(15)
        if p.is_alive():
            p.kill()
            p.join()
    if crashed:
        sys.exit(f"crmlite: a worker process exited; stopped all {workers} workers")
