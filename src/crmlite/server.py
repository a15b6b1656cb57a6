"""Running the ASGI app: one process, or N workers each with its own SO_REUSEPORT socket.

``uvicorn --workers`` shares one listening socket, and a burst of keep-alive
connections often lands on a single worker (perf-anchors.md, pitfall 3); a socket per
worker lets the kernel balance connections across them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import signal
import socket
import sys
from multiprocessing.connection import wait
from typing import Any

import uvicorn

from crmlite.api.app import create_app
from crmlite.store.base import open_store


def _socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


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


def run_worker(host: str, port: int, database_url: str, reuse_port: bool) -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        sock = _socket(host, port, reuse_port)
    except OSError as exc:
        sys.exit(f"crmlite: cannot listen on {host}:{port}: {exc.strerror or exc}")
    store = open_store(database_url)
    config = _config(create_app(store))
    server = uvicorn.Server(config)
    collect_garbage_less_often()

    async def serve_then_close() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
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

    The parent only supervises: SIGTERM or SIGINT stops every worker; should one worker
    exit (it could not bind the port, it crashed), the others are stopped too and the
    parent exits with an error, rather than serve on with part of its capacity.
    """
    if workers <= 1:
        run_worker(host, port, database_url, reuse_port=False)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=run_worker, args=(host, port, database_url, True),
                         name=f"crmlite-worker-{n}", daemon=False)
             for n in range(1, workers + 1)]
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
    wait([p.sentinel for p in procs])  # until a worker exits
    crashed = not stopping
    stop(signal.SIGTERM, None)
    for p in procs:
        p.join(15)
        if p.is_alive():
            p.kill()
            p.join()
    if crashed:
        sys.exit(f"crmlite: a worker process exited; stopped all {workers} workers")
