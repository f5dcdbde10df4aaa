"""Running coroutines under each event loop, and async pairs from the conformance factories."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

from ipckit.aio import AsyncChannel
from tests.conformance.test_contract import FACTORIES

#: Longest any test coroutine may take before it fails (never a hang).
BOUND = 30.0
LOOPS = ["asyncio", "uvloop"]

try:
    import uvloop as _uvloop
except ImportError:
    pass
else:
    # uvloop keeps one wake-up pipe per process from its first loop on: make it now, so
    # the leak check does not blame the first test that runs on uvloop.
    with asyncio.Runner(loop_factory=_uvloop.new_event_loop) as _runner:
        _runner.run(asyncio.sleep(0))


def run(loop: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``fn()`` to completion on a fresh loop of kind ``loop``, bounded by BOUND."""
    factory = None
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop

    async def bounded() -> Any:
        async with asyncio.timeout(BOUND):
            return await fn()

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(bounded())


@contextmanager
def async_pair(
    backend: str, a: Mapping[str, Any] | None = None, b: Mapping[str, Any] | None = None
) -> Iterator[tuple[AsyncChannel, AsyncChannel]]:
    """Two async handles from the backend's conformance factory; ``a`` sends to ``b``."""
    left, right = FACTORIES[backend](a or {}, b or {})
    try:
        yield AsyncChannel(left), AsyncChannel(right)
    finally:
        right.close()
        left.close()
        left.unlink()


def fill(ch: AsyncChannel, size: int = 4000) -> int:
    """Send with timeout=0 until the channel is full; how many went in."""
    from ipckit import Full

    payload = b"f" * size
    for count in range(100_000):
        try:
            ch._ch.send_bytes(payload, timeout=0)
        except Full:
            return count
    raise AssertionError("the channel never filled up")
