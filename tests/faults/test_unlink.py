"""Nothing is left after unlink(), whatever the order of unlink() and the handles' close()."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from typing import Any

import pytest

import ipckit
from ipckit.testing import unique_name
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


def test_an_attacher_waits_for_the_last_close_to_finish_cleaning_up(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the last handle sweeps, the file stays locked exclusively: no one slips in.

    An attacher that got in would find the FIFO still open (its references alive)
    and then lose the blocks the sweep removes.
    """
    from ipckit.backends import _queue

    url = f"fifo://{tmp_path}/{unique_name('sweep')}"
    a = ipckit.open(url, create=True)
    a.send_bytes(os.urandom(1 << 20))
    sweep = _queue.sweep_blocks
    sweeping = threading.Event()

    def slow_sweep(prefix: str) -> int:
        sweeping.set()
        time.sleep(1.0)
        return sweep(prefix)

    monkeypatch.setattr(_queue, "sweep_blocks", slow_sweep)
    closer = threading.Thread(target=a.close)
    closer.start()
    try:
        assert sweeping.wait(10)
        with ipckit.open(url) as b:  # waits for the hold, then finds the contents gone
            with pytest.raises(ipckit.Empty):
                b.recv_bytes(timeout=0.5)
            b.unlink()
    finally:
        closer.join(10)


@pytest.mark.parametrize("backend", NAMED)
def test_forks_racing_opens_and_closes_leave_no_hold_behind(backend: str) -> None:
    """A handle closed by one thread while another forks keeps no descriptor (no hold)."""
    a, b = FACTORIES[backend]({}, {})
    b.close()
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            _attach(a).close()

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(100):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child only exits
                os._exit(0)
            os.waitpid(pid, 0)
    finally:
        stop.set()
        thread.join(30)
    name = _name(a)
    a.close()
    held = [t for fd in os.listdir("/proc/self/fd") if name in (t := _target(fd))]
    assert held == [], held
    a.unlink()


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""
