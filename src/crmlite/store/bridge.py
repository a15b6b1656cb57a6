"""Synchronous code on the event loop: a greenlet bridge.

The engine is plain synchronous Python; the server runs on an asyncio loop, where a
database driver such as asyncpg wants to be awaited. :func:`greenlet_spawn` runs a sync
function in a greenlet of its own; whenever that function (or anything it calls) needs
a coroutine's result it calls :func:`await_only`, which switches back to the loop's side,
where :func:`greenlet_spawn` awaits the coroutine and switches its result (or exception)
back in. No thread, no GIL hand-off: the sync code and the driver take turns on the
loop's thread, and other requests run while one waits for the database.

The same idea as SQLAlchemy's asyncio extension, in the few lines crmlite needs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import greenlet

T = TypeVar("T")


class _Bridged(greenlet.greenlet):
    """A greenlet running sync code for :func:`greenlet_spawn`; ``driver`` awaits for it."""

    __slots__ = ("driver",)

    def __init__(self, fn: Callable[..., Any], driver: greenlet.greenlet) -> None:
        super().__init__(fn, driver)
        self.driver = driver
        # contextvars as the calling task sees them (a greenlet property, not a slot)
        self.gr_context = driver.gr_context  # type: ignore[misc]


def bridged() -> bool:
    """Whether the caller runs inside :func:`greenlet_spawn` (so may :func:`await_only`)."""
    return isinstance(greenlet.getcurrent(), _Bridged)


def await_only(awaitable: Awaitable[T]) -> T:
    """The awaitable's result, from sync code that :func:`greenlet_spawn` runs."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Bridged):
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()  # no "coroutine was never awaited" warning on top of this error
        raise RuntimeError("await_only() called outside greenlet_spawn()")
    return current.driver.switch(awaitable)  # type: ignore[no-any-return]


async def greenlet_spawn(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` on this loop, awaiting what it hands to :func:`await_only`."""
    child = _Bridged(fn, greenlet.getcurrent())
    result: Any = child.switch(*args, **kwargs)
    while not child.dead:
        try:
            value = await result
        except BaseException as exc:  # into the sync code, where it was awaited
            result = child.throw(exc)
        else:
            result = child.switch(value)
    return result  # type: ignore[no-any-return]
