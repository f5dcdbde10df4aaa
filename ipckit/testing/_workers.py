"""Child-process bodies for the contract checks (module level, so ``spawn`` can import them)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from ipckit.channel import Channel
from ipckit.errors import ChannelClosed

__all__ = ["echo", "produce_then_die", "produce_tagged", "receive_count"]


def echo(inbound: Channel, outbound: Channel, count: int) -> None:
    """Receive ``count`` objects and send each back, then close both handles."""
    with inbound, outbound:
        for _ in range(count):
            outbound.send(inbound.recv(timeout=30), timeout=30)


def produce_then_die(ch: Channel, count: int) -> None:
    """Send ``count`` numbered messages, then SIGKILL this process (no clean-up)."""
    for i in range(count):
        ch.send(i, timeout=30)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)


def produce_tagged(ch: Channel, tag: int, count: int, size: int) -> None:
    """Send ``count`` messages ``[tag, seq, padding]`` and close."""
    pad = b"p" * size
    with ch:
        for seq in range(count):
            ch.send([tag, seq, pad], timeout=60)


def receive_count(ch: Channel, results: Channel, count: int) -> None:
    """Receive ``count`` messages, report them on ``results``, and close."""
    got: list[Any] = []
    with ch, results:
        try:
            for _ in range(count):
                got.append(ch.recv(timeout=60))
        except ChannelClosed:
            pass
        results.send(got, timeout=60)
