"""The greenlet bridge: sync code awaiting coroutines on the event loop (store/bridge.py)."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from crmlite.store.bridge import await_only, bridged, greenlet_spawn

REQUEST = contextvars.ContextVar[str]("REQUEST")


async def double(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


async def fail(message: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


def sync_sum(values: list[int]) -> int:
    """Plain sync code, as the engine is: it only knows await_only."""
    assert bridged()
    return sum(await_only(double(v)) for v in values)


def test_sync_code_awaits_through_the_bridge() -> None:
    assert asyncio.run(greenlet_spawn(sync_sum, [1, 2, 3])) == 12


def test_an_exception_of_the_awaited_coroutine_reaches_the_sync_code() -> None:
    def catches() -> str:
        try:
            await_only(fail("lost a race"))
        except ValueError as exc:
            return f"caught {exc}"
        return "not raised"

    assert asyncio.run(greenlet_spawn(catches)) == "caught lost a race"


def test_an_exception_of_the_sync_code_reaches_the_caller() -> None:
    def raises() -> None:
        await_only(double(1))
        raise KeyError("planned")

    with pytest.raises(KeyError, match="planned"):
        asyncio.run(greenlet_spawn(raises))


def test_many_bridged_calls_interleave_on_one_loop() -> None:
    order: list[str] = []

    def worker(name: str) -> str:
        for step in range(3):
            order.append(f"{name}{step}")
            await_only(asyncio.sleep(0.001))
        return REQUEST.get()

    async def one(name: str) -> str:
        REQUEST.set(name)  # each task's context is what its sync code sees
        return await greenlet_spawn(worker, name)

    async def main() -> list[str]:
        return await asyncio.gather(one("a"), one("b"))

    assert asyncio.run(main()) == ["a", "b"]
    assert order[:2] == ["a0", "b0"]  # b ran while a waited


def test_await_only_outside_the_bridge_is_an_error() -> None:
    assert not bridged()
    with pytest.raises(RuntimeError, match="outside greenlet_spawn"):
        await_only(double(1))
