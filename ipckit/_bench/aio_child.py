"""The child loops of the ``-aio`` rows of ``ipckit bench``: child.py's rounds, awaited.

Why a second copy of the loops: an awaited call is only measured as users make it
from inside a running loop. Driving each call from child.py's sync loops with
``loop.run_until_complete`` would add the loop's own entry and exit to every
message (measured on the 2-CPU bench VM: 21 us per call, for a 64-byte
``shm://`` send that takes 1.0 us awaited in a loop) and report asyncio, not
``ipckit.aio``. Only the one-producer, one-consumer byte rounds exist here
(throughput and ping-pong): the rows say n/a elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from itertools import cycle
from time import perf_counter_ns
from typing import Any

from ipckit import aio
from ipckit._bench.child import _WARMUP, describe_mismatch, round_trips
from ipckit._bench.workloads import END
from ipckit.channel import Channel

__all__ = ["consume", "echo", "ping", "produce"]


def _adopt(ch: Channel | None) -> aio.AsyncChannel:
    assert ch is not None
    return aio.AsyncChannel(ch)


def _pair(
    out: Channel | None, inbound: Channel | None
) -> tuple[aio.AsyncChannel, aio.AsyncChannel]:
    """Both directions; one async handle when they are one duplex channel (a socket)."""
    tx = _adopt(out)
    return tx, tx if inbound is out else _adopt(inbound)


def produce(
    out: Channel | None, variants: Sequence[bytes], duration_ns: int, min_messages: int
) -> dict[str, Any]:
    """Send variants in turn for ``duration_ns`` (at least ``min_messages``), then END."""

    async def run() -> dict[str, Any]:
        tx = _adopt(out)
        send = tx.send_bytes
        size = max(len(v) for v in variants)
        stride = max(1, min(64, 65536 // size))
        source = cycle(variants)
        lengths = cycle([len(v) for v in variants])
        sent = nbytes = 0
        t0 = perf_counter_ns()
        deadline = t0 + duration_ns
        while sent < min_messages or perf_counter_ns() < deadline:
            for _ in range(stride):
                await send(next(source))
                nbytes += next(lengths)
            sent += stride
        t1 = perf_counter_ns()
        await send(END)
        return {"sent": sent, "bytes": nbytes, "t0": t0, "t1": t1}

    return asyncio.run(run())


def consume(inbound: Channel | None, expected: Sequence[bytes]) -> dict[str, Any]:
    """Receive and check every message until END."""

    async def run() -> dict[str, Any]:
        rx = _adopt(inbound)
        recv = rx.recv_bytes
        mask = len(expected) - 1
        failure: str | None = None
        nbytes = i = 0
        while True:
            data = await recv()
            if data != expected[i & mask]:
                if data == END:
                    break
                if failure is None:
                    failure = describe_mismatch(i, data, expected[i & mask])
            nbytes += len(data)
            i += 1
        t_end = perf_counter_ns()
        return {"received": i, "bytes": nbytes, "t_end": t_end, "failure": failure}

    return asyncio.run(run())


def ping(
    out: Channel | None,
    inbound: Channel | None,
    variants: Sequence[bytes],
    duration_ns: int,
    min_messages: int,
) -> dict[str, Any]:
    """Send one message, await it back, check it; time each round trip."""

    async def run() -> dict[str, Any]:
        tx, rx = _pair(out, inbound)
        samples: list[int] = []
        failure: str | None = None
        n = len(variants)
        i = 0
        deadline = perf_counter_ns() + duration_ns
        while i < _WARMUP + min_messages or perf_counter_ns() < deadline:
            msg = variants[i % n]
            start = perf_counter_ns()
            await tx.send_bytes(msg)
            back = await rx.recv_bytes()
            took = perf_counter_ns() - start
            if back != msg and failure is None:
                failure = describe_mismatch(i, back, msg) + " (after a round trip)"
            if i >= _WARMUP:
                samples.append(took)
            i += 1
        await tx.send_bytes(END)
        return round_trips(i, samples, failure)

    return asyncio.run(run())


def echo(out: Channel | None, inbound: Channel | None) -> dict[str, Any]:
    """Send every message straight back until END."""

    async def run() -> dict[str, Any]:
        tx, rx = _pair(out, inbound)
        count = 0
        while True:
            data = await rx.recv_bytes()
            if data == END:
                return {"received": count}
            await tx.send_bytes(data)
            count += 1

    return asyncio.run(run())
