"""Child bodies for the shm fault tests; each stops itself at a named point."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Sequence

import ipckit
from ipckit import _accel
from ipckit._deadline import Deadline
from ipckit._framing import HEADER, MAGIC, VERSION
from ipckit.backends import _ring as ring
from ipckit.testing import unique_name

#: Every point at which die_at can kill its process.
KILL_POINTS = [
    "holding_send_lock",
    "holding_recv_lock",
    "mid_copy",
    "reserved_not_committed",
    "after_taking",
    "sleeping_in_recv",
]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)


def _transport(url: str) -> tuple[ipckit.Channel, object]:
    ch = ipckit.open(url)
    return ch, ch._transport


def die_at(url: str, point: str, pure: bool = False) -> None:
    """Attach, go to ``point`` in the protocol, and SIGKILL this process there."""
    _accel.set_pure(pure)
    ch, t = _transport(url)
    never = lambda: False  # noqa: E731
    if point == "holding_send_lock":
        t._send_lock.acquire(Deadline(10), never)  # type: ignore[attr-defined]
        t._w[ring.DIRTY_SEND // 4] = 1  # type: ignore[attr-defined]
        _die()
    if point == "holding_recv_lock":
        t._recv_lock.acquire(Deadline(10), never)  # type: ignore[attr-defined]
        t._w[ring.DIRTY_RECV // 4] = 1  # type: ignore[attr-defined]
        _die()
    if point in ("mid_copy", "reserved_not_committed"):
        t._send_lock.acquire(Deadline(10), never)  # type: ignore[attr-defined]
        t._w[ring.DIRTY_SEND // 4] = 1  # type: ignore[attr-defined]
        buf = t._buf  # type: ignore[attr-defined]
        tail = t._q[ring.TAIL // 8]  # type: ignore[attr-defined]
        at = ring.DATA_OFFSET + tail % t._capacity  # type: ignore[attr-defined]
        HEADER.pack_into(buf, at, MAGIC, VERSION, 0, 0, 200)
        if point == "mid_copy":
            buf[at + 16 : at + 16 + 100] = b"\xee" * 100
        else:
            buf[at + 16 : at + 16 + 200] = b"\xee" * 200
        _die()
    if point == "after_taking":
        ch.recv_bytes(timeout=10)
        _die()
    if point == "sleeping_in_recv":
        # Registered as a waiter, then killed: the counter must not wedge anyone.
        t._w[ring.RECV_WAITERS // 4] += 1  # type: ignore[attr-defined]
        _die()
    raise AssertionError(f"unknown point {point}")


def stop_holding_lock(url: str) -> None:
    """Take the send lock, SIGSTOP ourselves, release after SIGCONT, then exit."""
    ch, t = _transport(url)
    t._send_lock.acquire(Deadline(10), lambda: False)  # type: ignore[attr-defined]
    os.kill(os.getpid(), signal.SIGSTOP)
    t._send_lock.release()  # type: ignore[attr-defined]
    ch.close()


def produce(url: str, tag: int, count: int, seed: int, pure: bool = False) -> None:
    """Send ``count`` messages of mixed sizes tagged with producer and sequence."""
    import random

    _accel.set_pure(pure)
    rng = random.Random(seed)
    with ipckit.open(url) as ch:
        batch: list[bytes] = []
        for seq in range(count):
            size = rng.choice((0, 8, 64, 500, 4000, 20000))
            msg = tag.to_bytes(2, "little") + seq.to_bytes(4, "little") + b"m" * size
            if rng.random() < 0.5:
                if batch:
                    ch.send_many(batch, timeout=60)
                    batch = []
                ch.send_bytes(msg, timeout=60)
            else:
                batch.append(msg)
                if len(batch) >= 16:
                    ch.send_many(batch, timeout=60)
                    batch = []
        if batch:
            ch.send_many(batch, timeout=60)


def consume(url: str, results: str, stop_after: int, pure: bool = False) -> None:
    """Receive until ``stop_after`` messages arrive in total, report (tag, seq) pairs."""
    _accel.set_pure(pure)
    pairs: list[tuple[int, int]] = []
    with ipckit.open(url) as ch, ipckit.open(results) as out:
        while True:
            try:
                got = ch.recv_many(64, timeout=0.5)
            except ipckit.Empty:
                continue
            except ipckit.ChannelClosed:
                break
            for m in got:
                pairs.append((int.from_bytes(m[:2], "little"), int.from_bytes(m[2:6], "little")))
        out.send(pairs, timeout=60)


def send_until_killed(url: str, pure: bool) -> None:
    """Send numbered self-checking messages as fast as possible until SIGKILLed."""
    _accel.set_pure(pure)
    with ipckit.open(url) as ch:
        seq = 0
        while True:
            body = seq.to_bytes(8, "little") * (1 + seq % 7)
            ch.send_bytes(body, timeout=60)
            seq += 1


def run_many(
    url: str,
    per_producer: int,
    method: str,
    *,
    pure_producers: Sequence[bool] = (False,) * 4,
    pure_consumers: Sequence[bool] = (False, False),
    capacity: str = "256KiB",
) -> None:
    """In the parent: producers and consumers (each pure or not) on ``url``; check every message.

    Every message arrives exactly once and each consumer sees each producer's
    messages in order.
    """
    results = f"shm://{unique_name('res')}"
    ctx = multiprocessing.get_context(method)
    with (
        ipckit.open(url, create=True, capacity=capacity) as q,
        ipckit.open(results, create=True) as res,
    ):
        producers = [
            ctx.Process(target=produce, args=(url, tag, per_producer, tag, pure))
            for tag, pure in enumerate(pure_producers)
        ]
        consumers = [
            ctx.Process(target=consume, args=(url, results, 0, pure)) for pure in pure_consumers
        ]
        for p in producers + consumers:
            p.start()
        for p in producers:
            p.join(600)
            assert p.exitcode == 0
        q.shutdown()
        reports = [res.recv(timeout=120) for _ in consumers]
        for c in consumers:
            c.join(60)
            assert c.exitcode == 0
        q.unlink()
        res.unlink()
    pairs = [tuple(p) for r in reports for p in r]
    assert len(pairs) == len(pure_producers) * per_producer, "every message exactly once"
    assert len(set(pairs)) == len(pairs), "no duplicates"
    for report in reports:
        for tag in range(len(pure_producers)):
            seqs = [s for t, s in report if t == tag]
            assert seqs == sorted(seqs), "each consumer sees a producer's messages in order"
