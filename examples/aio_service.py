"""An asyncio service that serves many channels at once with ipckit.aio.

Run: python examples/aio_service.py

One event loop, no threads per channel:

- a price service answers 40 concurrent clients over ``unix://``, each asking
  for quotes and getting replies on its own connection;
- in the same loop, a collector drains four ``shm://`` job-result queues that
  worker processes (using the plain sync API) fill, and keeps a running total.

The clients live in another process with its own loop. Every wait is the loop
watching a descriptor: the task parks, the loop serves the others. The program
checks every reply and every result and exits 1 on a wrong one.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time

import ipckit
from ipckit import aio

CLIENTS = 40
QUOTES_PER_CLIENT = 50
QUEUES = 4
RESULTS_PER_QUEUE = 2000
PRICES = {"ACME": 12.5, "GLOBEX": 40.0, "INITECH": 3.25}


def price(symbol: str, qty: int) -> float:
    """The service's business logic: a quote for ``qty`` shares."""
    return round(PRICES[symbol] * qty, 2)


async def serve_client(conn: aio.AsyncChannel) -> int:
    """Answer one client's requests until it hangs up; how many it asked."""
    answered = 0
    async with conn:
        async for request in conn:  # ends when the client closes its end
            await conn.send(
                {"id": request["id"], "total": price(request["symbol"], request["qty"])}
            )
            answered += 1
    return answered


async def collect(url: str) -> int:
    """Drain one results queue (batches of up to 256) until its producer shuts it down."""
    total = 0
    async with aio.open(url) as queue:
        while True:
            try:
                batch = await queue.recv_many(256, timeout=30)
            except ipckit.ChannelClosed:
                return total
            total += sum(batch)


def worker(url: str) -> None:
    """A sync worker process: push numbered results, then end the stream."""
    with ipckit.open(url) as queue:
        for i in range(RESULTS_PER_QUEUE):
            queue.send(i, timeout=30)
        queue.shutdown()


def clients(url: str) -> None:
    """Another process, another loop: CLIENTS concurrent connections asking for quotes."""

    async def one(n: int) -> None:
        async with aio.connect(url, timeout=30) as conn:
            for i in range(QUOTES_PER_CLIENT):
                symbol = list(PRICES)[(n + i) % len(PRICES)]
                await conn.send({"id": i, "symbol": symbol, "qty": n + 1})
                reply = await conn.recv(timeout=30)
                if reply != {"id": i, "total": price(symbol, n + 1)}:
                    raise SystemExit(f"client {n}: wrong reply {reply!r}")

    async def all_clients() -> None:
        await asyncio.gather(*(one(n) for n in range(CLIENTS)))

    asyncio.run(all_clients())


async def main() -> int:
    ctx = mp.get_context("spawn")
    urls = [f"shm://aio-results-{os.getpid()}-{q}" for q in range(QUEUES)]
    owned = [ipckit.open(u, create=True, capacity="256KiB") for u in urls]
    procs: list[mp.process.BaseProcess] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with aio.listen(f"unix://{tmp}/prices.sock") as listener:
                started = time.perf_counter()
                procs = [ctx.Process(target=worker, args=(u,)) for u in urls]
                procs.append(ctx.Process(target=clients, args=(listener.url,)))
                for p in procs:
                    p.start()
                collectors = [asyncio.create_task(collect(u)) for u in urls]
                async with asyncio.TaskGroup() as group:
                    served = [
                        group.create_task(serve_client(await listener.accept(timeout=30)))
                        for _ in range(CLIENTS)
                    ]
                totals = await asyncio.gather(*collectors)
                elapsed = time.perf_counter() - started
        for p in procs:
            await asyncio.to_thread(p.join, 30)
        answered = sum(t.result() for t in served)
        want_total = RESULTS_PER_QUEUE * (RESULTS_PER_QUEUE - 1) // 2
        ok = (
            answered == CLIENTS * QUOTES_PER_CLIENT
            and totals == [want_total] * QUEUES
            and all(p.exitcode == 0 for p in procs)
        )
        print(
            f"one loop: {answered} quotes to {CLIENTS} clients and "
            f"{QUEUES * RESULTS_PER_QUEUE} results from {QUEUES} shm:// queues "
            f"in {elapsed:.2f} s"
        )
        if not ok:
            print(f"WRONG: answered={answered} totals={totals}", file=sys.stderr)
            return 1
        return 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        for ch in owned:
            ch.close()
            ch.unlink()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
