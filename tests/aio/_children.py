"""Child-process bodies for the aio tests (module level, so ``spawn`` can import them)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import ipckit
from ipckit import aio


def rpc_clients(url: str, clients: int, calls: int) -> None:
    """``clients`` concurrent connections in one loop, each making ``calls`` round trips."""

    async def one(n: int) -> None:
        async with aio.connect(url, timeout=30) as ch:
            for i in range(calls):
                await ch.send({"client": n, "i": i})
                reply = await ch.recv(timeout=30)
                if reply != {"client": n, "i": i, "doubled": 2 * i}:
                    raise AssertionError(f"client {n} got {reply!r}")

    async def main() -> None:
        await asyncio.gather(*(one(n) for n in range(clients)))

    asyncio.run(main())


def feed_queues(urls: list[str], count: int) -> None:
    """Send ``count`` numbered messages to each queue, round robin, with the sync API."""
    chans = [ipckit.open(u) for u in urls]
    try:
        for i in range(count):
            for q, ch in enumerate(chans):
                ch.send([q, i], timeout=30)
    finally:
        for ch in chans:
            ch.close()


def park_then_report(url: str, ready_path: str) -> None:
    """Wait in an aio recv until SIGINT; exit 3 when KeyboardInterrupt arrived as asyncio says."""

    async def main() -> None:
        async with aio.open(url) as ch:
            with open(ready_path, "w") as f:
                f.write(str(os.getpid()))
            await ch.recv()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(3)
    sys.exit(0)


def park_forever(url: str, ready_path: str) -> None:
    """Wait in an aio recv until killed (SIGKILL: no clean-up at all)."""

    async def main() -> None:
        ch = aio.open(url)
        with open(ready_path, "w") as f:
            f.write(str(os.getpid()))
        await ch.recv()

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    asyncio.run(main())
    time.sleep(60)
