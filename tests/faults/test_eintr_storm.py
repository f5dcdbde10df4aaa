"""An interval timer firing every 1 ms (SIGALRM, handled) during blocking calls, on every backend.

Calls complete, or time out on time; none raises InterruptedError. The timeout
overshoot (how much later than asked a timed-out call returns) is measured over
many calls, sync and async, and with ``IPCKIT_FIGURES=FILE`` appended to FILE as a
JSON line per backend (docs/reliability.md shows the p50 and p99).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import ipckit
from ipckit import aio
from tests.conformance.test_contract import FACTORIES

TIMEOUT = 0.01
CALLS = 40
#: A timed-out call later than this is a failure, not a slow machine: 100x the timeout.
WORST = 1.0


@contextmanager
def interval_timer(period: float = 0.001) -> Iterator[list[int]]:
    """SIGALRM every ``period`` s (ITIMER_REAL) until the block ends; counts the signals."""
    hits = [0]

    def handler(_signum: int, _frame: object) -> None:
        hits[0] += 1

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, period, period)
    try:
        yield hits
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _overshoots(call: object, expected: type[BaseException]) -> list[float]:
    out = []
    for _ in range(CALLS):
        start = time.monotonic()
        with pytest.raises(expected):
            call()  # type: ignore[operator]
        out.append(time.monotonic() - start - TIMEOUT)
    return out


@pytest.mark.parametrize("backend", sorted(FACTORIES))
def test_calls_keep_their_deadlines_under_a_1ms_timer(backend: str) -> None:
    a, b = FACTORIES[backend]({}, {})
    try:
        with interval_timer() as hits:
            recv = _overshoots(lambda: b.recv(timeout=TIMEOUT), ipckit.Empty)

            async def timed_out() -> list[float]:
                rx = aio.AsyncChannel(b)
                out = []
                for _ in range(CALLS):
                    start = time.monotonic()
                    with pytest.raises(ipckit.Empty):
                        await rx.recv(timeout=TIMEOUT)
                    out.append(time.monotonic() - start - TIMEOUT)
                return out

            async_recv = asyncio.run(timed_out())
            # Completions: a thread sends while the main thread, interrupted all along,
            # receives every message.
            count = 200
            sender = threading.Thread(target=lambda: [a.send(i, timeout=30) for i in range(count)])
            sender.start()
            got = [b.recv(timeout=30) for _ in range(count)]
            sender.join(30)
            send: list[float] = []
            if backend != "tcp":  # a full TCP connection ends mid-frame (see test_aio_contract)
                while True:
                    try:
                        a.send_bytes(b"f" * 1000, timeout=0)
                    except ipckit.Full:
                        break
                send = _overshoots(lambda: a.send_bytes(b"f" * 1000, timeout=TIMEOUT), ipckit.Full)
        assert hits[0] > 50, "the timer hardly fired"
        assert got == list(range(count))
        every = recv + async_recv + send
        assert max(every) < WORST, f"a timed-out call returned {max(every):.3f}s late"
        assert min(every) > -0.001, "a call gave up before its timeout"
        figures = {
            "kind": "eintr",
            "backend": backend,
            "signals": hits[0],
            "calls": len(every),
            "p50_ms": round(_percentile(every, 0.50) * 1000, 2),
            "p99_ms": round(_percentile(every, 0.99) * 1000, 2),
            "max_ms": round(max(every) * 1000, 2),
        }
        out = os.environ.get("IPCKIT_FIGURES")
        if out:
            with open(out, "a") as f:
                f.write(json.dumps(figures) + "\n")
    finally:
        b.close()
        a.close()
        a.unlink()
