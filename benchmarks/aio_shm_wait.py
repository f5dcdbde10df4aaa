"""shm:// under asyncio: the FIFO doorbell of ipckit.aio against a worker-thread wait.

    python benchmarks/aio_shm_wait.py [--markdown FILE]

Two ways an event loop can wait on a shared-memory ring, each in two processes
pinned to different CPUs, 64-byte messages, every message checked:

- ``fifo``: ``ipckit.aio`` (the loop watches the ring's FIFO, rung only while a
  task is parked);
- ``thread``: the sync channel, trying without blocking first and otherwise
  ``await loop.run_in_executor(pool, ch.recv_bytes)``, the blocking wait in a
  worker thread, which is what users do without an async API.

Rows: ping-pong round trip (p50 and p99) and one-way throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ipckit
from ipckit import aio

MSG = b"m" * 64
END = b"end"
ROUNDS = 3000
THROUGHPUT_SECONDS = 1.0


class _ThreadWait:
    """The worker-thread way: non-blocking first, the blocking call in a thread otherwise."""

    def __init__(self, ch: ipckit.Channel) -> None:
        self.ch = ch
        self.pool = ThreadPoolExecutor(1)

    async def aclose(self) -> None:
        self.pool.shutdown()
        self.ch.close()

    async def send_bytes(self, data: bytes) -> None:
        try:
            self.ch.send_bytes(data, timeout=0)
        except ipckit.Full:
            await asyncio.get_running_loop().run_in_executor(self.pool, self.ch.send_bytes, data)

    async def recv_bytes(self) -> bytes:
        try:
            return self.ch.recv_bytes(timeout=0)
        except ipckit.Empty:
            return await asyncio.get_running_loop().run_in_executor(self.pool, self.ch.recv_bytes)


def _ends(kind: str, urls: tuple[str, str]) -> tuple[Any, Any]:
    out, inbound = ipckit.open(urls[0]), ipckit.open(urls[1])
    if kind == "fifo":
        return aio.AsyncChannel(out), aio.AsyncChannel(inbound)
    return _ThreadWait(out), _ThreadWait(inbound)


def _pin(cpu: int) -> None:
    # By the machine's CPUs, not this process's affinity: a forked child inherits the
    # parent's single CPU and must still move to its own.
    cpus = os.cpu_count() or 1
    if cpus > 1:
        os.sched_setaffinity(0, {cpu % cpus})


def _echo(kind: str, urls: tuple[str, str]) -> None:
    _pin(1)

    async def run() -> None:
        tx, rx = _ends(kind, urls)
        while (data := await rx.recv_bytes()) != END:
            await tx.send_bytes(data)
        await tx.aclose()
        await rx.aclose()

    asyncio.run(run())


def _sink(kind: str, urls: tuple[str, str], report: Any) -> None:
    _pin(1)

    async def run() -> None:
        tx, rx = _ends(kind, urls)
        count = 0
        while (data := await rx.recv_bytes()) != END:
            if data != MSG:
                raise SystemExit("corrupted message")
            count += 1
        report.send((count, time.perf_counter()))
        await tx.aclose()
        await rx.aclose()

    asyncio.run(run())


def _pingpong(kind: str, urls: tuple[str, str]) -> tuple[float, float]:
    child = mp.get_context("fork").Process(target=_echo, args=(kind, (urls[1], urls[0])))
    child.start()

    async def run() -> list[float]:
        tx, rx = _ends(kind, urls)
        samples = []
        for i in range(ROUNDS + 100):
            start = time.perf_counter()
            await tx.send_bytes(MSG)
            if await rx.recv_bytes() != MSG:
                raise SystemExit("corrupted echo")
            if i >= 100:
                samples.append(time.perf_counter() - start)
        await tx.send_bytes(END)
        await tx.aclose()
        await rx.aclose()
        return sorted(samples)

    samples = asyncio.run(run())
    child.join(30)
    return samples[len(samples) // 2] * 1e6, samples[int(len(samples) * 0.99)] * 1e6


def _throughput(kind: str, urls: tuple[str, str]) -> float:
    mine, theirs = mp.Pipe()
    child = mp.get_context("fork").Process(target=_sink, args=(kind, (urls[1], urls[0]), theirs))
    child.start()

    async def run() -> tuple[int, float]:
        tx, rx = _ends(kind, urls)
        sent = 0
        start = time.perf_counter()
        end = start + THROUGHPUT_SECONDS
        while time.perf_counter() < end:
            for _ in range(64):
                await tx.send_bytes(MSG)
            sent += 64
        await tx.send_bytes(END)
        await tx.aclose()
        await rx.aclose()
        return sent, start

    sent, start = asyncio.run(run())
    count, finished = mine.recv()
    child.join(30)
    assert count == sent
    return count / (finished - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markdown", help="write the table to this file too")
    args = parser.parse_args()
    _pin(0)
    rows = []
    for kind in ("fifo", "thread"):
        urls = (f"shm://aiow-{os.getpid()}-a", f"shm://aiow-{os.getpid()}-b")
        made = [ipckit.open(u, create=True, capacity="1MiB") for u in urls]
        try:
            p50, p99 = _pingpong(kind, urls)
            rate = _throughput(kind, urls)
        finally:
            for ch in made:
                ch.close()
                ch.unlink()
        rows.append((kind, p50, p99, rate))
    lines = [
        "| shm:// wait | ping-pong p50 | ping-pong p99 | throughput, 64 B |",
        "| --- | ---: | ---: | ---: |",
    ]
    names = {"fifo": "FIFO doorbell (`ipckit.aio`)", "thread": "worker thread (`run_in_executor`)"}
    for kind, p50, p99, rate in rows:
        lines.append(f"| {names[kind]} | {p50:.1f} us | {p99:.1f} us | {rate / 1e3:.0f}k msgs/s |")
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
