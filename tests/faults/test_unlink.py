"""Nothing is left after unlink(), whatever the order of unlink() and the handles' close()."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import pytest

import ipckit
from tests.conformance.test_contract import FACTORIES

_FORK: Any = multiprocessing.get_context("fork")
NAMED = ["shm-small-ring", "mq", "fifo"]  # a 64 KiB ring: 2 MiB goes out of band there too


@pytest.mark.parametrize("backend", NAMED)
@pytest.mark.parametrize("order", ["unlink-then-close", "close-then-unlink", "between"])
def test_unread_big_messages_go_with_the_channel(backend: str, order: str) -> None:
    """A big message nobody read leaves no block behind (the leak check fails the test)."""
    a, b = FACTORIES[backend]({}, {})
    a.send_bytes(os.urandom(2 << 20))
    if order == "unlink-then-close":
        a.unlink()
        b.close()
        a.close()
    elif order == "close-then-unlink":
        b.close()
        a.close()
        a.unlink()
    else:
        b.close()
        a.unlink()
        a.close()


@pytest.mark.parametrize("backend", NAMED)
def test_unlink_keeps_the_callers_hold(backend: str) -> None:
    """unlink() on an open handle must not drop its hold: the others' close() then sweeps.

    (An flock upgrade that is refused removes the shared lock on Linux.)
    """
    a, b = FACTORIES[backend]({}, {})
    c = _attach(a)
    big = os.urandom(2 << 20)
    try:
        b.send_bytes(big)
        b.unlink()
        c.close()
        a.close()  # not the last holder: b still is
        assert b.recv_bytes(timeout=10) == big
    finally:
        for ch in (a, b, c):
            ch.close()


def _attach(ch: ipckit.Channel) -> ipckit.Channel:
    return ipckit.open(ch.url, max_message_size=ch.max_message_size)


@pytest.mark.parametrize("backend", NAMED)
def test_a_forked_child_that_closes_last_sweeps_the_blocks(backend: str) -> None:
    """The child's inherited handle is a holder of its own, and the last one here."""
    a, b = FACTORIES[backend]({}, {})
    b.close()
    big = os.urandom(2 << 20)
    a.send_bytes(big)
    go = _FORK.Event()

    def child() -> None:
        go.wait(30)
        got = a.recv_bytes(timeout=10)
        a.close()
        os._exit(0 if got == big else 1)

    proc = _FORK.Process(target=child)
    proc.start()
    try:
        a.unlink()
        a.close()
        go.set()
        proc.join(30)
        assert proc.exitcode == 0
        left = [n for n in os.listdir("/dev/shm") if ".oob." in n and _name(a) in n]
        assert left == [], "the child closed last but left the blocks"
    finally:
        if proc.is_alive():
            proc.kill()
        a.close()


def _name(ch: ipckit.Channel) -> str:
    return os.path.basename(ch.url.partition("://")[2])
